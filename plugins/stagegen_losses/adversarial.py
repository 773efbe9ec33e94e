"""``adversarial``: a PatchGAN discriminator (the loss's extra module: its own optimiser and
update after each generator step, saved in checkpoints, never in the pipeline file) judges the
stage's outputs: on reconstructions, on latents drawn from the prior (the sample path: what
people sample, with no target needed), or both. Stabilisers, after what works for image
autoencoders: hinge loss, spectral normalisation, an R1 gradient penalty on real images
(lazily, every few steps), a start step, and the adaptive weight of taming-transformers (the
ratio of the other terms' gradient norm to this term's at the network's last layer, in
float32). Feature matching (Larsen et al. 2016) adds a paired term: the l1 distance between
the discriminator's features of output and target.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from stagegen.losses import (
    Loss,
    LossOptions,
    LossType,
    adaptive_weight,
    discriminator_loss,
    feature_matching,
    generator_loss,
    r1_penalty,
)
from stagegen.optim import adam

from .discriminator import PatchDiscriminator

__all__ = ["AdversarialLoss", "AdversarialOptions", "PatchDiscriminator", "register_adversarial_loss"]


class AdversarialOptions(LossOptions):
    gan_loss: Literal["hinge", "non-saturating"] = Field("hinge", description="GAN objective")
    judge: Literal["reconstructions", "samples", "both"] = Field(
        "both",
        description="which outputs the discriminator judges: on reconstructions, on latents from the prior (the sample "
        "path), or both",
    )
    start_step: int = Field(0, ge=0, description="steps before the adversarial term and the discriminator start")
    adaptive: bool = Field(
        False,
        description="scale the term by the ratio of the other terms' gradient norm to its own at the last layer "
        "(taming-transformers; measured unstable with the sample path, see docs/results.md)",
    )
    max_adaptive_weight: float = Field(1e4, gt=0, description="upper bound of the adaptive weight")
    feature_matching: float = Field(
        1.0, ge=0, le=1e4, description="weight of feature matching on reconstructions (0: off), relative to the loss's weight"
    )
    r1: float = Field(
        0.0,
        ge=0,
        le=1e4,
        description="gamma of the R1 penalty on real images (0: off). For a discriminator without spectral norm: with it, "
        "even gamma 1 flattened the discriminator in our runs (docs/results.md)",
    )
    r1_every: int = Field(4, ge=1, le=1000, description="apply the R1 penalty every this many steps (scaled up to match)")
    disc_width: int = Field(32, ge=1, le=4096, description="discriminator base channels")
    disc_layers: int = Field(3, ge=1, le=8, description="stride-2 layers of the PatchGAN (receptive field grows with it)")
    spectral_norm: bool = Field(True, description="spectral normalisation in the discriminator (instead of batch norm)")
    disc_lr: float = Field(2e-4, gt=0, le=1, description="discriminator learning rate")
    disc_betas: tuple[float, float] = Field((0.5, 0.9), description="discriminator Adam betas")


class AdversarialLoss(Loss):
    uses_reference = True

    def __init__(self, options: AdversarialOptions, channels: int):
        super().__init__()
        self.options = options
        self.channels = channels
        self.uses_samples = options.judge in ("samples", "both")

    def wants_samples(self, step: int) -> bool:
        return self.uses_samples and step >= self.options.start_step

    def build_auxiliary(self) -> PatchDiscriminator:
        o = self.options
        return PatchDiscriminator(self.channels, o.disc_width, o.disc_layers, o.spectral_norm)

    def auxiliary_optimizer(self, auxiliary):
        return adam(auxiliary.parameters(), lr=self.options.disc_lr, betas=self.options.disc_betas)

    def _judged(self, output: torch.Tensor, samples: torch.Tensor | None) -> list[torch.Tensor]:
        judge = self.options.judge
        images = [output] if judge in ("reconstructions", "both") else []
        if judge in ("samples", "both") and samples is not None:
            images.append(samples)
        return images

    def forward(self, output, target, ctx):
        o, disc = self.options, ctx.auxiliary
        zero = output.new_zeros((), dtype=torch.float32)
        terms = {"adversarial": zero}
        if o.feature_matching:
            terms["feature_matching"] = zero
        judged = self._judged(output, ctx.samples)
        if disc is None or ctx.step < o.start_step or not judged:
            return terms
        logits = []
        for image in judged:
            if o.feature_matching and image is output:
                fake_logits, fake_features = disc.forward_with_features(output)
                with torch.no_grad():
                    _, real_features = disc.forward_with_features(target)
                terms["feature_matching"] = o.feature_matching * feature_matching(fake_features, real_features)
                logits.append(fake_logits)
            else:
                logits.append(disc(image))
        adv = torch.stack([generator_loss(o.gan_loss, lg) for lg in logits]).mean()
        weight = torch.ones((), device=output.device)
        if o.adaptive and ctx.reference is not None and ctx.last_layer is not None and torch.is_grad_enabled():
            if ctx.reference.requires_grad and adv.requires_grad:
                weight = adaptive_weight(ctx.reference, adv, ctx.last_layer, o.max_adaptive_weight)
        ctx.report("adaptive_weight", weight)
        terms["adversarial"] = weight * adv
        return terms

    def auxiliary_loss(self, auxiliary, real, fakes, ctx):
        o = self.options
        if ctx.step < o.start_step:
            return {}
        penalise = o.r1 > 0 and ctx.step % o.r1_every == 0
        real = real.detach().requires_grad_(penalise)
        real_logits = auxiliary(real)
        fake_logits = [auxiliary(f) for f in fakes]
        terms = {
            "d_loss": torch.stack([discriminator_loss(o.gan_loss, real_logits, f) for f in fake_logits]).mean(),
            "d_real": real_logits.detach().float().mean(),
            "d_fake": torch.stack([f.detach().float().mean() for f in fake_logits]).mean(),
        }
        if o.r1 > 0:  # every step, so the logged mean is the penalty's average contribution
            terms["r1"] = 0.5 * o.r1 * o.r1_every * r1_penalty(real_logits, real) if penalise else real_logits.new_zeros(())
        return terms


def register_adversarial_loss(register) -> None:
    register(
        LossType(
            name="adversarial",
            options=AdversarialOptions,
            build=lambda options, ctx: AdversarialLoss(options, ctx.channels),
            description="PatchGAN realism loss on reconstructions and prior samples (hinge, spectral norm, R1, feature "
            "matching, adaptive weight)",
        )
    )
