# -*- test-case-name: tests.test_la4_message -*-
"""
LA4 pycom messages: typed objects, validation, and the JSON codec.

Every message carries the six base fields (C{id}, C{name}, C{ip}, C{port},
C{version}, C{coordinator}); C{type_} says what it is, and a message without
C{type_} is a heartbeat (spec §3).  L{decode} is strict about the base fields
and the fields of the known kinds; a C{type_} it does not know decodes to an
L{UnknownMessage} (the caller decides whether to refuse it).
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any, ClassVar

from twisted_lab.errors import ProtocolError

__all__ = [
    "Message", "Heartbeat", "Command", "OutputEvent", "MessageEvent", "UnitInfo",
    "UnknownMessage", "Identity", "decode", "decode_object", "new_id",
    "MAX_FIELD", "MAX_COMMAND", "MAX_TEXT", "BASE_FIELDS", "UNIT_INFO",
]

#: Longest C{id}, C{name}, C{ip} and C{version} accepted (spec §6.2.5).
MAX_FIELD = 256
#: Longest C{command} accepted.
MAX_COMMAND = 8 * 1024
#: Longest C{output} / C{message} text accepted.
MAX_TEXT = 60 * 1024
#: The fields every message carries.
BASE_FIELDS = ("id", "name", "ip", "port", "version", "coordinator")
#: Our C{type_} for the unit-info event (its real name is not documented: spec §8).
UNIT_INFO = "unit_info"


def new_id() -> str:
    """A fresh sender id: 8 lowercase hex characters (spec §3.1)."""
    return uuid.uuid4().hex[:8]


#: The base fields of every message (spec §3.1), in wire order.
_BASE = ("id", "name", "ip", "port", "version", "coordinator")


@dataclass(frozen=True)
class Identity:
    """
    Who sends: the base fields without the coordinator flag's meaning.

    @ivar id: the stable sender id.
    @ivar name: a human-readable name.
    @ivar ip: the sender's (informational) address.
    @ivar port: where the sender listens for events.
    @ivar version: the sender's software version.
    @ivar coordinator: C{True} for a coordinator, C{False} for a node.
    """

    id: str
    name: str
    ip: str
    port: int
    version: str
    coordinator: bool

    def base(self) -> dict[str, Any]:
        """The six base fields as keyword arguments for a L{Message}."""
        return {key: getattr(self, key) for key in _BASE}


@dataclass(frozen=True, kw_only=True)
class Message:
    """
    The base fields shared by every LA4 message (spec §3.1).

    @cvar TYPE: the C{type_} string, C{None} for a heartbeat.
    """

    TYPE: ClassVar[str | None] = None

    id: str
    name: str
    ip: str
    port: int
    version: str
    coordinator: bool

    @property
    def type_(self) -> str | None:
        """The C{type_} on the wire (C{None}: a heartbeat)."""
        return self.TYPE

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, base fields first (C{type_} only when not a heartbeat)."""
        out: dict[str, Any] = {key: getattr(self, key) for key in _BASE}
        if self.type_ is not None:
            out["type_"] = self.type_
        out.update(self._extra())
        return out

    def _extra(self) -> dict[str, Any]:
        """The fields a message kind adds to the base ones, in declaration order."""
        return {f.name: getattr(self, f.name) for f in dataclass_fields(self)
                if f.name not in _BASE}

    def encode(self) -> bytes:
        """The UTF-8 JSON document sent on the wire."""
        return json.dumps(self.to_dict()).encode("utf-8")


@dataclass(frozen=True, kw_only=True)
class Heartbeat(Message):
    """Base fields only: a heartbeat or a node announcement."""


@dataclass(frozen=True, kw_only=True)
class Command(Message):
    """A C{cmd} request: C{command} is a command line for the node."""

    TYPE: ClassVar[str | None] = "cmd"
    command: str


@dataclass(frozen=True, kw_only=True)
class OutputEvent(Message):
    """An C{output} event: the stdout (or stderr) of a finished command."""

    TYPE: ClassVar[str | None] = "output"
    output: str


@dataclass(frozen=True, kw_only=True)
class MessageEvent(Message):
    """A C{message} event: free text such as C{BOARDIO_READY}."""

    TYPE: ClassVar[str | None] = "message"
    message: str


@dataclass(frozen=True, kw_only=True)
class UnitInfo(Message):
    """
    The one-time hardware information event (fields undocumented: kept as
    received in C{fields}).
    """

    TYPE: ClassVar[str | None] = UNIT_INFO
    fields: dict[str, Any] = field(default_factory=dict)

    def _extra(self) -> dict[str, Any]:
        return dict(self.fields)


@dataclass(frozen=True, kw_only=True)
class UnknownMessage(Message):
    """A message whose C{type_} we do not know; C{fields} holds its other fields."""

    kind: str
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def type_(self) -> str | None:
        return self.kind

    def _extra(self) -> dict[str, Any]:
        return dict(self.fields)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode(data: bytes) -> Message:
    """
    Decode one JSON document into a typed message.

    @param data: the bytes received (one complete document).
    @raise ProtocolError: not UTF-8, not JSON, not an object, or a field is
        missing or has the wrong type; C{.details["port"]} holds the sender's
        C{port} when it could be read, so the caller may answer with an error.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProtocolError(f"message is not UTF-8: {e.reason} at byte {e.start}") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise ProtocolError(f"message is not JSON: {e}") from None
    return decode_object(obj)


def _check_str(obj: dict[str, Any], key: str, limit: int, port: int | None) -> str:
    if key not in obj:
        raise ProtocolError(f"field {key!r} is missing", port=port)
    value = obj[key]
    if not isinstance(value, str):
        raise ProtocolError(f"field {key!r} must be a string, got {type(value).__name__}",
                            port=port)
    if len(value) > limit:
        raise ProtocolError(f"field {key!r} is longer than {limit} characters", port=port)
    return value


def decode_object(obj: Any) -> Message:
    """
    Validate a decoded JSON value and build the typed message.

    @raise ProtocolError: see L{decode}.
    """
    if not isinstance(obj, dict):
        raise ProtocolError(f"message must be a JSON object, got {type(obj).__name__}")
    raw_port = obj.get("port")
    port: int | None = None
    if isinstance(raw_port, int) and not isinstance(raw_port, bool) and 0 < raw_port < 65536:
        port = raw_port
    if "port" not in obj:
        raise ProtocolError("field 'port' is missing")
    if port is None:
        raise ProtocolError(f"field 'port' must be an integer 1-65535, got {raw_port!r}")
    base: dict[str, Any] = {"port": port}
    for key in ("id", "name", "ip", "version"):
        base[key] = _check_str(obj, key, MAX_FIELD, port)
    if "coordinator" not in obj:
        raise ProtocolError("field 'coordinator' is missing", port=port)
    if not isinstance(obj["coordinator"], bool):
        raise ProtocolError("field 'coordinator' must be true or false, got "
                            f"{type(obj['coordinator']).__name__}", port=port)
    base["coordinator"] = obj["coordinator"]
    if "type_" not in obj:
        return Heartbeat(**base)
    kind = obj["type_"]
    if not isinstance(kind, str):
        raise ProtocolError(f"field 'type_' must be a string, got {type(kind).__name__}",
                            port=port)
    if kind == "cmd":
        return Command(command=_check_str(obj, "command", MAX_COMMAND, port), **base)
    if kind == "output":
        return OutputEvent(output=_check_str(obj, "output", MAX_TEXT, port), **base)
    if kind == "message":
        return MessageEvent(message=_check_str(obj, "message", MAX_TEXT, port), **base)
    rest = {k: v for k, v in obj.items() if k not in BASE_FIELDS and k != "type_"}
    if kind == UNIT_INFO:
        return UnitInfo(fields=rest, **base)
    if len(kind) > MAX_FIELD:
        raise ProtocolError(f"field 'type_' is longer than {MAX_FIELD} characters", port=port)
    return UnknownMessage(kind=kind, fields=rest, **base)
