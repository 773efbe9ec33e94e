"""The training objective's methods that :class:`~stagegen.pipeline.Pipeline` had in stagegen
0.2, now on ``pipe.objective`` (:class:`~stagegen.losses.objective.Objective`): each warns once,
naming its new place, and delegates."""

from __future__ import annotations

from .._deprecated import warn_once

__all__ = ["ObjectiveMethods"]


class ObjectiveMethods:
    def _objective_moved(self, old: str, new: str):
        warn_once(f"Pipeline.{old}", f"Pipeline.objective.{new}", stacklevel=4)
        if self.objective is None:
            raise ValueError("this pipeline was loaded for sampling and has no training objective")
        return self.objective

    @property
    def stage_losses(self):
        return self._objective_moved("stage_losses", "losses").losses

    @property
    def uses_samples(self) -> bool:
        return self._objective_moved("uses_samples", "uses_samples").uses_samples

    def wants_samples(self, step: int) -> bool:
        return self._objective_moved("wants_samples", "wants_samples").wants_samples(step)

    def loss_context(self, *args, **kwargs):
        return self._objective_moved("loss_context", "context").context(*args, **kwargs)

    def loss_terms(self, *args, **kwargs):
        return self._objective_moved("loss_terms", "terms").terms(*args, **kwargs)

    def losses(self, *args, **kwargs):
        return self._objective_moved("losses", "logged_terms").logged_terms(*args, **kwargs)
