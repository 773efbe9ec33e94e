"""How a stage spec becomes a network plus its losses.

A spec names a stage type; a composition's default losses are made explicit, and option names
of earlier releases that now belong to a loss (``pixel_weight`` of ``resnet-l1``) are moved
into it, so files, configs and commands written for those releases keep working. The losses are
built by :mod:`stagegen.losses.binding`.
"""

from __future__ import annotations

import copy

from ..config.models import LossSpec, StageSpec
from .contract import StageType

__all__ = ["resolve_spec"]


def resolve_spec(spec: StageSpec, stage_type: StageType) -> StageSpec:
    """``spec`` with its losses explicit (the stage type's defaults where it gives none) and its
    aliased options moved into them; the options left are the network's."""
    options = dict(spec.options)
    moved = {key: options.pop(key) for key in list(options) if key in stage_type.aliases}
    if spec.losses is not None:
        if moved:
            raise ValueError(
                f"stage {spec.type!r}: {', '.join(sorted(moved))} set its default losses, but the spec lists its own losses; "
                "set them on the losses instead (for example -O STAGE.loss.l1.weight=2)"
            )
        return spec.model_copy(update={"options": options})
    raw = copy.deepcopy(list(stage_type.losses))
    for key, value in moved.items():
        index, *path = stage_type.aliases[key]
        target = raw[index]
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    try:
        losses = [LossSpec.model_validate(entry) for entry in raw]
    except ValueError as exc:
        raise ValueError(f"stage {spec.type!r}: its default losses are invalid: {exc}") from None
    return spec.model_copy(update={"options": options, "losses": losses})
