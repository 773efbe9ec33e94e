"""What a dataset plugin provides, and how the engine asks for one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config.options import StrictModel, validate_options

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from .decode import ImageTransform

SPLITS = ("train", "val", "test")


class DatasetOptions(StrictModel):
    """Base for every dataset's options: unknown keys are errors."""


class DataError(ValueError):
    """Data that cannot be used, with what was expected instead."""


@dataclass(frozen=True)
class DataRequest:
    """What the trainer or evaluator wants: a split at a resolution and channel count."""

    root: str | None
    split: str
    image_size: int
    channels: int
    options: Any  # the dataset's validated options model
    cache_dir: str | None = None


@dataclass(frozen=True, kw_only=True)
class DatasetType:
    """A registered dataset. ``build(request)`` returns a map-style Dataset of uint8 C x H x W tensors."""

    name: str
    build: Callable[[DataRequest], Dataset]
    options: type[DatasetOptions] = DatasetOptions
    description: str = ""
    needs_root: bool = False
    #: what a run on this dataset trains unless a preset or the user says otherwise
    image_size: int = 64
    channels: int = 3
    default_preset: str | None = None  # a preset made for this dataset, the starting point of `--data NAME`
    #: how one image file becomes one of this dataset's images (its crop, at the request's size
    #: and channels): what its builder decodes with, and how `stagegen edit` reads a loose file
    #: for a pipeline trained on it. None: the largest centred square, resized.
    transform: Callable[[DataRequest], ImageTransform] | None = None

    def validate_options(self, raw: dict[str, Any] | None) -> DatasetOptions:
        return validate_options(self.options, raw, f"options of dataset {self.name!r}")

    def image_transform(self, image_size: int, channels: int, options: dict[str, Any] | None = None) -> ImageTransform:
        """The transform an image file of this dataset gets at this size and channel count
        (``options``: the dataset's, default when not given)."""
        from .decode import ImageTransform

        if self.transform is None:
            return ImageTransform(image_size, channels)
        return self.transform(DataRequest(None, "train", image_size, channels, self.validate_options(options)))


def open_dataset(
    name: str,
    root: str | None = None,
    split: str = "train",
    image_size: int = 16,
    channels: int = 1,
    options: dict[str, Any] | None = None,
    cache_dir: str | None = None,
):
    """The dataset registered as ``name``, for one split, as uint8 C x H x W tensors."""
    from ..plugin.manager import get_dataset_type

    dataset_type = get_dataset_type(name)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    if cache_dir not in (None, "off") and Path(cache_dir).exists() and not Path(cache_dir).is_dir():
        raise DataError(f"cache folder {cache_dir} is a file; give a folder (created if missing) or 'off' for no cache")
    if dataset_type.needs_root and not root:
        raise DataError(f"dataset {name!r} needs --data-root PATH (where its files are); see `stagegen datasets`")
    request = DataRequest(root, split, image_size, channels, dataset_type.validate_options(options), cache_dir)
    dataset = dataset_type.build(request)
    if len(dataset) == 0:
        raise DataError(f"dataset {name!r} has no images in split {split!r}" + (f" under {root}" if root else ""))
    return dataset
