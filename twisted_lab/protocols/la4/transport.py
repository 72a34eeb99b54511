# -*- test-case-name: tests.test_la4_transport -*-
"""
LA4 framing: one JSON document per TCP connection (spec §2).

L{DocumentReceiver} reads one document: after each chunk it tries to decode a
JSON object from the start of the buffer, and stops at the first complete one
or at EOF; it enforces a size cap and a read deadline, then closes.  The
factory (L{DocumentFactory}) bounds concurrent connections, can refuse peers
outside an allow-list, and hands each decoded L{Message} (or each rejection)
to a handler.

L{send_message} opens a new connection per message with C{connectTCP}:
connect (2 s timeout), write the document, close.  (A bare non-blocking
socket sender was tried and removed: C{bench/la4.py} showed no consistent
gain, and its delivery report came a reactor turn after the write, so a fast
node's output could arrive before it and be ignored.)
"""
from __future__ import annotations

import ipaddress
import json
from typing import Any, Callable, Protocol as TypingProtocol, Sequence

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import (IAddress, IDelayedCall, IListeningPort, IReactorTCP,
                                         IReactorTime)
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_lab import fastpath
from twisted_lab.errors import ProtocolError
from twisted_lab.protocols.la4.message import Message, decode_object
from twisted_lab.ratelog import BadInputLog
from twisted_lab.waiting import Waiters

__all__ = ["DocumentReceiver", "DocumentFactory", "DocumentHandler", "ListenWaiters", "send_message",
           "listen_now", "stop_listening",
           "Outgoing",
           "peer_host", "MAX_MESSAGE", "READ_TIMEOUT", "CONNECT_TIMEOUT", "MAX_CONNECTIONS",
           "FIRST_BYTE_TIMEOUT"]

#: Largest document accepted (spec §6.2.5).
MAX_MESSAGE = 64 * 1024
#: Seconds a sender has to deliver its whole document.
READ_TIMEOUT = 5.0
#: Seconds to wait for an outgoing connection.
CONNECT_TIMEOUT = 2.0
#: Connections read at the same time, at most.  At the cap the listener
#: stops accepting (new connections wait in the kernel's backlog, and are
#: refused by the kernel when it is full) until one ends.
MAX_CONNECTIONS = 32
#: Seconds a sender has, after the connection is accepted, to send its first
#: byte (senders write at once; a silent connection only holds a place).
FIRST_BYTE_TIMEOUT = 1.0

_decoder = json.JSONDecoder(parse_constant=lambda name: _reject(name))


def _reject(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class DocumentHandler(TypingProtocol):
    """What a L{DocumentFactory} hands its documents to."""

    def message_received(self, message: Message, host: str) -> None:
        """A valid document arrived from C{host} (the observed peer address)."""

    def message_rejected(self, error: ProtocolError, host: str) -> None:
        """A bad document arrived from C{host}; C{error.details} may hold a C{port}."""


def peer_host(address: IAddress | None) -> str:
    """The observed IP of a TCP peer address (C{""} when unknown)."""
    if isinstance(address, (IPv4Address, IPv6Address)):
        return address.host
    return ""


class DocumentReceiver(Protocol):
    """
    Read one JSON object from the connection, then close it.

    The decode is attempted only when a chunk contains C{"}"}, from the
    start of the buffer (C{raw_decode}), so trailing bytes are ignored and
    the sender need not close first.
    """

    log = Logger()
    factory: DocumentFactory

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._done = False
        self._timer: IDelayedCall | None = None
        self._first: IDelayedCall | None = None
        self.host = ""

    def connectionMade(self) -> None:
        assert self.transport is not None
        if not self.host:  # the factory sets it from the accepted address
            self.host = peer_host(self.transport.getPeer())
        self._timer = self.factory.clock.callLater(self.factory.read_timeout, self._timed_out)
        self._first = self.factory.clock.callLater(
            min(self.factory.first_byte_timeout, self.factory.read_timeout), self._silent)
        # The sender writes at once after connecting: its document is
        # usually here already.  Read it now instead of on the reactor's
        # next turn (a nothing-yet read costs one failed recv).
        why = fastpath.read_now(self.transport)
        if why is not None and not self._done:
            self.transport.loseConnection()  # closed or failed before a document

    def dataReceived(self, data: bytes) -> None:
        if self._first is not None:
            if self._first.active():
                self._first.cancel()
            self._first = None
        if self._done:
            return
        self._buffer += data
        if len(self._buffer) > self.factory.max_message:
            self._finish(error=ProtocolError(
                f"message larger than {self.factory.max_message} bytes"))
            return
        start = self._buffer.lstrip()[:1]
        if start and start != b"{":
            self._finish(error=ProtocolError("message is not a JSON object"))
            return
        if b"}" in data:
            self._try_decode(final=False)

    def _try_decode(self, final: bool) -> None:
        try:
            text = bytes(self._buffer).decode("utf-8")
        except UnicodeDecodeError as e:
            if final or e.reason != "unexpected end of data":
                self._finish(error=ProtocolError(f"message is not UTF-8: {e.reason}"))
            return
        stripped = text.lstrip()
        if not stripped:
            if final:
                self._finish(error=ProtocolError("empty message"))
            return
        try:
            obj, _end = _decoder.raw_decode(stripped)
        except (ValueError, RecursionError) as e:
            if final:
                self._finish(error=ProtocolError(f"message is not JSON: {e}"))
            return
        try:
            message = decode_object(obj)
        except ProtocolError as e:
            self._finish(error=e)
            return
        self._finish(message=message)

    def _finish(self, message: Message | None = None,
                error: ProtocolError | None = None, quiet: bool = False) -> None:
        if self._done:
            return
        self._done = True
        self._buffer = bytearray()
        for timer in (self._timer, self._first):
            if timer is not None and timer.active():
                timer.cancel()
        self._timer = self._first = None
        if self.transport is not None:
            self.transport.loseConnection()
        handler = self.factory.handler
        try:
            if error is not None:
                if not quiet:
                    self.factory.bad_input.warn(("dropped", self.host),
                                                "dropped LA4 message from {peer}: {reason}",
                                                peer=self.host, reason=error.message)
                handler.message_rejected(error, self.host)
            elif message is not None:
                handler.message_received(message, self.host)
        except Exception:
            self.log.failure("LA4 message handler failed for {peer}", peer=self.host)

    def _silent(self) -> None:
        self._first = None
        if self._done:
            return
        self.factory.bad_input.warn(("silent", self.host), "LA4 peer {peer} sent nothing in "
                                    "{timeout} s", peer=self.host,
                                    timeout=self.factory.first_byte_timeout)
        self._finish(error=ProtocolError(
            f"nothing sent within {self.factory.first_byte_timeout} s"), quiet=True)
        if self.transport is not None:
            _abort(self.transport)

    def _timed_out(self) -> None:
        self._timer = None
        if self._done:
            return
        self.factory.bad_input.warn(("slow", self.host), "LA4 peer {peer} did not finish its "
                                    "message in {timeout} s", peer=self.host,
                                    timeout=self.factory.read_timeout)
        self._finish(error=ProtocolError(
            f"message not complete after {self.factory.read_timeout} s"))
        if self.transport is not None:
            _abort(self.transport)

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        self.factory.connection_ended()
        for timer in (self._timer, self._first):
            if timer is not None and timer.active():
                timer.cancel()
        self._timer = self._first = None
        if not self._done:
            self._try_decode(final=True)
            if not self._done:  # an incomplete prefix of an object, e.g. b"{"
                self._finish(error=ProtocolError("message ended before the JSON object did"))


def _abort(transport: Any) -> None:
    """Close at once, without waiting for buffered writes (TCP transports)."""
    getattr(transport, "abortConnection", transport.loseConnection)()


class _Refused(Protocol):
    """Closes a connection unread (peer not allowed, or too many connections)."""

    def connectionMade(self) -> None:
        assert self.transport is not None
        _abort(self.transport)


#: The callers waiting for a service to listen: C{when()} gives each its own
#: cancellable L{Deferred}, fired with the port (C{fire}) or the failure (C{fail}).
ListenWaiters = Waiters[int]


def listen_now(d: Deferred[IListeningPort], listening: Callable[[IListeningPort], None],
               failed: Callable[[Failure], None], waiters: ListenWaiters,
               stop: Callable[[], object]) -> None:
    """
    Route a listen's outcome (what the coordinator and the simulated node
    do on start).  TCP endpoints listen at once, so a bind failure fails the
    C{waiters}, stops the service (C{stop}) and is raised here: the lab then
    does not run half-started (L{twisted_lab.startup} reports it).  An
    outcome that comes later goes to C{listening} or C{failed}.
    """
    outcome: list[Any] = []
    d.addBoth(outcome.append)
    if not outcome:
        d.addCallback(lambda _: failed(outcome[0]) if isinstance(outcome[0], Failure)
                      else listening(outcome[0]))
        return
    if isinstance(outcome[0], Failure):
        waiters.fail(outcome[0])
        stop()
        outcome[0].raiseException()
    listening(outcome[0])


def stop_listening(port: IListeningPort | None, outgoing: Outgoing) -> Deferred[None]:
    """
    Stop a service's listener and wait for its outgoing messages to end
    (what the coordinator and the simulated node do on stop).

    @param port: the listening port, or C{None} if it never listened.
    @return: a L{Deferred} firing once both are done.
    """
    waits = [outgoing.drained()]
    if port is not None:
        stopped = port.stopListening()
        waits.append(stopped if isinstance(stopped, Deferred) else succeed(None))
    return gatherResults(waits, consumeErrors=True).addCallback(lambda _: None)


class DocumentFactory(Factory):
    """
    Builds a L{DocumentReceiver} per accepted connection.

    @param handler: gets each message or rejection.
    @param clock: for the read deadline.
    @param allowed: networks (C{"127.0.0.0/8"}) peers must be in; empty for any.
    @param first_byte_timeout: seconds from accept to the first byte.
    @ivar port: the listening port, once L{listening} was called: at
        C{max_connections} it stops accepting until a connection ends.
    """

    log = Logger()
    noisy = False

    def __init__(self, handler: DocumentHandler, clock: IReactorTime,
                 max_message: int = MAX_MESSAGE, read_timeout: float = READ_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS, allowed: Sequence[str] = (),
                 first_byte_timeout: float = FIRST_BYTE_TIMEOUT) -> None:
        self.handler = handler
        self.clock = clock
        self.max_message = max_message
        self.read_timeout = read_timeout
        self.first_byte_timeout = first_byte_timeout
        self.max_connections = max_connections
        self.allowed = [ipaddress.ip_network(n, strict=False) for n in allowed]
        self.connections = 0
        self.port: Any = None
        self.paused = False
        self.bad_input = BadInputLog(self.log, clock)

    def listening(self, port: IListeningPort) -> None:
        """The port this factory serves (to stop accepting at the cap)."""
        self.port = port

    def _pause(self) -> None:
        stop = getattr(self.port, "stopReading", None)
        if stop is not None and not self.paused:
            self.paused = True
            stop()
            self.bad_input.warn("paused", "LA4 listener: {count} connections open; new ones "
                                "wait until one ends", count=self.connections)

    def connection_ended(self) -> None:
        """A connection ended: accept again if the cap had paused the listener."""
        self.connections -= 1
        if self.paused and self.connections < self.max_connections:
            self.paused = False
            if self.port is not None and getattr(self.port, "connected", True):
                self.port.startReading()

    def _allowed(self, host: str) -> bool:
        if not self.allowed:
            return True
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in network for network in self.allowed)

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        host = peer_host(addr)
        if not self._allowed(host):
            self.log.warn("refused LA4 connection from {peer}: not in the allow-list",
                          peer=host)
            return _Refused()
        if self.connections >= self.max_connections:
            self.bad_input.warn(("refused", host), "refused LA4 connection from {peer}: "
                                "{count} connections open", peer=host, count=self.connections)
            return _Refused()
        self.connections += 1
        if self.connections >= self.max_connections:
            self._pause()
        proto = DocumentReceiver()
        proto.factory = self
        proto.host = host
        return proto


class _Sender(Protocol):
    """Writes one document and closes; the factory's C{done} fires when it ends."""

    factory: _SenderFactory

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.factory.data)
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        if not self.factory.done.called:
            self.factory.done.callback(None)


class _SenderFactory(ClientFactory):
    """One message, one connection; quiet (no 'Starting factory' line per message)."""

    noisy = False

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.done: Deferred[None] = Deferred()

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        sender = _Sender()
        sender.factory = self
        return sender

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        if not self.done.called:
            self.done.errback(reason)


def send_message(reactor: IReactorTCP, host: str, port: int, message: Message | bytes,
                 timeout: float = CONNECT_TIMEOUT) -> Deferred[None]:
    """
    Deliver one message on a new connection: connect, write, close.

    @param reactor: an L{IReactorTCP}.
    @param message: a L{Message}, or bytes already encoded (at most
        L{MAX_MESSAGE}: it fits in the socket buffers, so once connected the
        write does not wait for the peer).
    @param timeout: seconds the connect may take.
    @return: a L{Deferred} firing (never synchronously) once the document is
        written and the connection closed, or failing when it could not be
        made (refused, or not connected within C{timeout}).
    """
    data = message if isinstance(message, bytes) else message.encode()
    factory = _SenderFactory(data)
    reactor.connectTCP(host, port, factory, timeout=timeout)
    return factory.done


class Outgoing:
    """
    The sends a service has in flight, so that stopping can wait for them
    (each ends within the connect timeout: loopback connects are immediate).
    """

    def __init__(self) -> None:
        self._pending: set[Deferred[Any]] = set()
        self._drain: Waiters[None] = Waiters()

    def track(self, d: Deferred[None]) -> Deferred[None]:
        """Remember C{d} until it fires; return it unchanged."""
        self._pending.add(d)

        def done(result: Any) -> Any:
            self._pending.discard(d)
            if not self._pending:
                self._drain.fire(None)
            return result

        d.addBoth(done)
        return d

    def drained(self) -> Deferred[None]:
        """A new (cancellable) L{Deferred} firing when no send is in flight."""
        return self._drain.when_or_now(not self._pending, None)
