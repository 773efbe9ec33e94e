"""What a loss sees besides the stage's output and target (:class:`LossContext`), and the one
API of an extra module that trains beside the generator (:class:`AuxiliaryOwner`: a loss's
discriminator, or a self-contained stage's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..optim import adam

if TYPE_CHECKING:
    from ..stages.contract import Posterior

__all__ = ["AuxiliaryOwner", "LossContext"]


@dataclass
class LossContext:
    """Everything a loss term may need besides the stage's output and target."""

    step: int
    input: torch.Tensor | None = None  # the stage's input image (None for a trunk)
    posterior: Posterior | None = None  # the trunk's q(z|x)
    auxiliary: nn.Module | None = None  # the extra module (a discriminator) of the stage or loss, if any
    #: this stage's outputs on latents drawn from the prior (the sample path), for losses that
    #: judge images without a target; None when the step has no sample path
    samples: torch.Tensor | None = None
    #: the sum of the stage's other terms, for a loss that balances itself against them (the
    #: adaptive adversarial weight); None until they are computed
    reference: torch.Tensor | None = None
    #: the weight of the stage network's last layer (``Refiner.last_layer``), if it declares one
    last_layer: torch.Tensor | None = None
    #: numbers a stage reports for the log without adding them to the loss (ELBO, sigma, ...)
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)
    #: the reported numbers the progress bar shows beside the loss terms
    headlines: set[str] = field(default_factory=set)

    def report(self, name: str, value: torch.Tensor, headline: bool = False) -> None:
        """Log ``value`` (detached) as ``stage<k>/<name>``; it is not part of the loss. With
        ``headline`` the progress bar shows it too (the trunk's bits per dimension)."""
        self.diagnostics[name] = value.detach().float()
        if headline:
            self.headlines.add(name)


class AuxiliaryOwner:
    """The one API of an extra module that trains beside the generator but is not part of it (a
    discriminator): a :class:`~stagegen.losses.Loss` or a self-contained stage owns one by
    returning it from :meth:`build_auxiliary`. The trainer gives it its own optimiser and
    update after each generator step, keeps it in checkpoints, and never writes it to the
    pipeline file."""

    def build_auxiliary(self) -> nn.Module | None:
        return None

    def auxiliary_optimizer(self, auxiliary: nn.Module) -> torch.optim.Optimizer:
        return adam(auxiliary.parameters(), lr=2e-4, betas=(0.5, 0.9))

    def auxiliary_loss(
        self, auxiliary: nn.Module, real: torch.Tensor, fakes: list[torch.Tensor], ctx: LossContext
    ) -> dict[str, torch.Tensor]:
        """Loss terms of the extra module's own update: ``real`` is the stage's target, ``fakes``
        its detached outputs (on reconstructions, then on prior samples when the step had a
        sample path). Logged as ``stage<k>/aux/<name>``, apart from the generator's loss."""
        return {}
