"""The embedded default dataset: scikit-learn's bundled 8x8 handwritten digits (1,797 real
scans, UCI), so `stagegen train` runs offline on a fresh machine with no data path."""

from __future__ import annotations

import torch
from pydantic import Field

from .labels import Labels
from .registry import DataRequest, DatasetOptions
from .tensors import TensorImages, convert_channels, resize_uint8, split_indices

#: the class names of both digit collections, in the order of their labels
DIGIT_NAMES = tuple(str(d) for d in range(10))


class DigitsOptions(DatasetOptions):
    val_fraction: float = Field(0.05, ge=0, lt=1, description="share of images held out as the val split")
    test_fraction: float = Field(0.1, ge=0, lt=1, description="share of images held out as the test split")
    split_seed: int = Field(0, description="seed of the deterministic split")


def build_digits(request: DataRequest) -> TensorImages:
    from sklearn.datasets import load_digits

    o: DigitsOptions = request.options
    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float()  # 1797 x 8 x 8, values 0..16
    images = (images * (255.0 / 16.0)).round().to(torch.uint8).unsqueeze(1)
    index = split_indices(len(images), request.split, o.val_fraction, o.test_fraction, o.split_seed)
    images = convert_channels(resize_uint8(images[index], request.image_size), request.channels)
    labels = Labels(DIGIT_NAMES, torch.from_numpy(bunch.target[index.numpy()]).long())
    return TensorImages(images, [f"digit-{i}" for i in index.tolist()], labels)


def labelled_split(split: str, image_size: int, options: DigitsOptions | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One split's images (uint8 N x 1 x S x S) and their digit labels, the same split the
    dataset gives (for the recognisability classifier)."""
    dataset = build_digits(DataRequest(None, split, image_size, 1, options or DigitsOptions()))
    return dataset.images, dataset.labels.index
