"""Decoding one image file into a uint8 C x H x W tensor: mode conversion, crop, resize."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm")


@dataclass(frozen=True)
class ImageTransform:
    """What happens to every decoded image; part of the cache key."""

    image_size: int
    channels: int
    crop: int | None = None  # center square crop of this side before resizing; None: largest centered square
    squash: bool = False  # no crop at all: resize the whole image to a square (the aspect ratio changes)

    def key(self) -> dict:
        return {"image_size": self.image_size, "channels": self.channels, "crop": self.crop, "squash": self.squash}


def decode_image(data: bytes, transform: ImageTransform) -> torch.Tensor:
    """Decode fully (a truncated file raises here, not later) and transform."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.load()  # forces a full decode: truncated or corrupt data raises now
        # any mode (P, LA, RGBA, CMYK, I;16, ...) becomes L or RGB: converted, never crashed on
        image = image.convert("L" if transform.channels == 1 else "RGB")
        w, h = image.size
        side = min(transform.crop or min(w, h), w, h)
        if not transform.squash:
            left, top = (w - side) // 2, (h - side) // 2
            image = image.crop((left, top, left + side, top + side))
        if image.size != (transform.image_size, transform.image_size):
            image = image.resize((transform.image_size, transform.image_size), Image.BICUBIC if side < transform.image_size else Image.LANCZOS)
        array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
