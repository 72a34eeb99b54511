# -*- test-case-name: tests.test_protocol_plugin -*-
"""
Tests for L{twisted_lab.protocols.base}: every built-in protocol plugin has
the one plugin shape (options declared once, section validated once by the
config loader, cross-option rules in C{check}, one top service named after
its section).
"""
from __future__ import annotations

from typing import Any

from twisted.application.service import MultiService
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_lab.errors import ConfigError
from twisted_lab.interfaces import IProtocolPlugin
from twisted_lab.options import validate
from twisted_lab.protocols.base import ProtocolPlugin, require_positive
from twisted_lab.protocols.la4.plugin import plugin as la4
from twisted_lab.protocols.leco.plugin import plugin as leco
from twisted_lab.protocols.plesty.plugin import plugin as plesty
from twisted_lab.protocols.pymodaq.plugin import plugin as pymodaq
from twisted_lab.protocols.web.plugin import plugin as web
from twisted_lab.registry import DeviceRegistry

PLUGINS = [pymodaq, leco, plesty, la4, web]
NAMES = ["stage", "powermeter", "spectrometer", "camera", "la4"]


class ShapeTests(SynchronousTestCase):
    def test_one_shape(self) -> None:
        """Each plugin is a ProtocolPlugin providing IProtocolPlugin, options on its class."""
        for plugin in PLUGINS:
            self.assertIsInstance(plugin, ProtocolPlugin)
            self.assertTrue(verifyObject(IProtocolPlugin, plugin))
            self.assertIs(plugin.options, type(plugin).options, plugin.name)
            self.assertNotIn("make_service", vars(type(plugin)), plugin.name)

    def test_top_service_named(self) -> None:
        """The simulated lab's section builds one top service named after the section."""
        for plugin in PLUGINS:
            reactor = MemoryReactorClock()
            section = validate(plugin.options, plugin.default_section(NAMES), prefix=plugin.name)
            top = plugin.make_service(DeviceRegistry(reactor), section, reactor)
            self.assertEqual(top.name, plugin.name)

    def test_check_before_build(self) -> None:
        """A section the check refuses builds nothing: ConfigError names the key."""
        built: list[Any] = []

        class Acme(ProtocolPlugin):
            name = "acme"
            options = {}

            def check(self, section: Any) -> None:
                require_positive(section, "acme", "rate")

            def build(self, registry: Any, section: Any, reactor: Any) -> MultiService:
                built.append(section)
                return MultiService()

        with self.assertRaises(ConfigError) as caught:
            Acme().make_service(None, {"rate": 0}, None)
        self.assertIn("acme.rate", str(caught.exception))
        self.assertEqual(built, [])
        self.assertEqual(Acme().make_service(None, {"rate": 1}, None).name, "acme")

    def test_require_positive(self) -> None:
        """Strictly positive by default; at least a minimum otherwise."""
        require_positive({"a": 0.1}, "s", "a")
        self.assertRaises(ConfigError, require_positive, {"a": 0}, "s", "a")
        require_positive({"a": 1}, "s", "a", minimum=1, strict=False)
        self.assertRaises(ConfigError, require_positive, {"a": 0}, "s", "a", minimum=1,
                          strict=False)
