"""SRResNet-style refiner trained with a pixel loss plus a perceptual loss.

Network after Ledig et al. (SRResNet): a 9x9 conv, residual blocks without a post-activation,
a conv + BN with a long skip, PixelShuffle upsampling (x1, x2 or x4), a 9x9 conv to the image.
Perceptual features come from ``lpips`` (vgg, alex, squeeze) or a ``timm`` backbone. The loss
network is not part of the generator: it is never saved in the pipeline file, and a pipeline
loaded for sampling neither builds it nor needs its weights.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

import stagegen
from stagegen.layers import PixelShuffleUpsampler
from stagegen.losses import perceptual_network, pixel_loss
from stagegen.stages import BuildContext, LossContext, Refiner, StageOptions, StageType

__version__ = stagegen.__version__


class SRResNetOptions(StageOptions):
    width: int = Field(64, ge=1, le=4096, description="channels of the residual trunk")
    blocks: int = Field(8, ge=0, le=256, description="residual blocks (SRResNet uses 16)")
    scale: Literal[1, 2, 4] = Field(2, description="upsampling factor from input to output")
    pixel_loss: Literal["l1", "l2", "charbonnier"] = Field("l1", description="pixel loss")
    pixel_weight: float = Field(1.0, ge=0, description="weight of the pixel loss")
    perceptual_weight: float = Field(0.1, ge=0, description="weight of the perceptual loss")
    backbone: str = Field("lpips-vgg", description="perceptual features: lpips-vgg, lpips-alex, lpips-squeeze or timm:<model>")
    pretrained: bool = Field(True, description="use pretrained backbone weights (false: random weights, for tests)")
    weights_path: str | None = Field(
        None, description="explicit backbone weights file (.pth or .safetensors) instead of the cache"
    )


class _ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.PReLU(width),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
        )

    def forward(self, x):
        return x + self.body(x)


class SRResNetRefiner(Refiner):
    def __init__(self, options: SRResNetOptions, channels: int, training: bool):
        super().__init__()
        o = self.options = options
        self.head = nn.Sequential(nn.Conv2d(channels, o.width, 9, padding=4), nn.PReLU(o.width))
        self.blocks = nn.Sequential(*[_ResidualBlock(o.width) for _ in range(o.blocks)])
        self.skip = nn.Sequential(nn.Conv2d(o.width, o.width, 3, padding=1, bias=False), nn.BatchNorm2d(o.width))
        self.upsample = PixelShuffleUpsampler(o.width, o.scale)
        self.tail = nn.Sequential(nn.Conv2d(o.width, channels, 9, padding=4), nn.Tanh())
        # Kept out of the module tree (a plain list), so it is neither trained nor saved.
        self._loss_network: list[nn.Module] = []
        if training and o.perceptual_weight > 0:
            self._loss_network.append(perceptual_network(o.backbone, o.pretrained, o.weights_path))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h = self.head(image)
        h = h + self.skip(self.blocks(h))
        return self.tail(self.upsample(h))

    def loss(self, output, target, ctx: LossContext):
        o = self.options
        terms = {o.pixel_loss: o.pixel_weight * pixel_loss(o.pixel_loss, output, target)}
        if o.perceptual_weight > 0:
            if not self._loss_network:  # built for inference (a loaded pipeline): training it would drop a term silently
                raise RuntimeError(
                    "this srresnet-perceptual stage was built for inference, without its perceptual network, so its "
                    "loss cannot be computed; train from a run (stagegen train --resume) or build the pipeline with "
                    "Pipeline(config) for training"
                )
            net = self._loss_network[0]
            if next(net.parameters()).device != output.device:
                net.to(output.device)
            terms["perceptual"] = o.perceptual_weight * net(output, target)
        return terms


def build(options: SRResNetOptions, ctx: BuildContext) -> SRResNetRefiner:
    return SRResNetRefiner(options, ctx.channels, ctx.training)


@stagegen.hookimpl
def register_stages(register):
    register(
        StageType(
            name="srresnet-perceptual",
            kind="refiner",
            options=SRResNetOptions,
            build=build,
            scale=lambda options: options.scale,
            description="SRResNet refiner (PixelShuffle x1/x2/x4) with pixel + perceptual (LPIPS or timm) loss",
        )
    )
