"""The extra modules that train beside the generator (discriminators): which there are, their
optimisers, their own update's loss terms and how those are logged.

Stages and losses own one through the same API (:class:`~stagegen.losses.AuxiliaryOwner`). A
stage's own extra module (a self-contained stage's) is keyed ``"<stage>"``; a loss's is keyed
``"<stage>/<loss name>"``. The keys name them in checkpoints too.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from .._deprecated import warn_once
from ..images import resize
from ..pipeline.chain import ChainOutput, Pipeline

__all__ = ["auxiliary_name", "auxiliary_optimizer", "auxiliary_terms", "build_auxiliaries"]


def build_auxiliaries(pipeline: Pipeline) -> dict[str, nn.Module]:
    modules: dict[str, nn.Module] = {}
    for i, stage in enumerate(pipeline.stages):
        aux = stage.build_auxiliary()
        if aux is not None:
            modules[str(i)] = aux
        for bound in pipeline.objective.losses[i]:
            aux = bound.loss.build_auxiliary()
            if aux is not None:
                modules[f"{i}/{bound.label}"] = aux
    return modules


def _owner(pipeline: Pipeline, key: str):
    index, _, label = key.partition("/")
    stage = int(index)
    if not label:
        return stage, pipeline.stages[stage]
    return stage, next(b.loss for b in pipeline.objective.losses[stage] if b.label == label)


def auxiliary_optimizer(pipeline: Pipeline, key: str, module: nn.Module) -> torch.optim.Optimizer:
    return _owner(pipeline, key)[1].auxiliary_optimizer(module)


def auxiliary_terms(
    pipeline: Pipeline, key: str, module: nn.Module, x: torch.Tensor, out: ChainOutput, step: int
) -> dict[str, torch.Tensor]:
    """The loss terms of one extra module's own update, on the generator's detached outputs:
    a loss's module sees the outputs on reconstructions and, after a sample path, on prior latents."""
    index, owner = _owner(pipeline, key)
    ctx = pipeline.objective.context(index, out, step, module, detach=True)
    target = resize(x, pipeline.resolutions[index])
    output = out.images[index].detach()
    if "/" not in key and _takes_output_and_target(owner):
        return owner.auxiliary_loss(module, output, target, ctx)
    fakes = [output] + ([ctx.samples] if ctx.samples is not None else [])
    return owner.auxiliary_loss(module, target, fakes, ctx)


def _takes_output_and_target(owner) -> bool:
    """A stage written for stagegen 0.2, whose ``auxiliary_loss(auxiliary, output, target, ctx)``
    took its output first: called that way, with a warning to move to ``(auxiliary, real, fakes, ctx)``."""
    names = list(inspect.signature(owner.auxiliary_loss).parameters)
    if names[1:3] != ["output", "target"]:
        return False
    warn_once(
        f"{type(owner).__name__}.auxiliary_loss(auxiliary, output, target, ctx)",
        "auxiliary_loss(auxiliary, real, fakes, ctx), the one extra-module API of stagegen.losses.AuxiliaryOwner",
    )
    return True


def auxiliary_name(key: str, name: str, keys) -> tuple[int, str]:
    """The stage and name an extra module's term is logged under (``stage3/aux/d_loss``):
    ``<loss>.d_loss`` when the stage has several extra modules."""
    index, _, label = key.partition("/")
    several = sum(1 for k in keys if k.partition("/")[0] == index) > 1
    return int(index), f"{label}.{name}" if (label and several) else name
