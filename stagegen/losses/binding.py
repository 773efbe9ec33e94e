"""A stage's built losses and how its terms are computed: each loss spec of a resolved stage
spec built from the loss registry, bound to its label and weight, and the stage's terms (its
own plus its losses', weighted) summed the same way for every stage."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from ..config.models import StageSpec
from ..stages.contract import BuildContext, Stage
from .context import LossContext
from .contract import Loss, LossBuildContext

__all__ = ["BoundLoss", "build_losses", "stage_terms", "validated_losses"]


@dataclass
class BoundLoss:
    """A built loss of one stage: its label, its weight and the module."""

    label: str
    weight: float
    named: bool  # the spec gave a name: a dict's terms are logged as <name>.<term>
    loss: Loss

    def labels(self, value: torch.Tensor | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The loss's output as weighted terms under their log names."""
        if torch.is_tensor(value):
            return {self.label: self.weight * value}
        if not isinstance(value, dict):
            raise TypeError(f"loss {self.label!r} returned a {type(value).__name__}; a loss returns a tensor or a dict of them")
        return {(f"{self.label}.{k}" if self.named else k): self.weight * v for k, v in value.items()}


def build_losses(spec: StageSpec, ctx: BuildContext) -> list[BoundLoss]:
    """The losses of a resolved spec, built from the loss registry (options validated). A loss
    of weight 0 is validated but not built: it adds nothing, and a perceptual loss switched off
    this way needs no weights."""
    from ..plugin.manager import get_loss_type

    bound, seen = [], set()
    for loss_spec in spec.losses or []:
        loss_type = get_loss_type(loss_spec.type)
        label = loss_spec.name or loss_type.name  # a renamed type is logged under its current name
        if label in seen:
            raise ValueError(
                f'stage {ctx.index} ({spec.type}) has two losses named {label!r}; give one a name (a loss spec\'s "name" field)'
            )
        seen.add(label)
        options = loss_type.validate_options(loss_spec.options)
        if loss_spec.weight == 0:
            continue
        loss = loss_type.build(options, LossBuildContext(ctx, label))
        if not isinstance(loss, Loss):
            raise TypeError(f"loss type {loss_spec.type!r} built a {type(loss).__name__}, not a stagegen.losses.Loss")
        bound.append(BoundLoss(label, loss_spec.weight, loss_spec.name is not None, loss))
    return bound


def validated_losses(spec: StageSpec) -> list[dict[str, Any]]:
    """The spec's losses with every option's validated value (defaults included), as stored."""
    from ..plugin.manager import get_loss_type

    out = []
    for loss_spec in spec.losses or []:
        loss_type = get_loss_type(loss_spec.type)
        options = loss_type.validate_options(loss_spec.options)
        update = {"type": loss_type.name, "options": options.model_dump(mode="json")}  # a renamed type: its current name
        out.append(loss_spec.model_copy(update=update).model_dump(mode="json"))
    return out


def stage_terms(
    stage: Stage,
    losses: list[BoundLoss],
    output: torch.Tensor,
    target: torch.Tensor,
    ctx: LossContext,
    auxiliaries: dict[str, Any],
) -> dict[str, torch.Tensor]:
    """The stage's own terms plus its losses' (weighted by their specs), names relative to the
    stage. Losses that balance themselves against the others (``uses_reference``) come last."""
    terms = dict(stage.loss(output, target, ctx))
    ordered = [b for b in losses if not b.loss.uses_reference] + [b for b in losses if b.loss.uses_reference]
    for bound in ordered:
        if bound.loss.uses_reference and ctx.reference is None and terms:
            ctx.reference = torch.stack([v.float() for v in terms.values()]).sum()
        loss_ctx = dataclasses.replace(ctx, auxiliary=auxiliaries.get(bound.label))
        for name, value in bound.labels(bound.loss(output, target, loss_ctx)).items():
            if name in terms:
                raise ValueError(
                    f"two loss terms of stage {type(stage).__name__} are named {name!r}; give one of the losses a name"
                )
            terms[name] = value
    return terms
