"""Datasets held as one uint8 tensor, and the resizing every dataset shares."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from ..images import resize
from .labels import Labels


class TensorImages(Dataset):
    """Images as one uint8 tensor N x C x H x W (in memory or memory-mapped), with their names
    and, for a labelled collection, their class labels (:mod:`.labels`)."""

    def __init__(self, images: torch.Tensor, names: list[str] | None = None, labels: Labels | None = None):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"expected a uint8 N x C x H x W tensor, got {images.dtype} {tuple(images.shape)}")
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{len(labels)} labels for {len(images)} images")
        self.images = images
        self.names = names
        self.labels = labels

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a uint8 N x C x H x W batch to size x size (antialiased when shrinking)."""
    if images.shape[-2:] == (size, size):
        return images
    return resize(images.float(), size).round().clamp(0, 255).to(torch.uint8)


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grayscale <-> RGB for a uint8 N x C x H x W batch (ITU-R 601 luma for RGB -> gray)."""
    c = images.shape[1]
    if c == channels:
        return images
    if c == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    if c == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    raise ValueError(f"cannot convert {c}-channel images to {channels} channels")


def split_indices(n: int, split: str, val_fraction: float, test_fraction: float, seed: int = 0) -> torch.Tensor:
    """The indices of range(n) in ``split``, by the one split scheme stagegen uses (a hash of
    each item's name, :func:`stagegen.data.splits.split_of`; here the name is the index)."""
    from .splits import split_of

    return torch.tensor([i for i in range(n) if split_of(str(i), val_fraction, test_fraction, seed) == split], dtype=torch.long)
