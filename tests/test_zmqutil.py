# -*- test-case-name: tests.test_zmqutil -*-
"""
Tests for L{twisted_lab.protocols.zmqutil}, the ZeroMQ transport of PLESTY
and LECO.

The sockets are real (C{inproc://}, in a context of the test's own); the
reactor is a L{MemoryReactorClock}, so each test decides when the reader
runs.  Every behaviour is tested on both paths: pyzmq's compiled methods
(the fast path) and its public API.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import zmq
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from twisted.logger import LogLevel, capturedLogs

from twisted_lab import fastpath
from twisted_lab.protocols import zmqutil
from twisted_lab.protocols.zmqutil import COPY_THRESHOLD, ZmqConnection


def _wait_readable(socket: zmq.Socket[Any]) -> None:
    """Block (at most 2 s) until C{socket} has a message to read."""
    if not socket.poll(2000, zmq.POLLIN):
        raise AssertionError("no message arrived")


class _Recorder(ZmqConnection):
    """
    A connection on a hand-made socket (the reader under test) that records
    its messages (and may act on them).
    """

    def __init__(self, reactor: Any, socket: zmq.Socket[Any], copy: bool = True) -> None:
        self.messages: list[list[Any]] = []
        self.on_each: Any = None
        super().__init__(reactor, socket, self._record, copy=copy)

    def _record(self, frames: list[Any]) -> None:
        self.messages.append(frames)
        if self.on_each is not None:
            self.on_each(frames)


class _Paths:
    """Run the tests with the fast path (C{public = False}) or the public API."""

    public = False

    def setUp(self) -> None:
        zmqutil.use_public_api(self.public)
        self.addCleanup(zmqutil.use_public_api, False)  # type: ignore[attr-defined]
        self.context: zmq.Context[Any] = zmq.Context()
        self.addCleanup(self.context.term)  # type: ignore[attr-defined]
        self.reactor = MemoryReactorClock()
        self.sockets: list[zmq.Socket[Any]] = []
        self.addCleanup(self._close_all)  # type: ignore[attr-defined]

    def _close_all(self) -> None:
        for socket in self.sockets:
            socket.close(0)

    def socket(self, kind: int) -> zmq.Socket[Any]:
        socket = self.context.socket(kind)
        socket.setsockopt(zmq.LINGER, 0)
        self.sockets.append(socket)
        return socket

    def pair(self, copy: bool = True) -> tuple[_Recorder, zmq.Socket[Any]]:
        """Our DEALER connection and a plain ROUTER peer it connects to."""
        peer = self.socket(zmq.ROUTER)
        peer.bind("inproc://peer")
        ours = self.socket(zmq.DEALER)
        ours.setsockopt(zmq.IDENTITY, b"ours")
        ours.connect("inproc://peer")
        connection = _Recorder(self.reactor, ours, copy=copy)
        self.addCleanup(connection.close)  # type: ignore[attr-defined]
        return connection, peer


class ZmqConnectionTestsMixin(_Paths):
    """What L{ZmqConnection} does, on either path."""

    def test_registers_reader(self) -> None:
        """The socket's FD is registered as a reader; close removes it."""
        connection, _ = self.pair()
        self.assertIn(connection, self.reactor.getReaders())
        connection.close()
        self.assertNotIn(connection, self.reactor.getReaders())
        self.assertEqual(connection.fileno(), -1)

    def test_read_all_pending(self) -> None:
        """One wakeup reads every pending multipart message, frames intact."""
        connection, peer = self.pair()
        peer.send_multipart([b"ours", b"a", b"1"])
        peer.send_multipart([b"ours", b"b"])
        _wait_readable(connection.socket)
        connection.doRead()
        self.assertEqual(connection.messages, [[b"a", b"1"], [b"b"]])

    def test_edge_after_send(self) -> None:
        """
        The FD is edge-triggered: a message waiting when we send is found by
        the C{EVENTS} check after the send, which schedules a read.
        """
        connection, peer = self.pair()
        connection.send([b"hello"])
        self.assertEqual(peer.recv_multipart(), [b"ours", b"hello"])
        peer.send_multipart([b"ours", b"reply"])
        _wait_readable(connection.socket)  # the FD's edge is gone: nothing would wake us
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        connection.send([b"more"])
        self.assertEqual(len(self.reactor.getDelayedCalls()), 1)
        self.reactor.advance(0)
        self.assertEqual(connection.messages, [[b"reply"]])

    def test_send_tracked_large(self) -> None:
        """
        A message with a large frame goes out without a copy, tracked: the
        peer gets it whole and the tracker reports it written.
        """
        connection, peer = self.pair()
        large = bytes(range(256)) * (zmqutil.COPY_THRESHOLD // 256 + 1)
        tracker = connection.send_tracked([b"header", large])
        self.assertIsNotNone(tracker)
        self.assertEqual(peer.recv_multipart(), [b"ours", b"header", large])
        assert tracker is not None
        tracker.wait(5)
        self.assertTrue(tracker.done)

    def test_edge_at_start(self) -> None:
        """A message already waiting when the connection is made is read."""
        peer = self.socket(zmq.ROUTER)
        peer.bind("inproc://early")
        ours = self.socket(zmq.DEALER)
        ours.setsockopt(zmq.IDENTITY, b"ours")
        ours.connect("inproc://early")
        ours.send(b"hi")
        peer.recv_multipart()
        peer.send_multipart([b"ours", b"early"])
        _wait_readable(ours)
        connection = _Recorder(self.reactor, ours)
        self.addCleanup(connection.close)  # type: ignore[attr-defined]
        self.reactor.advance(0)
        self.assertEqual(connection.messages, [[b"early"]])

    def test_batch_limit(self) -> None:
        """At most C{_BATCH} messages a wakeup; then it yields and comes back at once."""
        self.patch(zmqutil, "_BUDGET", 3600.0)
        connection, peer = self.pair()
        total = zmqutil._BATCH + 5
        for i in range(total):
            peer.send_multipart([b"ours", str(i).encode()])
        _wait_readable(connection.socket)
        connection.doRead()
        self.assertEqual(len(connection.messages), zmqutil._BATCH)
        self.assertEqual([c.getTime() for c in self.reactor.getDelayedCalls()], [0])
        self.reactor.advance(0)
        self.assertEqual(len(connection.messages), total)
        self.assertEqual(connection.messages[-1], [str(total - 1).encode()])

    def test_time_budget(self) -> None:
        """Handling that takes longer than C{_BUDGET} yields after 16 messages."""
        self.patch(zmqutil, "_BUDGET", 0.0)
        connection, peer = self.pair()
        for i in range(40):
            peer.send_multipart([b"ours", str(i).encode()])
        _wait_readable(connection.socket)
        connection.doRead()
        self.assertEqual(len(connection.messages), 16)
        self.assertEqual([c.getTime() for c in self.reactor.getDelayedCalls()], [0])
        self.reactor.advance(0)
        self.reactor.advance(0)
        self.assertEqual(len(connection.messages), 40)

    def test_close_inside_callback(self) -> None:
        """Closing from C{messageReceived} stops reading at once, without error."""
        connection, peer = self.pair()
        connection.on_each = lambda frames: connection.close()
        peer.send_multipart([b"ours", b"one"])
        peer.send_multipart([b"ours", b"two"])
        _wait_readable(connection.socket)
        connection.doRead()
        self.assertEqual(connection.messages, [[b"one"]])
        self.assertTrue(connection.closed)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertFalse(connection.send([b"late"]))
        self.sockets.remove(connection.socket)  # closed by the connection

    def test_handler_error_logged(self) -> None:
        """An exception in C{messageReceived} is logged; later messages are read."""
        connection, peer = self.pair()

        def boom(frames: list[Any]) -> None:
            if frames == [b"bad"]:
                raise ValueError("boom")

        connection.on_each = boom
        peer.send_multipart([b"ours", b"bad"])
        peer.send_multipart([b"ours", b"good"])
        _wait_readable(connection.socket)
        with capturedLogs() as events:
            connection.doRead()
        self.assertEqual(connection.messages, [[b"bad"], [b"good"]])
        self.assertEqual([e["log_level"] for e in events if "log_failure" in e],
                         [LogLevel.critical])
        self.flushLoggedErrors(ValueError)  # type: ignore[attr-defined]

    def test_unroutable_send(self) -> None:
        """
        On a C{ROUTER_MANDATORY} router, a message to an unknown peer is not
        sent: C{send} returns C{False} and logs, nothing raises.
        """
        router = self.socket(zmq.ROUTER)
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        router.bind("inproc://router")
        connection = _Recorder(self.reactor, router)
        self.addCleanup(connection.close)  # type: ignore[attr-defined]
        with capturedLogs() as events:
            self.assertFalse(connection.send([b"nobody", b"hello"]))
        self.assertEqual([e["log_level"] for e in events], [LogLevel.warn])

    def test_bad_frame_sends_nothing(self) -> None:
        """
        A frame that is not a buffer raises C{TypeError} before any frame is
        queued, so no partial multipart message reaches the peer.
        """
        connection, peer = self.pair()
        self.assertRaises(TypeError, connection.send, [b"first", object()])
        self.assertTrue(connection.send([b"whole"]))
        self.assertEqual(peer.recv_multipart(), [b"ours", b"whole"])
        self.assertEqual(peer.poll(0), 0)

    def test_zero_copy_frames(self) -> None:
        """
        With C{copy=False} frames arrive as C{zmq.Frame}s whose buffer is not
        copied; a numpy array of C{COPY_THRESHOLD} bytes or more is sent
        without a copy and arrives intact.
        """
        connection, peer = self.pair(copy=False)
        array = np.arange(COPY_THRESHOLD // 8 * 4, dtype=np.float64)
        sent: list[bool] = []
        real = zmqutil._send

        def spy(socket: Any, frame: Any, flags: int, copy: bool) -> Any:
            sent.append(copy)
            return real(socket, frame, flags, copy)

        self.patch(zmqutil, "_send", spy)  # type: ignore[attr-defined]
        connection.send([b"header", array])
        self.assertEqual(sent, [True, False])
        identity, header, body = peer.recv_multipart()
        self.assertEqual(np.frombuffer(body, dtype=np.float64).tolist(), array.tolist())
        peer.send_multipart([b"ours", b"x" * 10, array])
        _wait_readable(connection.socket)
        connection.doRead()
        [frames] = connection.messages
        self.assertTrue(all(isinstance(f, zmq.Frame) for f in frames))
        self.assertIsInstance(frames[1].buffer, memoryview)
        self.assertEqual(np.frombuffer(frames[1].buffer, dtype=np.float64).tolist(),
                         array.tolist())

    def test_open_connection_callback(self) -> None:
        """L{zmqutil.open_connection} hands each message to its callback as bytes."""
        received: list[list[bytes]] = []
        connection = zmqutil.open_connection(self.reactor, zmq.ROUTER, received.append,
                                             bind="tcp://127.0.0.1:*", context=self.context)
        self.addCleanup(connection.close)  # type: ignore[attr-defined]
        address = connection.endpoint
        assert address is not None
        self.assertTrue(address.startswith("tcp://127.0.0.1:"))
        peer = self.socket(zmq.DEALER)
        peer.setsockopt(zmq.IDENTITY, b"peer")
        peer.connect(address)
        peer.send(b"hello")
        _wait_readable(connection.socket)
        connection.doRead()
        self.assertEqual(received, [[b"peer", b"hello"]])


class FastPathTests(ZmqConnectionTestsMixin, SynchronousTestCase):
    """L{ZmqConnection} on pyzmq's compiled methods."""

    public = False

    def test_fast_path_in_use(self) -> None:
        """This pyzmq has the compiled methods, and they are the ones in use."""
        self.assertTrue(zmqutil.fast_path_available())
        self.assertIs(zmqutil._send, zmq.backend.Socket.send)


class PublicAPITests(ZmqConnectionTestsMixin, SynchronousTestCase):
    """L{ZmqConnection} on pyzmq's public API (the fallback)."""

    public = True

    def test_public_api_in_use(self) -> None:
        """The switch selects the public methods."""
        self.assertIs(zmqutil._send, fastpath.PUBLIC_ZMQ_CALLS[0])


class PinnedPyzmqTests(SynchronousTestCase):
    """
    What the fast path relies on in pyzmq; each test names the attribute, so
    a pyzmq release that changes it fails here by name (and the switch
    falls back to the public API meanwhile).
    """

    def test_backend_socket_send(self) -> None:
        """C{zmq.backend.Socket.send(socket, data, flags, copy)} exists."""
        self.assertTrue(callable(getattr(zmq.backend.Socket, "send", None)))

    def test_backend_socket_recv(self) -> None:
        """C{zmq.backend.Socket.recv(socket, flags, copy)} exists."""
        self.assertTrue(callable(getattr(zmq.backend.Socket, "recv", None)))

    def test_backend_socket_get(self) -> None:
        """C{zmq.backend.Socket.get(socket, option)} exists."""
        self.assertTrue(callable(getattr(zmq.backend.Socket, "get", None)))

    def test_falls_back_when_missing(self) -> None:
        """Without the compiled methods the switch keeps the public API."""
        self.patch(fastpath, "COMPILED_ZMQ_CALLS", (None, None, None))
        self.addCleanup(zmqutil.use_public_api, False)
        zmqutil.use_public_api(False)
        self.assertFalse(zmqutil.fast_path_available())
        self.assertIs(zmqutil._send, fastpath.PUBLIC_ZMQ_CALLS[0])


class BoundsTests(SynchronousTestCase):
    """Every socket made here has bounded queues and a message size limit."""

    def setUp(self) -> None:
        self.context: zmq.Context[Any] = zmq.Context()
        self.addCleanup(self.context.term)
        self.sockets: list[Any] = []
        self.addCleanup(lambda: [s.close(0) for s in self.sockets])

    def test_defaults_on_every_maker(self) -> None:
        """
        C{open_connection} sets C{SNDHWM}/C{RCVHWM} to L{zmqutil.HWM} and
        C{MAXMSGSIZE} to L{zmqutil.MAX_MESSAGE} on sockets it leaves alone,
        binds and connects; the caller's options win.
        """
        reactor = MemoryReactorClock()
        connection = zmqutil.open_connection(reactor, zmq.ROUTER, lambda f: None,
                                             context=self.context)
        bound = zmqutil.open_connection(reactor, zmq.ROUTER, lambda f: None,
                                        bind="inproc://bounds", context=self.context,
                                        options={zmq.MAXMSGSIZE: 1000}).socket
        connected = zmqutil.open_connection(reactor, zmq.DEALER, lambda f: None,
                                            connect="inproc://bounds",
                                            context=self.context).socket
        self.sockets += [connection.socket, bound, connected]
        for socket in (connection.socket, bound, connected):
            self.assertEqual(socket.getsockopt(zmq.SNDHWM), zmqutil.HWM)
            self.assertEqual(socket.getsockopt(zmq.RCVHWM), zmqutil.HWM)
        self.assertEqual(connection.socket.getsockopt(zmq.MAXMSGSIZE), zmqutil.MAX_MESSAGE)
        self.assertEqual(connected.getsockopt(zmq.MAXMSGSIZE), zmqutil.MAX_MESSAGE)
        self.assertEqual(bound.getsockopt(zmq.MAXMSGSIZE), 1000)

    def test_oversize_dropped_before_memory(self) -> None:
        """
        Over TCP, a message above C{MAXMSGSIZE} never reaches the handler
        (ZMQ drops the peer); a later peer's small message does.
        """
        got: list[list[bytes]] = []
        router = zmqutil.open_connection(MemoryReactorClock(), zmq.ROUTER, got.append,
                                         bind="tcp://127.0.0.1:*", context=self.context,
                                         options={zmq.MAXMSGSIZE: 1024})
        self.sockets.append(router.socket)
        address = router.endpoint
        assert address is not None
        big = self.context.socket(zmq.DEALER)
        small = self.context.socket(zmq.DEALER)
        self.sockets += [big, small]
        big.connect(address)
        small.connect(address)
        big.send(b"x" * 100_000)
        small.send(b"ok")
        _wait_readable(router.socket)
        time.sleep(0.2)
        router.doRead()
        self.assertEqual([m[-1] for m in got], [b"ok"])
