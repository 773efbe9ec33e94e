"""One optimisation step on a :class:`TrainState`: the generator's update, its EMA, then each
extra module's (a discriminator's) own update. What a step does, not when it happens."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import torch
from torch import nn

from ..config import TrainConfig
from ..pipeline import ChainOutput
from .distributed import average_gradients
from .state import TrainState

__all__ = ["StepOutcome", "train_step"]


@dataclass
class StepOutcome:
    """A step's loss terms (the generator's, plus ``stage<k>/aux/<name>`` from extra modules),
    the terms that were not finite (the step was then skipped), and what the stages reported."""

    terms: dict[str, torch.Tensor]
    nonfinite: list[str] = field(default_factory=list)
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)


def train_step(
    state: TrainState,
    batches: Iterator[torch.Tensor],
    config: TrainConfig,
    *,
    model: nn.Module | None = None,
    prepare: Callable[[torch.Tensor], torch.Tensor] = lambda batch: batch,
    autocast: Callable[[], AbstractContextManager] = contextlib.nullcontext,
    distributed: bool = False,
) -> StepOutcome:
    """Take ``config.accumulate`` batches, update the generator unless a loss term or the
    gradient norm is not finite, then update each extra module. ``model`` is the pipeline as
    wrapped for the forward pass (DistributedDataParallel, torch.compile); ``prepare`` turns a
    uint8 batch into the model's input. On success ``state.step`` advances by one."""
    pipeline = state.pipeline
    model = model if model is not None else pipeline
    for opt in state.optimizers:
        opt.zero_grad(set_to_none=True)
    for aux in state.auxiliaries.values():
        aux.requires_grad_(False)  # the generator's loss must not train the discriminator
    summed: dict[str, torch.Tensor] = {}
    reported: dict[str, torch.Tensor] = {}
    for micro in range(config.accumulate):
        x = prepare(next(batches))
        sync = micro == config.accumulate - 1 or not distributed
        with contextlib.nullcontext() if sync else model.no_sync(), autocast():
            out = model(x)
            diagnostics: dict[str, torch.Tensor] = {}
            terms = pipeline.losses(x, out, state.step, state.auxiliaries, diagnostics)
            loss = torch.stack([v.float() for v in terms.values()]).sum()
        (loss / config.accumulate).backward()
        for k, v in terms.items():
            summed[k] = summed.get(k, 0) + v.detach().float() / config.accumulate
        for k, v in diagnostics.items():
            reported[k] = reported.get(k, 0) + v / config.accumulate
    total = torch.stack(list(summed.values())).sum()
    params = [p for p in pipeline.parameters() if p.grad is not None]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip or float("inf"), foreach=True)
    if not bool(torch.isfinite(total) & torch.isfinite(grad_norm)):  # the step's one host sync
        bad = [k for k, v in summed.items() if not torch.isfinite(v)] or ["gradient (every loss term was finite)"]
        return StepOutcome(summed, bad, reported)
    for opt, sched in zip(state.optimizers, state.schedulers):
        opt.step()
        sched.step()
    if state.ema is not None:
        state.ema.update(pipeline)
    summed.update(_auxiliary_step(state, x, out, autocast, distributed))
    state.step += 1
    return StepOutcome(summed, [], reported)


def _auxiliary_step(state: TrainState, x: torch.Tensor, out: ChainOutput, autocast, distributed: bool) -> dict[str, torch.Tensor]:
    """Each extra module's own update on the generator's detached outputs; its terms, labelled."""
    if not state.auxiliaries:
        return {}
    pipeline = state.pipeline
    targets = pipeline.targets(x)
    logged: dict[str, torch.Tensor] = {}
    for i, aux in state.auxiliaries.items():
        aux.requires_grad_(True)
        opt = state.aux_optimizers[i]
        opt.zero_grad(set_to_none=True)
        ctx = pipeline.loss_context(i, out, state.step, aux, detach=True)
        with autocast():
            terms = pipeline.stages[i].auxiliary_loss(aux, out.images[i].detach(), targets[i], ctx)
        if not terms:
            continue
        loss = torch.stack([v.float() for v in terms.values()]).sum()
        loss.backward()
        if distributed:
            average_gradients(aux.parameters())
        norm = torch.nn.utils.clip_grad_norm_(aux.parameters(), float("inf"), foreach=True)
        if bool(torch.isfinite(loss) & torch.isfinite(norm)):
            opt.step()
        for k, v in terms.items():
            logged[pipeline.term_label(i, k, auxiliary=True)] = v.detach().float()
    return logged
