"""N(0, I): the paper's prior, registered on its own (entry point ``normal-prior``) so that a
run can load it without the fitted priors."""

from __future__ import annotations

import math

import torch

from stagegen import hookimpl
from stagegen.priors import Prior, PriorOptions, PriorType

__all__ = ["NormalPrior", "NormalPriorOptions"]


class NormalPriorOptions(PriorOptions):
    pass


class NormalPrior(Prior):
    """z ~ N(0, I): the paper's prior and the one every VAE is trained against."""

    needs_fit = False
    draws_on_device = True

    def sample_flat(self, n: int, generator: torch.Generator, temperature: float) -> torch.Tensor:
        return torch.randn((n, math.prod(self.latent_shape)), generator=generator, device=generator.device) * temperature


@hookimpl
def register_priors(register):
    register(
        PriorType(
            name="normal",
            options=NormalPriorOptions,
            build=lambda o, ctx: NormalPrior(ctx.latent_shape),
            description="N(0, I), as in the paper; needs no fitting",
        )
    )
