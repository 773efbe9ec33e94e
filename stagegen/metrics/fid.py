"""Fréchet distance between Gaussian fits of feature sets, with pluggable feature extractors.

Extractors: ``mnist`` (a small classifier stagegen trains on the MNIST training set on first
use and caches; its test accuracy is recorded and must exceed 98%) and ``inception``
(torchvision's Inception-v3 ImageNet weights, when present on this machine). Numbers from the
two are not comparable with each other, nor ``inception`` exactly with TF-FID papers.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..losses import MissingWeightsError


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


# ------------------------------------------------------------------ the MNIST classifier


class MNISTClassifier(nn.Module):
    """Two conv blocks and a 128-unit layer; the 128 features are what FID compares."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
        )
        self.head = nn.Linear(128, 10)

    def forward(self, x):
        return self.head(self.features(x))

    @staticmethod
    def prepare(images: torch.Tensor) -> torch.Tensor:
        """Any [0, 1] images -> 1 x 28 x 28, normalised as in training."""
        if images.shape[1] == 3:
            images = images.mean(1, keepdim=True)
        if images.shape[-1] != 28:
            images = F.interpolate(images.float(), size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
        return (images - 0.1307) / 0.3081


def _read_labels(root: Path, stem: str) -> np.ndarray:
    from ..data.mnist import _find, _read_idx

    path = _find(root, stem)
    if path is None:
        raise FileNotFoundError(f"no {stem}(.gz) under {root}: the MNIST classifier needs the MNIST label files too")
    return _read_idx(path, 0x00000801)


def train_mnist_classifier(root: str | Path, epochs: int = 2, seed: int = 0) -> tuple[MNISTClassifier, float]:
    from ..data import open_dataset
    from ..data.mnist import FILES

    root = Path(root)
    torch.manual_seed(seed)
    x = open_dataset("mnist", str(root), "train", 28, 1).images.float() / 255
    y = torch.from_numpy(_read_labels(root, FILES["train-labels"][0]).astype(np.int64))
    xt = open_dataset("mnist", str(root), "test", 28, 1).images.float() / 255
    yt = torch.from_numpy(_read_labels(root, FILES["test-labels"][0]).astype(np.int64))
    model = MNISTClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps = epochs * (len(x) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x))
        for i in range(len(x) // 128):
            idx = order[i * 128 : (i + 1) * 128]
            loss = F.cross_entropy(model(MNISTClassifier.prepare(x[idx])), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.inference_mode():
        pred = torch.cat([model(MNISTClassifier.prepare(xt[i : i + 1000])).argmax(1) for i in range(0, len(xt), 1000)])
    return model, float((pred == yt).float().mean())


def classifier_cache_dir() -> Path:
    from ..data.cache import default_cache_dir

    return (default_cache_dir() or Path.home() / ".cache" / "stagegen" / "datasets").parent / "classifiers"


def load_mnist_classifier(mnist_root: str | Path | None) -> tuple[MNISTClassifier, float]:
    """The cached classifier, trained on first use from the MNIST files at ``mnist_root``."""
    from safetensors.torch import load_file, save_file

    from ..pipeline_file import atomic_write

    cache = classifier_cache_dir()
    candidates = sorted(cache.glob("mnist-classifier-*.safetensors")) if cache.is_dir() else []
    if candidates:
        from safetensors import safe_open

        with safe_open(str(candidates[-1]), "pt") as f:
            accuracy = float(json.loads(f.metadata()["stagegen_classifier"])["test_accuracy"])
        model = MNISTClassifier()
        model.load_state_dict(load_file(str(candidates[-1])))
        return model.eval(), accuracy
    if mnist_root is None:
        raise FileNotFoundError(
            "the mnist FID extractor trains a classifier on MNIST on first use: give the MNIST folder "
            "(--mnist-root PATH, the four idx files) once; it is cached in " + str(cache)
        )
    model, accuracy = train_mnist_classifier(mnist_root)
    if accuracy <= 0.98:
        raise RuntimeError(f"the MNIST classifier reached only {accuracy:.2%} test accuracy (needs > 98%); not cached")
    tag = hashlib.sha256(str(Path(mnist_root).resolve()).encode()).hexdigest()[:8]
    meta = {"stagegen_classifier": json.dumps({"test_accuracy": accuracy, "trained_on": str(mnist_root)})}
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    atomic_write(cache / f"mnist-classifier-{tag}.safetensors", lambda tmp: save_file(state, tmp, metadata=meta))
    return model.eval(), accuracy


class FeatureExtractor:
    """Images in [0, 1] -> feature rows for FID."""

    name: str

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        raise NotImplementedError


class MNISTFeatures(FeatureExtractor):
    name = "mnist"

    def __init__(self, mnist_root: str | Path | None = None):
        self.model, self.accuracy = load_mnist_classifier(mnist_root)

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        feats = [self.model.features(MNISTClassifier.prepare(images[i : i + 500].float().cpu())) for i in range(0, len(images), 500)]
        return torch.cat(feats).double().numpy()


INCEPTION_FILE = "inception_v3_google-0cc3c7bd.pth"


class InceptionFeatures(FeatureExtractor):
    """torchvision's Inception-v3 pool features (2048-d) at 299x299."""

    name = "inception"

    def __init__(self, weights_path: str | Path | None = None):
        import torchvision

        path = Path(weights_path) if weights_path else Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
        if not path.is_file():
            raise MissingWeightsError(
                f"Inception-v3 weights for FID are not on this machine: expected {path.name} in {path.parent} "
                "(torchvision's ImageNet weights), or give --inception-weights PATH; or use --fid-features mnist"
            )
        model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
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
    if name == "mnist":
        return MNISTFeatures(kwargs.get("mnist_root"))
    if name == "inception":
        return InceptionFeatures(kwargs.get("inception_weights"))
    raise ValueError(f"unknown FID feature extractor {name!r}: use mnist or inception")
