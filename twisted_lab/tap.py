# -*- test-case-name: tests.test_tap -*-
"""
The twistd/twist plugin: C{twistd -n lab [--config lab.toml]}.

It only parses options and calls L{twisted_lab.service.build_service}.
"""
from __future__ import annotations

import sys
from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from twisted_lab.errors import ConfigError

__all__ = ["Options", "makeService", "check_devices"]


class Options(usage.Options):
    """
    Options of C{twistd lab}.
    """

    synopsis = "[--config lab.toml] [--check] [--list]"
    longdesc = (
        "Serve laboratory instruments over PyMoDAQ TCP/IP, LECO, PLESTY and LA4 pycom "
        "from one process. With no --config, runs the built-in simulated lab (stage, "
        "powermeter, spectrometer, camera, la4) on every protocol, on 127.0.0.1 only: "
        "PyMoDAQ server 6341, LECO Coordinator 12300 (namespace 'lab'), PLESTY powermeter "
        "5555 and stage 5556, LA4 node 5000. See docs/configuration.md."
    )
    optParameters = [
        ["config", "c", None, "A TOML lab description (devices and protocol sections). "
                              "Default: the built-in simulated lab."],
    ]
    optFlags = [
        ["check", None, "Validate the config, print a summary and exit."],
        ["list", None, "List the protocol plugins and device types found, and exit."],
    ]

    def postOptions(self) -> None:
        """Load the config now, so that a bad one is reported before startup."""
        from twisted_lab.config import default_config, load_config

        if self["list"]:
            self._print_plugins()
            raise SystemExit(0)
        try:
            self.lab_config = load_config(self["config"]) if self["config"] else default_config()
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None
        if self["check"]:
            config = self.lab_config
            try:
                check_devices(config)
            except ConfigError as e:
                raise usage.UsageError(str(e)) from None
            print(f"{config.file or 'built-in simulated lab'}: OK")
            print("devices: " + ", ".join(f"{d.name} ({d.type})" for d in config.devices))
            print("protocols: " + ", ".join(p.name for p in config.protocols))
            raise SystemExit(0)

    def _print_plugins(self) -> None:
        from twisted_lab.discovery import device_plugins, protocol_plugins, unavailable

        out = sys.stdout
        out.write("protocols (config sections):\n")
        for name, plugin in sorted(protocol_plugins().items()):
            out.write(f"  [{name}]  {plugin.description}\n")
        out.write("device types:\n")
        for name, plugin in sorted(device_plugins().items()):
            try:
                reason = unavailable(plugin)
            except Exception as e:  # a broken third-party plugin must not hide the others
                reason = f"its plugin failed: {type(e).__name__}: {e}"
            state = f"  [not usable here: {reason}]" if reason else ""
            out.write(f"  {name}  {plugin.description}{state}\n")


def check_devices(config: Any) -> None:
    """
    Check every device's options against its driver (C{--check}): the
    driver class exists, takes those arguments, and the type can run here.

    @raise ConfigError: naming the file, C{devices.<name>.<key>} and the reason.
    """
    from twisted_lab.discovery import check, device_plugin

    for device in config.devices:
        plugin = device_plugin(device.type, config.file, f"devices.{device.name}.type")
        try:
            check(plugin, device.options)
        except ConfigError as e:
            key = f"devices.{device.name}" + (f".{e.key}" if e.key else "")
            raise ConfigError(e.reason, config.file, key) from None


def makeService(options: Options) -> IService:
    """
    Build the lab described by the parsed options.
    """
    from twisted.internet import reactor

    from twisted_lab.registry import DeviceRegistry
    from twisted_lab.service import build_service

    registry = DeviceRegistry(reactor)
    config: Any = options.lab_config
    return build_service(registry, config, reactor)
