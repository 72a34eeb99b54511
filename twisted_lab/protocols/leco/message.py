# -*- test-case-name: tests.test_leco_message -*-
"""
LECO control and data messages: frames, headers, conversation ids, names.

A control message is C{version | receiver | sender | header | payload...}
(at least four frames); the header is 20 bytes: a 16-byte UUIDv7
conversation id, a 3-byte message id and a 1-byte message type.  A data
message is C{topic | header | payload...} with a 17-byte header (no message
id).  Everything here works on C{bytes} directly: building a message costs a
few concatenations, never a pyleco object.
"""
from __future__ import annotations

import random
import time
from typing import Sequence

from twisted_lab.errors import ProtocolError

__all__ = [
    "VERSION", "VERSION_BYTE", "HEADER_LENGTH", "DATA_HEADER_LENGTH", "MESSAGE_ID",
    "NOT_DEFINED", "JSON", "COORDINATOR", "Message", "DataMessage", "conversation_id",
    "header", "split_name", "full_name", "check_name", "uuid7_time_ms", "ADDITIONAL_FROM",
]

#: The protocol version of the control protocol.
VERSION = 0
VERSION_BYTE = b"\x00"
#: Length of a control header: conversation id (16), message id (3), type (1).
HEADER_LENGTH = 20
#: Length of a data-protocol header: conversation id (16), type (1).
DATA_HEADER_LENGTH = 17
#: Index of the first additional payload frame of a message as a Component
#: receives it (version, receiver, sender, header, the JSON payload, then
#: these binary frames).
ADDITIONAL_FROM = 5
#: pyleco always sends a zero message id.
MESSAGE_ID = b"\x00\x00\x00"
#: Message types.
NOT_DEFINED = 0
JSON = 1
#: The fixed Component name of every Coordinator.
COORDINATOR = b"COORDINATOR"

_TYPE_BYTES = [bytes([i]) for i in range(256)]
_getrandbits = random.SystemRandom().getrandbits
_fast_random = random.Random()


def conversation_id(now: float | None = None) -> bytes:
    """
    A new UUIDv7 (RFC 9562): 48 bits of Unix time in ms, version 7,
    variant 0b10, random bits elsewhere.

    @param now: the Unix time in seconds (the current time when not given).
    @return: 16 bytes.
    """
    ms = int((time.time() if now is None else now) * 1000) & 0xFFFFFFFFFFFF
    rand = _fast_random.getrandbits(74)
    value = ((ms << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62)
             | (rand & 0x3FFFFFFFFFFFFFFF))
    return value.to_bytes(16, "big")


#: An alias usable where a parameter shadows L{conversation_id}.
new_conversation_id = conversation_id


def _reseed() -> None:
    _fast_random.seed(_getrandbits(128))


_reseed()


def uuid7_time_ms(cid: bytes) -> int:
    """The Unix time in ms stored in a UUIDv7 conversation id."""
    return int.from_bytes(cid[:6], "big")


def header(cid: bytes, message_type: int = JSON, message_id: bytes = MESSAGE_ID) -> bytes:
    """
    A 20-byte control header.

    @param cid: the 16-byte conversation id.
    @param message_type: 0 (not defined), 1 (JSON), or >127 (user defined).
    @param message_id: 3 bytes; pyleco sends zeros.
    """
    return cid + message_id + _TYPE_BYTES[message_type]


def split_name(name: bytes) -> tuple[bytes, bytes]:
    """
    Split a (full) name at the B{last} dot, as pyleco does.

    @return: C{(namespace, name)}; the namespace is C{b""} when there is none.
    """
    ns, dot, nm = name.rpartition(b".")
    return ns, nm


def full_name(namespace: bytes | str, name: bytes | str) -> bytes:
    """C{namespace.name} as bytes (just C{name} when the namespace is empty)."""
    ns = namespace.encode() if isinstance(namespace, str) else namespace
    nm = name.encode() if isinstance(name, str) else name
    return ns + b"." + nm if ns else nm


def check_name(name: str, what: str = "name") -> str:
    """
    Check a Component name or namespace: printable ASCII, no dot, not empty.

    @raise ProtocolError: when it is not allowed.
    """
    if not name or "." in name or any(not (0x20 <= ord(c) <= 0x7E) for c in name):
        raise ProtocolError(f"LECO {what} {name!r} must be non-empty printable ASCII "
                            f"without '.'")
    return name


class Message:
    """
    A LECO control message, as frames.

    @ivar receiver: the receiver frame (name or full name).
    @ivar sender: the sender frame.
    @ivar conversation_id: 16 bytes.
    @ivar message_id: 3 bytes.
    @ivar message_type: 0, 1 or user defined.
    @ivar payload: the payload frames (payload[0] is JSON for type 1).
    """

    __slots__ = ("receiver", "sender", "conversation_id", "message_id", "message_type",
                 "payload")

    def __init__(self, receiver: bytes, sender: bytes, conversation_id: bytes,
                 message_type: int = JSON, payload: Sequence[bytes] = (),
                 message_id: bytes = MESSAGE_ID) -> None:
        self.receiver = receiver
        self.sender = sender
        self.conversation_id = conversation_id
        self.message_id = message_id
        self.message_type = message_type
        self.payload = list(payload)

    @classmethod
    def from_frames(cls, frames: Sequence[bytes]) -> Message:
        """
        Parse the frames of a control message (without a ROUTER identity).

        @raise ProtocolError: fewer than 4 frames, a wrong version, a header
            that is not 20 bytes, or an empty sender.
        """
        if len(frames) < 4:
            raise ProtocolError(f"LECO message needs at least 4 frames, got {len(frames)}")
        version, receiver, sender, head = frames[0], frames[1], frames[2], frames[3]
        if version != VERSION_BYTE:
            raise ProtocolError(f"unsupported LECO version frame {bytes(version)!r}")
        if len(head) != HEADER_LENGTH:
            raise ProtocolError(f"LECO header must be {HEADER_LENGTH} bytes, got {len(head)}")
        if not sender:
            raise ProtocolError("LECO message with an empty sender frame")
        return cls(bytes(receiver), bytes(sender), head[:16], head[19], frames[4:], head[16:19])

    def to_frames(self) -> list[bytes]:
        """The frames to send (no ROUTER identity)."""
        return [VERSION_BYTE, self.receiver, self.sender,
                self.conversation_id + self.message_id + _TYPE_BYTES[self.message_type],
                *self.payload]

    @property
    def header(self) -> bytes:
        """The 20-byte header."""
        return self.conversation_id + self.message_id + _TYPE_BYTES[self.message_type]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return self.to_frames() == other.to_frames()

    def __repr__(self) -> str:
        return (f"Message(receiver={self.receiver!r}, sender={self.sender!r}, "
                f"cid={self.conversation_id.hex()}, type={self.message_type}, "
                f"payload={[bytes(p[:60]) for p in self.payload]!r})")


class DataMessage:
    """
    A LECO data-protocol message: C{topic | header(17) | payload...}.

    @ivar topic: the publisher's full name (or a legacy variable name).
    @ivar conversation_id: 16 bytes.
    @ivar message_type: 1 for JSON, 0 for undefined/binary.
    @ivar payload: the payload frames.
    """

    __slots__ = ("topic", "conversation_id", "message_type", "payload")

    def __init__(self, topic: bytes, payload: Sequence[bytes] = (), message_type: int = JSON,
                 conversation_id: bytes | None = None) -> None:
        self.topic = topic
        self.conversation_id = (conversation_id if conversation_id is not None
                                else new_conversation_id())
        self.message_type = message_type
        self.payload = list(payload)

    @classmethod
    def from_frames(cls, frames: Sequence[bytes]) -> DataMessage:
        """
        Parse a data message.

        @raise ProtocolError: fewer than 2 frames or a header not 17 bytes long.
        """
        if len(frames) < 2:
            raise ProtocolError(f"LECO data message needs at least 2 frames, got {len(frames)}")
        head = frames[1]
        if len(head) != DATA_HEADER_LENGTH:
            raise ProtocolError(f"LECO data header must be {DATA_HEADER_LENGTH} bytes, "
                                f"got {len(head)}")
        return cls(bytes(frames[0]), frames[2:], head[16], head[:16])

    def to_frames(self) -> list[bytes]:
        """The frames to publish."""
        return [self.topic, self.conversation_id + _TYPE_BYTES[self.message_type],
                *self.payload]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DataMessage):
            return NotImplemented
        return self.to_frames() == other.to_frames()

    def __repr__(self) -> str:
        return (f"DataMessage(topic={self.topic!r}, cid={self.conversation_id.hex()}, "
                f"type={self.message_type}, payload={[bytes(p[:60]) for p in self.payload]!r})")
