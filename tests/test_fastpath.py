# -*- test-case-name: tests.test_fastpath -*-
"""
Tests for L{twisted_lab.fastpath}: every private attribute it relies on is
pinned by name, each path is tested on and off, and no other module of
twisted_lab touches private attributes of Twisted, pyzmq or Deferred.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from twisted.internet import reactor, tcp
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_lab import fastpath
from tests.polling import until

PACKAGE = Path(__file__).resolve().parent.parent / "twisted_lab"


class _Switch:
    """Set one fast path for a test and restore it afterwards."""

    def switch(self, name: str, on: bool) -> None:
        before = fastpath.enabled(name)
        fastpath.set_enabled(name, on)
        self.addCleanup(fastpath.set_enabled, name, before)  # type: ignore[attr-defined]


class _Buffered(Protocol):
    """Reads C{size} bytes into a buffer (when asked), the rest by dataReceived."""

    def __init__(self, size: int) -> None:
        self.memory = bytearray(size)
        self.filled = 0
        self.updates = 0
        self.received = b""

    def get_buffer(self) -> memoryview | None:
        if self.filled >= len(self.memory):
            return None
        return memoryview(self.memory)[self.filled:]

    def buffer_updated(self, nbytes: int) -> None:
        self.updates += 1
        self.filled += nbytes

    def dataReceived(self, data: bytes) -> None:
        # without the fast path, fill the buffer from here (as a protocol must)
        room = len(self.memory) - self.filled
        if room > 0:
            take = data[:room]
            self.memory[self.filled:self.filled + len(take)] = take
            self.filled += len(take)
            data = data[room:]
        self.received += data


class _Loopback(TestCase):
    """A real TCP connection on 127.0.0.1."""

    async def connect(self, server: Protocol) -> tuple[Protocol, Any]:
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            Factory.forProtocol(lambda: server))
        self.addCleanup(port.stopListening)
        client = await TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(
            Factory.forProtocol(Protocol))
        assert client.transport is not None
        self.addCleanup(client.transport.loseConnection)
        await until(lambda: server.transport is not None)
        return client, server.transport

    async def recorded_writes(self) -> tuple[Any, bytearray, list[bytes]]:
        """
        A client connected to a server that records what it receives.

        @return: the client's transport, the bytes the server received so
            far, and what went through the client's C{transport.write}.
        """
        received = bytearray()

        class Sink(Protocol):
            def dataReceived(self, data: bytes) -> None:
                received.extend(data)

        client, _ = await self.connect(Sink())
        out: Any = client.transport
        written: list[bytes] = []
        real_write = out.write
        out.write = lambda data: (written.append(bytes(data)), real_write(data))[1]
        return out, received, written


class PinnedTwistedTests(_Loopback):
    """
    What the fast paths rely on in Twisted; each test names the attribute, so
    a Twisted release that changes one fails here by name.
    """

    async def test_tcp_connection_attributes(self) -> None:
        """
        A TCP server transport is a C{tcp.Server} (a C{tcp.Connection}) with
        C{socket}, C{doRead} looked up on the instance, C{dataBuffer},
        C{_tempDataBuffer} (a list), C{producer}, C{connected},
        C{disconnecting} and C{SEND_LIMIT}.
        """
        _, transport = await self.connect(Protocol())
        self.assertIsInstance(transport, tcp.Server)
        self.assertIsInstance(transport, tcp.Connection)
        self.assertTrue(hasattr(transport.socket, "recv_into"))
        self.assertTrue(callable(transport.doRead))
        transport.doRead = transport.doRead  # an instance attribute shadows the method
        self.assertIn("doRead", vars(transport))
        del transport.doRead
        self.assertIsInstance(transport.dataBuffer, bytes)
        self.assertIsInstance(transport._tempDataBuffer, list)
        self.assertIsNone(transport.producer)
        self.assertEqual((transport.connected, transport.disconnecting), (1, False))
        self.assertIsInstance(tcp.Connection.SEND_LIMIT, int)

    def test_deferred_attributes(self) -> None:
        """A L{Deferred} has C{called}, C{result} and C{_callbacks} (a list)."""
        d: Deferred[int] = Deferred()
        self.assertEqual((d.called, d._callbacks), (False, []))
        d.callback(1)
        self.assertEqual((d.called, d.result, d._callbacks), (True, 1, []))
        d.addCallback(lambda _: None)  # runs at once: the chain stays empty
        self.assertEqual(d._callbacks, [])


class BufferedReadsTests(_Switch, _Loopback):
    """L{fastpath.read_into_buffers}, on and off: the same bytes either way."""

    async def check(self, on: bool) -> _Buffered:
        self.switch("buffered-reads", on)

        class Server(_Buffered):
            def connectionMade(self) -> None:
                self.installed = fastpath.read_into_buffers(self.transport, self)

        server = Server(200_000)
        client, _ = await self.connect(server)
        payload = bytes(range(256)) * 782 + b"tail"  # 200 192 bytes
        assert client.transport is not None
        client.transport.write(payload)
        await until(lambda: server.received == payload[200_000:], timeout=10)
        self.assertEqual(bytes(server.memory), payload[:200_000])
        self.assertEqual(server.installed, on)
        return server

    async def test_on(self) -> None:
        """With the path on, the buffer is filled by C{recv_into} (C{buffer_updated})."""
        server = await self.check(True)
        self.assertGreater(server.updates, 0)

    async def test_off(self) -> None:
        """With the path off, every byte goes through C{dataReceived}."""
        server = await self.check(False)
        self.assertEqual(server.updates, 0)


class WriteThroughTests(_Switch, _Loopback):
    """L{fastpath.writer_for}, on and off."""

    async def check(self, on: bool) -> list[bytes]:
        """Write C{hello} from a client to a server that records; return what
        went through C{transport.write}."""
        self.switch("write-through", on)
        out, received, written = await self.recorded_writes()
        fastpath.writer_for(out)(b"hello")
        await until(lambda: received == b"hello", timeout=5)
        return written

    async def test_on(self) -> None:
        """On: the bytes go straight to the socket (C{transport.write} not used)."""
        self.assertEqual(await self.check(True), [])

    async def test_off(self) -> None:
        """Off: the bytes go through C{transport.write}."""
        self.assertEqual(await self.check(False), [b"hello"])


class SendNowTests(_Switch, _Loopback):
    """L{fastpath.send_now} through the PyMoDAQ L{ChunkWriter}, on and off."""

    async def check(self, on: bool) -> int:
        """Write an 8 MiB message (a header and an array's memory) with a
        L{ChunkWriter} from a client to a server that records; return how many
        bytes went through C{transport.write}."""
        import numpy as np

        from twisted_lab.protocols.pymodaq.transport import ChunkWriter
        self.switch("write-through", on)
        out, received, written = await self.recorded_writes()
        array = np.arange(1 << 20, dtype=np.float64)
        header = b"frame header"
        ChunkWriter(out).write([header, memoryview(array.view(np.uint8))])
        expected = header + array.tobytes()
        await until(lambda: len(received) >= len(expected), timeout=20)
        self.assertEqual(bytes(received), expected)
        return sum(len(data) for data in written)

    async def test_on(self) -> None:
        """On: most of the message goes from the array's memory straight to the
        socket; C{transport.write} carries less than half of it."""
        self.assertLess(await self.check(True), (8 << 20) // 2)

    async def test_off(self) -> None:
        """Off: every byte goes through C{transport.write}."""
        self.assertEqual(await self.check(False), (8 << 20) + len(b"frame header"))

    async def test_queued_first(self) -> None:
        """Nothing goes straight to the socket while Twisted holds bytes to write
        before it (they would be overtaken)."""
        self.switch("write-through", True)
        client, _ = await self.connect(Protocol())
        assert client.transport is not None
        client.transport.write(b"queued")
        self.assertEqual(fastpath.send_now(client.transport, b"later"), 0)

    def test_not_tcp(self) -> None:
        """Another transport is left alone."""
        self.assertEqual(fastpath.send_now(object(), b"data"), 0)


class EarlyReadTests(_Switch, _Loopback):
    """L{fastpath.read_now}, on and off."""

    async def check(self, on: bool) -> list[str]:
        self.switch("early-read", on)
        calls: list[str] = []
        _, transport = await self.connect(Protocol())
        transport.doRead = lambda: calls.append("doRead")
        self.addCleanup(lambda: vars(transport).pop("doRead", None))
        self.assertIsNone(fastpath.read_now(transport))
        return calls

    async def test_on(self) -> None:
        """On: the transport is read at once."""
        self.assertEqual(await self.check(True), ["doRead"])

    async def test_off(self) -> None:
        """Off: nothing is read (the reactor reads on its next turn)."""
        self.assertEqual(await self.check(False), [])

    def test_not_tcp(self) -> None:
        """Another transport is left alone."""
        self.assertIsNone(fastpath.read_now(object()))


class FiredResultTests(_Switch, SynchronousTestCase):
    """L{fastpath.fired_result}, on and off."""

    def test_fired_value(self) -> None:
        """A fired Deferred's value is returned; the Deferred keeps it."""
        self.switch("fired-result", True)
        d = succeed(3)
        self.assertEqual(fastpath.fired_result(d), 3)
        self.assertEqual(self.successResultOf(d), 3)

    def test_nothing(self) -> None:
        """Unfired, failed or paused Deferreds give L{fastpath.NOTHING}."""
        self.switch("fired-result", True)
        failed = fail(ValueError("x"))
        self.assertIs(fastpath.fired_result(failed), fastpath.NOTHING)
        self.failureResultOf(failed, ValueError)
        self.assertIs(fastpath.fired_result(Deferred()), fastpath.NOTHING)
        paused = succeed(1)
        paused.pause()
        paused.addCallback(lambda x: x)
        self.assertIs(fastpath.fired_result(paused), fastpath.NOTHING)
        paused.unpause()

    def test_off(self) -> None:
        """Off: always L{fastpath.NOTHING} (the caller adds callbacks instead)."""
        self.switch("fired-result", False)
        self.assertIs(fastpath.fired_result(succeed(3)), fastpath.NOTHING)


class SwitchTests(SynchronousTestCase):
    """The switch."""

    def test_unknown_name(self) -> None:
        """Only the paths of L{fastpath.PATHS} can be switched."""
        self.assertRaises(ValueError, fastpath.set_enabled, "warp-drive", True)

    def test_environment(self) -> None:
        """C{TWISTED_LAB_SLOW_PATHS} turns off all paths, or those named."""
        self.patch(fastpath.os, "environ", {"TWISTED_LAB_SLOW_PATHS": "all"})
        self.assertEqual(fastpath._from_environment(), set())
        self.patch(fastpath.os, "environ", {"TWISTED_LAB_SLOW_PATHS": "early-read, fired-result"})
        self.assertEqual(fastpath._from_environment(),
                         set(fastpath.PATHS) - {"early-read", "fired-result"})
        self.patch(fastpath.os, "environ", {})
        self.assertEqual(fastpath._from_environment(), set(fastpath.PATHS))


#: Twisted, Deferred and pyzmq internals that are not spelled with an
#: underscore (so the underscore rule below does not see them).
_INTERNALS = re.compile(r"\.(dataBuffer|SEND_LIMIT|callbacks)\b|\bzmq\.backend\b"
                        r"|(?<!self)\.doRead\s*=|\btransport\.doRead\(")


def _own_private_names() -> set[str]:
    """The private names twisted_lab defines itself (attributes, methods, classes)."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return {n for n in names if n.startswith("_")}


class NoPrivatesOutsideTests(SynchronousTestCase):
    """Only L{twisted_lab.fastpath} reaches below public APIs."""

    def test_no_private_attributes_elsewhere(self) -> None:
        """
        No module but C{fastpath.py} reads or writes a private attribute that
        twisted_lab does not define itself (one of Twisted's, pyzmq's or
        Deferred's), nor the non-underscore internals the fast paths use.
        """
        own = _own_private_names()
        offences: list[str] = []
        for path in sorted(PACKAGE.rglob("*.py")):
            if path.name == "fastpath.py":
                continue
            text = path.read_text()
            where = path.relative_to(PACKAGE.parent)
            for node in ast.walk(ast.parse(text, str(path))):
                if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                        and not node.attr.startswith("__") and node.attr not in own):
                    offences.append(f"{where}:{node.lineno}: .{node.attr}")
            for number, line in enumerate(text.splitlines(), 1):
                if _INTERNALS.search(line.split("#", 1)[0]) and not line.lstrip().startswith(
                        ("C{", "L{", "@")):
                    offences.append(f"{where}:{number}: {line.strip()}")
        self.assertEqual(offences, [])

    def test_detects_an_offence(self) -> None:
        """The rules see a use of a Twisted private attribute (they are not vacuous)."""
        own = _own_private_names()
        self.assertNotIn("_tempDataBuffer", own)
        self.assertTrue(_INTERNALS.search("if transport.dataBuffer:"))
        self.assertTrue(_INTERNALS.search("fn = zmq.backend.Socket.send"))
        self.assertTrue(_INTERNALS.search("if d.called and not d.callbacks:"))
