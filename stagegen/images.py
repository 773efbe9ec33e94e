"""Images: the one resize stagegen uses, and the grids and files the trainer and the CLI write
for people to look at."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def resize(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Float images N x C x H x W at ``size`` (square when an int): bilinear, antialiased when
    shrinking, so a smaller image averages the pixels it covers instead of sampling them (a
    stage's target, a metric's reference, a dataset's images, a classifier's input)."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[-2:]) == size:
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", antialias=shrink, align_corners=False)


def to_pil(image: torch.Tensor):
    """A C x H x W float tensor in [0, 1] -> PIL image."""
    from PIL import Image

    array = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    if array.shape[0] == 1:
        return Image.fromarray(array[0].numpy(), mode="L")
    return Image.fromarray(array.permute(1, 2, 0).numpy(), mode="RGB")


#: a grid larger than this (a 16,384 x 8,192 picture) is not one anybody looks at, and its
#: canvas alone would take gigabytes: write a folder of images instead
MAX_GRID_PIXELS = 2**27


def wrap_rows(rows: list[torch.Tensor], per_row: int | None) -> list[torch.Tensor]:
    """Rows of more than ``per_row`` images broken into blocks: the first ``per_row`` images of
    every row, then the next ones, so the stages of one sample stay one above the other."""
    if per_row is None or all(len(r) <= per_row for r in rows):
        return rows
    longest = max(len(r) for r in rows)
    return [r[start : start + per_row] for start in range(0, longest, per_row) for r in rows if len(r) > start]


def check_grid_size(rows: int, cols: int, size: int, padding: int = 2) -> tuple[int, int]:
    """The height and width of a grid of ``rows`` x ``cols`` images of ``size`` pixels, or a
    ValueError when it is larger than a grid may be (checked before the images are made)."""
    height, width = rows * (size + padding) + padding, cols * (size + padding) + padding
    if height * width > MAX_GRID_PIXELS:
        raise ValueError(
            f"a grid of {rows:,} row(s) x {cols:,} images of {size}x{size} would be {width:,} x {height:,} pixels, "
            f"more than the {MAX_GRID_PIXELS:,} a grid may have; ask for fewer images (or fewer per row), or give "
            "a folder (no suffix) to write one file per image"
        )
    return height, width


def grid(rows: list[torch.Tensor], padding: int = 2, upscale_to: int | None = None) -> torch.Tensor:
    """Rows of N x C x H x W images in [0, 1] -> one C x H' x W' image; each row may differ in
    resolution, and every image is shown at the largest one (nearest-neighbour), so a coarse
    stage's row sits under the same grid as the final one."""
    size = upscale_to or max(r.shape[-1] for r in rows)
    channels = max(r.shape[1] for r in rows)
    cols = max(r.shape[0] for r in rows)
    height, width = check_grid_size(len(rows), cols, size, padding)
    canvas = torch.ones(channels, height, width)
    for i, row in enumerate(rows):
        row = row.detach().float().cpu()
        if row.shape[-1] != size:
            row = F.interpolate(row, size=(size, size), mode="nearest")
        if row.shape[1] != channels:
            row = row.expand(-1, channels, -1, -1)
        for j, image in enumerate(row):
            top, left = padding + i * (size + padding), padding + j * (size + padding)
            canvas[:, top : top + size, left : left + size] = image
    return canvas


def image_format(path: str | Path) -> str:
    """The PIL format an image file's suffix names (.png -> PNG, .bmp -> BMP), or a ValueError
    listing the suffixes that can be written."""
    from PIL import Image

    path = Path(path)
    if not path.suffix:
        raise ValueError(f"{path} has no suffix: name the image format, e.g. {path.name}.png")
    writable = {ext: fmt for ext, fmt in Image.registered_extensions().items() if fmt in Image.SAVE}
    fmt = writable.get(path.suffix.lower())
    if fmt is None:
        common = ", ".join(e for e in (".png", ".jpg", ".webp", ".bmp", ".tif", ".gif") if e in writable)
        raise ValueError(f"cannot write {path}: {path.suffix!r} is not an image format Pillow writes; use one of {common}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the name of an image file to write")
    return fmt


def save_image(image: torch.Tensor, path: str | Path) -> Path:
    """Save a C x H x W image in [0, 1] in the format its suffix names (atomic: a reader never sees half a file)."""
    from .files import atomic_write

    path = Path(path)
    fmt = image_format(path)
    _refuse_non_finite([image.unsqueeze(0)], path)
    atomic_write(path, lambda tmp: to_pil(image).save(tmp, format=fmt))
    return path


def _refuse_non_finite(rows: list[torch.Tensor], path: str | Path) -> None:
    """A NaN becomes black in a PNG: a picture that hides what went wrong. Say it instead."""
    bad = sum(int((~torch.isfinite(r.detach())).flatten(1).any(1).sum()) for r in rows)
    if bad:
        total = sum(len(r) for r in rows)
        raise ValueError(
            f"{bad} of {total} images hold NaN or infinite values; {path} was not written. The pipeline's "
            "weights or its latents are not finite: check the temperature, or retrain from an earlier checkpoint"
        )


#: the smallest a grid shows an image (a 16 x 16 digit is scaled up to be seen)
MIN_GRID_IMAGE = 48


def save_grid(
    rows: list[torch.Tensor],
    path: str | Path,
    min_size: int = MIN_GRID_IMAGE,
    per_row: int | None = None,
    labels: list[str] | None = None,
) -> Path:
    """Rows of images as one picture (see :func:`grid`); rows longer than ``per_row`` wrap.
    ``labels`` (one per row: which stage, which prior) are written in a margin on the left."""
    if not rows or not all(len(r) for r in rows):
        raise ValueError(f"no images to put in {path}")
    if labels is not None and len(labels) != len(rows):
        raise ValueError(f"{len(labels)} labels for {len(rows)} rows")
    image_format(path)
    _refuse_non_finite(rows, path)
    if labels is not None and per_row is not None:  # each block of wrapped rows repeats the labels
        longest = max(len(r) for r in rows)
        labels = [label for start in range(0, longest, per_row) for r, label in zip(rows, labels) if len(r) > start]
    rows = wrap_rows(rows, per_row)
    size = max(r.shape[-1] for r in rows)
    canvas = grid(rows, upscale_to=max(size, min_size))
    if labels:
        canvas = _label_rows(canvas, labels, max(size, min_size))
    return save_image(canvas, path)


#: a row label is cut to this many characters: the margin (and the picture) stays the width of a
#: short name whatever a label holds
MAX_ROW_LABEL = 40


def _short(label: str) -> str:
    label = " ".join(str(label).split())
    return label if len(label) <= MAX_ROW_LABEL else label[: MAX_ROW_LABEL - 3] + "..."


def _label_rows(canvas: torch.Tensor, labels: list[str], size: int, padding: int = 2) -> torch.Tensor:
    """The grid with a white margin on its left holding each row's label (Pillow's own font)."""
    from PIL import Image, ImageDraw

    labels = [_short(label) for label in labels]
    image = to_pil(canvas)
    draw = ImageDraw.Draw(image)
    width = max(int(draw.textlength(label)) for label in labels) + 8
    if (image.width + width) * image.height > MAX_GRID_PIXELS:
        raise ValueError(
            f"the grid with its row labels would be {image.width + width:,} x {image.height:,} pixels, more than the "
            f"{MAX_GRID_PIXELS:,} a grid may have; ask for fewer images"
        )
    labelled = Image.new(image.mode, (image.width + width, image.height), 255 if image.mode == "L" else (255, 255, 255))
    labelled.paste(image, (width, 0))
    draw = ImageDraw.Draw(labelled)
    for i, label in enumerate(labels):
        top = padding + i * (size + padding) + size // 2 - 5
        draw.text((4, top), label, fill=0 if image.mode == "L" else (0, 0, 0))
    array = torch.from_numpy(np.asarray(labelled).copy()).float() / 255
    return array.unsqueeze(0) if array.dim() == 2 else array.permute(2, 0, 1)
