# -*- test-case-name: tests.test_pymodaq_parser -*-
"""
The incremental message parser and the message grammar of PyMoDAQ TCP/IP
(C{specs/pymodaq-tcp.md} §3, §5).

There is no envelope: a message is a command string followed by a payload
whose grammar depends on the command and on the direction.
L{MessageParser} keeps one linear buffer (a C{bytearray} consumed from the
front, which CPython does without moving memory).  A message whose bytes
are all there is read in one go; otherwise its payload grammar runs as a
resumable pull reader (L{Reader.pull}) that keeps its place and says how
many bytes it needs next, so every byte is examined a bounded number of
times however the stream is split (linear cost, even for a message made of
many tiny list elements).  The raw data of a large array go straight from
the received chunks into a preallocated array: they are copied once.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import numpy.typing as npt

from twisted_lab import headroom
from twisted_lab.errors import ProtocolError
from twisted_lab.protocols.pymodaq.codec import (DEFAULT_VERSION, Chunk, Encoder, Fill,
                                                 Incomplete, Pull, Reader, WireVersion, version)

__all__ = [
    "Message", "MessageParser", "MessageTooLarge", "UnknownCommand", "TO_SERVER", "TO_CLIENT",
    "encode_message", "DEFAULT_MAX_SIZE", "CLIENT_TYPES", "SEND_DATA",
]

#: The default largest message accepted (256 MiB).
DEFAULT_MAX_SIZE = 256 * 1024 * 1024
#: The client types a server accepts.
CLIENT_TYPES = ("GRABBER", "ACTUATOR")
#: The grab commands of a viewer server.
SEND_DATA = ("Send Data 0D", "Send Data 1D", "Send Data 2D", "Send Data ND")
#: Command names are short; a longer first string is not a command.
_MAX_COMMAND = 64
#: Arrays at least this big are collected directly into their own memory.
_LARGE = 256 * 1024


class Message(NamedTuple):
    """
    One decoded message.

    @ivar command: the command string (C{"move_abs"}).
    @ivar args: its payload values, in wire order.
    """

    command: str
    args: tuple[Any, ...] = ()


class MessageTooLarge(ProtocolError):
    """A message is bigger than the configured maximum."""


class UnknownCommand(ProtocolError):
    """
    A command this side does not accept (its payload, if any, is unknown).

    @ivar command: the command string.
    """

    def __init__(self, command: str) -> None:
        super().__init__(f"unknown command {command!r}")
        self.command = command


def _none(reader: Reader) -> Pull:
    """No payload (recognised by the parser without running it)."""
    return ()
    yield  # pragma: no cover (makes this a generator)


def _path(reader: Reader) -> Pull:
    path = yield from reader.pull("list")
    if not all(isinstance(p, str) for p in path):
        raise ProtocolError(f"settings path {path!r} holds non-strings")
    return path


def _xml(reader: Reader) -> Pull:
    raw = yield from reader.pull("bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProtocolError(f"settings XML is not UTF-8 ({e})") from None


def _infos(reader: Reader) -> Pull:
    return ((yield from _xml(reader)),)


def _path_xml(reader: Reader) -> Pull:
    path = yield from _path(reader)
    return (path, (yield from _xml(reader)))


def _two_strings(reader: Reader) -> Pull:
    first = yield from reader.pull("string")
    return (first, (yield from reader.pull("string")))


def _grab_reply(reader: Reader) -> Pull:
    return ((yield from reader.pull("grab_reply")),)


def _position(reader: Reader) -> Pull:
    return ((yield from reader.pull("position")),)


def _axis_3x(reader: Reader) -> Pull:
    if not reader.wire.legacy:
        raise ProtocolError("x_axis/y_axis messages are not part of PyMoDAQ 4.x")
    array = yield from reader.pull("ndarray")
    label = yield from reader.pull("string")
    return (array, label, (yield from reader.pull("string")))


#: Plain (non-resumable) reads of the payloads worth a try before their
#: grammar's generator (when their bytes are all there, one call reads them).
_PLAIN: dict[Callable[..., Any], Callable[[Reader], "tuple[Any, ...]"]] = {
    _position: lambda r: (r.position(),),
    _grab_reply: lambda r: (r.grab_reply(),),
}

#: A message payload's grammar: a resumable read (see L{Reader.pull})
#: returning the payload values.
Grammar = Callable[[Reader], Pull]

#: What a server receives (client → server), by command.
TO_SERVER: dict[str, Grammar] = {
    "GRABBER": _none,
    "ACTUATOR": _none,
    "Quit": _none,
    "Status": _none,
    "Server Closed": _none,
    "Infos": _infos,
    "Info_xml": _path_xml,
    "Info": _two_strings,
    "Done": _grab_reply,
    "move_done": _position,
    "position_is": _position,
    "x_axis": _axis_3x,
    "y_axis": _axis_3x,
}

#: What a client receives (server → client), by command.
TO_CLIENT: dict[str, Grammar] = {
    **{command: _none for command in SEND_DATA},
    "move_home": _none,
    "get_actuator_value": _none,
    "check_position": _none,
    "stop_motion": _none,
    "Quit": _none,
    "move_abs": _position,
    "move_rel": _position,
    "set_info": _path_xml,
}


def encode_message(command: str, *args: Any,
                   wire: str | WireVersion | Encoder = DEFAULT_VERSION) -> list[Chunk]:
    """
    Encode a command and its payload.

    @param args: the payload, as L{Message.args} holds it (a position may be a
        number, C{Done} takes an L{Export}, paths are lists of strings).
    @return: the chunks (see L{twisted_lab.protocols.pymodaq.codec}).
    """
    encoder = wire if isinstance(wire, Encoder) else Encoder(wire)
    out: list[Chunk] = []
    encoder.string(out, command)
    if command in ("move_abs", "move_rel", "move_done", "position_is"):
        (position,) = args
        encoder.position(out, position)
    elif command == "Done":
        encoder.grab_reply(out, args[0])
    elif command in ("set_info", "Info_xml"):
        path, xml = args
        encoder.list(out, [str(p) for p in path])
        encoder.string(out, xml)
    elif command in ("x_axis", "y_axis"):
        array, label, units = args
        encoder.ndarray(out, array)
        encoder.string(out, label)
        encoder.string(out, units)
    else:
        for arg in args:
            encoder.string(out, arg)
    return out


class MessageParser:
    """
    Cuts a byte stream into L{Message}s.

    Each message is first read straight from the buffer; if its bytes stop
    short, its payload grammar goes on as a generator that keeps its place
    (L{Reader.pull}) and resumes when the bytes it asked for arrive, so no
    byte is read again however finely the stream is split.  Bytes already
    read are dropped from the buffer, and the data of large arrays are
    collected outside it, straight into their final memory (L{fill_view}).

    @param grammar: L{TO_SERVER} or L{TO_CLIENT}.
    @param wire: the peer's wire version.
    @param max_size: the largest message accepted, in bytes (checked as soon
        as a length declares more).

    @ivar attempts: how many times a message was read from its start (for tests).
    @ivar steps: parse steps: plain attempts plus generator resumptions (for tests).
    """

    def __init__(self, grammar: dict[str, Grammar], wire: str | WireVersion = DEFAULT_VERSION,
                 max_size: int = DEFAULT_MAX_SIZE, large: int = _LARGE) -> None:
        self.grammar = grammar
        self.wire = version(wire)
        self.max_size = max_size
        self._buf = bytearray()
        self._reader = Reader(self._buf, 0, 0, self.wire, large)
        #: Stream offset of C{_buf[0]}.
        self._base = 0
        #: Stream offset of the current message's start.
        self._start = 0
        #: Stream offset of the end of the last complete message.
        self._done = 0
        self._received = 0
        self._command: str | None = None
        self._pull: Pull | None = None
        self._want = 0
        self._fill: npt.NDArray[np.uint8] | None = None
        self._target: npt.NDArray[np.uint8] | None = None
        self._target_len = 0
        self.attempts = 0
        self.steps = 0
        self._error: ProtocolError | None = None

    def close(self) -> None:
        """
        The stream is over: drop the message being read and the error met
        (its traceback holds the frames that raised it, the connection's
        among them).  L{feed} raises L{ProtocolError} from now on.
        """
        self._error = ProtocolError("the stream was closed")
        self._pull = None
        self._fill = None
        self._target = None
        self._target_len = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return self._received - self._done

    @property
    def error(self) -> ProtocolError | None:
        """The stream error met after the messages last returned, if any."""
        return self._error

    @property
    def examined(self) -> int:
        """Bytes examined so far by payload reads (for tests: linear work)."""
        return self._reader.examined

    def feed(self, data: bytes | memoryview) -> list[Message]:
        """
        Take received bytes; return the messages they complete.

        @raise ProtocolError: malformed data or an unknown command (the
            stream cannot be resynchronised: close the connection).
        @raise MessageTooLarge: a message exceeds C{max_size}.

        When messages precede the error in the same data, they are returned
        and the error is raised by the next call (C{feed(b"")} will do).
        """
        if self._error is not None:
            raise self._error
        messages: list[Message] = []
        try:
            self._feed(data, messages)
        except ProtocolError as e:
            self._error = e
            if not messages:
                raise
        return messages

    def _feed(self, data: bytes | memoryview, messages: list[Message]) -> None:
        self._received += len(data)
        if self._target is not None:
            data = self._collect(data)
            if self._target is not None:
                return
        buf = self._buf
        if data:
            buf += data
        reader = self._reader
        reader.end = end = len(buf)
        try:
            while True:
                pull = self._pull
                if pull is None:
                    if reader.pos == end or not self._begin(reader, messages):
                        break
                    continue
                fill = self._fill
                if fill is not None:
                    self._fill = None
                    self._base += fill.nbytes
                elif end - reader.pos < self._want:
                    break
                self.steps += 1
                try:
                    request = pull.send(fill)
                except StopIteration as stop:
                    self._pull = None
                    assert self._command is not None  # set whenever a pull runs
                    self._complete(reader, Message(self._command, stop.value), messages)
                    continue
                if not self._request(reader, request):
                    break
        finally:
            pos = reader.pos
            if pos:
                del buf[:pos]
                self._base += pos
                reader.pos = 0
                reader.end = len(buf)

    def _begin(self, reader: Reader, messages: list[Message]) -> bool:
        """
        Read a command and as much of its payload as is buffered.

        @return: C{False} when more bytes are needed.
        """
        p = reader.pos
        self._start = self._base + p
        self.attempts += 1
        self.steps += 1
        try:
            n = reader.u32()
            if n > _MAX_COMMAND:
                raise ProtocolError(f"a {n}-byte string where a command was expected")
            raw = reader.raw(n)
        except Incomplete as e:
            reader.pos = p
            self._check_size(e.need - p)
            return False
        try:
            command = raw.decode("ascii")
        except UnicodeDecodeError:
            raise ProtocolError(f"command {raw!r} is not ASCII") from None
        grammar = self.grammar.get(command)
        if grammar is None:
            raise UnknownCommand(command)
        if grammar is _none:
            self._complete(reader, Message(command, ()), messages)
            return True
        reader.depth = 0
        plain = _PLAIN.get(grammar)
        if plain is not None:
            # The common small payloads: one plain read, no generator.
            at = reader.pos
            try:
                args = plain(reader)
            except Incomplete:
                reader.examined += reader.pos - at
                reader.pos = at
            else:
                reader.examined += reader.pos - at
                self._complete(reader, Message(command, args), messages)
                return True
        pull = grammar(reader)
        try:
            request = next(pull)
        except StopIteration as stop:
            self._complete(reader, Message(command, stop.value), messages)
            return True
        self._command = command
        self._pull = pull
        return self._request(reader, request)

    def _request(self, reader: Reader, request: int | Fill) -> bool:
        """
        The payload read asks for more bytes (or a large array's data).

        @return: C{True} when it can go on with what is buffered.
        """
        at = self._base + reader.pos - self._start
        if isinstance(request, Fill):
            self._check_size(at + request.nbytes)
            self._start_fill(reader, request.nbytes)
            return False
        self._check_size(at + request)
        self._want = request
        return reader.end - reader.pos >= request

    def _complete(self, reader: Reader, message: Message, messages: list[Message]) -> None:
        self._done = self._base + reader.pos
        self._check_size(self._done - self._start)
        self._want = 0
        messages.append(message)

    def _check_size(self, size: int) -> None:
        if size > self.max_size:
            raise MessageTooLarge(f"message of at least {size} bytes exceeds "
                                  f"the maximum of {self.max_size} bytes")

    def _start_fill(self, reader: Reader, nbytes: int) -> None:
        """
        Collect the next C{nbytes} into an array of their own, with room
        around it (L{headroom}: the LECO PyMoDAQ 5 path sends it on from
        there).
        """
        buf = self._buf
        at = reader.pos
        target = headroom.empty(nbytes)
        have = len(buf) - at
        target[:have] = np.frombuffer(buf, dtype=np.uint8, count=have, offset=at)
        del buf[at:]
        reader.end = at
        self._target, self._target_len = target, have
        self._want = 0

    def fill_view(self) -> memoryview | None:
        """
        While a large array is being collected, the writable memory its next
        bytes go to (for C{recv_into}); else C{None}.
        """
        if self._target is None or self._error is not None:
            return None
        return memoryview(self._target)[self._target_len:]  # type: ignore[arg-type]

    def filled(self, n: int) -> list[Message]:
        """
        C{n} bytes were written into L{fill_view}; return the messages this
        completes (as L{feed} does).
        """
        assert self._target is not None
        self._received += n
        self._target_len += n
        if self._target_len < self._target.nbytes:
            return []
        self._fill, self._target = self._target, None
        self._target_len = 0
        return self.feed(b"")

    def _collect(self, data: bytes | memoryview) -> bytes | memoryview:
        target = self._target
        assert target is not None
        have = self._target_len
        take = min(len(data), target.nbytes - have)
        if take:
            target[have:have + take] = np.frombuffer(data, dtype=np.uint8, count=take)
        self._target_len = have + take
        if self._target_len < target.nbytes:
            return b""
        self._fill, self._target = target, None
        self._target_len = 0
        return memoryview(data)[take:] if take < len(data) else b""


def describe_messages(messages: Sequence[Message]) -> list[str]:
    """Command names of messages (for logs)."""
    return [m.command for m in messages]
