"""Fréchet distance between Gaussian fits of feature sets, with pluggable feature extractors.

Extractors: ``mnist`` and ``digits`` (small classifiers stagegen trains on first use and caches,
see classifiers.py; their test accuracy is recorded) and ``inception``
(torchvision's Inception-v3 ImageNet weights, when present on this machine). Numbers from the
two are not comparable with each other, nor ``inception`` exactly with TF-FID papers.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..weights import MissingWeightsError, read_state_bytes
from .classifiers import Classifier


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two feature sets (rows = samples)."""
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # near-singular products (tiny or identical sets) are handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        eps = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def precision_recall(generated: np.ndarray, real: np.ndarray, neighbours: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019, torch-fidelity's implementation):
    precision, the share of generated rows within the k-th-neighbour radius of some real row;
    recall, the share of real rows within that of some generated row. Both sets should be of
    equal size (the radii shrink as a set grows)."""
    from ..optional import require

    prc = require("torch_fidelity.metric_prc", "precision and recall")
    # the part-wise version keeps memory at one block of distances, not n x n
    return prc.calculate_precision_recall_part(
        torch.from_numpy(generated).float(), torch.from_numpy(real).float(), neighborhood=neighbours, batch_size=2048
    )


def metric_cache_dir() -> Path | None:
    """Where metrics cache the real images' features: beside the dataset cache ($STAGEGEN_CACHE);
    None when caching is off."""
    from ..data.cache import default_cache_dir

    cache = default_cache_dir()
    return cache.parent / "metrics" if cache is not None else None


class FeatureExtractor:
    """Images in [0, 1] -> feature rows for FID."""

    name: str

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        raise NotImplementedError


class ClassifierFeatures(FeatureExtractor):
    """The 128-unit layer of one of stagegen's own digit classifiers (``mnist`` or ``digits``)."""

    def __init__(self, name: str = "mnist", root: str | Path | None = None, classifier: Classifier | None = None):
        self.classifier = classifier or Classifier(name, root)
        self.name = self.classifier.name
        self.accuracy = self.classifier.accuracy

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return self.classifier.features(images)


def MNISTFeatures(mnist_root: str | Path | None = None) -> ClassifierFeatures:
    return ClassifierFeatures("mnist", mnist_root)


INCEPTION_FILE = "inception_v3_google-0cc3c7bd.pth"


class InceptionFeatures(FeatureExtractor):
    """torchvision's Inception-v3 pool features (2048-d) at 299x299."""

    name = "inception"

    def __init__(self, weights_path: str | Path | None = None):
        from ..optional import require

        torchvision = require("torchvision", "FID with Inception features")

        path = Path(weights_path) if weights_path else Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
        if weights_path is None and not path.exists():
            raise MissingWeightsError(
                f"Inception-v3 weights for FID are not on this machine: expected {path.name} in {path.parent} "
                "(torchvision's ImageNet weights), or give --inception-weights PATH (for digit data, --fid-features "
                "mnist or digits use stagegen's own classifiers instead)"
            )
        state, _ = read_state_bytes(path, "the Inception-v3 weights for FID", 256 * 2**20)  # the file is 104 MB
        model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
        try:
            model.load_state_dict(state)
        except (RuntimeError, ValueError) as exc:  # another network's: missing or unexpected keys, wrong shapes
            detail = " ".join(str(exc).split())[:200]
            raise MissingWeightsError(f"{path} does not hold torchvision's Inception-v3 weights ({detail})") from None
        model.fc = nn.Identity()
        self.model = model.eval()

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        out = []
        for i in range(0, len(images), 64):
            x = images[i : i + 64].float().cpu()
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            out.append(self.model((x - mean) / std))
        return torch.cat(out).double().numpy()


def feature_extractor(name: str, **kwargs) -> FeatureExtractor:
    if name in ("mnist", "digits"):
        return ClassifierFeatures(name, kwargs.get("mnist_root") if name == "mnist" else None)
    if name == "inception":
        return InceptionFeatures(kwargs.get("inception_weights"))
    raise ValueError(f"unknown FID feature extractor {name!r}: use mnist, digits or inception")
