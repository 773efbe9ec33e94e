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
