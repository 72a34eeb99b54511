# -*- test-case-name: tests.test_la4_transport -*-
"""
Tests for L{twisted_lab.protocols.la4.transport}: one JSON document per connection.
"""
from __future__ import annotations

import socket
from typing import Any

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import ConnectionRefusedError, TimeoutError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_lab import fastpath
from twisted_lab.errors import ProtocolError
from twisted_lab.protocols.la4.message import Heartbeat, Message
from twisted_lab.protocols.la4.transport import (DocumentFactory, ListenWaiters, listen_now,
                                               send_message)

from tests.test_la4_message import DOC_COMMAND, DOC_HEARTBEAT


class RecordingHandler:
    """Records what a L{DocumentFactory} hands over."""

    def __init__(self) -> None:
        self.messages: list[tuple[Message, str]] = []
        self.errors: list[tuple[ProtocolError, str]] = []
        self.waiter: Deferred[None] | None = None

    def message_received(self, message: Message, host: str) -> None:
        self.messages.append((message, host))
        if self.waiter is not None:
            waiter, self.waiter = self.waiter, None
            waiter.callback(None)

    def message_rejected(self, error: ProtocolError, host: str) -> None:
        self.errors.append((error, host))


class ReceiverTests(SynchronousTestCase):
    """L{DocumentReceiver} reads exactly one document per connection."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.handler = RecordingHandler()
        self.factory = DocumentFactory(self.handler, self.clock, max_message=1024,
                                       read_timeout=5.0)

    def connect(self, host: str = "127.0.0.1") -> tuple[Any, StringTransport]:
        proto = self.factory.buildProtocol(IPv4Address("TCP", host, 40000))
        transport = StringTransport(peerAddress=IPv4Address("TCP", host, 40000))
        proto.makeConnection(transport)
        return proto, transport

    def test_all_at_once(self) -> None:
        """A whole document in one read is decoded, and the connection closed."""
        proto, transport = self.connect()
        proto.dataReceived(DOC_COMMAND)
        self.assertEqual(len(self.handler.messages), 1)
        self.assertEqual(self.handler.messages[0][1], "127.0.0.1")
        self.assertTrue(transport.disconnecting)

    def test_one_byte_at_a_time(self) -> None:
        """Fed one byte at a time, the document is decoded once, at its last byte."""
        proto, transport = self.connect()
        for i in range(len(DOC_HEARTBEAT) - 1):
            proto.dataReceived(DOC_HEARTBEAT[i:i + 1])
        self.assertEqual(self.handler.messages, [])
        proto.dataReceived(DOC_HEARTBEAT[-1:])
        self.assertEqual(self.handler.messages[0][0].id, "7756f193")
        self.assertTrue(transport.disconnecting)

    def test_utf8_split(self) -> None:
        """A multi-byte character split across reads is decoded correctly."""
        data = Heartbeat(id="a", name="Ä€ Licht", ip="x", port=1, version="v",
                         coordinator=True).encode().replace(b"\\u00c4", "Ä".encode())
        proto, _ = self.connect()
        for i in range(len(data)):
            proto.dataReceived(data[i:i + 1])
        self.assertEqual(self.handler.messages[0][0].name, "Ä€ Licht")

    def test_complete_at_eof(self) -> None:
        """A document with trailing garbage is decoded from the start of the buffer."""
        proto, _ = self.connect()
        proto.dataReceived(DOC_HEARTBEAT + b"  trailing")
        self.assertEqual(len(self.handler.messages), 1)

    def test_not_json(self) -> None:
        """Bytes that are not a JSON object are refused at the first byte."""
        proto, transport = self.connect()
        proto.dataReceived(b"GET / HTTP/1.0\r\n\r\n")
        self.assertEqual(self.handler.messages, [])
        self.assertIn("not a JSON object", self.handler.errors[0][0].message)
        self.assertTrue(transport.disconnecting)

    def test_broken_json_at_eof(self) -> None:
        """An object that never becomes valid JSON is refused when the peer closes."""
        proto, _ = self.connect()
        proto.dataReceived(b'{"id": }')
        self.assertEqual(self.handler.errors, [])
        proto.connectionLost()
        self.assertIn("not JSON", self.handler.errors[0][0].message)

    def test_truncated_at_eof(self) -> None:
        """A document cut short by the peer's close is refused."""
        proto, _ = self.connect()
        proto.dataReceived(DOC_HEARTBEAT[:20])
        proto.connectionLost()
        self.assertEqual(len(self.handler.errors), 1)
        self.assertEqual(self.handler.messages, [])

    def test_empty_connection(self) -> None:
        """A connection closed without data is a logged drop."""
        proto, _ = self.connect()
        proto.connectionLost()
        self.assertIn("empty", self.handler.errors[0][0].message)

    def test_oversized(self) -> None:
        """A document over the size cap is refused and the connection closed."""
        proto, transport = self.connect()
        proto.dataReceived(b'{"id": "' + b"x" * 1100)
        self.assertIn("larger than 1024", self.handler.errors[0][0].message)
        self.assertTrue(transport.disconnecting)

    def test_slow_sender(self) -> None:
        """A sender that never finishes is dropped after the read deadline."""
        proto, transport = self.connect()
        proto.dataReceived(DOC_HEARTBEAT[:10])
        self.clock.advance(4.9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.2)
        self.assertTrue(transport.disconnecting)
        self.assertIn("not complete after 5.0 s", self.handler.errors[0][0].message)
        proto.connectionLost()
        self.assertEqual(len(self.handler.errors), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_others_unaffected(self) -> None:
        """A bad or slow connection does not disturb another one."""
        slow, _ = self.connect()
        slow.dataReceived(b"{")
        bad, _ = self.connect()
        bad.dataReceived(b"[1]")
        good, _ = self.connect()
        good.dataReceived(DOC_HEARTBEAT)
        self.assertEqual(len(self.handler.messages), 1)

    def test_allow_list(self) -> None:
        """Peers outside the allow-list are closed unread."""
        self.factory.allowed = DocumentFactory(self.handler, self.clock,
                                               allowed=["127.0.0.0/8"]).allowed
        proto, transport = self.connect("10.0.0.1")
        self.assertTrue(transport.disconnected or transport.disconnecting)
        proto.dataReceived(DOC_HEARTBEAT)
        self.assertEqual(self.handler.messages, [])

    def test_connection_cap(self) -> None:
        """Connections past the cap are refused; closing one frees a slot."""
        self.factory.max_connections = 2
        first, _ = self.connect()
        self.connect()
        _, refused = self.connect()
        self.assertTrue(refused.disconnected or refused.disconnecting)
        first.connectionLost()
        _, accepted = self.connect()
        self.assertFalse(accepted.disconnecting)

    def test_handler_failure_is_logged(self) -> None:
        """A handler that raises is logged, not propagated."""
        def boom(message: Message, host: str) -> None:
            raise RuntimeError("boom")

        self.handler.message_received = boom  # type: ignore[method-assign]
        proto, _ = self.connect()
        proto.dataReceived(DOC_HEARTBEAT)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class SendTests(TestCase):
    """L{send_message} over real loopback sockets."""

    async def test_send_receive(self) -> None:
        """A message sent on its own connection arrives at a listener intact."""
        handler = RecordingHandler()
        handler.waiter = Deferred()
        factory = DocumentFactory(handler, reactor)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        message = Heartbeat(id="abcd0123", name="t", ip="127.0.0.1", port=1, version="1",
                            coordinator=True)
        await send_message(reactor, "127.0.0.1", port.getHost().port, message)
        await handler.waiter
        self.assertEqual(handler.messages, [(message, "127.0.0.1")])

    async def test_connection_refused(self) -> None:
        """Sending to a closed port fails the Deferred (no exception escapes)."""
        factory = DocumentFactory(RecordingHandler(), reactor)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        number = port.getHost().port
        await port.stopListening()
        with self.assertRaises(ConnectionRefusedError):
            await send_message(reactor, "127.0.0.1", number, b"{}")


class _Collect(Protocol):
    """Collects every byte of a connection; C{factory.done} fires with them at EOF."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.done.callback(b"".join(self.chunks))


class ConnectTCPSendTests(TestCase):
    """L{send_message} on a real reactor: C{connectTCP}, one document, close."""

    async def test_not_synchronous(self) -> None:
        """The result never fires before L{send_message} returns (callers may re-enter)."""
        factory = DocumentFactory(RecordingHandler(), reactor)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        d = send_message(reactor, "127.0.0.1", port.getHost().port, b"{}")
        self.assertFalse(d.called)
        await d

    async def test_refused_is_connection_refused(self) -> None:
        """A closed port fails with Twisted's ConnectionRefusedError, as connectTCP does."""
        factory = DocumentFactory(RecordingHandler(), reactor)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        number = port.getHost().port
        await port.stopListening()
        with self.assertRaises(ConnectionRefusedError):
            await send_message(reactor, "127.0.0.1", number, b"{}")

    async def test_large_message_waits_for_the_socket(self) -> None:
        """A message larger than the socket buffers is written in parts, intact."""
        factory = Factory.forProtocol(_Collect)
        factory.done = Deferred()
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        data = bytes(range(256)) * (64 * 1024)  # 16 MiB
        await send_message(reactor, "127.0.0.1", port.getHost().port, data, timeout=30)
        received = await factory.done
        self.assertEqual(len(received), len(data))
        self.assertEqual(received, data)

    async def test_timeout(self) -> None:
        """A connect that cannot complete (listen queue full) fails within the timeout."""
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        fillers = []
        for _ in range(4):  # fill the accept queue: further SYNs are dropped
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(address)
            self.addCleanup(filler.close)
            fillers.append(filler)
        await deferLater(reactor, 0.05)
        with self.assertRaises(TimeoutError):
            await send_message(reactor, "127.0.0.1", address[1], b"{}", timeout=0.3)

    def test_host_name_uses_connect_tcp(self) -> None:
        """A host name is resolved by connectTCP, with the timeout."""
        memory = MemoryReactorClock()
        d = send_message(memory, "localhost", 5000, b"{}", timeout=2.0)
        self.assertEqual([(h, p, t) for h, p, _f, t, _b in memory.tcpClients],
                         [("localhost", 5000, 2.0)])
        self.assertFalse(d.called)

    def test_ip_literal_uses_connect_tcp(self) -> None:
        """An IP literal goes through connectTCP too, with the timeout."""
        memory = MemoryReactorClock()
        d = send_message(memory, "127.0.0.1", 5000, b"{}", timeout=1.5)
        self.assertEqual([(h, p, t) for h, p, _f, t, _b in memory.tcpClients],
                         [("127.0.0.1", 5000, 1.5)])
        self.assertFalse(d.called)


class ReadAtAcceptTests(TestCase):
    """A real TCP receiver reads at accept time; whatever a peer did before the
    accept (sent a document and closed, sent nothing and closed, sent half and
    stalled) is handled exactly once and costs nothing else."""

    timeout = 20

    async def listen(self) -> tuple[RecordingHandler, int, Any]:
        handler = RecordingHandler()
        factory = DocumentFactory(handler, reactor, read_timeout=1.0)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        return handler, port.getHost().port, factory

    @staticmethod
    def raw(port: int, data: bytes, close: bool = True) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(data)
        if close:
            sock.close()
        return sock

    async def settle(self, check: Any) -> None:
        for _ in range(100):
            if check():
                return
            await deferLater(reactor, 0.02)
        self.fail("not reached")

    async def test_document_sent_before_accept(self) -> None:
        """Several peers that sent their document and closed before we accepted are
        each read once."""
        handler, port, _ = await self.listen()
        for _ in range(5):
            self.raw(port, DOC_HEARTBEAT)
        await self.settle(lambda: len(handler.messages) == 5)
        await deferLater(reactor, 0.1)
        self.assertEqual((len(handler.messages), handler.errors), (5, []))

    async def test_closed_without_data(self) -> None:
        """A peer that connected and closed at once is one 'empty message' rejection."""
        handler, port, _ = await self.listen()
        self.raw(port, b"")
        await self.settle(lambda: len(handler.errors) == 1)
        self.assertIn("empty", handler.errors[0][0].message)
        self.assertEqual(handler.messages, [])

    async def test_half_document_then_rest(self) -> None:
        """A document whose first half was there at accept and whose rest came later
        arrives whole."""
        handler, port, _ = await self.listen()
        half = len(DOC_HEARTBEAT) // 2
        sock = self.raw(port, DOC_HEARTBEAT[:half], close=False)
        await deferLater(reactor, 0.1)
        self.assertEqual(handler.messages, [])
        sock.sendall(DOC_HEARTBEAT[half:])
        sock.close()
        await self.settle(lambda: len(handler.messages) == 1)
        self.assertEqual(handler.errors, [])


class _PathOff:
    """Run a test class with one of L{twisted_lab.fastpath}'s paths off."""

    path = ""

    def setUp(self) -> None:
        before = fastpath.enabled(self.path)
        fastpath.set_enabled(self.path, False)
        self.addCleanup(fastpath.set_enabled, self.path, before)  # type: ignore[attr-defined]


class ReadNextTurnTests(_PathOff, ReadAtAcceptTests):
    """The same receptions with the early read off: read on the reactor's next turn."""

    path = "early-read"


class ListenNowTests(SynchronousTestCase):
    """L{listen_now}: the outcome of a start's listen, at once or later."""

    def setUp(self) -> None:
        self.events: list[Any] = []
        self.waiters = ListenWaiters(Clock())

    def route(self, d: Deferred[Any]) -> None:
        listen_now(d, lambda port: self.events.append(("listening", port)),
                   lambda f: self.events.append(("failed", f.value)), self.waiters,
                   lambda: self.events.append("stopped"))

    def test_listening_at_once(self) -> None:
        """A listen that succeeded at once goes to C{listening} now."""
        d: Deferred[Any] = Deferred()
        d.callback("port")
        self.route(d)
        self.assertEqual(self.events, [("listening", "port")])

    def test_failure_at_once(self) -> None:
        """A bind failure at once fails the waiters, stops the service and is raised."""
        waiting = self.waiters.when()
        d: Deferred[Any] = Deferred()
        d.errback(OSError("in use"))
        self.assertRaises(OSError, self.route, d)
        self.assertEqual(self.events, ["stopped"])
        self.failureResultOf(waiting, OSError)

    def test_later(self) -> None:
        """An outcome that comes later goes to C{listening} or C{failed}."""
        ok: Deferred[Any] = Deferred()
        bad: Deferred[Any] = Deferred()
        self.route(ok)
        self.route(bad)
        self.assertEqual(self.events, [])
        ok.callback("port")
        bad.errback(OSError("in use"))
        self.assertEqual(self.events[0], ("listening", "port"))
        self.assertEqual(self.events[1][0], "failed")
