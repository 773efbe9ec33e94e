"""Named things from plugins (stage types, networks, losses, priors, datasets, metrics, metric
resources, presets, callbacks), and who provided them: the registries a plugin manager fills."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .._deprecated import warn_once

__all__ = ["ENTRY_POINT_GROUP", "PLUGINS_ENV", "PluginError", "Provider", "Registry"]

ENTRY_POINT_GROUP = "stagegen"
PLUGINS_ENV = "STAGEGEN_PLUGINS"


class PluginError(Exception):
    """A plugin is missing, broken, or clashes with another."""


@dataclass(frozen=True)
class Provider:
    """Who registered a thing: a distribution (with version) or a bare module."""

    plugin: str
    package: str
    version: str

    def __str__(self) -> str:
        return f"{self.package} {self.version} (plugin {self.plugin!r})"


class Registry:
    """Named things from plugins; a second thing under the same name is refused. A thing that
    was renamed lists its former names (``renamed_from``): files, configs and commands that use
    an old name get it, with a warning (once) that names the current one, like timm's
    deprecated model names."""

    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, tuple[Any, Provider]] = {}
        self._renamed: dict[str, str] = {}  # former name -> current name

    def add(self, name: str, item: Any, provider: Provider) -> None:
        for taken in (name, *getattr(item, "renamed_from", ())):
            if taken in self._items or taken in self._renamed:
                first = self._items[self.canonical(taken)][1]
                raise PluginError(
                    f"{self.what} {taken!r} is registered twice: by {first} and by {provider}. "
                    f"Uninstall one of them, or restrict plugins with {PLUGINS_ENV}=..."
                )
        self._items[name] = (item, provider)
        self._renamed.update({old: name for old in getattr(item, "renamed_from", ())})

    def canonical(self, name: str) -> str:
        """The current name of ``name`` (itself unless it is a former name)."""
        return self._renamed.get(name, name)

    def get(self, name: str) -> Any:
        try:
            item = self._items[self.canonical(name)][0]
        except KeyError:
            raise PluginError(self.missing_message(name)) from None
        if name in self._renamed:
            warn_once(f"the {self.what} name {name!r}", f"{self._renamed[name]!r}, its current name", stacklevel=3)
        return item

    def provider(self, name: str) -> Provider:
        self.get(name)
        return self._items[self.canonical(name)][1]

    def names(self) -> list[str]:
        return sorted(self._items)

    def in_order(self) -> list[str]:
        """Names in the order they were registered (plugins in load order, each in its own order)."""
        return list(self._items)

    def __contains__(self, name: str) -> bool:
        return self.canonical(name) in self._items

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
