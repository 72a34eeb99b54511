# -*- test-case-name: tests.test_connection_cycles -*-
"""
A closed connection is freed by reference counting, not left for the
garbage collector: a flood of short connections (a scan, garbage, peers that
vanish) otherwise piles up cyclic garbage whose full collection pauses the
reactor for as long as it takes to free it all (143 ms after 2,000 PyMoDAQ
connections of random bytes, before the cycles were broken).
"""
from __future__ import annotations

import gc
import socket
import struct
import weakref
from typing import Any

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory
from twisted.trial.unittest import TestCase

from twisted_lab.protocols.pymodaq.imports import PyMoDAQServerFactory
from twisted_lab.registry import DeviceRegistry
from tests.polling import until


def _string(text: bytes) -> bytes:
    return struct.pack(">i", len(text)) + text


class ConnectionCycleTests(TestCase):
    """Each listener's protocol is gone once its connection is, with the collector off."""

    timeout = 30

    def setUp(self) -> None:
        enabled = gc.isenabled()
        gc.collect()
        gc.disable()
        self.addCleanup(lambda: gc.enable() if enabled else None)

    async def listen(self, factory: Factory) -> tuple[int, list[weakref.ref[Any]]]:
        """Listen on loopback; record a weak reference to every protocol built."""
        built: list[weakref.ref[Any]] = []
        build = factory.buildProtocol

        def recording(addr: Any) -> Any:
            protocol = build(addr)
            if protocol is not None:
                built.append(weakref.ref(protocol))
            return protocol

        factory.buildProtocol = recording  # type: ignore[method-assign]
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        return port.getHost().port, built

    async def assert_freed(self, port: int, built: list[weakref.ref[Any]],
                           payloads: list[bytes], reset: bool = False) -> None:
        """Connect once per payload, send it, close (with an RST when C{reset}); then
        every protocol built for these connections is freed, with the collector off."""
        first = len(built)
        for payload in payloads:
            with socket.create_connection(("127.0.0.1", port)) as s:
                if reset:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.sendall(payload)

        def freed() -> bool:
            mine = built[first:]
            return len(mine) == len(payloads) and all(r() is None for r in mine)

        await until(freed, 20, "every connection's protocol freed without the collector")

    async def test_pymodaq_errors_and_vanishing_peers(self) -> None:
        """
        PyMoDAQ server role: connections closed for a protocol error (the
        parser keeps the error, whose traceback holds the connection's
        frames), closed in the middle of a message, or reset by the peer.
        """
        factory = PyMoDAQServerFactory(DeviceRegistry(reactor), reactor)
        self.addCleanup(factory.stop)
        port, built = await self.listen(factory)
        await self.assert_freed(port, built, [
            _string(b"hello"),                                          # unknown command
            _string(b"GRABBER") + b"\x7f\xff\xff\xf0",                   # oversized length
            _string(b"GRABBER") + _string(b"Infos") + b"\x00\x00\x01",  # cut mid-message
        ])
        await self.assert_freed(port, built, [_string(b"GRABBER")] * 3, reset=True)

    async def test_la4_documents(self) -> None:
        """LA4 listeners: a valid document, a bad one, one that is not an
        object, one cut short, and a peer that resets."""
        from twisted_lab.protocols.la4.transport import DocumentFactory, DocumentHandler

        class Handler(DocumentHandler):
            def __init__(self) -> None:
                self.seen: list[str] = []

            def message_received(self, message: Any, host: str) -> None:
                self.seen.append("message")

            def message_rejected(self, error: Any, host: str) -> None:
                self.seen.append("rejected")

        handler = Handler()
        port, built = await self.listen(DocumentFactory(handler, reactor))
        await self.assert_freed(port, built, [
            b'{"event": "heartbeat", "node_id": "n1", "port": 5000}', b'{"event": ',
            b"[1, 2]", b'{"x": "\xff"}'])
        await self.assert_freed(port, built, [b'{"event": '], reset=True)
        self.assertEqual(len(handler.seen), 5)

    async def test_web_requests(self) -> None:
        """The web console's HTTP channel: a request answered, a malformed one,
        one cut in its headers, one reset."""
        from twisted_lab.options import validate
        from twisted_lab.protocols.web.plugin import plugin
        web = plugin.make_service(DeviceRegistry(reactor), validate(
            plugin.options, {"listen": "tcp:0:interface=127.0.0.1"}), reactor)
        web.startService()
        self.addCleanup(web.stopService)
        built: list[weakref.ref[Any]] = []
        site = web.site
        build = site.buildProtocol

        def recording(addr: Any) -> Any:
            protocol = build(addr)
            built.append(weakref.ref(protocol))
            return protocol

        site.buildProtocol = recording  # type: ignore[method-assign]
        port = web.listener.port.getHost().port
        await self.assert_freed(port, built, [
            b"GET /api/devices HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"NOT HTTP\r\n\r\n", b"GET /api/devices HTTP/1.1\r\nHo"])
        await self.assert_freed(port, built, [b"GET /api/devices HTTP/1.1\r\nHo"], reset=True)
