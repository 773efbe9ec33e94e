"""Digit classifiers stagegen trains itself, for FID features and for recognisability.

No pretrained weights can be assumed on a user's machine, so for the two digit datasets
stagegen trains a small CNN on first use and caches it (safetensors, with its test accuracy
in the header): ``mnist`` on the MNIST training set (needs the MNIST files once), ``digits``
on the embedded scikit-learn digits (needs nothing). The same network gives the FID features
(its 128-unit layer) and the class probabilities that recognisability is computed from.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..images import resize

#: bump when the training recipe changes, so stale cached classifiers are not reused
RECIPE = 3  # 3: the digits split by name hash (stagegen.data.splits), like every other collection


class DigitClassifier(nn.Module):
    """Two conv blocks and a 128-unit layer at ``size`` x ``size``; any [0, 1] images in."""

    def __init__(self, size: int = 28, mean: float = 0.1307, std: float = 0.3081):
        super().__init__()
        self.size, self.mean, self.std = size, mean, std
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * (size // 4) ** 2, 128),
            nn.ReLU(),
        )
        self.head = nn.Linear(128, 10)

    def forward(self, x):
        return self.head(self.features(x))

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Any [0, 1] images -> 1 x size x size, normalised as in training."""
        images = images.float()
        if images.shape[1] == 3:
            images = images.mean(1, keepdim=True)
        images = resize(images, self.size)
        return (images - self.mean) / self.std


class MNISTClassifier(DigitClassifier):
    """The MNIST classifier (28 x 28); the layout its cached weights were saved with."""

    def __init__(self):
        super().__init__(28)


# ---------------------------------------------------------------------------- training data


@dataclass(frozen=True)
class LabelledDigits:
    train_x: torch.Tensor  # float N x 1 x S x S in [0, 1]
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def _mnist_data(root: str | Path | None) -> LabelledDigits:
    from ..data import open_dataset
    from ..data.labels import labels_of

    if root is None:
        raise FileNotFoundError(
            "the mnist classifier is trained on MNIST on first use: give the MNIST folder once "
            "(--data-root of an mnist dataset, or --mnist-root PATH); it is then cached"
        )
    splits = []
    for split in ("train", "test"):
        dataset = open_dataset("mnist", str(root), split, 28, 1)
        labels = labels_of(dataset)
        if labels is None:
            raise FileNotFoundError(
                f"the mnist classifier is trained on MNIST's labels, and {root} has none for its {split} images: "
                "put the official label files (train-labels-idx1-ubyte.gz, t10k-labels-idx1-ubyte.gz) beside the images"
            )
        splits += [dataset.images.float() / 255, labels.index]
    return LabelledDigits(*splits)


def _digits_data(root: str | Path | None) -> LabelledDigits:
    from ..data.digits import labelled_split

    x, y = labelled_split("train", 16)
    xt, yt = labelled_split("test", 16)
    return LabelledDigits(x.float() / 255, y, xt.float() / 255, yt)


@dataclass(frozen=True)
class ClassifierRecipe:
    size: int
    data: Callable[[str | Path | None], LabelledDigits]
    epochs: int
    min_accuracy: float
    mean: float
    std: float
    shift: int  # random translation in pixels during training: generated digits are not centred like the data
    needs_root: bool


RECIPES = {
    "mnist": ClassifierRecipe(28, _mnist_data, 2, 0.98, 0.1307, 0.3081, 0, True),
    "digits": ClassifierRecipe(16, _digits_data, 40, 0.95, 0.19, 0.33, 1, False),
}


#: how long each recipe trains, measured with `stagegen eval` on the idle 2-core machine
RECIPE_TIME = {"mnist": "about 1.5 minutes", "digits": "about 20 s"}


def _shift(x: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    if not pixels:
        return x
    dx, dy = (int(v) for v in torch.randint(-pixels, pixels + 1, (2,), generator=generator))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def train_classifier(
    name: str, root: str | Path | None = None, seed: int = 0, progress: bool = True
) -> tuple[DigitClassifier, float]:
    """Train the named classifier; returns it (eval mode) and its test accuracy."""
    from tqdm import tqdm

    recipe = RECIPES[name]
    data = recipe.data(root)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitClassifier(recipe.size, recipe.mean, recipe.std)
    batch = 128 if len(data.train_x) > 10_000 else 64
    per_epoch = len(data.train_x) // batch
    steps = recipe.epochs * per_epoch
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    model.train()
    bar = tqdm(
        total=steps,
        desc=f"training the {name} classifier (once; cached)",
        unit="step",
        file=sys.stderr,
        disable=not progress,
        leave=False,
    )
    for _ in range(recipe.epochs):
        order = torch.randperm(len(data.train_x), generator=generator)
        for i in range(per_epoch):
            idx = order[i * batch : (i + 1) * batch]
            x = _shift(data.train_x[idx], recipe.shift, generator)
            loss = F.cross_entropy(model(model.prepare(x)), data.train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
    bar.close()
    model.eval()
    with torch.inference_mode():
        pred = torch.cat([model(model.prepare(data.test_x[i : i + 1000])).argmax(1) for i in range(0, len(data.test_x), 1000)])
    return model, float((pred == data.test_y).float().mean())


def classifier_cache_dir() -> Path:
    from ..data.cache import default_cache_dir

    return (default_cache_dir() or Path.home() / ".cache" / "stagegen" / "datasets").parent / "classifiers"


def _cache_path(name: str, root: str | Path | None) -> Path:
    if name == "mnist":  # kept as it was, so classifiers cached before keep working
        return classifier_cache_dir() / "mnist-classifier-*.safetensors"
    return classifier_cache_dir() / f"{name}-classifier-r{RECIPE}.safetensors"


def load_classifier(name: str, root: str | Path | None = None, progress: bool = True) -> tuple[DigitClassifier, float]:
    """The cached classifier, trained on first use (``root``: the dataset files, for mnist)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from ..files import atomic_write

    if name not in RECIPES:
        raise ValueError(f"unknown classifier {name!r}: use {' or '.join(RECIPES)}")
    recipe = RECIPES[name]
    pattern = _cache_path(name, root)
    candidates = sorted(pattern.parent.glob(pattern.name)) if pattern.parent.is_dir() else []
    if candidates:
        with safe_open(str(candidates[-1]), "pt") as f:
            accuracy = float(json.loads(f.metadata()["stagegen_classifier"])["test_accuracy"])
        model = DigitClassifier(recipe.size, recipe.mean, recipe.std)
        model.load_state_dict(load_file(str(candidates[-1])))
        return model.eval(), accuracy
    # said whether or not a bar is shown: the first eval of digit data waits for this
    print(
        f"training the {name} classifier for FID features and recognisability: once, {recipe.epochs} epochs "
        f"({RECIPE_TIME[name]} on an idle 2-core CPU); cached in {pattern.parent} for every later eval",
        file=sys.stderr,
        flush=True,
    )
    model, accuracy = train_classifier(name, root, progress=progress)
    if accuracy <= recipe.min_accuracy:
        raise RuntimeError(
            f"the {name} classifier reached only {accuracy:.2%} test accuracy (needs > {recipe.min_accuracy:.0%}); not cached"
        )
    path = pattern
    if name == "mnist":
        tag = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:8]
        path = pattern.with_name(f"mnist-classifier-{tag}.safetensors")
    meta = {"stagegen_classifier": json.dumps({"test_accuracy": accuracy, "trained_on": str(root or name), "recipe": RECIPE})}
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=meta))
    return model.eval(), accuracy


# ---------------------------------------------------------------------------- what the metrics use


class Classifier:
    """A trained digit classifier: FID features, class probabilities, and its test accuracy."""

    #: what each output class is, as the digit datasets name their labels
    class_names = tuple(str(d) for d in range(10))

    def __init__(self, name: str, root: str | Path | None = None, progress: bool = True):
        self.name = name
        self.model, self.accuracy = load_classifier(name, root, progress)

    @torch.inference_mode()
    def _run(self, images: torch.Tensor, fn) -> torch.Tensor:
        return torch.cat([fn(self.model.prepare(images[i : i + 500].float().cpu())) for i in range(0, len(images), 500)])

    def features(self, images: torch.Tensor) -> np.ndarray:
        return self._run(images, self.model.features).double().numpy()

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        return self._run(images, lambda x: self.model(x).softmax(1))


def recognisability(probabilities: torch.Tensor, threshold: float = 0.9) -> tuple[float, float]:
    """(share of images classified with >= threshold confidence, normalised entropy of the
    predicted-class histogram): the two halves of the Inception Score, readable on their own.
    Coverage is 1.0 when every class is predicted equally often, 0 when one class takes all."""
    confident = float((probabilities.max(1).values >= threshold).float().mean())
    counts = torch.bincount(probabilities.argmax(1), minlength=probabilities.shape[1]).double()
    p = counts / counts.sum()
    entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
    return confident, entropy / math.log(probabilities.shape[1])
