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


#: the largest encoded image file read (bytes on disk or a zip entry's uncompressed size) and the
#: most pixels decoded: a file beyond either is skipped and named like any bad image, before its
#: bytes or pixels are held in memory (a 3 MB zip can hold a 3 GB entry; a 100 KB PNG can hold a
#: 40,000 x 40,000 canvas). Photographs of a few tens of megapixels pass.
MAX_FILE_BYTES = 64 * 2**20
MAX_PIXELS = 2**26


class ImageTooLarge(ValueError):
    """An image file or canvas beyond the bounds above."""


def decode_image(data: bytes, transform: ImageTransform) -> torch.Tensor:
    """Decode fully (a truncated file raises here, not later) and transform."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        w, h = image.size  # from the header, before any pixel is decoded
        if w * h > MAX_PIXELS:
            raise ImageTooLarge(f"{w}x{h} pixels, more than the {MAX_PIXELS:,} decoded per image")
        image.load()  # forces a full decode: truncated or corrupt data raises now
        image = to_8bit(image, "L" if transform.channels == 1 else "RGB")
        side = min(transform.crop or min(w, h), w, h)
        if not transform.squash:
            left, top = (w - side) // 2, (h - side) // 2
            image = image.crop((left, top, left + side, top + side))
        if image.size != (transform.image_size, transform.image_size):
            image = image.resize(
                (transform.image_size, transform.image_size), Image.BICUBIC if side < transform.image_size else Image.LANCZOS
            )
        array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def to_8bit(image, mode: str):
    """Any PIL mode -> 8-bit ``mode`` ("L" or "RGB") with its full range kept.

    Pillow's own convert() clips 16- and 32-bit values to 255 (a 50% grey 16-bit PNG would turn
    white), so integer modes are scaled here: 16-bit by 1/257, 32-bit ("I") by its type's range
    unless every value fits 16 bits (how 16-bit PNGs and TIFFs often open). Floats ("F") are
    taken as [0, 1] when they lie there, else as [0, 255]. Transparency (RGBA, LA, PA, P with a
    transparent colour) is composited onto black, so a transparent pixel is dark whatever colour
    its hidden channels hold."""
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        values = np.asarray(image).astype(np.float64)
        if image.mode == "F":
            finite = values[np.isfinite(values)]
            top = 1.0 if finite.size and finite.min() >= 0 and finite.max() <= 1.0 else 255.0
        elif image.mode == "I" and values.size and (values.max() > 65535 or values.min() < 0):
            top = 2.0**31 - 1
        else:
            top = 65535.0
        values = np.nan_to_num(values, nan=0.0, posinf=top, neginf=0.0)
        gray = Image.fromarray(np.clip(np.rint(values / top * 255.0), 0, 255).astype(np.uint8), mode="L")
        return gray.convert(mode)
    if image.mode == "P" and "transparency" in image.info or image.mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    try:
        return image.convert(mode)
    except ValueError:  # Pillow converts some modes (LAB, ...) to RGB only: through RGB, then to the mode asked for
        return image.convert("RGB").convert(mode)
