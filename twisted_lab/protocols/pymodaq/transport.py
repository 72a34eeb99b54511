# -*- test-case-name: tests.test_pymodaq_loopback -*-
"""
What both PyMoDAQ roles share: one connection that parses with
L{MessageParser} and writes encoded chunk lists without copying big arrays.

Twisted transports take only C{bytes}, and C{writeSequence} joins its pieces
into one string before sending; so big messages are written by
L{ChunkWriter}, a pull producer: each time the socket drains, it sends from
the arrays' own memory straight to the socket as far as the socket takes
it (L{fastpath.send_now}), then hands the transport a small slice (copied)
that brings the next call; where that path is off, a slice of at most
L{ChunkWriter.SLICE} bytes at a time.  Small messages are joined and
written at once.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, Sequence

from twisted.internet.interfaces import IPullProducer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_lab import fastpath
from twisted_lab.errors import ProtocolError
from twisted_lab.flow import DEFAULT_SEND_DEADLINE, DEFAULT_SEND_LIMIT, SendBudget
from twisted_lab.protocols.pymodaq.codec import (DEFAULT_VERSION, Chunk, Encoder, WireVersion,
                                                 _string, version)
from twisted_lab.protocols.pymodaq.message import (DEFAULT_MAX_SIZE, Grammar, Message,
                                                  MessageParser, encode_message)
from twisted_lab.ratelog import BadInputLog

__all__ = ["ChunkWriter", "PyMoDAQConnection", "bad_input"]

#: Lines about bad input from PyMoDAQ peers, rate-limited per peer.
bad_input = BadInputLog(Logger(namespace="twisted_lab.protocols.pymodaq.connection"))


@implementer(IPullProducer)
class ChunkWriter:
    """
    Writes chunk lists to a transport in order, big ones as a pull producer.

    @cvar DIRECT: messages up to this size are joined and written at once.
    @cvar SLICE: the most bytes handed to the transport per pull.
    @cvar NUDGE: the most bytes handed to the transport after a direct send.
    """

    DIRECT = 1 << 20
    SLICE = 4 << 20
    NUDGE = 64 << 10

    def __init__(self, transport: Any, direct: Callable[[bytes], None] | None = None,
                 budget: SendBudget | None = None) -> None:
        self.transport = transport
        self._direct = direct or transport.write
        self._queue: deque[Chunk] = deque()
        self._producing = False
        self.budget = budget

    def write(self, chunks: Sequence[Chunk]) -> None:
        """
        Queue a message's chunks for sending.  With a L{budget}, a message
        that would take the bytes waiting past its limit is not queued (the
        budget reports the peer).
        """
        size = 0
        for chunk in chunks:
            size += len(chunk) if isinstance(chunk, bytes) else chunk.nbytes
        if not self._producing:
            if size <= self.DIRECT:
                self._direct(b"".join(chunks))
                return
            if self.budget is not None and not self.budget.queued(size):
                return
            self._queue.extend(chunks)
            self._producing = True
            self.transport.registerProducer(self, False)
            return
        if self.budget is not None and not self.budget.queued(size):
            return
        self._queue.extend(chunks)

    def resumeProducing(self) -> None:
        """
        Send what the socket takes now straight from the arrays' memory
        (L{fastpath.send_now}), then hand the transport the next slice: a
        small one after a direct send (it only has to bring the next call
        once the socket drains), else up to L{SLICE} bytes.
        """
        queue = self._queue
        sent = 0
        while queue:
            chunk = queue[0]
            went = fastpath.send_now(self.transport, chunk)
            if not went:
                break
            sent += went
            if went < (len(chunk) if isinstance(chunk, bytes) else chunk.nbytes):
                queue[0] = memoryview(chunk)[went:]
                break
            queue.popleft()
        if sent and self.budget is not None:
            self.budget.taken(sent)
        limit = self.NUDGE if sent else self.SLICE
        pieces: list[bytes] = []
        size = 0
        while queue and size < limit:
            chunk = queue.popleft()
            room = limit - size
            if isinstance(chunk, memoryview) and chunk.nbytes > room:
                pieces.append(chunk[:room].tobytes())
                queue.appendleft(chunk[room:])
                size += room
            else:
                piece = chunk if isinstance(chunk, bytes) else chunk.tobytes()
                pieces.append(piece)
                size += len(piece)
        if pieces:
            self.transport.write(pieces[0] if len(pieces) == 1 else b"".join(pieces))
            if self.budget is not None:
                self.budget.taken(size)
        if not queue:
            self._producing = False
            self.transport.unregisterProducer()

    def stopProducing(self) -> None:
        """The connection is gone: drop what is left."""
        self._queue.clear()
        self._producing = False
        if self.budget is not None:
            self.budget.stop()


class PyMoDAQConnection(Protocol):
    """
    A PyMoDAQ TCP/IP connection: parses incoming messages with C{grammar} and
    calls L{message_received} for each; L{send} encodes and writes.

    A malformed stream cannot be resynchronised: it is logged with its reason
    and the connection is closed (other connections are not affected).

    @ivar wire: the peer's L{WireVersion}.
    @ivar max_size: the largest message accepted.
    """

    log = Logger()
    grammar: dict[str, Grammar] = {}

    def __init__(self, wire: str | WireVersion = DEFAULT_VERSION,
                 max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.wire = version(wire)
        self.max_size = max_size
        self.encoder = Encoder(self.wire)
        self.parser = MessageParser(self.grammar, self.wire, max_size)
        self.writer: ChunkWriter | None = None
        self._write: Callable[[bytes], None] = self._write_unconnected
        self.closing = False

    @property
    def peer(self) -> str:
        """The peer's address as C{host:port}."""
        if self.transport is None:
            return "?"
        address = self.transport.getPeer()
        host = getattr(address, "host", None)
        return f"{host}:{getattr(address, 'port', '')}" if host else str(address)

    @property
    def peer_host(self) -> str:
        """The peer's host."""
        if self.transport is None:
            return "?"
        return str(getattr(self.transport.getPeer(), "host", "local"))

    def connectionMade(self) -> None:
        """Disable Nagle (commands are small and latency-bound)."""
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            try:
                set_no_delay(True)
            except OSError:
                pass
        # big arrays are read straight into their memory, small messages
        # written at once (see twisted_lab.fastpath)
        fastpath.read_into_buffers(self.transport, self)
        fastpath.set_send_limit(self.transport, ChunkWriter.SLICE)
        self._write = fastpath.writer_for(self.transport)
        self.writer = ChunkWriter(self.transport, self._write, self._send_budget())

    #: bytes a peer may leave waiting, and seconds it may take nothing
    #: meanwhile, before it is dropped (L{twisted_lab.flow.SendBudget})
    send_limit = DEFAULT_SEND_LIMIT
    send_deadline = DEFAULT_SEND_DEADLINE

    def _send_budget(self) -> SendBudget:
        factory = getattr(self, "factory", None)
        clock: Any = getattr(factory, "clock", None) or getattr(factory, "reactor", None) \
            or getattr(getattr(factory, "registry", None), "clock", None)
        if clock is None:
            from twisted.internet import reactor
            clock = reactor
        return SendBudget(clock, self._peer_not_reading, self.send_limit, self.send_deadline)

    def _peer_not_reading(self, reason: str) -> None:
        self.log.warn("dropping PyMoDAQ peer {peer}: {reason}", peer=self.peer, reason=reason)
        self.closing = True
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def _write_unconnected(self, data: bytes) -> None:
        raise RuntimeError("PyMoDAQ connection written before it was made")

    def get_buffer(self) -> memoryview | None:
        """
        The memory of the large array being received, for the transport to
        read into (L{twisted_lab.fastpath.read_into_buffers}); C{None} when
        no array is being collected (then C{dataReceived} gets the bytes).
        """
        return None if self.closing else self.parser.fill_view()

    def buffer_updated(self, nbytes: int) -> None:
        """C{nbytes} were read into the buffer of L{get_buffer}."""
        try:
            messages = self.parser.filled(nbytes)
        except ProtocolError as e:
            self.protocol_error(self.explain(e))
            return
        self._dispatch(messages)

    def dataReceived(self, data: bytes) -> None:
        """Feed the parser; handle each complete message."""
        if self.closing:
            return
        try:
            messages = self.parser.feed(data)
        except ProtocolError as e:
            self.protocol_error(self.explain(e))
            return
        self._dispatch(messages)

    def _dispatch(self, messages: list[Message]) -> None:
        for message in messages:
            if self.closing:
                return
            try:
                self.message_received(message)
            except ProtocolError as e:
                self.protocol_error(str(e))
                return
            except Exception:
                self.log.failure("handling {command} from {peer} failed",
                                 command=message.command, peer=self.peer)
        error = self.parser.error
        if error is not None and not self.closing:
            self.protocol_error(self.explain(error))

    def explain(self, error: ProtocolError) -> str:
        """The reason logged for a stream error (subclasses add context)."""
        return str(error)

    @property
    def bad_input(self) -> BadInputLog:
        """Where lines about bad input go: the factory's, else the module's."""
        limiter = getattr(getattr(self, "factory", None), "bad_input", None)
        return limiter if isinstance(limiter, BadInputLog) else bad_input

    def protocol_error(self, reason: str) -> None:
        """Log why the stream is unusable and close this connection."""
        self.bad_input.warn(("closed", self.peer_host),
                       "closing PyMoDAQ connection from {peer}: {reason}", peer=self.peer,
                       reason=reason)
        self.closing = True
        if self.transport is not None:
            self.transport.loseConnection()

    def message_received(self, message: Message) -> None:
        """Handle one message (subclasses)."""
        raise NotImplementedError

    def send(self, command: str, *args: Any) -> None:
        """Encode and write one message."""
        writer = self.writer
        if writer is None or self.closing:
            return
        if not args and not writer._producing:
            self._write(_string(command))
            return
        writer.write(encode_message(command, *args, wire=self.encoder))

    def send_position(self, command: str, value: float, name: str, units: str) -> None:
        """
        Write a position message (C{position_is}, C{move_done}) for a plain
        number, as C{send(command, Signal.scalar(name, value, units=units,
        kind="DataActuator"))} would (legacy: a C{<f8} scalar).
        """
        writer = self.writer
        if writer is None or self.closing:
            return
        if self.wire.legacy:
            writer.write(encode_message(command, value, wire=self.encoder))
            return
        data = _string(command) + self.encoder.actuator(value, name, units)
        if writer._producing:
            writer.write((data,))
        else:
            self._write(data)

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        """
        Drop queued output, and the references that tie this connection's
        objects into cycles (writer and budget, the transport's reader, the
        parser's error and its traceback), so they are freed at once rather
        than by a full garbage collection.
        """
        self.closing = True
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.stopProducing()
        fastpath.stop_reading_into_buffers(self.transport)
        self.parser.close()
