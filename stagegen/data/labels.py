"""What a dataset says about its images besides their pixels: class labels.

A dataset declares them with a ``labels`` attribute (a :class:`Labels`, one entry per image, in
the dataset's order); a dataset without one is unlabelled. The digits and MNIST declare their
ten digits, an image folder its class subfolders (torchvision's ImageFolder convention,
``root/<class>/*.png``). Conditional priors (:mod:`stagegen.priors.per_label`) are fitted from them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..text import MAX_LABELS, check_names, safe_name, shown_names

__all__ = ["LabelledImages", "Labels", "folder_labels", "label_tensor", "labels_of", "resolve_label"]


@dataclass(frozen=True)
class Labels:
    """Image ``i`` belongs to class ``names[index[i]]``."""

    names: tuple[str, ...]
    index: torch.Tensor  # N, int64, each in range(len(names))

    def __post_init__(self):
        if len(self.names) < 2:
            raise ValueError(f"labels need at least two classes, got {list(self.names)}")
        if len(set(self.names)) != len(self.names) or not all(isinstance(n, str) and n for n in self.names):
            raise ValueError(f"label names must be distinct non-empty strings, got {list(self.names)}")
        if self.index.dim() != 1 or self.index.dtype != torch.int64:
            raise ValueError(f"label indices must be a 1-D int64 tensor, got {self.index.dtype} {tuple(self.index.shape)}")
        if len(self.index) and (int(self.index.min()) < 0 or int(self.index.max()) >= len(self.names)):
            raise ValueError(f"label indices must lie in 0..{len(self.names) - 1}")

    def __len__(self) -> int:
        return len(self.index)

    def counts(self) -> list[int]:
        """Images per class, in the order of ``names``."""
        return torch.bincount(self.index, minlength=len(self.names)).tolist()


class LabelledImages(torch.utils.data.Dataset):
    """A dataset's images paired with their class indices, ``(image, label)``: the batches a
    label-conditioned trunk (a CVAE) trains on."""

    def __init__(self, images, labels: Labels):
        if len(labels) != len(images):
            raise ValueError(f"{len(labels)} labels for {len(images)} images")
        self.images = images
        self.index = labels.index

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[i], self.index[i]


def labels_of(dataset) -> Labels | None:
    """The dataset's labels, when it declares labels for every one of its images."""
    labels = getattr(dataset, "labels", None)
    if isinstance(labels, Labels) and len(labels) == len(dataset):
        return labels
    return None


def resolve_label(names: Sequence[str], label: int | str) -> int:
    """The class ``label`` names, by name first, else by its index (``7`` or ``"7"``)."""
    if isinstance(label, str) and label in names:
        return list(names).index(label)
    index = None
    if isinstance(label, int) and not isinstance(label, bool):
        index = label
    elif isinstance(label, str) and label.strip().isdigit():
        index = int(label)
    if index is not None and 0 <= index < len(names):
        return index
    raise ValueError(
        f"unknown label {safe_name(repr(label)[:60])}: this pipeline's labels are {shown_names(names)} "
        f"(by name, or by index 0..{len(names) - 1})"
    )


def label_tensor(names: Sequence[str], labels, n: int) -> torch.Tensor:
    """``labels`` as ``n`` class indices (int64) among ``names``: one label (a name or index) for
    every image, or one per image (a sequence of names or indices, or an int64 tensor)."""
    if torch.is_tensor(labels) and labels.dim() > 0:
        if labels.dtype != torch.int64 or tuple(labels.shape) != (n,):
            raise ValueError(f"expected {n} labels as an int64 tensor, got {labels.dtype} {tuple(labels.shape)}")
        if n and (int(labels.min()) < 0 or int(labels.max()) >= len(names)):
            raise ValueError(f"label indices must lie in 0..{len(names) - 1}")
        return labels
    if torch.is_tensor(labels):
        labels = int(labels)
    if isinstance(labels, (int, str)):
        return torch.full((n,), resolve_label(names, labels), dtype=torch.long)
    labels = list(labels)
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} images")
    return torch.tensor([resolve_label(names, y) for y in labels], dtype=torch.long)


def folder_labels(names: Sequence[str], every_name: Sequence[str] | None = None) -> Labels | None:
    """Labels of image paths ``names`` by ImageFolder's convention: the first folder below the
    root (after any folders every path shares, as a zip's top folder) names the class. The
    classes are read off ``every_name`` (the whole collection, so that every split numbers them
    alike). A flat folder, one with images beside its class folders, or one class: unlabelled."""
    every_name = list(names) if every_name is None else list(every_name)
    parts = [n.split("/") for n in every_name]
    shared = 0
    while parts and all(len(p) > shared + 2 for p in parts) and len({p[shared] for p in parts}) == 1:
        shared += 1  # a folder every image is in says nothing of its class
    if not parts or any(len(p) < shared + 2 for p in parts):
        return None
    classes = sorted({p[shared] for p in parts})
    if len(classes) < 2:
        return None
    try:
        check_names(classes, "the class folders", MAX_LABELS)
    except ValueError as exc:  # the images still train a model; only their labels are unusable
        warnings.warn(f"{exc}: the images are used without labels (rename the folders to use them)", stacklevel=2)
        return None
    position = {c: i for i, c in enumerate(classes)}
    return Labels(tuple(classes), torch.tensor([position[n.split("/")[shared]] for n in names], dtype=torch.int64))
