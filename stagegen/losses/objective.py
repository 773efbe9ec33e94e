"""What a pipeline is trained on: every stage's losses, and the step's loss terms computed from
the chain's outputs. Kept apart from the :class:`~stagegen.pipeline.Pipeline`, which only runs
the chain: a pipeline built for training carries an :class:`Objective` (``pipe.objective``); one
loaded for sampling has none, so its losses' plugins need not be installed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from .binding import BoundLoss, stage_terms
from .context import LossContext

if TYPE_CHECKING:
    from ..pipeline.chain import ChainOutput, Pipeline

__all__ = ["Objective", "term_label"]

#: a term's place: (stage index, name)
Key = tuple[int, str]


def term_label(stage: int, name: str, auxiliary: bool = False) -> str:
    """How a stage's loss term is logged: ``stage1/l1``; an extra module's (a discriminator's)
    under ``stage3/aux/d_loss``, apart from the generator's loss. The one place labels are made."""
    return f"stage{stage}/{'aux/' if auxiliary else ''}{name}"


class Objective:
    """Each stage's bound losses (``losses[i]``, a plain list: they are neither trained nor saved
    with the generator) and the terms they give on a step's chain output."""

    def __init__(self, pipeline: Pipeline, losses: list[list[BoundLoss]]):
        self.pipeline = pipeline
        self.losses = losses

    def modules(self) -> list[nn.Module]:
        return [bound.loss for stage in self.losses for bound in stage]

    @property
    def uses_samples(self) -> bool:
        """Whether some refiner's loss judges the sample path's outputs (the trainer then runs it)."""
        return any(b.loss.uses_samples for stage in self.losses[1:] for b in stage)

    def wants_samples(self, step: int) -> bool:
        """Whether some refiner that trains at this step has a loss that judges the sample path's outputs."""
        active = self.losses[1 : self.pipeline.active_stages(step)]
        return any(b.loss.wants_samples(step) for stage in active for b in stage)

    def context(
        self, index: int, out: ChainOutput, step: int, auxiliary: nn.Module | None = None, detach: bool = False
    ) -> LossContext:
        """What stage ``index`` sees beside its output and target when its loss is computed
        (``detach``: for an extra module's own update, which must not reach the generator)."""
        previous = out.images[index - 1] if index else None
        samples = out.samples[index] if (out.samples is not None and index > 0) else None
        return LossContext(
            step=step,
            input=previous.detach() if (detach and previous is not None) else previous,
            posterior=out.posterior if index == 0 and not detach else None,
            auxiliary=auxiliary,
            samples=samples.detach() if (detach and samples is not None) else samples,
            last_layer=None if detach else getattr(self.pipeline.stages[index], "last_layer", None),
        )

    def terms(
        self,
        x: torch.Tensor,
        out: ChainOutput,
        step: int = 0,
        auxiliaries: dict[str, nn.Module] | None = None,
        diagnostics: dict[Key, torch.Tensor] | None = None,
        headlines: set[Key] | None = None,
    ) -> dict[Key, torch.Tensor]:
        """Every stage's named, weighted loss terms by ``(stage, name)``. Numbers the stages
        report beside their loss (``ctx.report``) go into ``diagnostics``, those to show in a
        progress bar into ``headlines``. ``auxiliaries``: the extra modules that train beside
        the generator, by their keys: ``"<stage>"`` for a stage's own, ``"<stage>/<loss>"`` for
        a loss's (a discriminator)."""
        pipe, auxiliaries = self.pipeline, auxiliaries or {}
        terms: dict[Key, torch.Tensor] = {}
        targets = pipe.targets(x)
        for i, (stage, spec) in enumerate(zip(pipe.stages[: len(out.images)], pipe.specs)):
            if out.images[i].shape[-2:] != targets[i].shape[-2:]:
                raise ValueError(
                    f"stage {i} ({spec.type}) produced {tuple(out.images[i].shape[-2:])} images but its resolution is "
                    f"{pipe.resolutions[i]}: a refiner that changes resolution must declare it (StageType's scale)"
                )
            ctx = self.context(i, out, step, auxiliaries.get(str(i)))
            own = {key.split("/", 1)[1]: aux for key, aux in auxiliaries.items() if key.startswith(f"{i}/")}
            for name, value in stage_terms(stage, self.losses[i], out.images[i], targets[i], ctx, own).items():
                terms[i, name] = spec.loss_weight * value
            if diagnostics is not None:
                diagnostics.update({(i, name): v for name, v in ctx.diagnostics.items()})
            if headlines is not None:
                headlines.update((i, name) for name in ctx.headlines)
        return terms

    def logged_terms(
        self,
        x: torch.Tensor,
        out: ChainOutput,
        step: int = 0,
        auxiliaries: dict[str, nn.Module] | None = None,
        diagnostics: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """:meth:`terms` under their log labels: ``{"stage0/l2": ..., "stage1/l1": ...}``."""
        reported: dict[Key, torch.Tensor] = {}
        terms = self.terms(x, out, step, auxiliaries, reported)
        if diagnostics is not None:
            diagnostics.update({term_label(i, name): v for (i, name), v in reported.items()})
        return {term_label(i, name): v for (i, name), v in terms.items()}
