# -*- test-case-name: tests.test_pymodaq_plugin -*-
"""
Tests for L{twisted_lab.protocols.pymodaq.plugin}: the C{[pymodaq]} section
schema, the simulated lab's default and the services it builds.
"""
from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_lab.access import AllowListFactory
from twisted_lab.errors import ConfigError
from twisted_lab.interfaces import IProtocolPlugin
from twisted_lab.options import validate
from twisted_lab.protocols.pymodaq.export import PyMoDAQExportService
from twisted_lab.protocols.pymodaq.plugin import plugin
from twisted_lab.protocols.pymodaq.imports import PyMoDAQServerFactory
from twisted_lab.registry import DeviceRegistry

NAMES = ["stage", "powermeter", "spectrometer", "camera", "la4"]


class PluginTests(SynchronousTestCase):
    """The plugin's schema, default and service tree."""

    def test_provides_interface(self) -> None:
        """The module attribute C{plugin} provides L{IProtocolPlugin}."""
        self.assertTrue(verifyObject(IProtocolPlugin, plugin))
        self.assertEqual(plugin.name, "pymodaq")

    def test_default_section_listens_on_loopback(self) -> None:
        """The simulated lab listens on 127.0.0.1:6341 and exports nothing."""
        reactor = MemoryReactorClock()
        section = validate(plugin.options, plugin.default_section(NAMES))
        self.assertEqual(section["export"], [])
        self.assertEqual(section["version"], "4.4")
        self.assertEqual(section["max_message_size"], 256 * 1024 * 1024)
        service = plugin.make_service(DeviceRegistry(reactor), section, reactor)
        service.startService()
        port, factory, _backlog, interface = reactor.tcpServers[0]
        self.assertEqual((port, interface), (6341, "127.0.0.1"))
        self.assertIsInstance(factory, AllowListFactory)
        self.assertIsInstance(factory.wrapped, PyMoDAQServerFactory)
        self.assertEqual(service.name, "pymodaq")
        service.stopService()

    def test_export_section(self) -> None:
        """An export table builds a reconnecting client service to its server."""
        reactor = MemoryReactorClock()
        section = validate(plugin.options, {
            "listen": [], "version": "4.2",
            "export": [{"device": "camera", "server": "tcp:host=127.0.0.1:port=7000",
                        "role": "GRABBER"}],
            "import": [{"name": "cam", "host": "10.0.0.2"}]})
        service = plugin.make_service(DeviceRegistry(reactor), section, reactor)
        (child,) = list(service)
        self.assertIsInstance(child, PyMoDAQExportService)
        self.assertEqual(child.factory.wire, "4.2")
        service.startService()
        host, port = reactor.tcpClients[0][:2]
        self.assertEqual((host, port), ("127.0.0.1", 7000))
        service.stopService()

    def test_bad_section(self) -> None:
        """Unknown versions and roles are config errors naming the key."""
        with self.assertRaises(ConfigError) as caught:
            validate(plugin.options, {"version": "5.0"}, "lab.toml", "pymodaq")
        self.assertIn("pymodaq.version", str(caught.exception))
        self.assertRaises(ConfigError, validate, plugin.options,
                          {"export": [{"device": "x", "role": "VIEWER"}]})
        self.assertRaises(ConfigError, validate, plugin.options, {"export": [{"role": "GRABBER"}]})
