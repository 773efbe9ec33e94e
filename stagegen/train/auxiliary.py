"""The extra modules that train beside the generator (discriminators): which there are, their
optimisers, their own update's loss terms and how those are logged.

A stage's own extra module (``Stage.build_auxiliary``, the contract of plugins written before
losses were separate) is keyed ``"<stage>"``; a loss's (``Loss.build_auxiliary``) is keyed
``"<stage>/<loss name>"``. The keys name them in checkpoints too.
"""

from __future__ import annotations

import torch
from torch import nn

from ..images import resize
from ..pipeline import ChainOutput, Pipeline

__all__ = ["auxiliary_name", "auxiliary_optimizer", "auxiliary_terms", "build_auxiliaries"]


def build_auxiliaries(pipeline: Pipeline) -> dict[str, nn.Module]:
    modules: dict[str, nn.Module] = {}
    for i, stage in enumerate(pipeline.stages):
        aux = stage.build_auxiliary()
        if aux is not None:
            modules[str(i)] = aux
        for bound in pipeline.stage_losses[i]:
            aux = bound.loss.build_auxiliary()
            if aux is not None:
                modules[f"{i}/{bound.label}"] = aux
    return modules


def _owner(pipeline: Pipeline, key: str):
    index, _, label = key.partition("/")
    stage = int(index)
    if not label:
        return stage, pipeline.stages[stage]
    return stage, next(b.loss for b in pipeline.stage_losses[stage] if b.label == label)


def auxiliary_optimizer(pipeline: Pipeline, key: str, module: nn.Module) -> torch.optim.Optimizer:
    return _owner(pipeline, key)[1].auxiliary_optimizer(module)


def auxiliary_terms(
    pipeline: Pipeline, key: str, module: nn.Module, x: torch.Tensor, out: ChainOutput, step: int
) -> dict[str, torch.Tensor]:
    """The loss terms of one extra module's own update, on the generator's detached outputs:
    a loss's module sees the outputs on reconstructions and, after a sample path, on prior latents."""
    index, owner = _owner(pipeline, key)
    ctx = pipeline.loss_context(index, out, step, module, detach=True)
    target = resize(x, pipeline.resolutions[index])
    output = out.images[index].detach()
    if "/" not in key:
        return owner.auxiliary_loss(module, output, target, ctx)
    fakes = [output] + ([ctx.samples] if ctx.samples is not None else [])
    return owner.auxiliary_loss(module, target, fakes, ctx)


def auxiliary_name(key: str, name: str, keys) -> tuple[int, str]:
    """The stage and name an extra module's term is logged under (``stage3/aux/d_loss``):
    ``<loss>.d_loss`` when the stage has several extra modules."""
    index, _, label = key.partition("/")
    several = sum(1 for k in keys if k.partition("/")[0] == index) > 1
    return int(index), f"{label}.{name}" if (label and several) else name
