# -*- test-case-name: tests.test_fastpath -*-
"""
The fast paths that reach below Twisted's, Deferred's and pyzmq's public
hooks, all in one module, each behind a switch.

Everything else in twisted_lab uses public APIs only (C{tests/test_fastpath.py}
greps for it).  Each fast path here has a public fallback that gives the
same results, and the tests pin, by name, every private attribute a fast
path relies on, so a Twisted or pyzmq release that changes one fails there,
not silently in a stream.

The paths (names for L{enabled} and C{TWISTED_LAB_SLOW_PATHS}):

  - C{buffered-reads}: L{read_into_buffers} gives a TCP transport the shape
    of C{asyncio.BufferedProtocol}: while the protocol has a buffer to fill
    (C{get_buffer()}), the socket is read straight into it
    (C{socket.recv_into}) and the protocol told how much arrived
    (C{buffer_updated(n)}); otherwise Twisted's own C{doRead} runs.  Used
    for large PyMoDAQ arrays.  Relies on C{tcp.Connection.doRead} being
    looked up on the instance, and its C{socket}.
  - C{write-through}: L{write_through} writes a small message to the socket
    at once when nothing is queued before it (PyMoDAQ's request/reply
    latency), and L{send_now} sends a big one's arrays from their own
    memory as far as the socket takes them (no copy into Twisted's
    buffer).  Relies on C{tcp.Connection}'s C{dataBuffer},
    C{_tempDataBuffer}, C{producer}, C{connected}, C{disconnecting},
    C{socket}.
  - C{early-read}: L{read_now} reads a just-accepted connection at once
    (LA4 senders write as soon as they connect).  Relies on
    C{tcp.Connection.doRead}.
  - C{fired-result}: L{fired_result} reads the result of a L{Deferred}
    that has already fired and has no callbacks, without adding any.
    Relies on C{Deferred.called}, C{._callbacks} and C{.result}.
  - C{zmq-compiled}: L{zmq_calls} returns pyzmq's compiled
    C{zmq.backend.Socket.send}/C{recv}/C{get} (no sugar layer), else its
    public C{send}/C{recv}/C{getsockopt}.

C{TWISTED_LAB_SLOW_PATHS=all} (or a comma-separated list of names) in the
environment turns paths off for a run; L{set_enabled} does it in code.
"""
from __future__ import annotations

import os
from errno import EWOULDBLOCK
from typing import Any, Callable, Protocol as TypingProtocol, cast

import zmq
from twisted.internet import main, tcp
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

__all__ = ["PATHS", "enabled", "set_enabled", "BufferedReader", "read_into_buffers",
           "stop_reading_into_buffers",
           "set_send_limit", "writer_for", "write_through", "send_now", "read_now",
           "fired_result", "zmq_calls", "NOTHING"]

#: The names of the fast paths.
PATHS = ("buffered-reads", "write-through", "early-read", "fired-result", "zmq-compiled")


def _from_environment() -> set[str]:
    value = os.environ.get("TWISTED_LAB_SLOW_PATHS", "").strip()
    if value in ("", "0", "none"):
        return set(PATHS)
    if value == "all":
        return set()
    return set(PATHS) - {name.strip() for name in value.split(",")}


_enabled = _from_environment()


def enabled(name: str) -> bool:
    """C{True} when the fast path C{name} is on."""
    return name in _enabled


def set_enabled(name: str, on: bool) -> None:
    """
    Turn one fast path (a name of L{PATHS}) on or off; it applies to
    connections made (and, for C{zmq-compiled}, calls chosen) afterwards.

    @raise ValueError: no such path.
    """
    if name not in PATHS:
        raise ValueError(f"no fast path named {name!r}; they are {', '.join(PATHS)}")
    if on:
        _enabled.add(name)
    else:
        _enabled.discard(name)


class BufferedReader(TypingProtocol):
    """The C{asyncio.BufferedProtocol} shape L{read_into_buffers} drives."""

    def get_buffer(self) -> memoryview | None:
        """The memory to read into next, or C{None} for a normal C{dataReceived}."""

    def buffer_updated(self, nbytes: int) -> None:
        """C{nbytes} were written at the start of the last L{get_buffer}."""


def read_into_buffers(transport: Any, reader: BufferedReader) -> bool:
    """
    Make C{transport} read into C{reader}'s buffers while it has one.

    @return: C{True} when installed (a TCP connection with the path on);
        C{False} when the transport keeps calling C{dataReceived} only.
    """
    if not enabled("buffered-reads") or not isinstance(transport, tcp.Connection):
        return False
    original = transport.doRead
    sock = transport.socket

    def doRead() -> Any:
        view = reader.get_buffer()
        if view is None:
            return original()
        try:
            n = sock.recv_into(view)
        except OSError as e:
            if e.args[0] == EWOULDBLOCK:
                return None
            return main.CONNECTION_LOST
        if not n:
            return main.CONNECTION_DONE
        reader.buffer_updated(n)
        return None

    transport.doRead = doRead  # type: ignore[method-assign]
    return True


def stop_reading_into_buffers(transport: Any) -> None:
    """
    Undo L{read_into_buffers} (from the reader's C{connectionLost}): the
    transport's own C{doRead} again.  The installed C{doRead} refers to the
    transport and to the reader, a reference cycle; without this the
    connection's objects wait for a full garbage collection, which a flood
    of short connections makes long (a pause of the reactor).
    """
    if isinstance(transport, tcp.Connection):
        vars(transport).pop("doRead", None)


def set_send_limit(transport: Any, limit: int) -> None:
    """Let a TCP transport write up to C{limit} bytes a call (Twisted: 128 KiB)."""
    if enabled("buffered-reads") and isinstance(transport, tcp.Connection):
        transport.SEND_LIMIT = limit


def writer_for(transport: Any) -> Callable[[bytes], None]:
    """
    What to write small messages with: L{write_through} on a TCP connection
    with the path on, else C{transport.write}.
    """
    if enabled("write-through") and isinstance(transport, tcp.Connection):
        return lambda data: write_through(transport, data)
    return cast(Callable[[bytes], None], transport.write)


def write_through(transport: Any, data: bytes) -> None:
    """
    Write C{data}: straight to the socket when nothing is queued before it
    (the rest, if the socket takes less, through C{transport.write}),
    otherwise, or with the path off, through C{transport.write}.
    """
    sent = 0
    if isinstance(transport, tcp.Connection) and transport.producer is None:
        sent = send_now(transport, data)
    if sent < len(data):  # Twisted's own write path meets any error
        transport.write(data[sent:] if sent else data)


def send_now(transport: Any, data: Any) -> int:
    """
    Send as much of C{data} (a buffer: C{bytes}, a C{memoryview}) straight to
    the socket as it takes now, without a copy, when nothing is queued before
    it (the C{write-through} path).

    @return: how many bytes went; 0 with the path off, on another transport,
        when something is queued, the socket is full or on an error (which
        Twisted's own write path then meets).
    """
    if (not enabled("write-through") or not isinstance(transport, tcp.Connection)
            or transport.dataBuffer or transport._tempDataBuffer
            or not transport.connected or transport.disconnecting):
        return 0
    try:
        sent: int = transport.socket.send(data)
        return sent
    except OSError:
        return 0


def read_now(transport: Any) -> Any:
    """
    Read a just-accepted TCP connection at once, not on the reactor's next
    turn.

    @return: C{None} when read (or not attempted: the path is off, or not a
        TCP server connection), else the reason the connection ended
        (C{doRead}'s return value), which the caller must act on.
    """
    if not enabled("early-read") or not isinstance(transport, tcp.Server):
        return None
    return transport.doRead()


#: L{fired_result}'s answer for "no result available now".
NOTHING: Any = object()


def fired_result(d: Deferred[Any]) -> Any:
    """
    The result of C{d} when it has fired with a value (not a failure) and
    has no callbacks pending, else L{NOTHING}; C{d} is left untouched.
    """
    if not enabled("fired-result"):
        return NOTHING
    # (Deferred.callbacks is a deprecated property since Twisted 25.5; the
    # chain itself is _callbacks)
    if d.called and not d._callbacks:
        result = d.result
        if not isinstance(result, (Failure, Deferred)):
            return result
    return NOTHING


def _public_send(socket: zmq.Socket[Any], frame: Any, flags: int, copy: bool,
                 track: bool = False) -> Any:
    return socket.send(frame, flags, copy=copy, track=track)


def _public_recv(socket: zmq.Socket[Any], flags: int, copy: bool) -> Any:
    return socket.recv(flags, copy=copy)


def _public_get(socket: zmq.Socket[Any], option: int) -> int:
    return cast(int, socket.getsockopt(option))


#: pyzmq's public methods, with the compiled methods' signatures.
PUBLIC_ZMQ_CALLS = (_public_send, _public_recv, _public_get)

_backend = getattr(zmq.backend, "Socket", None)
#: pyzmq's compiled methods (C{None} where this pyzmq lacks one).
COMPILED_ZMQ_CALLS = (getattr(_backend, "send", None), getattr(_backend, "recv", None),
                      getattr(_backend, "get", None))

ZmqCalls = tuple[Callable[..., Any], Callable[..., Any], Callable[[zmq.Socket[Any], int], int]]


def zmq_calls() -> ZmqCalls:
    """
    C{(send, recv, get)} to drive pyzmq sockets with: the compiled methods
    when the path is on and this pyzmq has them, else the public ones.
    """
    if enabled("zmq-compiled") and all(f is not None for f in COMPILED_ZMQ_CALLS):
        return cast(ZmqCalls, COMPILED_ZMQ_CALLS)
    return PUBLIC_ZMQ_CALLS
