# -*- test-case-name: tests.test_fallbacks -*-
"""
The fast paths fall back cleanly on reactors they were not written for (the
IOCP reactor of Windows, any non-POSIX reactor): the LA4 direct send uses
plain C{connectTCP}.  (The PyMoDAQ write-through falls back to the
transport's own C{write} on any transport that is not a TCP socket
connection: every test of tests/test_pymodaq_client.py and
tests/test_pymodaq_server.py runs that path over a C{StringTransport}.)
"""
from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.posixbase import PosixReactorBase
from twisted.trial.unittest import TestCase

from tests.test_la4_transport import RecordingHandler
from twisted_lab.protocols.la4.message import Heartbeat
from twisted_lab.protocols.la4.transport import DocumentFactory, send_message


class NotPosixReactor:
    """The running reactor seen through an object that is not a PosixReactorBase
    (as the IOCP reactor is not): only its public interfaces are reachable."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class LA4FallbackTests(TestCase):
    """send_message on a reactor without the POSIX fast path."""

    async def test_send_without_fast_path(self) -> None:
        """The message arrives through connectTCP, intact."""
        other = NotPosixReactor(reactor)
        self.assertNotIsInstance(other, PosixReactorBase)
        handler = RecordingHandler()
        handler.waiter = Deferred()
        factory = DocumentFactory(handler, reactor)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        message = Heartbeat(id="abcd0123", name="t", ip="127.0.0.1", port=1, version="1",
                            coordinator=True)
        await send_message(other, "127.0.0.1", port.getHost().port, message)  # type: ignore[arg-type]
        await handler.waiter
        self.assertEqual(handler.messages, [(message, "127.0.0.1")])
