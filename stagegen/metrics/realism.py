"""Realism without downloaded weights: a classifier two-sample test (Lopez-Paz & Oquab 2017).

A small CNN is trained to tell real images from generated ones on half of each set and scored
on the other half. Its held-out accuracy is the measure: 0.5 means it cannot tell them apart,
1.0 that every sample gives itself away. Unlike sharpness it cannot be fooled by noise, and
unlike a pretrained feature space it needs nothing from the internet. The protocol is fixed
(architecture, 10 epochs, Adam 1e-3, batch 64, seeded), so numbers compare across models.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["two_sample_accuracy"]

EPOCHS = 10
BATCH = 64


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


def two_sample_accuracy(real: torch.Tensor, generated: torch.Tensor, seed: int = 0) -> float:
    """Held-out accuracy of a classifier trained on half of ``real`` and ``generated`` (float
    N x C x H x W in [0, 1], same shape) to tell them apart, scored on the other halves."""
    if real.shape[1:] != generated.shape[1:]:
        raise ValueError(
            f"the two sets must hold images of one shape, got {tuple(real.shape[1:])} and {tuple(generated.shape[1:])}"
        )
    n = min(len(real), len(generated))
    if n < 4:
        raise ValueError(f"a two-sample test needs at least 4 images of each kind, got {n}")
    g = torch.Generator().manual_seed(seed)
    real = real[torch.randperm(len(real), generator=g)[:n]].float() * 2 - 1
    generated = generated[torch.randperm(len(generated), generator=g)[:n]].float() * 2 - 1
    half = n // 2
    train_x = torch.cat([real[:half], generated[:half]])
    train_y = torch.cat([torch.ones(half), torch.zeros(half)])
    test_x = torch.cat([real[half:], generated[half:]])
    test_y = torch.cat([torch.ones(n - half), torch.zeros(n - half)])
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(seed)
        critic = _critic(real.shape[1])
        optimizer = torch.optim.Adam(critic.parameters(), lr=1e-3)
        for _ in range(EPOCHS):
            order = torch.randperm(len(train_x), generator=g)
            for start in range(0, len(order), BATCH):
                idx = order[start : start + BATCH]
                loss = F.binary_cross_entropy_with_logits(critic(train_x[idx]).squeeze(1), train_y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    with torch.no_grad():
        logits = torch.cat([critic(test_x[i : i + 256]).squeeze(1) for i in range(0, len(test_x), 256)])
    return float(((logits > 0).float() == test_y).float().mean())
