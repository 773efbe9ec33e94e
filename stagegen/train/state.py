"""Everything a training step changes, in one object with one state_dict.

The loop (trainer.py) decides when to log, sample and save; :func:`stagegen.train.step.train_step`
does one step on a :class:`TrainState`; a checkpoint is this state plus the random generators.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..config.models import TrainConfig
from ..optim import adam
from ..pipeline.chain import Pipeline
from ..pipeline.file import FITTED_AFTER_TRAINING
from .auxiliary import auxiliary_optimizer
from .ema import EMA
from .sample_prior import SamplePrior

__all__ = ["TrainState"]


def _lr_lambda(schedule: str, warmup: int, total: int):
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "cosine":
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0

    return factor


@dataclass
class TrainState:
    """The generator, the extra modules (discriminators) of its stages and losses, every
    optimiser and schedule, the EMA weights, the sample path's prior and the counters: what a
    step reads and writes, and what resuming restores."""

    pipeline: Pipeline
    optimizers: list[torch.optim.Optimizer]
    schedulers: list[torch.optim.lr_scheduler.LRScheduler]
    auxiliaries: dict[str, nn.Module] = field(default_factory=dict)
    aux_optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    ema: EMA | None = None
    sample_prior: SamplePrior | None = None
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    nonfinite_total: int = 0

    @classmethod
    def create(cls, pipeline: Pipeline, auxiliaries: dict[str, nn.Module], config: TrainConfig) -> TrainState:
        """Optimisers for the stages' parameters (the prior is fitted after training, by its own
        ``fit``), their schedules, each extra module's optimiser, EMA when configured, and the
        sample path's prior when some loss judges prior samples."""
        stages = pipeline.stages
        groups = [list(stages.parameters())] if config.optimizer == "shared" else [list(s.parameters()) for s in stages]
        optimizers = [adam(g, lr=config.lr, betas=config.betas) for g in groups if g]
        schedule = _lr_lambda(config.lr_schedule, config.warmup_steps, config.steps)
        schedulers = [torch.optim.lr_scheduler.LambdaLR(o, schedule) for o in optimizers]
        aux_optimizers = {key: auxiliary_optimizer(pipeline, key, aux) for key, aux in auxiliaries.items()}
        # a stage that joins late (train_from) starts its average when it joins
        starts = {f"stages.{i}.": spec.train_from for i, spec in enumerate(pipeline.specs)}
        ema = EMA(pipeline, config.ema_decay, starts) if config.ema_decay else None
        sample_path = pipeline.objective.uses_samples and config.sample_path_every
        # grids during training draw from the prior as it would be fitted now, not from N(0, I):
        # without a sample path, the same kept prior is refitted only when a grid is drawn
        grids = config.sample_every and pipeline.prior.needs_fit
        sample_prior = SamplePrior(pipeline, config, for_losses=bool(sample_path)) if (sample_path or grids) else None
        return cls(pipeline, optimizers, schedulers, dict(auxiliaries), aux_optimizers, ema, sample_prior)

    def generator_state(self) -> dict[str, torch.Tensor]:
        """What a pipeline file holds: the EMA weights when EMA is on."""
        return self.ema.state_dict() if self.ema is not None else self.pipeline.state_dict()

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "nonfinite_total": self.nonfinite_total,
            # what is fitted after training (priors per label, directions) is refitted after a resume
            "pipeline": {k: v for k, v in self.pipeline.state_dict().items() if not k.startswith(FITTED_AFTER_TRAINING)},
            "auxiliaries": {key: a.state_dict() for key, a in self.auxiliaries.items()},
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "aux_optimizers": {key: o.state_dict() for key, o in self.aux_optimizers.items()},
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "sample_prior": self.sample_prior.state_dict() if self.sample_prior is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pipeline.load_state_dict(state["pipeline"])
        saved = _auxiliary_keys(list(self.auxiliaries), list(state["auxiliaries"]))
        for key, aux in self.auxiliaries.items():
            aux.load_state_dict(state["auxiliaries"][saved[key]])
        for opt, s in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(s)
        for sched, s in zip(self.schedulers, state["schedulers"], strict=True):
            sched.load_state_dict(s)
        for key, opt in self.aux_optimizers.items():
            opt.load_state_dict(state["aux_optimizers"][saved[key]])
        if self.sample_prior is not None and state.get("sample_prior") is not None:
            self.sample_prior.load_state_dict(state["sample_prior"])
        if self.ema is not None:
            if state["ema"] is None:
                raise ValueError("EMA is on now but the checkpoint has no EMA weights; resume with the run's own settings")
            self.ema.load_state_dict(state["ema"])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.nonfinite_total = state.get("nonfinite_total", 0)


def _auxiliary_keys(current: list[str], saved: list[str]) -> dict[str, str]:
    """Which saved extra module each current one is. Before losses were separate (0.1), a
    discriminator belonged to its stage and was saved as ``"<stage>"``; it is now its loss's
    (``"<stage>/<loss>"``), the one extra module of that stage."""
    found = {}
    for key in current:
        stage = key.partition("/")[0]
        if key in saved:
            found[key] = key
        elif stage in saved and stage not in current and sum(k.partition("/")[0] == stage for k in current) == 1:
            found[key] = stage
        else:
            raise KeyError(f"extra module {key}")
    return found
