"""Datasets: registered through the plugin hooks, served as uint8 C x H x W tensors."""

from .registry import SPLITS, DataError, DataRequest, DatasetOptions, DatasetType, open_dataset
from .tensors import TensorImages

__all__ = ["SPLITS", "DataError", "DataRequest", "DatasetOptions", "DatasetType", "TensorImages", "open_dataset"]
