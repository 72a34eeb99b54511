# -*- test-case-name: tests.test_pymodaq_parser -*-
"""
The incremental message parser and the message grammar of PyMoDAQ TCP/IP
(C{specs/pymodaq-tcp.md} §3, §5).

There is no envelope: a message is a command string followed by a payload
whose grammar depends on the command and on the direction.
L{MessageParser} keeps one linear buffer (a C{bytearray} consumed from the
front, which CPython does without moving memory) and re-reads the current
message from its start only once the buffer holds as many bytes as the last
attempt showed it needs, so its cost is linear in the bytes received.  The
raw data of a large array go straight from the received chunks into a
preallocated array: they are copied once.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import numpy.typing as npt

from twisted_lab.errors import ProtocolError
from twisted_lab.protocols.pymodaq.codec import (DEFAULT_VERSION, Chunk, Encoder, Fill,
                                                 Incomplete, Reader, WireVersion, version)

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


def _none(reader: Reader) -> tuple[Any, ...]:
    return ()


def _path(reader: Reader) -> list[str]:
    path = reader.list()
    if not all(isinstance(p, str) for p in path):
        raise ProtocolError(f"settings path {path!r} holds non-strings")
    return path


def _xml(reader: Reader) -> str:
    raw = reader.bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProtocolError(f"settings XML is not UTF-8 ({e})") from None


def _path_xml(reader: Reader) -> tuple[Any, ...]:
    return (_path(reader), _xml(reader))


def _axis_3x(reader: Reader) -> tuple[Any, ...]:
    if not reader.wire.legacy:
        raise ProtocolError("x_axis/y_axis messages are not part of PyMoDAQ 4.x")
    return (reader.ndarray(), reader.string(), reader.string())


Grammar = Callable[[Reader], "tuple[Any, ...]"]

#: What a server receives (client → server), by command.
TO_SERVER: dict[str, Grammar] = {
    "GRABBER": _none,
    "ACTUATOR": _none,
    "Quit": _none,
    "Status": _none,
    "Server Closed": _none,
    "Infos": lambda r: (_xml(r),),
    "Info_xml": _path_xml,
    "Info": lambda r: (r.string(), r.string()),
    "Done": lambda r: (r.grab_reply(),),
    "move_done": lambda r: (r.position(),),
    "position_is": lambda r: (r.position(),),
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
    "move_abs": lambda r: (r.position(),),
    "move_rel": lambda r: (r.position(),),
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

    @param grammar: L{TO_SERVER} or L{TO_CLIENT}.
    @param wire: the peer's wire version.
    @param max_size: the largest message accepted, in bytes.
    """

    def __init__(self, grammar: dict[str, Grammar], wire: str | WireVersion = DEFAULT_VERSION,
                 max_size: int = DEFAULT_MAX_SIZE, large: int = _LARGE) -> None:
        self.grammar = grammar
        self.wire = version(wire)
        self.max_size = max_size
        self._large = large
        self._buf = bytearray()
        self._need = 0
        self._fills: dict[int, npt.NDArray[np.uint8]] = {}
        self._filled = 0
        self._target: npt.NDArray[np.uint8] | None = None
        self._target_at = 0
        self._target_len = 0
        #: How many times a message was (re)read from its start (for tests).
        self.attempts = 0
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buf) + self._filled + self._target_len

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
        try:
            return self._feed(data)
        except ProtocolError as e:
            self._error = e
            raise

    def _feed(self, data: bytes | memoryview) -> list[Message]:
        if self._target is not None:
            data = self._collect(data)
            if self._target is not None:
                return []
        buf = self._buf
        if data:
            buf += data
        messages: list[Message] = []
        pos = 0
        while True:
            end = len(buf)
            if end < self._need or end == pos:
                break
            reader = Reader(buf, pos, end, self.wire, self._fills or None, self._large)
            self.attempts += 1
            try:
                messages.append(self._message(reader))
            except ProtocolError as e:
                if not messages:
                    raise
                self._error = e
                return messages
            except Incomplete as e:
                self._check_size(e.need - pos)
                self._need = e.need - pos
                break
            except Fill as f:
                self._check_size(f.at + f.nbytes - pos)
                self._start_fill(f, pos)
                return messages
            pos = reader.pos
            self._need = 0
            if self._fills:
                self._fills = {}
                self._filled = 0
        if pos:
            del buf[:pos]
        return messages

    def _message(self, reader: Reader) -> Message:
        n = reader.u32()
        if n > _MAX_COMMAND:
            raise ProtocolError(f"a {n}-byte string where a command was expected")
        raw = reader.raw(n)
        try:
            command = raw.decode("ascii")
        except UnicodeDecodeError:
            raise ProtocolError(f"command {raw!r} is not ASCII") from None
        grammar = self.grammar.get(command)
        if grammar is None:
            raise UnknownCommand(command)
        return Message(command, grammar(reader))

    def _check_size(self, size: int) -> None:
        if size + self._filled > self.max_size:
            raise MessageTooLarge(f"message of at least {size + self._filled} bytes exceeds "
                                  f"the maximum of {self.max_size} bytes")

    def _start_fill(self, fill: Fill, pos: int) -> None:
        buf = self._buf
        if pos:
            del buf[:pos]
        at = fill.at - pos
        target = np.empty(fill.nbytes, dtype=np.uint8)
        have = len(buf) - at
        target[:have] = np.frombuffer(buf, dtype=np.uint8, count=have, offset=at)
        del buf[at:]
        self._target, self._target_at, self._target_len = target, at, have
        self._need = 0

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
        self._target_len += n
        if self._target_len < self._target.nbytes:
            return []
        self._fills[self._target_at] = self._target
        self._filled += self._target.nbytes
        self._target = None
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
        self._fills[self._target_at] = target
        self._filled += target.nbytes
        self._target = None
        self._target_len = 0
        return memoryview(data)[take:] if take < len(data) else b""


def describe_messages(messages: Sequence[Message]) -> list[str]:
    """Command names of messages (for logs)."""
    return [m.command for m in messages]
