# -*- test-case-name: tests.test_la4_plugin -*-
"""
Tests for L{twisted_lab.protocols.la4.plugin}: the C{[la4]} section.
"""
from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_lab.errors import ConfigError
from twisted_lab.interfaces import IProtocolPlugin
from twisted_lab.options import validate
from twisted_lab.protocols.la4.imports import LA4CoordinatorService
from twisted_lab.protocols.la4.node import SimulatedNode
from twisted_lab.protocols.la4.plugin import OPTIONS, callback_endpoint, plugin
from twisted_lab.registry import DeviceRegistry


class PluginTests(SynchronousTestCase):
    """The plugin's schema, default section and service."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.registry = DeviceRegistry(self.reactor)

    def build(self, section: dict[str, object]) -> list[object]:
        service = plugin.make_service(self.registry, validate(OPTIONS, section), self.reactor)
        service.startService()
        self.addCleanup(service.stopService)
        return list(service)  # type: ignore[call-overload]

    def test_interface(self) -> None:
        """The module attribute C{plugin} provides L{IProtocolPlugin}, named C{la4}."""
        verifyObject(IProtocolPlugin, plugin)
        self.assertEqual(plugin.name, "la4")

    def test_defaults(self) -> None:
        """An empty section: no nodes, callback on 127.0.0.1:5000, raw cmd off, no
        simulated node, heartbeats 5 s, offline after 15 s."""
        section = validate(OPTIONS, {})
        self.assertEqual((section["nodes"], callback_endpoint(section), section["allow_raw_cmd"],
                          section["node"]["enabled"], section["heartbeat_interval"],
                          section["offline_after"]),
                         ([], "tcp:5000:interface=127.0.0.1", False, False, 5.0, 15.0))
        self.assertEqual(section["node"]["interface"], "127.0.0.1")

    def test_default_ports_never_collide(self) -> None:
        """Enabling the simulated node without naming C{callback} moves the default
        callback listener to 5001 (both would otherwise be 127.0.0.1:5000); a
        callback named in the file is kept as written."""
        section = validate(OPTIONS, {"node": {"enabled": True}})
        self.assertEqual(section["node"]["port"], 5000)
        self.assertEqual(callback_endpoint(section), "tcp:5001:interface=127.0.0.1")
        moved = validate(OPTIONS, {"node": {"enabled": True, "port": 15000}})
        self.assertEqual(callback_endpoint(moved), "tcp:5000:interface=127.0.0.1")
        named = validate(OPTIONS, {"callback": "tcp:6000", "node": {"enabled": True}})
        self.assertEqual(callback_endpoint(named), "tcp:6000")

    def test_default_section(self) -> None:
        """The simulated lab runs the node on 127.0.0.1:5000 and coordinates it as
        C{la4}, with the callback listener on 127.0.0.1:5001."""
        section = plugin.default_section(["stage", "powermeter", "spectrometer", "camera",
                                          "la4"])
        children = self.build(section)
        self.assertEqual([type(c) for c in children], [SimulatedNode, LA4CoordinatorService])
        listens = sorted((p, i) for p, _f, _b, i in self.reactor.tcpServers)
        self.assertEqual(listens, [(5000, "127.0.0.1"), (5001, "127.0.0.1")])
        self.assertEqual(self.registry.names(), ["la4"])

    def test_nodes_and_options(self) -> None:
        """Configured nodes become devices; options reach the services."""
        children = self.build({"nodes": [{"name": "a", "host": "127.0.0.1", "port": 6001},
                                         {"name": "b", "host": "127.0.0.2"}],
                               "callback": "6000", "allow_raw_cmd": True,
                               "heartbeat_interval": 1, "offline_after": 4})
        coordinator = children[0]
        assert isinstance(coordinator, LA4CoordinatorService)
        self.assertEqual(coordinator.callback, "tcp:6000:interface=127.0.0.1")
        self.assertEqual([(d.name, d.host, d.port) for d in coordinator.devices],
                         [("a", "127.0.0.1", 6001), ("b", "127.0.0.2", 5000)])
        self.assertIn("cmd", coordinator.devices[0].description.actions)
        self.assertEqual(coordinator.devices[0].offline_after, 4.0)

    def test_bad_sections(self) -> None:
        """
        Bad values are L{ConfigError}s naming the key: from the validation
        the config loader does, or from the plugin's own check.
        """
        for section in [{"nodes": [{"name": "a"}]},
                        {"nodes": [{"name": "a", "host": "h"}, {"name": "a", "host": "i"}]},
                        {"node": {"enabled": True, "scan": "10.0.0.0/8"}},
                        {"node": {"enabled": True, "coordinator": "nohostport"}},
                        {"allow_raw_cmd": "yes"}, {"unknown": 1}]:
            with self.assertRaises(ConfigError):
                plugin.make_service(self.registry, validate(OPTIONS, section, prefix="la4"),
                                    self.reactor)
