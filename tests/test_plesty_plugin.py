# -*- test-case-name: tests.test_plesty_plugin -*-
"""
Tests for L{twisted_lab.protocols.plesty.plugin} and the shared ZMQ helpers.
"""
from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_lab.errors import ConfigError
from twisted_lab.interfaces import IProtocolPlugin
from twisted_lab.options import validate
from twisted_lab.protocols.plesty.plugin import plugin
from twisted_lab.protocols.plesty.remote import PlestyImportService
from twisted_lab.protocols.plesty.export import PlestyServerService
from twisted_lab.protocols.zmqutil import is_loopback
from twisted_lab.registry import DeviceRegistry

LAB = ["stage", "powermeter", "spectrometer", "camera", "la4"]


class PluginTests(SynchronousTestCase):
    """The [plesty] section."""

    def test_provides(self) -> None:
        """The module's plugin provides IProtocolPlugin, named plesty."""
        verifyObject(IProtocolPlugin, plugin)
        self.assertEqual(plugin.name, "plesty")

    def test_default_section(self) -> None:
        """The simulated lab serves the power meter on :5555, the stage on :5556 and
        the camera on :5557."""
        section = validate(plugin.options, plugin.default_section(LAB))
        self.assertEqual(section["serve"], [
            {"device": "powermeter", "address": "tcp://127.0.0.1:5555"},
            {"device": "stage", "address": "tcp://127.0.0.1:5556"},
            {"device": "camera", "address": "tcp://127.0.0.1:5557"}])
        self.assertFalse(section["strict"])
        self.assertTrue(all(is_loopback(e["address"]) for e in section["serve"]))

    def test_make_service(self) -> None:
        """One server per served device and one import per imported server (not started)."""
        section = validate(plugin.options, {
            "serve": [{"device": "stage", "address": "tcp://127.0.0.1:5556"}],
            "import": [{"name": "demo", "address": "tcp://127.0.0.1:5600", "timeout": 2}],
            "strict": True})
        reactor = MemoryReactorClock()
        top = plugin.make_service(DeviceRegistry(reactor), section, reactor)
        services = list(top)  # type: ignore[call-overload]
        self.assertIsInstance(services[0], PlestyServerService)
        self.assertTrue(services[0].handler.strict)
        self.assertIsNone(services[0].handler.lease_ttl)
        self.assertIsInstance(services[1], PlestyImportService)
        self.assertEqual(services[1].timeout, 2.0)

    def test_bad_section(self) -> None:
        """Unknown keys and missing addresses name the key."""
        with self.assertRaises(ConfigError) as caught:
            validate(plugin.options, {"serve": [{"device": "stage"}]})
        self.assertIn("serve[0].address", str(caught.exception))
        self.assertRaises(ConfigError, validate, plugin.options, {"bind": "x"})

    def test_loopback(self) -> None:
        """is_loopback tells loopback ZMQ addresses from others."""
        self.assertTrue(is_loopback("tcp://127.0.0.1:5555"))
        self.assertTrue(is_loopback("ipc:///tmp/x"))
        self.assertFalse(is_loopback("tcp://*:5555"))
        self.assertFalse(is_loopback("tcp://192.0.2.1:5555"))
