"""Realism without downloaded weights: a classifier two-sample test (Lopez-Paz & Oquab 2017).

A small CNN is trained to tell real images from generated ones and scored on images it never
saw. Its held-out accuracy is the measure: 0.5 means it cannot tell them apart, 1.0 that every
sample gives itself away. Unlike sharpness it cannot be fooled by noise, and unlike a
pretrained feature space it needs nothing from the internet.

The protocol is fixed, so numbers compare across models: each set is cut into a test half, a
validation tenth and a training 40%; the critic (architecture below, Adam 1e-3, batch 64,
seeded) trains until its validation loss has not improved (by ``MIN_DELTA``) for ``PATIENCE`` epochs (at most
``MAX_EPOCHS``), and the weights of its best epoch are tested. A critic stopped after a fixed
few epochs is weak, and a weak critic drifts towards 0.5, which flatters every model; trained to
convergence it is as strong as this architecture allows. The same code run on two halves of the
real images gives the baseline a perfect generator would score (it is printed beside the
samples' figures), and a Wilson interval says how far the held-out count lets a figure be trusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TwoSampleTest", "real_baseline", "two_sample_accuracy", "two_sample_test", "wilson_half_width"]

MAX_EPOCHS = 40
PATIENCE = 3
#: a smaller fall of the validation loss is no improvement (a critic that separates the sets perfectly
#: lowers its loss a little every epoch for ever)
MIN_DELTA = 1e-3
BATCH = 64
TEST_SHARE = 0.5
VALIDATION_SHARE = 0.1


@dataclass(frozen=True)
class TwoSampleTest:
    """The outcome of one test: held-out ``accuracy`` on ``tested`` images of each set, the
    half-width of its 95% interval, and how many epochs the kept critic had trained."""

    accuracy: float
    ci95: float
    tested: int
    epochs: int


def wilson_half_width(share: float, n: int, z: float = 1.96) -> float:
    """Half the width of the Wilson score interval of a share measured on ``n`` trials (unlike
    the normal approximation it does not shrink to zero at a share of 0 or 1)."""
    if n <= 0:
        return math.nan
    spread = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return spread / (1 + z * z / n)


def _critic(channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 32, 3, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(32, 64, 3, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 3, 2, 1),
        nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, 1),
    )


def _logits(critic: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([critic(x[i : i + 256]).squeeze(1) for i in range(0, len(x), 256)])


def _split(real: torch.Tensor, generated: torch.Tensor, n: int, g: torch.Generator):
    """(train, validation, test) pairs of images and labels (1 real, 0 generated), n of each set."""
    real = real[torch.randperm(len(real), generator=g)[:n]].float() * 2 - 1
    generated = generated[torch.randperm(len(generated), generator=g)[:n]].float() * 2 - 1
    n_test = int(n * TEST_SHARE)
    n_val = max(1, int(n * VALIDATION_SHARE))
    bounds = [(n_test + n_val, n), (n_test, n_test + n_val), (0, n_test)]
    parts = []
    for lo, hi in bounds:
        x = torch.cat([real[lo:hi], generated[lo:hi]])
        y = torch.cat([torch.ones(hi - lo), torch.zeros(hi - lo)])
        parts.append((x, y))
    return parts


def two_sample_test(real: torch.Tensor, generated: torch.Tensor, seed: int = 0) -> TwoSampleTest:
    """Train a critic to tell ``real`` from ``generated`` (float N x C x H x W in [0, 1], one
    shape) on part of each, with early stopping on another part, and score it on the rest."""
    if real.shape[1:] != generated.shape[1:]:
        raise ValueError(
            f"the two sets must hold images of one shape, got {tuple(real.shape[1:])} and {tuple(generated.shape[1:])}"
        )
    n = min(len(real), len(generated))
    if n < 8:
        raise ValueError(f"a two-sample test needs at least 8 images of each kind, got {n}")
    g = torch.Generator().manual_seed(seed)
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = _split(real, generated, n, g)
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(seed)
        critic = _critic(real.shape[1])
        optimizer = torch.optim.Adam(critic.parameters(), lr=1e-3)
        best_loss, best_state, best_epoch, epoch = math.inf, None, 0, 0
        for epoch in range(1, MAX_EPOCHS + 1):
            order = torch.randperm(len(train_x), generator=g)
            for start in range(0, len(order), BATCH):
                idx = order[start : start + BATCH]
                loss = F.binary_cross_entropy_with_logits(critic(train_x[idx]).squeeze(1), train_y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            val_loss = float(F.binary_cross_entropy_with_logits(_logits(critic, val_x), val_y))
            if val_loss < best_loss - MIN_DELTA:
                best_loss, best_epoch = val_loss, epoch
                best_state = {k: v.clone() for k, v in critic.state_dict().items()}
            elif epoch - best_epoch >= PATIENCE:
                break
    critic.load_state_dict(best_state)
    accuracy = float(((_logits(critic, test_x) > 0).float() == test_y).float().mean())
    tested = len(test_y) // 2
    return TwoSampleTest(accuracy, wilson_half_width(accuracy, 2 * tested), tested, best_epoch)


def two_sample_accuracy(real: torch.Tensor, generated: torch.Tensor, seed: int = 0) -> float:
    """The held-out accuracy of :func:`two_sample_test` alone."""
    return two_sample_test(real, generated, seed).accuracy


def real_baseline(real: torch.Tensor, seed: int = 0) -> TwoSampleTest:
    """What a perfect generator would score: the same test on two halves of the real images."""
    order = torch.randperm(len(real), generator=torch.Generator().manual_seed(seed + 1))
    half = len(real) // 2
    return two_sample_test(real[order[:half]], real[order[half : 2 * half]], seed)
