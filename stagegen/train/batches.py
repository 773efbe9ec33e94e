"""Where a run's batches come from.

Every built-in dataset is one uint8 tensor (:class:`stagegen.data.tensors.TensorImages`). Such a
dataset is gathered batch by batch with one indexing operation where it lies: on a GPU when it
fits there (CelebA at 128x128 is 0.4 GB), so a step reads no image from the host; on the CPU
without a DataLoader's per-image Python calls. Any other dataset, or a run that asks for loader
workers, goes through a DataLoader. Both follow the same :class:`ResumableSampler` order, so a
run gets the same batches either way and resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader, Dataset

from ..data.labels import LabelledImages, Labels, labels_of
from ..data.tensors import TensorImages
from ..devices import available_memory
from .distributed import ResumableSampler

if TYPE_CHECKING:
    from ..config.models import RunConfig

__all__ = ["TensorBatches", "batch_source"]

#: the share of a GPU's free memory the training images may take to be kept there
RESIDENT_SHARE = 0.25


class TensorBatches:
    """Batches of ``images`` (uint8 N x C x H x W, on any device), with ``labels`` (int64 N) when
    given, in the sampler's order from its position: one pass per iteration, as a DataLoader."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None, sampler: ResumableSampler, batch_size: int):
        self.images, self.labels = images, labels
        self.sampler, self.batch_size = sampler, batch_size

    def __iter__(self) -> Iterator[torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        # the pass's whole order crosses to the device once, not one batch of indices per step
        order = torch.tensor(list(self.sampler), dtype=torch.long).to(self.images.device, non_blocking=True)
        for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
            index = order[start : start + self.batch_size]
            images = self.images.index_select(0, index)
            yield images if self.labels is None else (images, self.labels.index_select(0, index))

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size


def _one_tensor(dataset: Dataset) -> torch.Tensor | None:
    """The images of a dataset that is exactly one uint8 tensor read by index, else None."""
    if type(dataset).__getitem__ is not TensorImages.__getitem__:
        return None  # a dataset that transforms its images on the way out
    images = getattr(dataset, "images", None)
    if not torch.is_tensor(images) or images.dtype != torch.uint8 or images.dim() != 4 or len(images) != len(dataset):
        return None
    return images


def batch_source(
    dataset: Dataset,
    labels: Labels | None,
    sampler: ResumableSampler,
    batch_size: int,
    device: torch.device,
    num_workers: int,
    seed: int,
) -> TensorBatches | DataLoader:
    """What a run draws its batches from (see the module's docstring)."""
    images = _one_tensor(dataset) if num_workers == 0 else None
    if images is not None and device.type != "cpu":
        if images.numel() <= RESIDENT_SHARE * available_memory(device):
            images = images.to(device)
        else:
            images = None  # too large to keep there: a DataLoader copies batch by batch
    if images is not None:
        index = None if labels is None else labels.index.to(images.device)
        return TensorBatches(images, index, sampler, batch_size)
    return DataLoader(
        dataset if labels is None else LabelledImages(dataset, labels),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=True,
        pin_memory=device.type == "cuda",
        persistent_workers=num_workers > 0,
        # its own generator: creating an iterator must not draw from the global RNG, or a
        # resumed run (which creates one more iterator) would get different noise
        generator=torch.Generator().manual_seed(seed),
    )


def check_dataset(dataset, channels: int, size: int) -> None:
    first = dataset[0]
    if not torch.is_tensor(first) or first.dtype != torch.uint8 or tuple(first.shape) != (channels, size, size):
        got = (first.dtype, tuple(first.shape)) if torch.is_tensor(first) else type(first).__name__
        raise ValueError(
            f"the dataset must give uint8 tensors of shape {(channels, size, size)} (channels, size, size); it gave {got}"
        )


def trunk_labels(pipeline, dataset, config: RunConfig) -> tuple[Labels | None, RunConfig]:
    """The dataset's labels, checked against a label-conditioned trunk's classes (and the
    names a resumed run recorded); the pipeline and the run's config (returned) take their names."""
    if not pipeline.label_conditioned:
        return None, config
    labels, count, data = labels_of(dataset), pipeline.trunk.label_count, config.data.name
    if labels is None:
        raise ValueError(
            f"the trunk is conditioned on {count} classes (a CVAE), but the {data} dataset declares no labels: "
            "train it on labelled data (digits, mnist, a folder of class subfolders), or set the trunk's classes to 0"
        )
    names = list(labels.names)
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    if len(names) != count:
        raise ValueError(
            f"the trunk is conditioned on {count} classes, but the {data} dataset has {len(names)} ({shown}): "
            f"set the trunk's classes to {len(names)}"
        )
    recorded = config.pipeline.trunk_labels
    if recorded is not None and list(recorded) != names:
        raise ValueError(f"this run's trunk is conditioned on the labels {', '.join(recorded[:10])}; the dataset's are {shown}")
    pipeline.set_trunk_labels(names)
    return labels, config.model_copy(update={"pipeline": config.pipeline.model_copy(update={"trunk_labels": names})})
