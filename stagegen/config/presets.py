"""Named starting points for a run, and how a run's configuration is put together.

A preset is a partial run configuration, registered by a plugin through the
``register_presets`` hook (the built-in ones, the paper's models among them, in
``plugins/stagegen_presets``). Anything a preset sets can be overridden: by a config file, by
``--stages``, by ``-O key=value``, by explicit flags. Without ``--preset`` a run starts from its
dataset's own preset (``DatasetType.default_preset``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .models import DataConfig, RunConfig, deep_merge, read_config_file, validate_run_config
from .overrides import parse_value, set_option

__all__ = ["Preset", "compose_run_config", "parse_value", "preset", "preset_names", "replace_stages", "set_option"]


@dataclass(frozen=True, kw_only=True)
class Preset:
    """A registered preset: a partial run configuration (``pipeline``, ``train``, ``data``
    sections, as a config file has them), or a function that makes one."""

    name: str
    config: dict[str, Any] | Callable[[], dict[str, Any]]
    description: str = ""

    def raw(self) -> dict[str, Any]:
        return copy.deepcopy(self.config() if callable(self.config) else self.config)


def _preset_for(data_name: str | None) -> str:
    """The dataset's own preset, else the default dataset's (used with the dataset's format)."""
    from ..plugin.manager import get_dataset_type

    default = DataConfig().name
    for name in dict.fromkeys([data_name or default, default]):
        chosen = get_dataset_type(name).default_preset
        if chosen:
            return chosen
    raise ValueError(
        f"no --preset given, and neither dataset {data_name!r} nor the default dataset {default!r} names one; "
        "choose one with --preset (`stagegen presets` lists them)"
    )


def starting_preset(preset_name: str | None, from_file: dict[str, Any], data_name: str | None) -> str | None:
    """The preset a run starts from: the one named, else none when the config file lists its
    own stages, else the dataset's own (see :func:`compose_run_config`)."""
    if preset_name:
        return preset_name
    if from_file.get("pipeline", {}).get("stages"):
        return None
    return _preset_for(data_name)


def _apply_dataset_defaults(raw: dict[str, Any], data_name: str | None) -> None:
    """The dataset's image size and channels, where the preset was made for another dataset."""
    if not data_name or raw.get("data", {}).get("name") == data_name:
        return
    from ..plugin.manager import get_dataset_type

    dataset = get_dataset_type(data_name)
    raw.setdefault("pipeline", {}).update(image_size=dataset.image_size, channels=dataset.channels)


def preset_names() -> list[str]:
    """The installed presets, in the order their plugins registered them."""
    from ..plugin.manager import get_plugin_manager

    return get_plugin_manager().presets.in_order()


def preset(name: str) -> dict[str, Any]:
    """A deep copy of the preset's raw (partial) run configuration; an unknown name is an error
    that lists the installed presets."""
    from ..plugin.manager import get_plugin_manager

    return get_plugin_manager().presets.get(name).raw()


def replace_stages(raw: dict[str, Any], names: list[str]) -> None:
    """Use these stage types; a stage keeps the preset's options where the preset has the same
    type at that position (or anywhere, for the first of its kind)."""
    old = raw.get("pipeline", {}).get("stages", [])
    new = []
    for i, name in enumerate(names):
        if i < len(old) and old[i].get("type") == name:
            new.append(old[i])
            continue
        same = [s for s in old if s.get("type") == name]
        new.append(copy.deepcopy(same[0]) if same else {"type": name})
    raw.setdefault("pipeline", {})["stages"] = new


def compose_run_config(
    preset_name: str | None = None,
    config_file: str | Path | dict[str, Any] | None = None,
    stages: list[str] | None = None,
    options: list[str] | None = None,
    prior: str | None = None,
    **fields: Any,
) -> RunConfig:
    """Preset, then config file, then stage list, then prior, then ``KEY=VALUE`` options, then
    fields such as ``train__lr=1e-4`` or ``data__root='...'`` (section__field); later wins. A
    config file that lists its own stages starts from nothing unless a preset is named.

    Without a preset, the dataset chooses the starting point: its own recommended preset
    (``sharp-celeba64`` for celeba), or the default dataset's with the dataset's image size and
    channels, so ``--data celeba`` never trains 16x16 grayscale faces by accident.
    ``config_file``: a JSON/TOML file's path, or its contents already read (a dict)."""
    if isinstance(config_file, dict):
        from_file = config_file
    else:
        from_file = read_config_file(config_file) if config_file else {}
    starting = starting_preset(preset_name, from_file, fields.get("data__name"))
    if starting is not None:
        raw = preset(starting)
        if not preset_name:
            _apply_dataset_defaults(raw, fields.get("data__name"))
    else:
        raw = {}  # a config file that lists its own chain needs no preset
    raw = deep_merge(raw, from_file)
    if stages:
        replace_stages(raw, stages)
    # `-O prior.type=T` is `--prior T`: a new type starts from its own defaults, whichever place
    # among the options it has (the preset's options belong to the preset's type)
    typed = [a for a in options or [] if a.replace(" ", "").startswith("prior.type=")]
    for assignment in typed:
        prior = str(parse_value(assignment.split("=", 1)[1]))
    if prior:
        current = raw.setdefault("pipeline", {}).get("prior", {})
        if current.get("type") != prior:
            raw["pipeline"]["prior"] = {"type": prior}
    for assignment in options or []:
        set_option(raw, assignment)
    for key, value in fields.items():
        if value is None:
            continue
        section, _, name = key.partition("__")
        raw.setdefault(section, {})[name] = value
    return validate_run_config(raw)
