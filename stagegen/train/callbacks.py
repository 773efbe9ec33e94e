"""The events of a training run, and the jobs that listen to them.

The trainer runs the steps and emits events; everything else a run does is a callback: the
metrics log and progress bar, sample grids, checkpoints, the time budget, the prior fit and the
run's report.
A plugin adds its own through the ``register_callbacks`` hook (early stopping, an upload, a
notification), and Python code passes them to :class:`~stagegen.train.Trainer`.

Events, in the order a run emits them (each calls ``on_<event>`` of every callback, in order):

- ``run_start(trainer)``: before the first step (a resumed run: from its checkpoint's step);
- ``step_end(trainer, outcome)``: after every step that updated the weights;
- ``nonfinite_step(trainer, outcome)``: a step skipped for a non-finite loss or gradient;
- ``grid(trainer, path, images)``: a sample grid was written (``images``: the grid, C x H x W);
- ``checkpoint(trainer, path)``: a checkpoint was written;
- ``budget_plan(trainer, record)``: a time-budgeted run timed its first steps and the work after
  training, and planned where training stops (``record``: speed, reach, the end phase's seconds);
- ``time_budget(trainer)``: the time budget ends the run after this step;
- ``train_end(trainer)``: the last step is done (the final checkpoint, then the prior fit);
- ``prior_fit(trainer, record)``: the pipeline's prior was fitted to the final weights;
- ``run_end(trainer, result)``: the pipeline file is written (the final grids, then the report);
- ``teardown(trainer)``: always, last, also after an error or an interruption.

A callback reads the run through the trainer (``config``, ``state``, ``run_dir``, ``step``,
``dist``, ``result``) and may end it after the current step with ``trainer.request_stop(why)``.

The six built-in jobs are in :mod:`.jobs`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._deprecated import moved_attribute

if TYPE_CHECKING:
    from ..config.models import RunConfig
    from .trainer import Trainer

__all__ = ["Callback", "CallbackType", "callback_states", "load_callback_states", "plugin_callbacks"]


class Callback:
    """Override the events a job needs; every one is a no-op here.

    A callback with state of its own (a counter, a best score) returns it from
    :meth:`state_dict` and takes it back in :meth:`load_state_dict`, as Lightning's callbacks do:
    every checkpoint keeps it under :attr:`state_key`, so ``--resume`` continues where the run
    stopped. The state holds tensors, numbers, strings, lists and dicts only: checkpoints are
    read without executing code."""

    @property
    def state_key(self) -> str:
        """Where a checkpoint keeps this callback's state (two of one class get ``#2``, ... after it)."""
        return type(self).__qualname__

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def on_run_start(self, trainer: Trainer) -> None: ...

    def on_step_end(self, trainer: Trainer, outcome) -> None: ...

    def on_nonfinite_step(self, trainer: Trainer, outcome) -> None: ...

    def on_grid(self, trainer: Trainer, path, images) -> None: ...

    def on_checkpoint(self, trainer: Trainer, path) -> None: ...

    def on_budget_plan(self, trainer: Trainer, record: dict[str, Any]) -> None: ...

    def on_time_budget(self, trainer: Trainer) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...

    def on_prior_fit(self, trainer: Trainer, record: dict[str, Any]) -> None: ...

    def on_run_end(self, trainer: Trainer, result) -> None: ...

    def on_teardown(self, trainer: Trainer) -> None: ...


@dataclass(frozen=True, kw_only=True)
class CallbackType:
    """A registered callback. ``build(config)`` returns a :class:`Callback` for a run of that
    configuration, or None to stay out of it."""

    name: str
    build: Callable[[RunConfig], Callback | None]
    description: str = ""


#: what a stage's logged ``bpd`` is (docs/training.md says the same)


def _keyed(callbacks: list[Callback]) -> dict[str, Callback]:
    keyed: dict[str, Callback] = {}
    for callback in callbacks:
        key, n = callback.state_key, 1
        while key in keyed:
            n += 1
            key = f"{callback.state_key}#{n}"
        keyed[key] = callback
    return keyed


def callback_states(callbacks: list[Callback]) -> dict[str, dict[str, Any]]:
    """What a checkpoint keeps of the callbacks: each one's state that is not empty, by key."""
    return {key: state for key, callback in _keyed(callbacks).items() if (state := callback.state_dict())}


def load_callback_states(callbacks: list[Callback], saved: dict[str, dict[str, Any]]) -> None:
    """Give each callback its saved state. One added since keeps its fresh state; one removed since is let go."""
    for key, callback in _keyed(callbacks).items():
        if key in saved:
            callback.load_state_dict(saved[key])


def plugin_callbacks(config: RunConfig) -> list[Callback]:
    """The callbacks plugins register, built for this run (those that return None stay out)."""
    from ..plugin.manager import get_plugin_manager

    registry = get_plugin_manager().callbacks
    built = (registry.get(name).build(config) for name in registry.in_order())
    return [callback for callback in built if callback is not None]


# the built-in jobs lived here in stagegen 0.2
__getattr__ = moved_attribute(
    __name__,
    {
        name: ("stagegen.train.jobs", name)
        for name in ("Checkpoints", "Grids", "MetricsLogger", "PriorFit", "Report", "TimeBudget", "default_callbacks")
    },
)
