"""Losses on pixels and their transforms, usable on any network.

``l1``, ``l2`` and ``charbonnier`` on pixels; ``gradient``, an l1 loss on the images' spatial
derivatives (edges where the target has them); ``frequency``, an l1 loss on the amplitude
spectra (fine detail that a pixel loss averages away shows up as missing high frequencies).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from stagegen.losses import Loss, LossOptions, LossType, pixel_loss


class NoOptions(LossOptions):
    pass


class CharbonnierOptions(LossOptions):
    epsilon: float = Field(1e-3, gt=0, le=1, description="smoothing: sqrt(d^2 + epsilon^2), l1 for |d| >> epsilon")


class FrequencyOptions(LossOptions):
    log: bool = Field(True, description="compare log(1 + amplitude), so weak high frequencies count beside strong low ones")


class PixelDistance(Loss):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, output, target, ctx):
        return pixel_loss(self.kind, output, target)


class CharbonnierLoss(Loss):
    def __init__(self, options: CharbonnierOptions):
        super().__init__()
        self.epsilon = options.epsilon

    def forward(self, output, target, ctx):
        return torch.sqrt((output.float() - target.float()).square() + self.epsilon**2).mean()


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal and vertical finite differences."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


class GradientLoss(Loss):
    def forward(self, output, target, ctx):
        (ox, oy), (tx, ty) = image_gradients(output), image_gradients(target)
        return F.l1_loss(ox, tx) + F.l1_loss(oy, ty)


class FrequencyLoss(Loss):
    def __init__(self, options: FrequencyOptions):
        super().__init__()
        self.log = options.log

    def forward(self, output, target, ctx):
        # float32: rfft2 has no bfloat16 kernel, and small amplitudes matter here
        a = torch.fft.rfft2(output.float(), norm="ortho").abs()
        b = torch.fft.rfft2(target.float(), norm="ortho").abs()
        if self.log:
            a, b = torch.log1p(a), torch.log1p(b)
        return F.l1_loss(a, b)


def _pixel(kind: str):
    return lambda options, ctx: PixelDistance(kind)


def register_pixel_losses(register) -> None:
    register(LossType(name="l1", options=NoOptions, build=_pixel("l1"), description="mean absolute error to the target"))
    register(LossType(name="l2", options=NoOptions, build=_pixel("l2"), description="mean squared error to the target"))
    register(
        LossType(
            name="charbonnier",
            options=CharbonnierOptions,
            build=lambda options, ctx: CharbonnierLoss(options),
            description="smooth l1: sqrt(d^2 + epsilon^2)",
        )
    )
    register(
        LossType(
            name="gradient",
            options=NoOptions,
            build=lambda options, ctx: GradientLoss(),
            description="l1 between the image gradients (finite differences) of output and target",
        )
    )
    register(
        LossType(
            name="frequency",
            options=FrequencyOptions,
            build=lambda options, ctx: FrequencyLoss(options),
            description="l1 between the amplitude spectra (2-D FFT) of output and target",
        )
    )
