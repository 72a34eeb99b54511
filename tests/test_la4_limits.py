# -*- test-case-name: tests.test_la4_limits -*-
"""
LA4 listeners cannot be held by partial connections: a silent connection
is closed after L{FIRST_BYTE_TIMEOUT}, and at the connection cap the
listener stops accepting (new senders wait in the kernel's backlog and are
delivered once a place frees) instead of accepting and aborting them.
"""
from __future__ import annotations

import socket
from typing import Any, Callable

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_lab.protocols.la4.transport import (FIRST_BYTE_TIMEOUT, DocumentFactory,
                                                 send_message)
from tests.test_la4_message import DOC_HEARTBEAT
from tests.test_la4_transport import RecordingHandler


class FirstByteTests(SynchronousTestCase):
    """The first byte must come soon after the accept."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.handler = RecordingHandler()
        self.factory = DocumentFactory(self.handler, self.clock, read_timeout=5.0)

    def connect(self) -> tuple[Any, StringTransport]:
        address = IPv4Address("TCP", "127.0.0.1", 40000)
        proto = self.factory.buildProtocol(address)
        transport = StringTransport(peerAddress=address)
        proto.makeConnection(transport)
        return proto, transport

    def test_silent_connection_closed(self) -> None:
        """A connection that sends nothing is closed after L{FIRST_BYTE_TIMEOUT}."""
        proto, transport = self.connect()
        self.clock.advance(FIRST_BYTE_TIMEOUT - 0.01)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.02)
        self.assertTrue(transport.disconnecting)
        self.assertIn("nothing sent", self.handler.errors[0][0].message)
        proto.connectionLost()
        self.assertEqual(self.factory.connections, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_started_sender_has_the_read_deadline(self) -> None:
        """A sender that started keeps the whole read deadline to finish."""
        proto, transport = self.connect()
        proto.dataReceived(DOC_HEARTBEAT[:5])
        self.clock.advance(4.0)
        self.assertFalse(transport.disconnecting)
        proto.dataReceived(DOC_HEARTBEAT[5:])
        self.assertEqual(len(self.handler.messages), 1)


class CapTests(TestCase):
    """At the cap the listener waits instead of accepting and aborting."""

    async def until(self, condition: Callable[[], bool]) -> None:
        for _ in range(300):
            if condition():
                return
            await deferLater(reactor, 0.01, lambda: None)
        self.fail("condition not reached in 3 s")

    async def test_held_listener_delivers_after_the_holders_go(self) -> None:
        """
        With every place held by silent connections, a real sender's
        document is not lost: the listener stops accepting, and once the
        holders are closed by the first-byte deadline the document arrives.
        """
        handler = RecordingHandler()
        handler.waiter = Deferred()
        factory = DocumentFactory(handler, reactor, max_connections=4,
                                  first_byte_timeout=0.3)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        factory.listening(port)
        self.addCleanup(port.stopListening)
        number = port.getHost().port
        holders = []
        for _ in range(4):
            holder = socket.create_connection(("127.0.0.1", number))
            holders.append(holder)
            self.addCleanup(holder.close)
        await self.until(lambda: factory.paused)
        self.assertEqual(factory.connections, 4)
        await send_message(reactor, "127.0.0.1", number, DOC_HEARTBEAT)
        await handler.waiter
        self.assertEqual(len(handler.messages), 1)
        self.assertFalse(any("connections open" in e[0].message for e in handler.errors))
        await self.until(lambda: not factory.paused and factory.connections == 0)
