"""One optimisation step on a :class:`TrainState`: the generator's update (on the batch and, on
sample-path steps, on latents from the sample path's prior), its EMA, then each extra module's
(a discriminator's) own update. What a step does, not when it happens."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import torch
from torch import nn

from ..config.models import TrainConfig
from ..losses.objective import term_label
from ..optim import step_unless_nonfinite
from ..pipeline.chain import ChainOutput
from .auxiliary import auxiliary_name, auxiliary_terms
from .distributed import average_gradients
from .state import TrainState

__all__ = ["StepOutcome", "train_step"]


#: a term's place: (stage index, name)
Key = tuple[int, str]


@dataclass
class StepOutcome:
    """What a step computed, by (stage, name): the generator's loss terms, the extra modules'
    (discriminators') terms, the numbers the stages reported beside their loss and which of
    them a progress bar shows; the terms that were not finite (the step was then skipped, they
    are named by their log labels); and the statistics of a refit of the sample path's prior,
    when the step made one. Labels are made only for the log (:func:`stagegen.losses.objective.term_label`)."""

    losses: dict[Key, torch.Tensor]
    auxiliary: dict[Key, torch.Tensor] = field(default_factory=dict)
    diagnostics: dict[Key, torch.Tensor] = field(default_factory=dict)
    headlines: set[Key] = field(default_factory=set)
    nonfinite: list[str] = field(default_factory=list)
    prior_refit: dict[str, float] | None = None

    @staticmethod
    def label(key: Key, auxiliary: bool = False) -> str:
        """``stage1/l1``; an extra module's term ``stage3/aux/d_loss``, never summed into the loss."""
        return term_label(*key, auxiliary=auxiliary)

    @property
    def terms(self) -> dict[str, torch.Tensor]:
        """Every loss and extra-module term under its log label."""
        return {
            **{self.label(k): v for k, v in self.losses.items()},
            **{self.label(k, auxiliary=True): v for k, v in self.auxiliary.items()},
        }


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
    sampler = state.sample_prior
    wanted = sampler is not None and sampler.for_losses and pipeline.objective.wants_samples(state.step)
    # fitted first as soon as a loss asks for samples (and enough posteriors are in), then on schedule
    refit = sampler.maybe_refit(state.step) if wanted else None
    if refit is not None:
        refit = {"step": state.step, **refit}  # fitted after this many steps
    sample_path = wanted and state.step % config.sample_path_every == 0 and sampler.ready
    observe = sampler is not None and (sampler.for_losses or sampler.grid_is_near(state.step + 1, config))
    model = model if model is not None else pipeline
    stages = pipeline.active_stages(state.step)  # an int that changes rarely: torch.compile keeps its graph
    for opt in state.optimizers:
        opt.zero_grad(set_to_none=True)
    for aux in state.auxiliaries.values():
        aux.requires_grad_(False)  # the generator's loss must not train the discriminator
    summed, reported, headlines, x, out = _generator_backward(
        state, batches, config, model, prepare, autocast, distributed, sample_path, observe, stages
    )
    total = torch.stack(list(summed.values())).sum()
    params = [p for p in pipeline.parameters() if p.grad is not None]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip or float("inf"), foreach=True)
    if not bool(torch.isfinite(total) & torch.isfinite(grad_norm)):  # the step's one host sync
        bad = [StepOutcome.label(k) for k, v in summed.items() if not torch.isfinite(v)] or [
            "gradient (every loss term was finite)"
        ]
        return StepOutcome(summed, {}, reported, headlines, bad, refit)
    for opt, sched in zip(state.optimizers, state.schedulers):
        opt.step()
        sched.step()
    if state.ema is not None:
        state.ema.update(pipeline, state.step)
    auxiliary = _auxiliary_step(state, x, out, autocast, distributed)
    state.step += 1
    return StepOutcome(summed, auxiliary, reported, headlines, [], refit)


def _generator_backward(
    state: TrainState,
    batches,
    config: TrainConfig,
    model,
    prepare,
    autocast,
    distributed: bool,
    sample_path: bool,
    observe: bool,
    stages: int,
):
    """The generator's loss on ``config.accumulate`` batches, back-propagated (gradients synced
    on the last); its terms and reported numbers averaged over them, and the last batch and
    chain output (for the extra modules' update)."""
    pipeline, sampler = state.pipeline, state.sample_prior
    summed: dict[Key, torch.Tensor] = {}
    reported: dict[Key, torch.Tensor] = {}
    headlines: set[Key] = set()
    for micro in range(config.accumulate):
        batch = next(batches)
        # a label-conditioned trunk trains on (images, labels) batches
        images, labels = batch if isinstance(batch, (tuple, list)) else (batch, None)
        x = prepare(images)
        conditioning = {} if labels is None else {"labels": labels.to(x.device, non_blocking=True)}
        sync = micro == config.accumulate - 1 or not distributed
        latents = sampler.sample(config.sample_path_batch or len(x)) if sample_path else None  # on x's device
        with contextlib.nullcontext() if sync else model.no_sync(), autocast():
            out = model(x, prior_latents=latents, stages=stages, **conditioning)
            diagnostics: dict[Key, torch.Tensor] = {}
            terms = pipeline.objective.terms(x, out, state.step, state.auxiliaries, diagnostics, headlines)
            loss = torch.stack([v.float() for v in terms.values()]).sum()
        (loss / config.accumulate).backward()
        if observe:
            sampler.observe(out.posterior.mean, out.posterior.std)
        for k, v in terms.items():
            summed[k] = summed.get(k, 0) + v.detach().float() / config.accumulate
        for k, v in diagnostics.items():
            reported[k] = reported.get(k, 0) + v / config.accumulate
    return summed, reported, headlines, x, out


def _auxiliary_step(state: TrainState, x: torch.Tensor, out: ChainOutput, autocast, distributed: bool) -> dict[Key, torch.Tensor]:
    """Each extra module's own update on the generator's detached outputs; its terms by (stage, name)."""
    if not state.auxiliaries:
        return {}
    pipeline = state.pipeline
    logged: dict[Key, torch.Tensor] = {}
    for key, aux in state.auxiliaries.items():
        if int(key.partition("/")[0]) >= len(out.images):
            continue  # its stage does not train yet (train_from)
        aux.requires_grad_(True)
        opt = state.aux_optimizers[key]
        opt.zero_grad(set_to_none=True)
        with autocast():
            terms = auxiliary_terms(pipeline, key, aux, x, out, state.step)
        if not terms:
            continue
        loss = torch.stack([v.float() for v in terms.values()]).sum()
        loss.backward()
        if distributed:
            average_gradients(aux.parameters())
        norm = torch.nn.utils.clip_grad_norm_(aux.parameters(), float("inf"), foreach=True)
        step_unless_nonfinite(opt, torch.isfinite(loss) & torch.isfinite(norm))  # no host read with a fused optimiser
        for k, v in terms.items():
            logged[auxiliary_name(key, k, state.auxiliaries)] = v.detach().float()
    return logged
