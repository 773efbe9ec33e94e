"""A refiner trained with a pixel loss plus an adversarial loss from its own discriminator.

The discriminator (PatchGAN, optional spectral norm) is the stage's auxiliary module: the
trainer gives it its own optimiser and its own update after each generator step, saves it in
training checkpoints, and never writes it to the pipeline file. The adversarial term is off
before ``start_step``; after it, it is scaled by the adaptive weight of taming-transformers
(ratio of gradient norms at the refiner's last layer), computed in float32.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

import stagegen
from stagegen.layers import PixelShuffleUpsampler, ResidualBlock
from stagegen.losses import adaptive_weight, discriminator_loss, generator_loss, pixel_loss
from stagegen.stages import BuildContext, LossContext, Refiner, StageOptions, StageType

from .discriminator import PatchDiscriminator

__version__ = stagegen.__version__


class AdversarialOptions(StageOptions):
    width: int = Field(64, ge=1, le=4096, description="channels of the refiner")
    blocks: int = Field(5, ge=0, le=256, description="residual blocks of the refiner")
    scale: Literal[1, 2, 4] = Field(1, description="upsampling factor from input to output")
    pixel_loss: Literal["l1", "l2", "charbonnier"] = Field("l1", description="pixel loss")
    pixel_weight: float = Field(1.0, ge=0, description="weight of the pixel loss")
    adversarial_weight: float = Field(0.1, ge=0, description="weight of the adversarial term (times the adaptive weight)")
    gan_loss: Literal["hinge", "non-saturating"] = Field("hinge", description="GAN objective")
    start_step: int = Field(0, ge=0, description="steps before the adversarial term and the discriminator start")
    adaptive: bool = Field(True, description="scale the adversarial term by the ratio of gradient norms at the last layer")
    disc_width: int = Field(64, ge=1, le=4096, description="discriminator base channels")
    disc_layers: int = Field(3, ge=1, le=8, description="stride-2 layers of the PatchGAN (receptive field grows with it)")
    spectral_norm: bool = Field(False, description="spectral normalisation in the discriminator (instead of batch norm)")
    disc_lr: float = Field(2e-4, gt=0, description="discriminator learning rate")
    disc_betas: tuple[float, float] = Field((0.5, 0.9), description="discriminator Adam betas")


class AdversarialRefiner(Refiner):
    def __init__(self, options: AdversarialOptions, channels: int):
        super().__init__()
        o = self.options = options
        self.channels = channels
        self.head = nn.Sequential(nn.Conv2d(channels, o.width, 5, padding=2), nn.LeakyReLU(0.2, inplace=True))
        self.blocks = nn.Sequential(*[ResidualBlock(o.width, 0.2) for _ in range(o.blocks)])
        self.upsample = PixelShuffleUpsampler(o.width, o.scale, 0.2)
        self.last_layer = nn.Conv2d(o.width, channels, 3, padding=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h = self.head(image)
        h = self.upsample(h + self.blocks(h))
        return torch.tanh(self.last_layer(h))

    def build_auxiliary(self) -> nn.Module:
        o = self.options
        return PatchDiscriminator(self.channels, o.disc_width, o.disc_layers, o.spectral_norm)

    def auxiliary_optimizer(self, auxiliary: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(auxiliary.parameters(), lr=self.options.disc_lr, betas=self.options.disc_betas)

    def _active(self, ctx: LossContext) -> bool:
        return ctx.auxiliary is not None and ctx.step >= self.options.start_step

    def loss(self, output, target, ctx: LossContext):
        o = self.options
        rec = o.pixel_weight * pixel_loss(o.pixel_loss, output, target)
        if not self._active(ctx):
            return {o.pixel_loss: rec, "adversarial": rec.new_zeros(())}
        adv = generator_loss(o.gan_loss, ctx.auxiliary(output))
        weight = torch.ones((), device=output.device)
        if o.adaptive and torch.is_grad_enabled() and output.requires_grad:
            weight = adaptive_weight(rec, adv, self.last_layer.weight)
        return {o.pixel_loss: rec, "adversarial": o.adversarial_weight * weight * adv}

    def auxiliary_loss(self, auxiliary, output, target, ctx: LossContext):
        if ctx.step < self.options.start_step:
            return {}
        real, fake = auxiliary(target), auxiliary(output)
        return {
            "d_loss": discriminator_loss(self.options.gan_loss, real, fake),
            "d_real": real.detach().float().mean(),
            "d_fake": fake.detach().float().mean(),
        }


def build(options: AdversarialOptions, ctx: BuildContext) -> AdversarialRefiner:
    return AdversarialRefiner(options, ctx.channels)


@stagegen.hookimpl
def register_stages(register):
    register(
        StageType(
            name="adversarial",
            kind="refiner",
            options=AdversarialOptions,
            build=build,
            scale=lambda options: options.scale,
            description="residual refiner with pixel + adversarial loss (PatchGAN, hinge or non-saturating, adaptive weight)",
        )
    )
