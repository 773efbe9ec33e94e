"""``-O KEY=VALUE``: one assignment to a run's raw configuration, the grammar every command that
takes ``-O`` shares (``train``; ``fit-prior`` reads prior options with the same values).

Keys: ``train.FIELD``, ``data.FIELD`` (``data.options.X``), ``pipeline.FIELD``, ``prior.OPTION``
(``prior.type``), and a stage by index or type name: ``STAGE.OPTION`` (its network's options),
``STAGE.loss_weight``, ``STAGE.detach_input``, ``STAGE.train_from``, ``STAGE.type``,
``STAGE.losses`` (the list), ``STAGE.loss.NAME.FIELD`` (one loss's weight or option),
``STAGE.augment.FIELD``. Values are JSON where they parse, else text.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["parse_value", "set_option"]


def parse_value(text: str) -> Any:
    """-O values: JSON where it parses (numbers, true/false, null, lists), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


_SPEC_FIELDS = {"loss_weight", "detach_input", "type", "train_from"}


def _loss_list(value: Any, assignment: str) -> list[dict[str, Any]]:
    """``l1,adversarial`` or a JSON list of loss types or loss specs -> loss specs."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(v, (str, dict)) for v in value):
        raise ValueError(
            f"option {assignment!r}: losses are a comma-separated list of loss types (l1,adversarial) or a JSON list of "
            'loss specs ([{"type": "l1"}, {"type": "adversarial", "weight": 0.1}])'
        )
    return [{"type": v} if isinstance(v, str) else v for v in value]


def _set_loss_field(stage: dict[str, Any], path: str, value: Any, assignment: str) -> None:
    """``loss.NAME.weight=0.1`` or ``loss.NAME.OPTION=VALUE`` on the stage's loss named NAME
    (its type unless it has a name); a stage still on its type's default losses gets them
    written out first."""
    from ..plugin.manager import get_stage_type
    from ..stages.composition import resolve_spec
    from .models import StageSpec

    name, sep, field = path.partition(".")
    if not sep or not field:
        raise ValueError(f"option {assignment!r} must look like STAGE.loss.NAME.FIELD=VALUE (e.g. 1.loss.l1.weight=2)")
    if stage.get("losses") is None:
        spec = resolve_spec(StageSpec.model_validate(stage), get_stage_type(stage["type"]))
        stage["options"] = spec.options
        stage["losses"] = [loss.model_dump(exclude_none=True) for loss in spec.losses]
    losses = stage["losses"]
    matches = [loss for loss in losses if (loss.get("name") or loss.get("type")) == name]
    if not matches:
        names = ", ".join(str(loss.get("name") or loss.get("type")) for loss in losses) or "none"
        raise ValueError(
            f"option {assignment!r}: stage {stage['type']!r} has no loss named {name!r} (its losses: {names}); "
            "add it with STAGE.losses=... first"
        )
    if field in ("weight", "name", "type"):
        matches[0][field] = value
    else:
        matches[0].setdefault("options", {})[field] = value


def set_option(raw: dict[str, Any], assignment: str) -> None:
    """Apply one ``KEY=VALUE``: ``train.lr=1e-4``, ``data.options.split_seed=2``,
    ``pipeline.image_size=32``, a prior's option ``prior.components=20``, or a stage's option
    by index or type name: ``1.blocks=3``, ``resnet-l1.width=32``, ``vae.latent_dim=64``,
    ``1.detach_input=true``, its losses ``1.losses=l1,adversarial``, one loss's weight or option
    ``1.loss.adversarial.weight=0.1``, ``1.loss.adversarial.start_step=500``, and its input
    augmentation ``1.augment.noise=0.05``."""
    key, sep, text = assignment.partition("=")
    if not sep or "." not in key:
        raise ValueError(
            f"option {assignment!r} must look like STAGE.OPTION=VALUE or train.FIELD=VALUE (e.g. resnet-l1.blocks=3)"
        )
    head, path = key.split(".", 1)
    value = parse_value(text)
    if head == "prior":  # prior.type=gmm, prior.components=20
        prior = raw.setdefault("pipeline", {}).setdefault("prior", {})
        if path == "type":
            prior["type"] = value
        else:
            prior.setdefault("options", {})[path] = value
    elif head in ("train", "data", "pipeline"):
        _set_section_field(raw, head, path, value, assignment)
    else:
        stages = raw.get("pipeline", {}).get("stages", [])
        _set_stage_field(stages[_stage_index(stages, head, path, assignment)], path, value, assignment)


def _set_section_field(raw: dict[str, Any], head: str, path: str, value: Any, assignment: str) -> None:
    """``train.lr=...``, ``data.options.split_seed=...``, ``pipeline.image_size=...``."""
    parts = path.split(".")
    if head == "pipeline" and parts[0] in ("stages", "prior") and len(parts) > 1:
        raise ValueError(
            f"option {assignment!r}: set a stage's fields as STAGE.FIELD=VALUE (0.latent_dim=64, "
            "1.type=resnet-l2, resnet-l1.blocks=3) and the prior's as prior.FIELD=VALUE"
        )
    target = raw.setdefault(head, {})
    for depth, p in enumerate(parts[:-1]):
        target = target.setdefault(p, {})
        if not isinstance(target, dict):
            where = ".".join([head, *parts[: depth + 1]])
            raise ValueError(
                f"option {assignment!r}: {where} is a single value, not a section with fields; set it as {where}=VALUE"
            )
    target[parts[-1]] = value


def _stage_index(stages: list[dict[str, Any]], head: str, path: str, assignment: str) -> int:
    """The stage ``head`` names: its index, or its type when one stage has it."""
    if head.isdigit():
        index = int(head)
        if index >= len(stages):
            raise ValueError(
                f"option {assignment!r}: there is no stage {index} (the chain has {len(stages)} stages, numbered from 0)"
            )
        return index
    matches = [i for i, s in enumerate(stages) if s.get("type") == head]
    if not matches:
        names = ", ".join(s.get("type", "?") for s in stages)
        raise ValueError(f"option {assignment!r}: no stage named {head!r} in the chain ({names}); use its name or index")
    if len(matches) > 1:
        raise ValueError(
            f"option {assignment!r}: the chain has {len(matches)} {head!r} stages (at indices "
            f"{', '.join(map(str, matches))}); name one by its index, e.g. {matches[-1]}.{path}=..."
        )
    return matches[0]


def _set_stage_field(stage: dict[str, Any], path: str, value: Any, assignment: str) -> None:
    """A spec field, the losses, one loss's field, the input augmentation or a network option."""
    if path in _SPEC_FIELDS:
        stage[path] = value
    elif path == "losses":
        stage["losses"] = _loss_list(value, assignment)
    elif path.startswith("loss."):
        _set_loss_field(stage, path.removeprefix("loss."), value, assignment)
    elif path.startswith("augment."):
        stage.setdefault("augment", {})[path.removeprefix("augment.")] = value
    else:
        stage.setdefault("options", {})[path] = value
