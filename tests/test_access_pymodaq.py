# -*- test-case-name: tests.test_access_pymodaq -*-
"""
Who may connect to the PyMoDAQ listener: its allow-list (refused in
C{buildProtocol}) and TLS endpoints, over real loopback sockets with our
own PyMoDAQ client role as the connecting instrument.
"""
from __future__ import annotations

import os
import socket
from typing import Any

import twisted.test
from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from tests.polling import until
from tests.test_leco_coordinator import sleep
from twisted_lab.options import validate
from twisted_lab.protocols.pymodaq.export import PyMoDAQClientFactory, PyMoDAQExportService
from twisted_lab.protocols.pymodaq.plugin import PyMoDAQService, plugin
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeActuator

#: Twisted's own test key and certificate (one PEM file), for a TLS listener.
PEM = os.path.join(os.path.dirname(twisted.test.__file__), "server.pem")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PyMoDAQAccessTests(TestCase):
    """The listener's allow-list and TLS."""

    timeout = 30

    def lab(self, **section: Any) -> tuple[PyMoDAQService, DeviceRegistry]:
        registry = DeviceRegistry(reactor)
        options = validate(plugin.options, {"import": [{"name": "rstage"}], **section})
        service = plugin.make_service(registry, options, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        assert isinstance(service, PyMoDAQService)
        return service, registry

    def instrument(self, endpoint: str) -> FakeActuator:
        local = DeviceRegistry(reactor)
        stage = FakeActuator("stage")
        local.register(stage)
        export = PyMoDAQExportService(reactor, endpoint, PyMoDAQClientFactory(local, "stage"))
        export.startService()
        self.addCleanup(export.stopService)
        return stage

    async def test_refused_before_any_handler(self) -> None:
        """A client outside the allow-list is refused in buildProtocol: no protocol,
        no device, the refusal counted."""
        port = free_port()
        service, registry = self.lab(listen=[f"tcp:{port}:interface=127.0.0.1"],
                                     allow=["10.0.0.0/8"])
        self.instrument(f"tcp:host=127.0.0.1:port={port}")
        await until(lambda: service.allow_factory is not None
                    and service.allow_factory.refused >= 1)
        await sleep(0.3)
        self.assertEqual(registry.names(), [])
        self.assertEqual(service.server_factories[0].connections, set())

    async def test_default_allows_loopback(self) -> None:
        """The default allow-list lets a local instrument in: it becomes a device."""
        port = free_port()
        _, registry = self.lab(listen=[f"tcp:{port}:interface=127.0.0.1"])
        stage = self.instrument(f"tcp:host=127.0.0.1:port={port}")
        await until(lambda: registry.names() == ["rstage"])
        rstage = await registry.get("rstage")
        self.assertEqual(await rstage.move_abs(2.0), 2.0)
        self.assertEqual(stage.current, 2.0)

    async def test_tls_listener(self) -> None:
        """An C{ssl:} listener serves an instrument connecting over TLS; a plain TCP
        client on that port never becomes a device."""
        port = free_port()
        _, registry = self.lab(listen=[f"ssl:{port}:interface=127.0.0.1:privateKey={PEM}"])
        self.instrument(f"tcp:host=127.0.0.1:port={port}")  # plain: cannot handshake
        await sleep(0.5)
        self.assertEqual(registry.names(), [])
        stage = self.instrument(f"ssl:host=127.0.0.1:port={port}")
        await until(lambda: registry.names() == ["rstage"])
        rstage = await registry.get("rstage")
        self.assertEqual(await rstage.move_abs(3.0), 3.0)
        self.assertEqual(stage.current, 3.0)
