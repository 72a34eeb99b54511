# -*- test-case-name: tests.test_discovery -*-
"""
Finding protocol and device plugins.

Plugins are objects providing L{IProtocolPlugin} or L{IDevicePlugin} (and
L{twisted.plugin.IPlugin}) in a module of any C{twisted_lab/plugins} folder
on C{sys.path}.  The built-ins are lazy proxies (L{LazyProtocolPlugin},
L{LazyDevicePlugin}) so that scanning plugins imports nothing heavy.
"""
from __future__ import annotations

import importlib
from typing import Any, Mapping

from twisted.plugin import IPlugin, getPlugins
from zope.interface import implementer

from twisted_lab.errors import ConfigError
from twisted_lab.interfaces import IDevicePlugin, IProtocolPlugin

__all__ = ["LazyProtocolPlugin", "LazyDevicePlugin", "protocol_plugins", "device_plugins",
           "unavailable", "check"]


@implementer(IPlugin, IProtocolPlugin)
class LazyProtocolPlugin:
    """
    A protocol plugin whose implementation is the C{plugin} attribute of a
    module imported on first use.

    @param name: the config section name.
    @param module: the dotted module name.
    @param description: one line.
    """

    def __init__(self, name: str, module: str, description: str) -> None:
        self.name = name
        self.module = module
        self.description = description

    def _load(self) -> Any:
        return importlib.import_module(self.module).plugin

    @property
    def options(self) -> Mapping[str, Any]:
        """The section's option schema."""
        return self._load().options  # type: ignore[no-any-return]

    def default_section(self, device_names: list[str]) -> dict[str, Any]:
        """The simulated lab's section."""
        return self._load().default_section(device_names)  # type: ignore[no-any-return]

    def make_service(self, registry: Any, section: dict[str, Any], reactor: Any) -> Any:
        """Build the protocol's service."""
        return self._load().make_service(registry, section, reactor)


@implementer(IPlugin, IDevicePlugin)
class LazyDevicePlugin:
    """
    A device plugin found by C{type_name} in the C{DEVICE_PLUGINS} list of a
    module imported on first use.
    """

    def __init__(self, type_name: str, module: str) -> None:
        self.type_name = type_name
        self.module = module

    def _load(self) -> Any:
        for plugin in importlib.import_module(self.module).DEVICE_PLUGINS:
            if plugin.type_name == self.type_name:
                return plugin
        raise LookupError(f"{self.module} has no device plugin {self.type_name!r}")

    @property
    def description(self) -> str:
        """One line."""
        return self._load().description  # type: ignore[no-any-return]

    @property
    def options(self) -> Mapping[str, Any]:
        """The device options' schema."""
        return self._load().options  # type: ignore[no-any-return]

    def make_device(self, name: str, options: dict[str, Any], reactor: Any) -> Any:
        """Build the device."""
        return self._load().make_device(name, options, reactor)

    def unavailable(self) -> str:
        """C{""} when the type can be used here, else why not."""
        return unavailable(self._load())

    def check(self, options: dict[str, Any]) -> None:
        """Check validated options against the driver (see L{check})."""
        check(self._load(), options)


def unavailable(plugin: Any) -> str:
    """
    C{""} when a device plugin's type can be used in this environment, else
    the reason (a plugin without an C{unavailable()} method is usable).
    """
    method = getattr(plugin, "unavailable", None)
    return str(method()) if method is not None else ""


def check(plugin: Any, options: dict[str, Any]) -> None:
    """
    Check a device's validated options against its driver, when the plugin
    can (an optional C{check(options)} method raising L{ConfigError}).
    """
    method = getattr(plugin, "check", None)
    if method is not None:
        method(options)


def _plugins_package() -> Any:
    import twisted_lab.plugins

    return twisted_lab.plugins


def protocol_plugins() -> dict[str, Any]:
    """
    Every protocol plugin, by section name (a third-party plugin may
    replace a built-in of the same name).
    """
    found: dict[str, Any] = {}
    for plugin in getPlugins(IProtocolPlugin, _plugins_package()):
        found[plugin.name] = plugin
    return found


def device_plugins() -> dict[str, Any]:
    """Every device plugin, by type name."""
    found: dict[str, Any] = {}
    for plugin in getPlugins(IDevicePlugin, _plugins_package()):
        found[plugin.type_name] = plugin
    return found


def did_you_mean(word: str, choices: Any) -> str:
    """C{"; did you mean 'x'?"} for the closest of C{choices}, or C{""}."""
    import difflib

    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def protocol_plugin(name: str, file: str | None = None) -> Any:
    """
    The protocol plugin for a config section.

    @raise ConfigError: no such protocol.
    """
    return _lookup(protocol_plugins(), name, "unknown section", "sections", ["lab", "devices"],
                   file, name)


def device_plugin(type_name: str, file: str | None = None, key: str | None = None) -> Any:
    """
    The device plugin for a device type.

    @raise ConfigError: no such type.
    """
    return _lookup(device_plugins(), type_name, f"unknown device type {type_name!r}", "types",
                   [], file, key)


def _lookup(plugins: dict[str, Any], name: str, unknown: str, kinds: str, others: list[str],
            file: str | None, key: str | None) -> Any:
    """C{plugins[name]}, or a L{ConfigError} listing the known names (C{others} first)."""
    try:
        return plugins[name]
    except KeyError:
        known = ", ".join(others + sorted(plugins))
        hint = did_you_mean(name, others + list(plugins))
        raise ConfigError(f"{unknown}; known {kinds} are: {known}{hint}", file, key) from None
