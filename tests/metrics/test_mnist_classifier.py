"""The FID classifier on real MNIST (skipped where ../shared/data has no MNIST)."""

from pathlib import Path

import pytest

from stagegen.metrics.fid import MNISTFeatures

MNIST = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"


@pytest.mark.slow
@pytest.mark.skipif(not (MNIST / "train-labels-idx1-ubyte.gz").is_file(), reason=f"real MNIST not found at {MNIST}")
def test_classifier_trains_caches_and_exceeds_98_percent(tmp_path, monkeypatch):
    monkeypatch.setenv("STAGEGEN_CACHE", str(tmp_path / "datasets"))
    first = MNISTFeatures(MNIST)
    assert first.accuracy > 0.98
    cached = list((tmp_path / "classifiers").glob("mnist-classifier-*.safetensors"))
    assert len(cached) == 1
    again = MNISTFeatures(None)  # from the cache, no MNIST needed
    assert again.accuracy == first.accuracy


def test_the_classifier_learns_from_the_datasets_own_labels_and_needs_them(tmp_path, monkeypatch):
    import numpy as np
    import torch

    from stagegen.metrics.classifiers import _mnist_data

    from ..data.test_datasets import _idx

    monkeypatch.setenv("STAGEGEN_CACHE", str(tmp_path / "cache"))
    images = np.arange(6 * 28 * 28, dtype=np.uint8).reshape(6, 28, 28)
    _idx(tmp_path / "train-images-idx3-ubyte", images, 0x803, False)
    _idx(tmp_path / "t10k-images-idx3-ubyte", images[:4], 0x803, False)
    with pytest.raises(FileNotFoundError, match="has none for its train images: put the official label files"):
        _mnist_data(tmp_path)
    _idx(tmp_path / "train-labels-idx1-ubyte", np.array([5, 0, 4, 1, 9, 2], np.uint8), 0x801, False)
    _idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([7, 2, 1, 0], np.uint8), 0x801, False)
    data = _mnist_data(tmp_path)
    assert data.train_y.tolist() == [5, 0, 4, 1, 9, 2] and data.test_y.tolist() == [7, 2, 1, 0]
    assert torch.equal(data.train_x[4, 0], torch.from_numpy(images[4]).float() / 255)
