# -*- test-case-name: tests.test_plesty_zmqutil -*-
"""
Small ZeroMQ helpers shared by the ZMQ protocols (PLESTY, and later LECO).

L{ZmqConnection} puts one pyzmq socket on a Twisted reactor without txzmq:
the socket's C{FD} is registered as an C{IReadDescriptor}, and every wakeup
reads I{all} pending messages, with C{copy=False} so that large frames are
never copied in Python.  It takes the reactor as a parameter (txzmq uses the
global one), and it sends with C{copy=False}, so an array buffer goes to the
wire without a copy.

The ZMQ C{FD} is edge-triggered: it only says "the events may have
changed".  So after every operation outside L{ZmqConnection.doRead} the
socket's C{EVENTS} is checked again (L{ZmqConnection.send} does it).
"""
from __future__ import annotations

from typing import Any, Sequence

import zmq
from twisted.internet.interfaces import IReactorFDSet, IReadDescriptor
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["ZmqConnection", "bind_socket", "connect_socket", "bound_address", "is_loopback"]

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


def is_loopback(address: str) -> bool:
    """
    C{True} when a ZMQ address only reaches this machine.

    @param address: C{"tcp://127.0.0.1:5555"}, C{"ipc:///run/lab"}, ...
    """
    if address.startswith(("ipc://", "inproc://")):
        return True
    if not address.startswith("tcp://"):
        return False
    host = address[len("tcp://"):].rsplit(":", 1)[0]
    return host in _LOOPBACK_HOSTS


def bind_socket(context: zmq.Context[Any], kind: int, address: str,
                options: dict[int, Any] | None = None) -> zmq.Socket[Any]:
    """
    Make a socket, set its options, and bind it.

    @param kind: C{zmq.ROUTER}, C{zmq.DEALER}, ...
    @param address: a ZMQ address; C{tcp://127.0.0.1:*} picks a free port.
    @param options: socket options set before binding.
    @raise zmq.ZMQError: the address cannot be bound (the socket is closed).
    """
    socket = context.socket(kind)
    try:
        socket.setsockopt(zmq.LINGER, 0)
        for option, value in (options or {}).items():
            socket.setsockopt(option, value)
        socket.bind(address)
    except BaseException:
        socket.close(0)
        raise
    return socket  # type: ignore[no-any-return]


def connect_socket(context: zmq.Context[Any], kind: int, address: str,
                   options: dict[int, Any] | None = None) -> zmq.Socket[Any]:
    """
    Make a socket, set its options, and connect it (ZMQ connects lazily and
    reconnects by itself).
    """
    socket = context.socket(kind)
    try:
        socket.setsockopt(zmq.LINGER, 0)
        for option, value in (options or {}).items():
            socket.setsockopt(option, value)
        socket.connect(address)
    except BaseException:
        socket.close(0)
        raise
    return socket  # type: ignore[no-any-return]


def bound_address(socket: zmq.Socket[Any]) -> str:
    """The address a socket really bound (the port chosen for C{:*})."""
    endpoint = socket.getsockopt(zmq.LAST_ENDPOINT)
    assert isinstance(endpoint, bytes)
    return endpoint.decode()


@implementer(IReadDescriptor)
class ZmqConnection:
    """
    One ZMQ socket read on the reactor.

    Subclasses implement L{messageReceived}; they set their own attributes
    I{before} calling C{super().__init__()}, because the constructor starts
    reading and may deliver messages at once.

    @ivar socket: the pyzmq socket (owned: L{close} closes it).
    """

    log = Logger()

    def __init__(self, reactor: IReactorFDSet, socket: zmq.Socket[Any]) -> None:
        self.reactor = reactor
        self.socket = socket
        self._reading = False
        self.closed = False
        self._fd = socket.getsockopt(zmq.FD)
        reactor.addReader(self)
        self.doRead()

    # -- IReadDescriptor -----------------------------------------------------------

    def fileno(self) -> int:
        """The socket's notification file descriptor (-1 once closed)."""
        return -1 if self.closed else int(self._fd)

    def logPrefix(self) -> str:
        return self.__class__.__name__

    def doRead(self) -> None:
        """Read every pending message and hand each to L{messageReceived}."""
        if self.closed or self._reading:
            return
        self._reading = True
        socket = self.socket
        try:
            while not self.closed and int(socket.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                try:
                    frames = socket.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                try:
                    self.messageReceived(frames)
                except Exception:
                    self.log.failure("handling a message on {connection} failed",
                                     connection=self.logPrefix())
        finally:
            self._reading = False

    def connectionLost(self, reason: Failure) -> None:
        """The reactor dropped us (it is shutting down): close the socket."""
        self.close()

    # -- ours ------------------------------------------------------------------------

    def messageReceived(self, frames: list[zmq.Frame]) -> None:
        """
        One multipart message arrived.

        @param frames: its frames, not copied (C{frame.bytes} copies,
            C{frame.buffer} does not).
        """
        raise NotImplementedError

    def send(self, frames: Sequence[Any]) -> bool:
        """
        Send a multipart message without blocking.

        Frames of 64 KiB or more go out without a copy (keep the buffer
        alive and unchanged until ZMQ is done: numpy arrays are fine).

        @return: C{False} when it could not be sent (the peer is gone on a
            C{ROUTER_MANDATORY} socket, or its queue is full); that is
            logged, never raised.
        """
        if self.closed:
            return False
        try:
            self.socket.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.ZMQError as e:
            self.log.warn("{connection}: message not sent ({error})",
                          connection=self.logPrefix(), error=e.strerror)
            return False
        finally:
            if not self._reading:
                self.doRead()
        return True

    def close(self) -> None:
        """Stop reading and close the socket (unsent messages are dropped)."""
        if self.closed:
            return
        self.reactor.removeReader(self)
        self.closed = True
        self.socket.close(0)
