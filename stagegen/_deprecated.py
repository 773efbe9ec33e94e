"""Names that moved, still found where they were: each warns once (a FutureWarning naming the
new place) and then works, so plugins, scripts and notebooks written for earlier releases keep
running while they are updated (like timm's deprecated model names).

Modules that no longer exist (``stagegen.plugins``, ``stagegen.loss_types``, ...) are served by
an import hook: importing one gives a stand-in whose attributes come from the new places.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from typing import Any

__all__ = ["MOVED_MODULES", "install", "moved_attribute", "warn_once"]

#: old module -> its new homes, the public one first (a name is looked up in them in order)
MOVED_MODULES: dict[str, tuple[str, ...]] = {
    "stagegen.hookspecs": ("stagegen.plugin", "stagegen.plugin.hookspecs"),
    "stagegen.registry": ("stagegen.plugin", "stagegen.plugin.registry"),
    "stagegen.plugins": ("stagegen.plugin", "stagegen.plugin.manager"),
    "stagegen.loss_types": ("stagegen.losses",),
    "stagegen.composition": ("stagegen.stages.composition", "stagegen.losses.binding"),
    "stagegen.prior": ("stagegen.priors", "stagegen.priors.contract"),
    "stagegen.conditional": ("stagegen.priors.per_label",),
    "stagegen.directions": ("stagegen.priors.directions",),
    "stagegen.pipeline_file": ("stagegen.pipeline.file",),
    "stagegen.loading": ("stagegen.pipeline.loading",),
    "stagegen.memory": ("stagegen.pipeline.memory",),
    "stagegen.options": ("stagegen.config.options",),
    "stagegen.overrides": ("stagegen.config.overrides",),
    "stagegen.presets": ("stagegen.config.presets",),
    "stagegen.io": ("stagegen.files",),
    "stagegen.compare": ("stagegen.data.real", "stagegen.report.compare"),
    "stagegen.data.builtin": ("stagegen_datasets",),
    "stagegen.metrics.builtin": ("stagegen_metrics",),
}

_warned: set[str] = set()


def warn_once(old: str, new: str, stacklevel: int = 3) -> None:
    """One FutureWarning per old name and process: ``old`` is deprecated, use ``new``."""
    if old in _warned:
        return
    _warned.add(old)
    warnings.warn(f"{old} is deprecated and will be removed in a later release: use {new}", FutureWarning, stacklevel=stacklevel)


def moved_attribute(module: str, renamed: dict[str, tuple[str, str]]):
    """A module ``__getattr__`` for names that moved out of ``module``: ``renamed`` maps an old
    name to (new module, new name)."""

    def __getattr__(name: str) -> Any:
        if name not in renamed:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new_module, new_name = renamed[name]
        warn_once(f"{module}.{name}", f"{new_module}.{new_name}")
        return getattr(importlib.import_module(new_module), new_name)

    return __getattr__


def _new_home(old_module: str, name: str) -> tuple[str, Any]:
    for home in MOVED_MODULES[old_module]:
        module = importlib.import_module(home)
        if hasattr(module, name):
            return home, getattr(module, name)
    raise AttributeError(f"module {old_module!r} (moved to {', '.join(MOVED_MODULES[old_module])}) has no attribute {name!r}")


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old module names; each becomes a stand-in module whose attributes warn once and
    come from the new home."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED_MODULES:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module) -> None:
        old = module.__name__

        def __getattr__(name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            new_module, value = _new_home(old, name)
            warn_once(f"{old}.{name}", f"{new_module}.{name}")
            return value

        module.__getattr__ = __getattr__
        module.__doc__ = f"Deprecated: moved (see {__name__})."


def install() -> None:
    """Put the old module names on the import path (once)."""
    if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModules())
