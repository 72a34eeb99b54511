# -*- test-case-name: tests.test_leco_component -*-
"""
A minimal ZeroMQ socket on the Twisted reactor.

txzmq schedules a C{callLater(0)} after every send and hands frames to
C{gotMessage} through the legacy logger; for LECO's request/response
traffic this module does the same job with less work per message: it
reads every ready message when the socket's file descriptor becomes
readable, checks C{EVENTS} after each send (the ZeroMQ descriptor is
edge-triggered), and sends frames of 64 KiB or more with C{copy=False} so
that large binary frames are not copied (smaller ones are cheaper to copy).
It calls pyzmq's Cython methods with plain-int flags, skipping the sugar
layer's per-frame overhead.

Sockets are created from a shared L{zmq.Context} (L{shared_context}); the
owner closes its sockets, the context lives as long as the process.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import zmq
from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["ZSocket", "shared_context", "last_endpoint", "COPY_THRESHOLD"]

#: Frames shorter than this are copied into ZeroMQ (cheaper than a zero-copy
#: L{zmq.Frame}); longer ones are sent without copying.
COPY_THRESHOLD = 65536

# The Cython methods and plain-int constants: pyzmq's sugar layer (flag
# enums, per-frame type checks, C{recv_multipart}) costs ~10 us a message.
_send = zmq.backend.Socket.send
_recv = zmq.backend.Socket.recv
_get = zmq.backend.Socket.get
_NOBLOCK = int(zmq.NOBLOCK)
_MORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_RCVMORE = int(zmq.RCVMORE)
_POLLIN = int(zmq.POLLIN)

_context: zmq.Context[Any] | None = None


def shared_context() -> zmq.Context[Any]:
    """The process-wide ZeroMQ context used by LECO sockets."""
    global _context
    if _context is None or _context.closed:
        _context = zmq.Context()
    return _context


def last_endpoint(socket: zmq.Socket[Any]) -> str:
    """The endpoint a socket bound last (resolves C{tcp://127.0.0.1:*})."""
    value = socket.getsockopt(zmq.LAST_ENDPOINT)
    return value.decode() if isinstance(value, bytes) else str(value)


@implementer(IReadDescriptor)
class ZSocket:
    """
    A ZeroMQ socket whose incoming multipart messages are delivered on the
    reactor thread to C{on_message(frames)}.

    @param reactor: the reactor (C{addReader}, C{callLater}).
    @param socket_type: C{zmq.ROUTER}, C{zmq.DEALER}, C{zmq.PUB}, ...
    @param on_message: called with each message's frames (a list of C{bytes}).
    @param linger: ms to keep unsent messages after close.
    """

    log = Logger()

    def __init__(self, reactor: Any, socket_type: int,
                 on_message: Callable[[list[bytes]], None], linger: int = 100,
                 context: zmq.Context[Any] | None = None) -> None:
        self.reactor = reactor
        self.on_message = on_message
        self.socket: zmq.Socket[Any] | None = (context or shared_context()).socket(socket_type)
        self.socket.setsockopt(zmq.LINGER, linger)
        self.socket.setsockopt(zmq.SNDHWM, 0)
        self.socket.setsockopt(zmq.RCVHWM, 0)
        self._fd = self.socket.getsockopt(zmq.FD)
        self._scheduled: Any = None
        self._reading = False
        reactor.addReader(self)

    def bind(self, address: str) -> str:
        """Bind; return the endpoint actually bound (port resolved)."""
        assert self.socket is not None
        self.socket.bind(address)
        return last_endpoint(self.socket)

    def connect(self, address: str) -> None:
        """Connect to C{address} (ZeroMQ reconnects by itself)."""
        assert self.socket is not None
        self.socket.connect(address)
        self._check()

    def setsockopt(self, option: int, value: Any) -> None:
        """Set a socket option."""
        assert self.socket is not None
        self.socket.setsockopt(option, value)
        self._check()

    def send(self, frames: Sequence[Any]) -> bool:
        """
        Send a multipart message without blocking.

        @return: C{False} when ZeroMQ refused it (no peer, queue full, closed);
            the caller decides whether that matters.
        """
        socket = self.socket
        if socket is None:
            return False
        last = len(frames) - 1
        try:
            for i, frame in enumerate(frames):
                _send(socket, frame, _NOBLOCK if i == last else _MORE_NOBLOCK,
                      len(frame) < COPY_THRESHOLD)
        except zmq.Again:
            self._check()
            return False
        except zmq.ZMQError as e:
            self.log.warn("zmq send failed: {error}", error=str(e))
            self._check()
            return False
        self._check()
        return True

    def _check(self) -> None:
        # Any operation on the socket may consume the descriptor's edge.
        if self._reading or self._scheduled is not None or self.socket is None:
            return
        if _get(self.socket, _EVENTS) & _POLLIN:
            self._scheduled = self.reactor.callLater(0, self.doRead)

    # -- IReadDescriptor ----------------------------------------------------------

    def fileno(self) -> int:
        return self._fd if self.socket is not None else -1

    def logPrefix(self) -> str:
        return "ZSocket"

    def doRead(self) -> None:
        if self._scheduled is not None:
            if self._scheduled.active():
                self._scheduled.cancel()
            self._scheduled = None
        if self._reading:
            return
        self._reading = True
        try:
            count = 0
            while self.socket is not None:
                socket = self.socket
                if not _get(socket, _EVENTS) & _POLLIN:
                    break
                try:
                    frames = [_recv(socket, _NOBLOCK)]
                    while _get(socket, _RCVMORE):
                        frames.append(_recv(socket, _NOBLOCK))
                except zmq.Again:
                    break
                try:
                    self.on_message(frames)
                except Exception:
                    self.log.failure("handling a ZeroMQ message failed")
                count += 1
                if count >= 1000:
                    # let other sources run; come back at once
                    self._scheduled = self.reactor.callLater(0, self.doRead)
                    break
        finally:
            self._reading = False
        if self._scheduled is None:
            self._check()

    def connectionLost(self, reason: Failure) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading and close the socket (idempotent)."""
        if self.socket is None:
            return
        self.reactor.removeReader(self)
        if self._scheduled is not None and self._scheduled.active():
            self._scheduled.cancel()
        self._scheduled = None
        socket, self.socket = self.socket, None
        socket.close()
