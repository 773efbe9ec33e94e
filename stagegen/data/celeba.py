"""CelebA "Align&Cropped" from the official zip (read in place) or the extracted folder,
with the official split from list_eval_partition.txt and the 40 attributes from
list_attr_celeba.txt where they lie beside it. A partial image set works: the split uses the
images that exist."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from .attributes import ATTRIBUTE_FILE, attributes_for
from .cache import load_images
from .decode import ImageTransform
from .registry import DataError, DataRequest, DatasetOptions
from .sources import FolderSource, ImageSource, ZipSource
from .splits import split_of
from .tensors import TensorImages

ZIP_NAME = "img_align_celeba.zip"
FOLDER_NAME = "img_align_celeba"
PARTITION = "list_eval_partition.txt"
SPLIT_CODES = {"0": "train", "1": "val", "2": "test"}


class CelebAOptions(DatasetOptions):
    crop: int | Literal["auto"] = Field(
        "auto",
        description="center square crop before resizing: auto = 128 at image size 128 (the paper), else 148 (common 64x64)",
    )
    fail_on_bad: bool = Field(False, description="stop on the first unreadable image instead of skipping it")
    workers: int = Field(0, ge=0, description="processes that decode images on the first pass")


def _locate(root: Path) -> tuple[ImageSource, Path]:
    """The image source and the folder to look for the partition file in."""
    if root.is_file() and root.suffix == ".zip":
        return ZipSource(root, prefix=""), root.parent
    if (root / ZIP_NAME).is_file():
        return ZipSource(root / ZIP_NAME, prefix=f"{FOLDER_NAME}/"), root
    if (root / FOLDER_NAME).is_dir():
        return FolderSource(root / FOLDER_NAME), root
    if root.is_dir() and any(root.glob("*.jpg")):
        return FolderSource(root), root
    raise DataError(
        f"no CelebA images at {root}: expected {ZIP_NAME} (the official zip, read without extracting) or a folder "
        f"{FOLDER_NAME}/ of NNNNNN.jpg files, with {PARTITION} beside them for the official split"
    )


def _partition(path: Path) -> dict[str, str] | None:
    if not path.is_file():
        return None
    if path.stat().st_size > 64 * 2**20:  # the official file is 2.8 MB
        raise DataError(f"{path} is {path.stat().st_size:,} bytes: not CelebA's partition file (2.8 MB); replace or remove it")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not CelebA's partition file: not text (byte {exc.start}); replace or remove it") from None
    table = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] in SPLIT_CODES:
            table[parts[0]] = SPLIT_CODES[parts[1]]
    return table


def auto_crop(image_size: int) -> int:
    """The center crop of ``crop=auto``: the paper's 128 at image size 128, else the common 148."""
    return 128 if image_size == 128 else 148


def celeba_transform(request: DataRequest) -> ImageTransform:
    """A CelebA image: its ``crop`` centre square (``auto``: :func:`auto_crop`), resized."""
    crop = request.options.crop
    return ImageTransform(request.image_size, request.channels, auto_crop(request.image_size) if crop == "auto" else crop)


def build_celeba(request: DataRequest) -> TensorImages:
    o: CelebAOptions = request.options
    root = Path(request.root)
    if not root.exists():
        raise DataError(f"CelebA root {root} does not exist; point --data-root at the folder holding {ZIP_NAME}")
    source, folder = _locate(root)
    if not source.names:
        raise DataError(f"{root} holds no CelebA images (no .jpg entries under {FOLDER_NAME}/)")
    table = _partition(folder / PARTITION)
    basename = lambda n: n.rsplit("/", 1)[-1]  # noqa: E731
    if table is not None:
        names = [n for n in source.names if table.get(basename(n)) == request.split]
    else:
        # no official partition: a deterministic split by name (90/5/5), said once
        print(f"stagegen: {PARTITION} not found beside the CelebA images; using a 90/5/5 split by file name")
        names = [n for n in source.names if split_of(basename(n), 0.05, 0.05, 0) == request.split]
    if not names:
        raise DataError(f"CelebA split {request.split!r} has no images among the {len(source.names)} under {root}")
    transform = celeba_transform(request)
    dataset = load_images(f"celeba [{request.split}]", source, names, transform, request.cache_dir, o.fail_on_bad, o.workers)
    # the 40 binary attributes, where the official list lies beside the images (after skipped
    # images, so they stay aligned); without it the faces train and sample as before
    attribute_file = folder / ATTRIBUTE_FILE
    dataset.attributes = attributes_for(attribute_file, dataset.names) if attribute_file.is_file() else None
    dataset.attribute_file = attribute_file
    return dataset
