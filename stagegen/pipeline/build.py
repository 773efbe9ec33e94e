"""How a validated :class:`~stagegen.config.PipelineConfig` becomes the chain's stages: each spec
resolved against its stage type, every stage given its resolution, each network built (and, for
training, its losses right after it, so a seed draws the same weights as ever), and the config
as stored, with every option's validated value."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from ..config.models import PipelineConfig, StageSpec
from ..losses.binding import BoundLoss, build_losses, validated_losses
from ..plugin.manager import get_stage_type
from ..stages.composition import resolve_spec
from ..stages.contract import BuildContext, Refiner, StageOptions, StageType, Trunk

__all__ = ["BuiltChain", "build_chain"]


@dataclass
class BuiltChain:
    config: PipelineConfig  # as stored: renamed types under their current names, options validated
    stage_types: list[StageType]
    resolutions: list[int]
    stages: list[nn.Module]
    losses: list[list[BoundLoss]] | None  # None when built for sampling


def build_chain(config: PipelineConfig, for_training: bool) -> BuiltChain:
    specs, types = _resolved(config.stages)
    options = [t.validate_options(s.options) for t, s in zip(types, specs)]
    resolutions = _resolutions(config.image_size, specs, types, options)
    stages: list[nn.Module] = []
    losses: list[list[BoundLoss]] = []
    for i, (stage_type, opts, spec) in enumerate(zip(types, options, specs)):
        ctx = BuildContext(config.channels, resolutions[i - 1] if i else 0, resolutions[i], i, for_training)
        stage = stage_type.build(opts, ctx)
        expected = Trunk if stage_type.kind == "trunk" else Refiner
        if not isinstance(stage, expected):
            raise TypeError(f"stage type {stage_type.name!r} built a {type(stage).__name__}, not a {expected.__name__}")
        stages.append(stage)
        if for_training:
            losses.append(build_losses(spec, ctx))
    stored = [_stored_spec(spec, opts, for_training) for spec, opts in zip(specs, options)]
    return BuiltChain(config.model_copy(update={"stages": stored}), types, resolutions, stages, losses if for_training else None)


def _resolved(specs: list[StageSpec]) -> tuple[list[StageSpec], list[StageType]]:
    """Each spec with its losses explicit and its type under its current name; a trunk first, refiners after."""
    types = [get_stage_type(s.type) for s in specs]
    specs = [resolve_spec(spec, t).model_copy(update={"type": t.name}) for spec, t in zip(specs, types)]
    if types[0].kind != "trunk":
        raise ValueError(f"the first stage must be a trunk; {specs[0].type!r} is a {types[0].kind}")
    for spec, stage_type in zip(specs[1:], types[1:]):
        if stage_type.kind != "refiner":
            raise ValueError(f"only the first stage may be a trunk; {spec.type!r} is a {stage_type.kind}")
    if specs[0].detach_input or specs[0].augment.noise or specs[0].augment.blur or specs[0].train_from:
        raise ValueError("detach_input, augment and train_from apply to refiners only, not to the trunk")
    return specs, types


def _resolutions(image_size: int, specs: list[StageSpec], types: list[StageType], options: list[StageOptions]) -> list[int]:
    """Every stage's resolution: the trunk works at image_size / (product of refiner scales)."""
    scales = []
    for i, (spec, stage_type, opts) in enumerate(zip(specs[1:], types[1:], options[1:]), start=1):
        try:
            scales.append(stage_type.scale_of(opts))
        except ValueError as exc:
            raise ValueError(f"stage {i} ({spec.type}): {exc}") from None
    total = math.prod(scales)
    if image_size % total:
        raise ValueError(f"image_size {image_size} is not divisible by the refiners' total scale {total}")
    resolutions = [image_size // total]
    for s in scales:
        resolutions.append(resolutions[-1] * s)
    return resolutions


def _stored_spec(spec: StageSpec, options: StageOptions, for_training: bool) -> StageSpec:
    """The spec as stored: every option with its validated value, defaults included (its losses'
    too when built for training, where their plugins are installed)."""
    update: dict = {"options": options.model_dump(mode="json")}
    if for_training:
        update["losses"] = validated_losses(spec)
    return StageSpec.model_validate({**spec.model_dump(mode="json"), **update})
