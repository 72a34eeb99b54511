# -*- test-case-name: tests.test_discovery -*-
"""
Tests for L{twisted_lab.discovery}: built-in and third-party plugins.
"""
from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import twisted_lab.plugins
from twisted_lab.config import parse_config
from twisted_lab.discovery import device_plugin, device_plugins, protocol_plugin, protocol_plugins
from twisted_lab.errors import ConfigError
from twisted_lab.interfaces import IDevicePlugin, IProtocolPlugin
from tests import plugin_fixture

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def add_third_party(case: SynchronousTestCase) -> None:
    """Install the fixture plugin in a temporary folder on the plugin path."""
    folder = plugin_fixture.install(case.mktemp())
    twisted_lab.plugins.__path__.append(folder)
    case.addCleanup(twisted_lab.plugins.__path__.remove, folder)


class BuiltinTests(SynchronousTestCase):
    """The built-in protocols and device types are plugins like any other."""

    def test_builtin_protocols(self) -> None:
        """The four protocols are found, each providing IProtocolPlugin."""
        plugins = protocol_plugins()
        self.assertEqual({"pymodaq", "leco", "plesty", "la4", "web"} - set(plugins), set())
        for plugin in plugins.values():
            verifyObject(IProtocolPlugin, plugin)

    def test_builtin_devices(self) -> None:
        """The simulated, VISA and python device types are found."""
        plugins = device_plugins()
        for name in ("sim.stage", "sim.powermeter", "sim.spectrometer", "sim.camera", "sim.la4",
                     "visa", "python"):
            self.assertIn(name, plugins)
            verifyObject(IDevicePlugin, plugins[name])

    def test_unknown_names(self) -> None:
        """Unknown protocol and device names give a ConfigError listing the known ones."""
        e = self.assertRaises(ConfigError, protocol_plugin, "modbus", "lab.toml")
        self.assertIn("lab.toml: modbus: unknown section", str(e))
        self.assertIn("plesty", str(e))
        e = self.assertRaises(ConfigError, device_plugin, "sim.laser", "lab.toml", "devices.x.type")
        self.assertIn("unknown device type 'sim.laser'", str(e))
        self.assertIn("sim.stage", str(e))


class ThirdPartyTests(SynchronousTestCase):
    """A plugin in another package's twisted_lab/plugins folder is found and configured by name."""

    def test_found_in_fresh_process(self) -> None:
        """A fresh interpreter with the third-party folder on sys.path lists its plugins."""
        base = self.mktemp()
        plugin_fixture.install(base)
        code = ("from twisted_lab.discovery import device_plugins, protocol_plugins;"
                "print(sorted(device_plugins())); print(sorted(protocol_plugins()))")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.abspath(base)]))
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=60, cwd=base)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("'acme.thermometer'", out.stdout)
        self.assertIn("'acme'", out.stdout)

    def test_configured_by_name(self) -> None:
        """A config naming the third-party device type and protocol section validates them."""
        add_third_party(self)
        config = parse_config({"devices": {"t1": {"type": "acme.thermometer", "kelvin": 4}},
                               "acme": {"port": 7001}}, "lab.toml")
        self.assertEqual(config.devices[0].options, {"kelvin": 4.0})
        self.assertEqual(config.protocols[0].options, {"port": 7001})
        e = self.assertRaises(ConfigError, parse_config,
                              {"devices": {"t1": {"type": "acme.thermometer", "celsius": 4}}},
                              "lab.toml")
        self.assertIn("lab.toml: devices.t1.celsius: unknown key", str(e))
