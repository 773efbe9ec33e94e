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
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs

if TYPE_CHECKING:
    from ..data.registry import DatasetType
    from ..losses.contract import LossType
    from ..metrics.registry import MetricType
    from ..priors.contract import PriorType
    from ..stages.contract import NetworkType, StageType

__all__ = [
    "PluginError",
    "PluginManager",
    "Provider",
    "Registry",
    "get_dataset_type",
    "get_loss_type",
    "get_metric_type",
    "get_network_type",
    "get_plugin_manager",
    "get_prior_type",
    "get_stage_type",
    "reset_plugin_manager",
]

from ..text import safe_name
from .registry import ENTRY_POINT_GROUP, PLUGINS_ENV, PluginError, Provider, Registry


class PluginManager:
    """A pluggy manager plus the nine registries filled from its hooks: ``stages``, ``networks``,
    ``losses``, ``priors``, ``datasets``, ``metrics``, ``metric_resources``, ``presets`` and
    ``callbacks``."""

    def __init__(self, load_entry_points: bool = True):
        self.pm = pluggy.PluginManager("stagegen")
        self.pm.add_hookspecs(hookspecs)
        self._providers: dict[int, Provider] = {}
        self._registries: dict[str, Registry] = {}
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
        self._registries.clear()  # rebuilt on next access

    def unregister(self, plugin: Any) -> None:
        self.pm.unregister(plugin)
        self._providers.pop(id(plugin), None)
        self._registries.clear()

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

    def _registry(self, hook_name: str, what: str) -> Registry:
        if hook_name not in self._registries:
            self._registries[hook_name] = self._collect(hook_name, what, lambda item: item.name)
        return self._registries[hook_name]

    @property
    def stages(self) -> Registry:
        """Stage types as chains use them: compositions resolved against their network, and
        every network under its own name too (a stage with no default losses)."""
        if "stages" not in self._registries:
            self._registries["stages"] = _resolve_stages(self._registry("register_stages", "stage type"), self.networks)
        return self._registries["stages"]

    @property
    def networks(self) -> Registry:
        return self._registry("register_networks", "network")

    @property
    def losses(self) -> Registry:
        return self._registry("register_losses", "loss")

    @property
    def datasets(self) -> Registry:
        return self._registry("register_datasets", "dataset")

    @property
    def priors(self) -> Registry:
        return self._registry("register_priors", "prior")

    @property
    def metrics(self) -> Registry:
        return self._registry("register_metrics", "metric")

    @property
    def metric_resources(self) -> Registry:
        return self._registry("register_metric_resources", "metric resource")

    @property
    def presets(self) -> Registry:
        return self._registry("register_presets", "preset")

    @property
    def callbacks(self) -> Registry:
        return self._registry("register_callbacks", "training callback")


def _resolve_stages(declared: Registry, networks: Registry) -> Registry:
    """The stage registry with each composition given its network's options (with the
    composition's defaults), builder, scale and upgrade, and each network added as a stage."""
    import dataclasses

    from ..stages.contract import StageType

    resolved = Registry(declared.what)
    for name in declared.in_order():
        stage_type, provider = declared.get(name), declared.provider(name)
        if stage_type.composed:
            if stage_type.network not in networks:
                raise PluginError(
                    f"stage type {name!r} from {provider} is composed from the network {stage_type.network!r}, "
                    f"which no installed plugin provides. {networks.installed_note()}"
                )
            network = networks.get(stage_type.network)
            stage_type = dataclasses.replace(
                stage_type,
                options=_with_defaults(network.options, stage_type.network_defaults, name),
                build=network.build,
                scale=stage_type.scale or network.scale,
                upgrade=stage_type.upgrade or network.upgrade,
            )
        resolved.add(name, stage_type, provider)
    for name in networks.in_order():
        network = networks.get(name)
        stage_type = StageType(
            name=name,
            kind="refiner",
            options=network.options,
            build=network.build,
            scale=network.scale,
            upgrade=network.upgrade,
            renamed_from=network.renamed_from,
            description=f"the {name} network alone: give its losses with -O STAGE.losses=...",
        )
        resolved.add(name, stage_type, networks.provider(name))  # a network named like a stage type is refused here
    return resolved


def _with_defaults(options: type, defaults: dict[str, Any], name: str) -> type:
    """``options`` with other default values (a composition's), constraints and descriptions kept."""
    if not defaults:
        return options
    from pydantic import create_model
    from pydantic.fields import FieldInfo

    unknown = sorted(set(defaults) - set(options.model_fields))
    if unknown:
        raise PluginError(f"stage type {name!r} sets defaults for {unknown}, which its network's options do not have")
    fields = {
        key: (options.model_fields[key].annotation, FieldInfo.merge_field_infos(options.model_fields[key], default=value))
        for key, value in defaults.items()
    }
    model_name = "".join(part.capitalize() for part in name.replace("_", "-").split("-")) + "Options"
    return create_model(model_name, __base__=options, __doc__=options.__doc__, **fields)


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


def get_network_type(name: str) -> NetworkType:
    return get_plugin_manager().networks.get(name)


def get_loss_type(name: str) -> LossType:
    return get_plugin_manager().losses.get(name)


def get_dataset_type(name: str) -> DatasetType:
    datasets = get_plugin_manager().datasets
    if name not in datasets and _looks_like_a_path(name) and "folder" in datasets:
        raise PluginError(
            f"--data takes a dataset's name, and {safe_name(name)!r} looks like a path: to train on a folder of images, "
            f"give --data folder --data-root {safe_name(name)} (`stagegen datasets` lists the names)"
        )
    return datasets.get(name)


def _looks_like_a_path(name: str) -> bool:
    return any(sep in name for sep in ("/", os.sep)) or name.startswith((".", "~")) or os.path.isdir(name)


def get_prior_type(name: str) -> PriorType:
    return get_plugin_manager().priors.get(name)


def get_metric_type(name: str) -> MetricType:
    return get_plugin_manager().metrics.get(name)
