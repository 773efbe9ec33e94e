"""Plugin manager and registries.

Plugins are found through the entry-point group ``stagegen`` (the built-ins too) and can be
restricted with the environment variable ``STAGEGEN_PLUGINS``: a comma-separated list of
entry-point names to load (``STAGEGEN_PLUGINS=vae,resnet``); an empty value loads none. Tests
and users debugging a broken plugin use it to keep everything else out.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs

if TYPE_CHECKING:
    from .data.registry import DatasetType
    from .metrics.registry import MetricType
    from .prior import PriorType
    from .stages import StageType

__all__ = [
    "PluginError",
    "PluginManager",
    "Provider",
    "Registry",
    "get_dataset_type",
    "get_metric_type",
    "get_plugin_manager",
    "get_prior_type",
    "get_stage_type",
    "reset_plugin_manager",
]

ENTRY_POINT_GROUP = "stagegen"
PLUGINS_ENV = "STAGEGEN_PLUGINS"


class PluginError(Exception):
    """A plugin is missing, broken, or clashes with another."""


@dataclass(frozen=True)
class Provider:
    """Who registered a stage or dataset: a distribution (with version) or a bare module."""

    plugin: str
    package: str
    version: str

    def __str__(self) -> str:
        return f"{self.package} {self.version} (plugin {self.plugin!r})"


class Registry:
    """Named things from plugins; a second thing under the same name is refused."""

    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, tuple[Any, Provider]] = {}

    def add(self, name: str, item: Any, provider: Provider) -> None:
        if name in self._items:
            _, first = self._items[name]
            raise PluginError(
                f"{self.what} {name!r} is registered twice: by {first} and by {provider}. "
                f"Uninstall one of them, or restrict plugins with {PLUGINS_ENV}=..."
            )
        self._items[name] = (item, provider)

    def get(self, name: str) -> Any:
        try:
            return self._items[name][0]
        except KeyError:
            raise PluginError(self.missing_message(name)) from None

    def provider(self, name: str) -> Provider:
        self.get(name)
        return self._items[name][1]

    def names(self) -> list[str]:
        return sorted(self._items)

    def in_order(self) -> list[str]:
        """Names in the order they were registered (plugins in load order, each in its own order)."""
        return list(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def installed_note(self) -> str:
        """'Installed: a, b, c.' plus a hint when STAGEGEN_PLUGINS filters plugins out."""
        hint = ""
        if os.environ.get(PLUGINS_ENV) is not None:
            hint = f" ({PLUGINS_ENV}={os.environ[PLUGINS_ENV]!r} restricts which plugins load)"
        return f"Installed: {', '.join(self.names()) or 'none'}{hint}."

    def missing_message(self, name: str) -> str:
        return (
            f"no {self.what} named {name!r} is installed. {self.installed_note()} "
            f"Install the plugin package that provides {name!r} (it registers through the "
            f"'{ENTRY_POINT_GROUP}' entry-point group), then try again."
        )


class PluginManager:
    """A pluggy manager plus the stage, dataset, prior and metric registries filled from its hooks."""

    def __init__(self, load_entry_points: bool = True):
        self.pm = pluggy.PluginManager("stagegen")
        self.pm.add_hookspecs(hookspecs)
        self._providers: dict[int, Provider] = {}
        self._stages: Registry | None = None
        self._datasets: Registry | None = None
        self._priors: Registry | None = None
        self._metrics: Registry | None = None
        if load_entry_points:
            self._load_entry_points()

    def _load_entry_points(self) -> None:
        allowed = os.environ.get(PLUGINS_ENV)
        allowed_names = None if allowed is None else {n.strip() for n in allowed.split(",") if n.strip()}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if allowed_names is not None and ep.name not in allowed_names:
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must say which one it is
                raise PluginError(
                    f"plugin {ep.name!r} ({ep.value}) failed to import: {exc!r}. "
                    f"Fix or uninstall it, or leave it out with {PLUGINS_ENV}=<other plugins>."
                ) from exc
            dist = getattr(ep, "dist", None)
            package = dist.metadata["Name"] if dist is not None else ep.value.split(".")[0]
            version = dist.version if dist is not None else "unknown"
            self.register(module, name=ep.name, provider=Provider(ep.name, package, version))

    def register(self, plugin: Any, name: str | None = None, provider: Provider | None = None) -> None:
        """Register a plugin object (usually a module). Used for entry points and by tests."""
        name = name or getattr(plugin, "__name__", None) or repr(plugin)
        if provider is None:
            package = getattr(plugin, "__name__", name).split(".")[0]
            version = getattr(sys.modules.get(package), "__version__", "unknown")
            provider = Provider(name, package, str(version))
        self.pm.register(plugin, name=name)
        self._providers[id(plugin)] = provider
        self._stages = self._datasets = self._priors = self._metrics = None  # rebuilt on next access

    def unregister(self, plugin: Any) -> None:
        self.pm.unregister(plugin)
        self._providers.pop(id(plugin), None)
        self._stages = self._datasets = self._priors = self._metrics = None

    def _collect(self, hook_name: str, what: str, name_of: Callable[[Any], str]) -> Registry:
        registry = Registry(what)
        hook = getattr(self.pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            provider = self._providers.get(id(impl.plugin), Provider(impl.plugin_name, impl.plugin_name, "unknown"))

            def register(item, _provider=provider):
                registry.add(name_of(item), item, _provider)

            try:
                impl.function(register)
            except PluginError:
                raise
            except Exception as exc:  # name the broken plugin instead of failing somewhere deep
                raise PluginError(
                    f"plugin {provider} failed in its {hook_name} hook: {exc!r}. "
                    f"Fix or uninstall it, or leave it out with {PLUGINS_ENV}=<other plugins>."
                ) from exc
        return registry

    @property
    def stages(self) -> Registry:
        if self._stages is None:
            self._stages = self._collect("register_stages", "stage type", lambda s: s.name)
        return self._stages

    @property
    def datasets(self) -> Registry:
        if self._datasets is None:
            self._datasets = self._collect("register_datasets", "dataset", lambda d: d.name)
        return self._datasets

    @property
    def priors(self) -> Registry:
        if self._priors is None:
            self._priors = self._collect("register_priors", "prior", lambda p: p.name)
        return self._priors

    @property
    def metrics(self) -> Registry:
        if self._metrics is None:
            self._metrics = self._collect("register_metrics", "metric", lambda m: m.name)
        return self._metrics


_manager: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, created on first use."""
    global _manager
    if _manager is None:
        _manager = PluginManager()
    return _manager


def reset_plugin_manager() -> None:
    """Forget the process-wide manager (tests, or after changing STAGEGEN_PLUGINS)."""
    global _manager
    _manager = None


def get_stage_type(name: str) -> StageType:
    return get_plugin_manager().stages.get(name)


def get_dataset_type(name: str) -> DatasetType:
    return get_plugin_manager().datasets.get(name)


def get_prior_type(name: str) -> PriorType:
    return get_plugin_manager().priors.get(name)


def get_metric_type(name: str) -> MetricType:
    return get_plugin_manager().metrics.get(name)
