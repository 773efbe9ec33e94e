"""Any folder or zip of images (recursive), with a deterministic split; class subfolders
(`root/<class>/*.png`, as torchvision's ImageFolder) label the images."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from .cache import load_images
from .decode import IMAGE_SUFFIXES, ImageTransform
from .labels import folder_labels
from .registry import DataError, DataRequest, DatasetOptions
from .sources import FolderSource, ImageSource, ZipSource
from .splits import split_of
from .tensors import TensorImages


class FolderOptions(DatasetOptions):
    crop: Literal["center", "none"] = Field(
        "center", description="center: largest centered square, then resize; none: resize the whole image (aspect changes)"
    )
    val_fraction: float = Field(0.05, ge=0, lt=1, description="share of images in the val split")
    test_fraction: float = Field(0.05, ge=0, lt=1, description="share of images in the test split")
    split_seed: int = Field(0, description="seed of the deterministic split (by file name, stable when images are added)")
    fail_on_bad: bool = Field(False, description="stop on the first unreadable image instead of skipping it")
    workers: int = Field(0, ge=0, description="processes that decode images on the first pass")


def open_source(root: Path) -> ImageSource:
    if not root.exists():
        raise DataError(f"data root {root} does not exist; give a folder of images or a .zip of images")
    if root.is_file():
        if root.suffix.lower() != ".zip":
            raise DataError(f"data root {root} is a file but not a .zip; give a folder of images or a .zip of images")
        source: ImageSource = ZipSource(root)
    else:
        source = FolderSource(root)
    if not source.names:
        raise DataError(
            f"no images under {root} (looked recursively for {', '.join(IMAGE_SUFFIXES)}); "
            "expected a folder (or .zip) holding image files, in sub-folders or not"
        )
    return source


def folder_transform(request: DataRequest) -> ImageTransform:
    """A folder's image: the largest centred square (``crop=center``) or the whole image (``none``), resized."""
    return ImageTransform(request.image_size, request.channels, squash=request.options.crop == "none")


def build_folder(request: DataRequest) -> TensorImages:
    o: FolderOptions = request.options
    root = Path(request.root)
    source = open_source(root)
    names = [n for n in source.names if split_of(n, o.val_fraction, o.test_fraction, o.split_seed) == request.split]
    if not names:
        raise DataError(
            f"split {request.split!r} of {root} has no images ({len(source.names)} in all); change val_fraction/test_fraction"
        )
    transform = folder_transform(request)
    dataset = load_images(
        f"folder {root} [{request.split}]", source, names, transform, request.cache_dir, o.fail_on_bad, o.workers
    )
    # root/<class>/*.png: labelled by class folder (after skipped images, so they stay aligned)
    dataset.labels = folder_labels(dataset.names, source.names)
    return dataset
