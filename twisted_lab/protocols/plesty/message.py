# -*- test-case-name: tests.test_plesty_message -*-
"""
PLESTY message bodies: JSON objects, one per frame (spec §3).

Replies are C{{"status": "ok", "result": ...}} or
C{{"status": "error", "error": <message>, "type": <exception class name>}}.

Beyond PLESTY (twisted_lab servers only, asked for per request): with
C{"binary": true} in a request, every numpy array of the result travels in
its own frame after the JSON frame, zero-copy, and the JSON holds
C{{"__array__": <frame index>, "dtype": ..., "shape": [...]}} in its place.
Without it, arrays become JSON lists, as a plain PLESTY client expects.
L{twisted_lab.data.Signal}, L{twisted_lab.data.Export} and
L{twisted_lab.data.Axis} become tagged objects (C{"__type__"}).
"""
from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np

from twisted_lab.bigjson import ArrayWriter
from twisted_lab.data import Axis, Export, Signal

__all__ = ["ok", "error", "encode", "decode", "parse_request", "client_name",
           "SerializationError", "normalize_resources"]

_ARRAY = "__array__"
_TYPE = "__type__"


class SerializationError(Exception):
    """A result cannot be carried by the protocol."""


def ok(result: Any) -> dict[str, Any]:
    """A success reply."""
    return {"status": "ok", "result": result}


def error(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    """An error reply: C{kind} is the exception class name PLESTY clients see."""
    reply: dict[str, Any] = {"status": "error", "error": message, "type": kind}
    reply.update(extra)
    return reply


def client_name(identity: bytes) -> str:
    """The server's name for a client: its identity as UTF-8, else in hex (as PLESTY)."""
    try:
        return identity.decode("utf-8")
    except UnicodeDecodeError:
        return identity.hex()


def parse_request(body: bytes) -> dict[str, Any]:
    """
    Decode one request body.

    @raise UnicodeDecodeError: not UTF-8.
    @raise json.JSONDecodeError: not JSON.
    @raise ValueError: JSON, but not an object.
    """
    request = json.loads(body.decode("utf-8"))
    if not isinstance(request, dict):
        raise ValueError(f"a request must be a JSON object, got {type(request).__name__}")
    return request


def _signal_dict(signal: Signal) -> dict[str, Any]:
    return {_TYPE: "Signal", "name": signal.name, "kind": signal.kind, "units": signal.units,
            "labels": list(signal.labels), "data": list(signal.data), "axes": list(signal.axes),
            "timestamp": signal.timestamp, "origin": signal.origin, "source": signal.source,
            "distribution": signal.distribution, "nav_indexes": list(signal.nav_indexes),
            "errors": list(signal.errors), "extra": signal.extra}


def encode(message: dict[str, Any], binary: bool = False) -> list[Any]:
    """
    Encode a message as frames: the JSON body, then (with C{binary}) one
    frame per array, not copied.

    @raise SerializationError: a value has no JSON form.
    """
    buffers: list[Any] = []
    writer = ArrayWriter()

    def default(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            if binary and value.dtype.kind in "biufc" and value.dtype.byteorder in "=<|":
                array = np.ascontiguousarray(value)
                buffers.append(array)
                return {_ARRAY: len(buffers), "dtype": array.dtype.str,
                        "shape": list(array.shape)}
            return writer.array(value)
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, (tuple, set, frozenset)):
            return list(value)
        if isinstance(value, Signal):
            return _signal_dict(value)
        if isinstance(value, Export):
            return {_TYPE: "Export", "name": value.name, "signals": value.signals,
                    "timestamp": value.timestamp, "extra": value.extra}
        if isinstance(value, Axis):
            return {_TYPE: "Axis", "label": value.label, "units": value.units,
                    "data": value.data, "index": value.index,
                    "spread_order": value.spread_order}
        raise TypeError(type(value).__name__)

    try:
        body = writer.finish(json.dumps(message, default=default, allow_nan=True).encode())
    except (TypeError, ValueError, RecursionError) as e:
        raise SerializationError(
            f"result of type {type(message.get('result')).__name__} is not JSON-serializable "
            f"({e}), so it cannot cross the device protocol") from None
    return [body, *buffers]


def decode(frames: Sequence[Any]) -> dict[str, Any]:
    """
    Decode a reply (or request) from its frames, rebuilding arrays (as
    read-only views on the received frames), signals and exports.

    @param frames: C{bytes}, or C{zmq.Frame}s received with C{copy=False}.
    @raise ValueError: not a JSON object, or a bad array reference.
    """
    def raw(frame: Any) -> Any:
        return frame.buffer if hasattr(frame, "buffer") else frame

    def hook(obj: dict[str, Any]) -> Any:
        if _ARRAY in obj:
            index = obj[_ARRAY]
            if not isinstance(index, int) or not 1 <= index < len(frames):
                raise ValueError(f"array reference {index!r} names no frame")
            return np.frombuffer(raw(frames[index]), dtype=np.dtype(obj["dtype"])).reshape(
                obj["shape"])
        kind = obj.get(_TYPE)
        if kind == "Axis":
            return Axis(obj["label"], obj["units"], np.asarray(obj["data"]), obj["index"],
                        obj.get("spread_order", 0))
        if kind == "Signal":
            return Signal(obj["name"], [np.asarray(d) for d in obj["data"]], obj["labels"],
                          obj["units"], obj["axes"], obj["timestamp"], obj["origin"],
                          obj["kind"], obj["source"], obj["distribution"],
                          tuple(obj["nav_indexes"]), [np.asarray(e) for e in obj["errors"]],
                          obj["extra"])
        if kind == "Export":
            return Export(obj["name"], obj["signals"], obj["timestamp"], obj["extra"])
        return obj

    first = frames[0]
    body = bytes(raw(first))
    message = json.loads(body.decode("utf-8"), object_hook=hook)
    if not isinstance(message, dict):
        raise ValueError(f"a message must be a JSON object, got {type(message).__name__}")
    return message


def normalize_resources(requested: Any) -> list[str]:
    """
    Flatten a PLESTY resource request to a list of resource paths.

    Accepts a string, a list of strings, or a nested object whose C{null}
    values mean "the whole subtree" (C{{"axis": ["x", "y"]}} gives
    C{["axis/x", "axis/y"]}).

    @raise ValueError: any other shape, or an empty name.
    """
    out: list[str] = []

    def add(path: str) -> None:
        if not path or any(not part for part in path.split("/")):
            raise ValueError(f"invalid resource name {path!r}")
        if path not in out:
            out.append(path)

    def walk(prefix: str, node: Any) -> None:
        def join(name: str) -> str:
            return f"{prefix}/{name}" if prefix else name

        if node is None:
            add(prefix)
        elif isinstance(node, str):
            add(join(node))
        elif isinstance(node, list):
            for item in node:
                if isinstance(item, (str, dict)):
                    walk(prefix, item)
                else:
                    raise ValueError(f"invalid resource entry {item!r}")
        elif isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise ValueError(f"invalid resource name {key!r}")
                walk(join(key), value)
        else:
            raise ValueError(f"invalid resource request of type {type(node).__name__}")

    if requested is None:
        return out
    if isinstance(requested, list) and not requested:
        return out
    walk("", requested)
    return out
