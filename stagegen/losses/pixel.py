"""Pixel distances between a stage's output and its target (images in [-1, 1])."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

__all__ = ["PixelKind", "pixel_loss"]

PixelKind = Literal["l1", "l2"]


def pixel_loss(kind: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The mean l1 or l2 distance (the ``charbonnier`` loss type has its own epsilon option)."""
    if kind == "l1":
        return F.l1_loss(output, target)
    if kind == "l2":
        return F.mse_loss(output, target)
    raise ValueError(f"unknown pixel loss {kind!r}: use l1 or l2 (or the charbonnier loss type)")
