# -*- test-case-name: tests.test_config -*-
"""
The lab configuration: a TOML file turned into typed, validated objects.

A config file names devices and protocol sections::

    [lab]
    simulated = false            # true adds the built-in simulated devices

    [devices.psu]
    type = "visa"                # an IDevicePlugin type name
    resource = "TCPIP::10.0.0.5::INSTR"

    [plesty]                     # an IProtocolPlugin section name
    serve = [{device = "psu", address = "tcp://127.0.0.1:5555"}]

Every key is checked against the schema its plugin declares; an unknown key,
a wrong type or a missing required key is a L{ConfigError} naming the file,
the key and the reason.  No config file means the built-in simulated lab
(L{default_config}).
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from twisted_lab.discovery import device_plugin, protocol_plugin, protocol_plugins
from twisted_lab.errors import ConfigError
from twisted_lab.options import Option, validate

__all__ = ["Config", "DeviceConfig", "ProtocolSection", "load_config", "parse_config",
           "default_config", "LAB_OPTIONS"]

#: Options of the C{[lab]} table.
LAB_OPTIONS: dict[str, Option] = {
    "name": Option(str, "lab", "A name for this lab process, used in logs."),
    "simulated": Option(bool, False, "Also register the built-in simulated devices "
                                     "(stage, powermeter, spectrometer, camera; the simulated "
                                     "LA4 board is an [la4] node)."),
}


@dataclass(frozen=True)
class DeviceConfig:
    """
    One device to create.

    @ivar name: the device name (the key under C{[devices]}).
    @ivar type: the L{twisted_lab.interfaces.IDevicePlugin} type name.
    @ivar options: the validated options (defaults filled in).
    """

    name: str
    type: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProtocolSection:
    """
    One protocol to run.

    @ivar name: the section (and L{twisted_lab.interfaces.IProtocolPlugin}) name.
    @ivar options: the validated options (defaults filled in).
    """

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    """
    A whole lab configuration.

    @ivar devices: the devices, in file order.
    @ivar protocols: the protocol sections, in file order.
    @ivar lab: the C{[lab]} options.
    @ivar file: where it was read from, or C{None}.
    """

    devices: list[DeviceConfig] = field(default_factory=list)
    protocols: list[ProtocolSection] = field(default_factory=list)
    lab: dict[str, Any] = field(default_factory=dict)
    file: str | None = None

    def device_names(self) -> list[str]:
        """The names of the configured devices."""
        return [d.name for d in self.devices]


def simulated_devices() -> list[DeviceConfig]:
    """The devices of the built-in simulated lab."""
    from twisted_lab.devices.plugins import SIMULATED_LAB

    out = []
    for name, (type_name, options) in SIMULATED_LAB.items():
        plugin = device_plugin(type_name)
        out.append(DeviceConfig(name, type_name,
                                validate(plugin.options, options, None, f"devices.{name}")))
    return out


def _device(name: str, table: Any, file: str | None) -> DeviceConfig:
    key = f"devices.{name}"
    if not isinstance(table, dict):
        raise ConfigError(f"must be a table, got {type(table).__name__}", file, key)
    options = dict(table)
    type_name = options.pop("type", None)
    if type_name is None:
        raise ConfigError("has no 'type' (a device type such as 'sim.stage' or 'visa')",
                          file, key)
    if not isinstance(type_name, str):
        raise ConfigError(f"must be a string, got {type(type_name).__name__}", file, key + ".type")
    plugin = device_plugin(type_name, file, key + ".type")
    return DeviceConfig(name, type_name, validate(plugin.options, options, file, key))


def parse_config(data: Mapping[str, Any], file: str | None = None) -> Config:
    """
    Validate a parsed TOML document.

    @param data: the document.
    @param file: its file name, for error messages.
    @raise ConfigError: naming the file, the key and the reason.
    """
    lab_table = data.get("lab", {})
    if not isinstance(lab_table, dict):
        raise ConfigError("must be a table", file, "lab")
    lab = validate(LAB_OPTIONS, lab_table, file, "lab")
    devices = simulated_devices() if lab["simulated"] else []
    device_tables = data.get("devices", {})
    if not isinstance(device_tables, dict):
        raise ConfigError("must be a table of device tables", file, "devices")
    for name, table in device_tables.items():
        device = _device(name, table, file)
        if device.name in {d.name for d in devices}:
            raise ConfigError("is defined twice (the simulated lab already has it)", file,
                              f"devices.{name}")
        devices.append(device)
    protocols = []
    for key, table in data.items():
        if key in ("lab", "devices"):
            continue
        plugin = protocol_plugin(key, file)
        if not isinstance(table, dict):
            raise ConfigError("must be a table", file, key)
        protocols.append(ProtocolSection(key, validate(plugin.options, table, file, key)))
    return Config(devices, protocols, lab, file)


def load_config(path: str | Path) -> Config:
    """
    Read and validate a TOML config file.

    @raise ConfigError: the file is missing, unreadable, not TOML, or invalid.
    """
    file = str(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("no such file", file) from None
    except OSError as e:
        raise ConfigError(f"cannot read it: {e.strerror}", file) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"is not valid TOML: {e}", file) from None
    return parse_config(data, file)


def default_config() -> Config:
    """
    The built-in simulated lab: the simulated devices, and every protocol
    with its default section (every listener on 127.0.0.1).
    """
    devices = simulated_devices()
    # la4 reaches the registry through the [la4] section (a simulated node it
    # coordinates); the other protocols serve it like the local devices.
    names = [d.name for d in devices] + ["la4"]
    protocols = []
    for name, plugin in protocol_plugins().items():
        section = plugin.default_section(names)
        protocols.append(ProtocolSection(name, validate(plugin.options, section, None, name)))
    return Config(devices, protocols, validate(LAB_OPTIONS, {"simulated": True}), None)
