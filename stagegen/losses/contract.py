"""What a loss term is: the contract between the engine and every loss plugin.

A *loss type* is a registered name, a pydantic options model and a builder; the builder returns
a :class:`Loss` module. A stage lists its losses as specs (``{"type": "adversarial", "weight":
0.1, "options": {...}}``), so any loss pairs with any network. A loss is *paired* when it
compares the stage's output with its target (the training image at the stage's resolution);
it may also judge images with no target at all, such as the stage's outputs on latents drawn
from the prior (``ctx.samples``, the sample path): the realism losses do, which trains the
refiners on the inputs they meet when people sample.

A loss may own an extra module that trains beside the generator but is not part of it (the
adversarial loss's discriminator), through :class:`~stagegen.losses.context.AuxiliaryOwner`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..config.options import StrictModel, validate_options
from ..stages.contract import BuildContext
from .context import AuxiliaryOwner, LossContext

__all__ = ["Loss", "LossBuildContext", "LossOptions", "LossType"]


class LossOptions(StrictModel):
    """Base for every loss's options: unknown keys are errors. The weight is not an option: it
    is set on the stage's loss spec, the same way for every loss."""


@dataclass(frozen=True)
class LossBuildContext:
    """What a loss builder knows: the stage it belongs to and the loss's name in that stage."""

    stage: BuildContext
    name: str

    @property
    def channels(self) -> int:
        return self.stage.channels

    @property
    def resolution(self) -> int:
        """The resolution of the images the loss compares (the stage's output)."""
        return self.stage.out_resolution


@dataclass(frozen=True, kw_only=True)
class LossType:
    """A registered loss. ``build(options, ctx)`` returns a :class:`Loss`."""

    name: str
    options: type[LossOptions]
    build: Callable[[Any, LossBuildContext], Loss]
    description: str = ""
    #: names it had before a rename: files, configs and commands with them still find it
    renamed_from: tuple[str, ...] = ()

    def validate_options(self, raw: dict[str, Any] | None) -> LossOptions:
        return validate_options(self.options, raw, f"options of loss {self.name!r}")


class Loss(nn.Module, AuxiliaryOwner):
    """One loss term of a stage (or a few closely related ones).

    ``forward(output, target, ctx)`` returns a scalar, or a dict of named scalars for a loss
    with several parts (the adversarial loss: ``adversarial`` and ``feature_matching``). The
    engine multiplies them by the spec's weight and the stage's ``loss_weight`` and logs them as
    ``stage<k>/<name>``. A loss kept out of the pipeline file holds any network it needs (a
    perceptual network) itself: losses are never saved with the generator.
    """

    #: True when ``forward`` reads ``ctx.samples`` (the stage's outputs on prior latents): the
    #: trainer runs the sample path only when some loss asks for it
    uses_samples: bool = False
    #: True when ``forward`` reads ``ctx.reference`` (the stage's other terms): computed last
    uses_reference: bool = False

    def forward(self, output: torch.Tensor, target: torch.Tensor, ctx: LossContext) -> torch.Tensor | dict[str, torch.Tensor]:
        raise NotImplementedError

    def wants_samples(self, step: int) -> bool:
        """Whether ``forward`` reads ``ctx.samples`` at this step (a loss that starts late says
        no before its start, and the sample path is not run for it)."""
        return self.uses_samples
