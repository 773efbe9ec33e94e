"""The paper's residual refiner, with an l1 (multi-stage VAE) or l2 (deep residual VAE) loss.

Network after the authors' code: a 5x5 conv to ``width`` channels, residual blocks
(conv-BN-lrelu-conv-BN, add, ReLU), a conv with a long skip from the first conv, then a
``head_width`` conv, a ``width`` conv, a conv to the image channels and tanh. With
``scale`` > 1 a PixelShuffle upsampler sits after the long skip (beyond the paper).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

import stagegen
from stagegen.layers import PixelShuffleUpsampler, ResidualBlock
from stagegen.losses import pixel_loss
from stagegen.stages import BuildContext, LossContext, Refiner, StageOptions, StageType

__version__ = stagegen.__version__


class ResNetOptions(StageOptions):
    width: int = Field(64, ge=1, le=4096, description="channels of the residual trunk")
    blocks: int = Field(5, ge=0, le=256, description="number of residual blocks")
    head_width: int = Field(256, ge=1, le=8192, description="channels of the wide conv before the output")
    scale: Literal[1, 2, 4] = Field(1, description="resolution factor from input to output: 1 (paper), 2 or 4")
    leaky_slope: float = Field(0.3, ge=0, description="negative slope of the leaky ReLUs")
    pixel_weight: float = Field(1.0, ge=0, description="weight of the pixel loss")


class ResNetRefiner(Refiner):
    def __init__(self, options: ResNetOptions, channels: int, loss_kind: str):
        super().__init__()
        o = options
        self.options, self.loss_kind = o, loss_kind
        act = lambda: nn.LeakyReLU(o.leaky_slope, inplace=True)  # noqa: E731
        self.head = nn.Sequential(nn.Conv2d(channels, o.width, 5, padding=2), act())
        self.blocks = nn.Sequential(*[ResidualBlock(o.width, o.leaky_slope) for _ in range(o.blocks)])
        self.skip_conv = nn.Conv2d(o.width, o.width, 3, padding=1)
        self.upsample = PixelShuffleUpsampler(o.width, o.scale, o.leaky_slope)
        self.tail = nn.Sequential(
            nn.Conv2d(o.width, o.head_width, 3, padding=1),
            act(),
            nn.Conv2d(o.head_width, o.width, 3, padding=1),
            act(),
            nn.Conv2d(o.width, channels, 3, padding=1),
            nn.Tanh(),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h = self.head(image)
        h = h + self.skip_conv(self.blocks(h))
        return self.tail(self.upsample(h))

    def loss(self, output, target, ctx: LossContext):
        return {self.loss_kind: self.options.pixel_weight * pixel_loss(self.loss_kind, output, target)}


def _builder(loss_kind: str):
    def build(options: ResNetOptions, ctx: BuildContext) -> ResNetRefiner:
        return ResNetRefiner(options, ctx.channels, loss_kind)

    return build


@stagegen.hookimpl
def register_stages(register):
    for loss_kind, what in (("l1", "multi-stage VAE"), ("l2", "deep residual VAE")):
        register(
            StageType(
                name=f"resnet-{loss_kind}",
                kind="refiner",
                options=ResNetOptions,
                build=_builder(loss_kind),
                scale=lambda options: options.scale,
                description=f"the paper's residual refiner with an {loss_kind} loss ({what})",
            )
        )
