"""Real images of a dataset split as float tensors in [0, 1], a seeded random subset: what
metrics, comparisons and benchmarks measure generated images against."""

from __future__ import annotations

import torch

from .labels import Labels, labels_of


def real_images(*args, **kwargs) -> torch.Tensor:
    """Up to n images of a dataset split as floats in [0, 1] (a seeded random subset); the
    arguments of :func:`labelled_real_images`, without the labels."""
    return labelled_real_images(*args, **kwargs)[0]


def labelled_real_images(
    name: str,
    root: str | None,
    split: str,
    image_size: int,
    channels: int,
    n: int | None = None,
    options: dict | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, Labels | None]:
    """Up to n images of a dataset split as floats in [0, 1] (a seeded random subset), and their
    labels (None where the dataset declares none), which a label-conditioned trunk encodes and
    decodes with."""
    from . import open_dataset

    dataset = open_dataset(name, root, split, image_size, channels, options)
    index = torch.arange(len(dataset))
    if n is not None and n < len(dataset):
        index = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    labels = labels_of(dataset)
    images = torch.stack([dataset[int(i)] for i in index]).float() / 255
    return images, None if labels is None else Labels(labels.names, labels.index[index])
