"""The `train` flags that set a config field, made from the config models: one table says which
flag sets which field; the type, the choices and the help come from the field itself, and
which of them a resumed run may change comes from the field's ``resumable`` mark
(:data:`stagegen.config.RESUMABLE`). A new training flag is one line here."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

import click

from ..config.models import DataConfig, PipelineConfig, TrainConfig, resumable_fields
from .app import SEED

__all__ = ["CONFIG_FLAGS", "config_flags", "given_config_fields", "refused_on_resume"]

MODELS = {"data": DataConfig, "pipeline": PipelineConfig, "train": TrainConfig}

#: flag -> (section, field); "--x/--no-x" is a switch
CONFIG_FLAGS: dict[str, tuple[str, str]] = {
    "--data": ("data", "name"),
    "--data-root": ("data", "root"),
    "--split": ("data", "split"),
    "--cache-dir": ("data", "cache_dir"),
    "--image-size": ("pipeline", "image_size"),
    "--channels": ("pipeline", "channels"),
    "--steps": ("train", "steps"),
    "--time-budget": ("train", "time_budget"),
    "--batch-size": ("train", "batch_size"),
    "--lr": ("train", "lr"),
    "--seed": ("train", "seed"),
    "--device": ("train", "device"),
    "--precision": ("train", "precision"),
    "--ema": ("train", "ema_decay"),
    "--num-workers": ("train", "num_workers"),
    "--compile/--no-compile": ("train", "compile"),
    "--progress/--no-progress": ("train", "progress"),
}


def _seconds(ctx, param, text: str | None) -> float | None:
    """'90', '90s', '2m', '1.5h' -> seconds."""
    if text is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600}
    value, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        seconds = float(value) * units[unit]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a duration: use seconds (90), or 90s, 2m, 1.5h", param=param) from None
    if not seconds > 0 or seconds == float("inf"):
        raise click.BadParameter(f"{text!r}: the time budget must be a positive, finite duration", param=param)
    return seconds


#: fields whose flag reads its value its own way
SPECIAL = {
    ("train", "time_budget"): {"type": str, "callback": _seconds, "metavar": "DURATION"},  # 90, 90s, 2m, 1.5h
    ("train", "seed"): {"type": SEED},
}


def _param(section: str, field: str) -> str:
    return f"{section}__{field}"


def _click_type(annotation) -> Any:
    """click's type for a field's annotation (optional types unwrapped, literals as choices)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is Literal:
        return click.Choice([str(a) for a in typing.get_args(annotation)])
    return annotation if annotation in (int, float, str) else str


def config_flags(f):
    """Decorate a click command with every flag of :data:`CONFIG_FLAGS` (default None: unset)."""
    for flag, (section, field) in reversed(CONFIG_FLAGS.items()):
        info = MODELS[section].model_fields[field]
        help_text = (info.description or "") + (" (a resumed run may change it)" if field in resumable_fields() else "")
        settings: dict[str, Any] = {"default": None, "help": help_text}
        if "/" in flag:
            settings["is_flag"] = True
        else:
            settings["type"] = _click_type(info.annotation)
            settings.update(SPECIAL.get((section, field), {}))
        f = click.option(flag, _param(section, field), **settings)(f)
    return f


def given_config_fields(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The config fields set by flags, as ``section__field`` keyword arguments."""
    return {key: value for key, value in kwargs.items() if "__" in key and value is not None}


def refused_on_resume(kwargs: dict[str, Any]) -> list[str]:
    """The given flags that set a field a resumed run keeps as it was."""
    resumable = resumable_fields()
    return [
        flag
        for flag, (section, field) in CONFIG_FLAGS.items()
        if kwargs.get(_param(section, field)) is not None and not (section == "train" and field in resumable)
    ]


def resumable_flags() -> list[str]:
    return [flag for flag, (section, field) in CONFIG_FLAGS.items() if section == "train" and field in resumable_fields()]
