# -*- test-case-name: tests.test_plesty_server,tests.test_leco_coordinator -*-
"""
The ZeroMQ socket reader shared by the ZMQ protocols (PLESTY and LECO).

L{ZmqConnection} puts one pyzmq socket on a Twisted reactor without txzmq
(txzmq uses the global reactor, schedules a C{callLater(0)} after every send
and hands frames over through the legacy logger):

  - the socket's C{FD} is registered as an C{IReadDescriptor}, and every
    wakeup reads I{all} pending messages (at most 1000, or 5 ms of
    handling, then it yields to the reactor and comes back at once);
  - the ZMQ C{FD} is edge-triggered (it only says "the events may have
    changed"), so after every operation outside L{ZmqConnection.doRead}
    (send, connect, setsockopt) the socket's C{EVENTS} is checked again and
    a read is scheduled when a message is waiting;
  - frames shorter than L{COPY_THRESHOLD} are copied into ZeroMQ (cheaper),
    longer ones (array buffers) go to the wire without a copy;
  - incoming frames are C{bytes} (C{copy=True}, cheapest for small messages)
    or, with C{copy=False}, C{zmq.Frame}s whose C{buffer} is not copied;
  - it calls pyzmq's compiled (Cython) methods with plain-int flags,
    skipping the sugar layer's ~10 us of per-message overhead.  They come
    from L{twisted_lab.fastpath} (path C{zmq-compiled}), behind its switch:
    L{use_public_api} (or C{TWISTED_LAB_SLOW_PATHS=zmq-compiled} in the
    environment) uses C{Socket.send}/C{recv}/C{getsockopt} instead, and so
    does a pyzmq whose backend lacks those methods.

One usage style: L{open_connection} is the only way to make one.  It
makes the socket (options set before it binds or connects, closed again if
that fails), binds or connects it, and hands each message to a callback;
protocol objects hold the L{ZmqConnection} it returns and never subclass it.

One context policy, by what a socket does:

  - a service that I{binds} (the LECO Coordinator, the LECO data proxy, a
    PLESTY server) owns its context: L{service_context} when it starts,
    L{end_context} when it stops, after closing its connections.  Every
    socket it makes (its ZAP handler and a Coordinator's links to other
    Coordinators too) lives in that context.  Ending it waits until libzmq
    has really released the listening port (a closed socket's listener
    otherwise lingers in libzmq's I/O thread for a moment), so the service
    can start again at once on the same fixed port, and the wait is bounded
    by the longest C{LINGER} of its sockets;
  - everything that only connects (LECO Components, PLESTY clients, data
    publishers) uses L{shared_context}: connecting has no port to release,
    and one context keeps the I/O threads to one.
"""
from __future__ import annotations

import time
import weakref
from typing import Any, Callable, Sequence

import zmq
from twisted.internet.interfaces import IDelayedCall, IReadDescriptor
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_lab import fastpath
from twisted_lab.flow import PeerSendBudget
from twisted_lab.ratelog import BadInputLog

__all__ = ["ZmqConnection", "open_connection", "bound_address", "last_endpoint",
           "is_loopback", "shared_context", "service_context", "end_context",
           "COPY_THRESHOLD", "use_public_api", "fast_path_available", "HWM", "MAX_MESSAGE",
           "DEFAULT_OPTIONS", "large_size"]

#: Messages queued per peer and direction (ZMQ's C{SNDHWM}/C{RCVHWM}) on
#: every socket: a peer that does not read loses messages past it (PUB,
#: ROUTER) or makes our send fail (DEALER), instead of growing memory.
HWM = 1000
#: Largest incoming message (C{MAXMSGSIZE}) on every socket unless its maker
#: says otherwise: ZMQ drops a peer announcing a bigger one before it is in
#: memory.  Room for the biggest frame the lab makes (a 4096 x 4096 float64
#: camera, 128 MiB) and its envelope.
MAX_MESSAGE = 160 * 1024 * 1024
#: The options every socket made here starts with.
DEFAULT_OPTIONS: dict[int, Any] = {zmq.SNDHWM: HWM, zmq.RCVHWM: HWM,
                                   zmq.MAXMSGSIZE: MAX_MESSAGE}

#: Frames shorter than this are copied into ZeroMQ (cheaper than a zero-copy
#: L{zmq.Frame}); longer ones are sent without copying.
COPY_THRESHOLD = 65536

#: Messages read per reactor wakeup before yielding to other sources.
_BATCH = 1000
#: Seconds of handling per reactor wakeup before yielding (checked every
#: 16 messages): a flood of costly messages does not hold the reactor.
_BUDGET = 0.005

def large_size(frames: Sequence[Any]) -> int:
    """The bytes in C{frames} that go out without a copy (L{COPY_THRESHOLD} or more)."""
    size = 0
    for frame in frames:
        n = len(frame) if type(frame) is bytes else memoryview(frame).nbytes
        if n >= COPY_THRESHOLD:
            size += n
    return size


def fast_path_available() -> bool:
    """C{True} when this pyzmq has the compiled methods the fast path calls."""
    return all(f is not None for f in fastpath.COMPILED_ZMQ_CALLS)


def use_public_api(public: bool) -> None:
    """
    Choose how sockets are driven: C{True} for pyzmq's public methods,
    C{False} for the compiled fast path (when available; see
    L{twisted_lab.fastpath}).  Takes effect at once for every L{ZmqConnection}.
    """
    global _send, _recv, _get
    fastpath.set_enabled("zmq-compiled", not public)
    _send, _recv, _get = fastpath.zmq_calls()


_send, _recv, _get = fastpath.zmq_calls()
_NOBLOCK = int(zmq.NOBLOCK)
_MORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_RCVMORE = int(zmq.RCVMORE)
_POLLIN = int(zmq.POLLIN)

#: "message not sent" lines, rate-limited per connection (a slow reader
#: past its high-water mark would otherwise log once per message).
_not_sent = BadInputLog(Logger(namespace=__name__))

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")

_context: zmq.Context[Any] | None = None


def shared_context() -> zmq.Context[Any]:
    """
    The process-wide ZeroMQ context, for sockets that only connect
    (L{open_connection}'s default).
    """
    global _context
    if _context is None or _context.closed:
        _context = zmq.Context()
    return _context


def service_context() -> zmq.Context[Any]:
    """
    A new context for a service that binds: it owns it, and ends it with
    L{end_context} when it stops.
    """
    return zmq.Context()


def end_context(context: zmq.Context[Any] | None, *owned: Any) -> None:
    """
    Close what a service made in its context, then terminate the context.

    @param context: the service's context (C{None}: it has none, nothing to end).
    @param owned: its connections and ZAP registrations (anything with a
        C{close()}; C{None}s are skipped), closed first, in order.

    It returns when libzmq has released every endpoint of the context, so the
    same address can be bound again at once; that waits at most the longest
    C{LINGER} of the sockets closed last (0 for a listener, at most 500 ms
    for replies still being delivered).  A socket left open is closed with
    C{LINGER} 0 rather than waited for.
    """
    for thing in owned:
        if thing is not None:
            thing.close()
    if context is None:
        return
    # anything else made here (an in-process peer on an inproc endpoint of
    # this context) is closed properly, off the reactor, before the context goes
    for connection in list(_made_in.pop(context, ())):
        connection.close()
    for address in [a for a, c in _inproc_owner.items() if c is context]:
        del _inproc_owner[address]
    if not context.closed:
        context.destroy(linger=0)


#: The connections made in each context (so that ending it closes them all).
_made_in: weakref.WeakKeyDictionary[zmq.Context[Any], weakref.WeakSet[ZmqConnection]] = \
    weakref.WeakKeyDictionary()
#: The context of each C{inproc://} endpoint a service bound in its own context.
_inproc_owner: dict[str, zmq.Context[Any]] = {}


def _context_for(context: zmq.Context[Any] | None, connect: str | None) -> zmq.Context[Any]:
    """
    The context a new socket goes in: the one given; for a connection to an
    C{inproc://} endpoint, the context that bound it (inproc is
    context-local); else L{shared_context}.
    """
    if context is not None:
        return context
    if connect is not None and connect.startswith("inproc://"):
        owner = _inproc_owner.get(connect)
        if owner is not None and not owner.closed:
            return owner
    return shared_context()


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


def _new_socket(context: zmq.Context[Any], kind: int, linger: int,
                options: dict[int, Any] | None) -> zmq.Socket[Any]:
    socket: zmq.Socket[Any] = context.socket(kind)
    try:
        socket.setsockopt(zmq.LINGER, linger)
        for option, value in {**DEFAULT_OPTIONS, **(options or {})}.items():
            socket.setsockopt(option, value)
    except BaseException:
        socket.close(0)
        raise
    return socket


def _attached_socket(context: zmq.Context[Any], kind: int, linger: int,
                     options: dict[int, Any] | None, bind: Sequence[str],
                     connect: str | None) -> tuple[zmq.Socket[Any], list[str]]:
    """
    A new socket bound to each of C{bind} (or connected to C{connect}),
    with the endpoints really bound; closed if that fails.
    """
    socket = _new_socket(context, kind, linger, options)
    endpoints = []
    try:
        for address in bind:
            socket.bind(address)
            endpoints.append(last_endpoint(socket))
        if connect is not None:
            socket.connect(connect)
    except BaseException:
        socket.close(0)
        raise
    return socket, endpoints


def last_endpoint(socket: zmq.Socket[Any]) -> str:
    """The endpoint a socket bound last (resolves the port of C{tcp://127.0.0.1:*})."""
    value = socket.getsockopt(zmq.LAST_ENDPOINT)
    return value.decode() if isinstance(value, bytes) else str(value)


#: The address a socket really bound (the port chosen for C{:*}).
bound_address = last_endpoint


@implementer(IReadDescriptor)
class ZmqConnection:
    """
    One ZMQ socket read on the reactor.

    Made by L{open_connection} (not subclassed): each incoming multipart
    message goes to its C{on_message} callback.

    @ivar socket: the pyzmq socket (owned: L{close} closes it, honouring its
        C{LINGER}).
    @ivar closed: C{True} once L{close}d.
    @ivar copy: receive C{bytes} (C{True}) or uncopied C{zmq.Frame}s.
    @ivar large_from: with C{copy}, frames at this index or later that are
        L{COPY_THRESHOLD} bytes or longer are received uncopied, as
        C{zmq.Frame}s (buffers; C{frame.bytes} copies): big binary payloads
        are then never copied on their way through.  C{None}: every frame
        is C{bytes}.
    @ivar track_properties: keep each message's first frame as
        L{current_frame} (for its ZAP properties).
    @ivar endpoints: the addresses really bound (ports resolved), in order.
    @ivar endpoint: the first of them, or C{None}.
    @ivar name: what log lines call it.
    """

    log = Logger()

    def __init__(self, reactor: Any, socket: zmq.Socket[Any],
                 on_message: Callable[[list[Any]], object],
                 copy: bool = True, large_from: int | None = None,
                 track_properties: bool = False, name: str = "ZmqConnection") -> None:
        """
        @param reactor: an C{IReactorFDSet} and C{IReactorTime}.
        @param socket: the socket, already configured (it is now owned).
        @param on_message: called with each message's frames.
        @param copy: C{True} for frames as C{bytes}, C{False} for
            C{zmq.Frame}s (C{frame.buffer} is not copied: large arrays).
        """
        self.reactor = reactor
        self.socket = socket
        self.on_message = on_message
        self.copy = copy
        self.large_from = large_from
        self.track_properties = track_properties
        self.name = name
        self.endpoints: list[str] = []
        self.endpoint: str | None = None
        self.closed = False
        #: while L{messageReceived} runs, the first frame (a C{zmq.Frame}) of
        #: the message when L{track_properties} is set: C{current_frame.get(
        #: "User-Id")} / C{"Peer-Address"} describe the sending connection
        self.current_frame: Any = None
        self._reading = False
        self._scheduled: IDelayedCall | None = None
        self._fd = int(socket.getsockopt(zmq.FD))
        reactor.addReader(self)
        self._check()

    # -- socket set-up -------------------------------------------------------------

    def setsockopt(self, option: int, value: Any) -> None:
        """Set a socket option."""
        self.socket.setsockopt(option, value)
        self._check()

    # -- IReadDescriptor -----------------------------------------------------------

    def fileno(self) -> int:
        """The socket's notification file descriptor (-1 once closed)."""
        return -1 if self.closed else self._fd

    def logPrefix(self) -> str:
        return self.name

    def doRead(self) -> None:
        """Read every pending message and hand each to L{messageReceived}."""
        if self._scheduled is not None:
            if self._scheduled.active():
                self._scheduled.cancel()
            self._scheduled = None
        if self._reading:
            return
        self._reading = True
        socket, copy = self.socket, self.copy
        started = time.monotonic()
        large_from = self.large_from if copy else None
        try:
            count = 0
            while not self.closed:
                if not _get(socket, _EVENTS) & _POLLIN:
                    break
                try:
                    if self.track_properties:
                        # the first frame as a zmq.Frame: its connection's ZAP
                        # User-Id and Peer-Address (see current_frame)
                        first = _recv(socket, _NOBLOCK, False)
                        self.current_frame = first
                        frames = [first.bytes if copy else first]
                    else:
                        frames = [_recv(socket, _NOBLOCK, copy)]
                    while _get(socket, _RCVMORE):
                        if large_from is not None and len(frames) >= large_from:
                            frame = _recv(socket, _NOBLOCK, False)
                            frames.append(frame.bytes if len(frame) < COPY_THRESHOLD
                                          else frame)
                        else:
                            frames.append(_recv(socket, _NOBLOCK, copy))
                except zmq.Again:
                    break
                try:
                    self.messageReceived(frames)
                except Exception:
                    self.log.failure("handling a message on {connection} failed",
                                     connection=self.logPrefix())
                count += 1
                if count >= _BATCH or (not count & 15
                                       and time.monotonic() - started > _BUDGET):
                    # let other sources run; come back at once
                    self._scheduled = self.reactor.callLater(0, self.doRead)
                    break
        finally:
            self._reading = False
        if self._scheduled is None:
            self._check()

    def connectionLost(self, reason: Failure) -> None:
        """The reactor dropped us (it is shutting down): close the socket."""
        self.close()

    # -- ours ------------------------------------------------------------------------

    def messageReceived(self, frames: list[Any]) -> None:
        """
        One multipart message arrived: hand it to C{on_message}.

        @param frames: C{bytes}, or with C{copy=False} C{zmq.Frame}s
            (C{frame.bytes} copies, C{frame.buffer} does not).
        """
        self.on_message(frames)

    def send_tracked(self, frames: Sequence[Any]) -> zmq.MessageTracker | None:
        """
        L{send}, tracking the largest frame (sent without a copy): the
        tracker is C{done} once ZeroMQ wrote it out, so the caller can tell
        a peer that does not read.

        @return: the tracker, or C{None} when the message was not sent.
        """
        if self.closed:
            return None
        socket = self.socket
        sizes = [len(f) if type(f) is bytes else memoryview(f).nbytes for f in frames]
        biggest = max(range(len(sizes)), key=sizes.__getitem__)
        last = len(sizes) - 1
        tracker = None
        try:
            for i, frame in enumerate(frames):
                flags = _NOBLOCK if i == last else _MORE_NOBLOCK
                if i == biggest:
                    if isinstance(frame, zmq.Frame):
                        frame = frame.buffer  # a received frame, still not copied
                    tracker = _send(socket, frame, flags, False, True)
                else:
                    _send(socket, frame, flags, sizes[i] < COPY_THRESHOLD)
        except zmq.ZMQError as e:
            _not_sent.warn(self.logPrefix(), "{connection}: message not sent ({error})",
                           connection=self.logPrefix(), error=e.strerror)
            self._check()
            return None
        self._check()
        return tracker

    def send_within(self, frames: Sequence[Any], budget: PeerSendBudget,
                    peer: bytes | None = None) -> bool:
        """
        L{send} to one peer, keeping the large frames waiting for it within
        C{budget}: a message with large frames is tracked, and one that
        would take the peer past its budget is not sent (the budget reports
        it).

        @param peer: the peer's key in C{budget}; C{None}: C{frames[0]} (a
            ROUTER identity).
        @return: C{False} when the message was not sent.
        """
        size = large_size(frames)
        if not size:
            return self.send(frames)
        if peer is None:
            peer = bytes(frames[0])
        if not budget.admit(peer, size):
            return False
        tracker = self.send_tracked(frames)
        if tracker is None:
            return False
        budget.sent(peer, tracker, size)
        return True

    def send(self, frames: Sequence[Any]) -> bool:
        """
        Send a multipart message without blocking.

        Frames of L{COPY_THRESHOLD} bytes or more go out without a copy (keep
        the buffer alive and unchanged until ZMQ is done: numpy arrays are
        fine).

        @param frames: C{bytes} or buffers (C{memoryview}, C{numpy.ndarray}).
        @return: C{False} when it could not be sent (closed; the peer is gone
            on a C{ROUTER_MANDATORY} socket; no peer or its queue is full);
            that is logged, never raised.
        @raise TypeError: a frame is not a buffer (nothing is sent).
        """
        if self.closed:
            return False
        socket = self.socket
        # sizes first, so that a bad frame raises before a partial message is queued
        copies = [len(f) < COPY_THRESHOLD if type(f) is bytes
                  else memoryview(f).nbytes < COPY_THRESHOLD for f in frames]
        last = len(copies) - 1
        try:
            for i, frame in enumerate(frames):
                _send(socket, frame, _NOBLOCK if i == last else _MORE_NOBLOCK, copies[i])
        except zmq.ZMQError as e:
            _not_sent.warn(self.logPrefix(), "{connection}: message not sent ({error})",
                           connection=self.logPrefix(), error=e.strerror)
            self._check()
            return False
        self._check()
        return True

    def _check(self) -> None:
        # Any operation on the socket may consume the descriptor's edge.
        if self._reading or self._scheduled is not None or self.closed:
            return
        if _get(self.socket, _EVENTS) & _POLLIN:
            self._scheduled = self.reactor.callLater(0, self.doRead)

    def close(self) -> None:
        """Stop reading and close the socket (idempotent; C{LINGER} applies)."""
        if self.closed:
            return
        self.reactor.removeReader(self)
        if self._scheduled is not None and self._scheduled.active():
            self._scheduled.cancel()
        self._scheduled = None
        self.closed = True
        self.socket.close()


def open_connection(reactor: Any, kind: int, on_message: Callable[[list[Any]], object],
                    *, bind: str | Sequence[str] = (), connect: str | None = None,
                    context: zmq.Context[Any] | None = None, linger: int = 100,
                    options: dict[int, Any] | None = None, copy: bool = True,
                    large_from: int | None = None, track_properties: bool = False,
                    name: str = "ZmqConnection") -> ZmqConnection:
    """
    A L{ZmqConnection} on a new socket: the one way to make one.

    The socket gets L{DEFAULT_OPTIONS} (bounded queues and message size)
    and C{options} before it binds or connects; if that fails it is closed
    and nothing is left on the reactor.

    @param kind: C{zmq.ROUTER}, C{zmq.DEALER}, C{zmq.PUB}, ...
    @param on_message: called with each message's frames (C{bytes}, or
        C{zmq.Frame}s with C{copy=False}).
    @param bind: an address to bind, or several (C{tcp://127.0.0.1:*} picks
        a free port; the connection's C{endpoint}/C{endpoints} say which).
    @param connect: an address to connect to (ZeroMQ connects lazily and
        reconnects by itself).
    @param context: the binding service's own context (L{service_context});
        by default, for C{connect="inproc://..."}, the context that bound
        that endpoint (inproc is context-local), else L{shared_context}
        (see the module's policy).
    @param linger: ms to keep unsent messages after close.
    @param options: further socket options (C{zmq.MAXMSGSIZE} makes ZMQ
        drop a peer sending a bigger message before it is in memory).
    @param copy: see L{ZmqConnection}.
    @param large_from: see L{ZmqConnection.large_from}.
    @param track_properties: see L{ZmqConnection.track_properties}.
    @param name: what log lines call the connection.
    @raise zmq.ZMQError: the address cannot be bound or connected.
    """
    context = _context_for(context, connect)
    addresses = [bind] if isinstance(bind, str) else list(bind)
    socket, endpoints = _attached_socket(context, kind, linger, options, addresses, connect)
    connection = ZmqConnection(reactor, socket, on_message, copy=copy, large_from=large_from,
                               track_properties=track_properties, name=name)
    connection.endpoints = endpoints
    connection.endpoint = endpoints[0] if endpoints else None
    if context is not shared_context():
        _made_in.setdefault(context, weakref.WeakSet()).add(connection)
        for endpoint in endpoints:
            if endpoint.startswith("inproc://"):
                _inproc_owner[endpoint] = context
    return connection
