# -*- test-case-name: tests.test_web_codec -*-
"""
Values to JSON and arrays to bytes, for the HTTP API and the WebSocket.

JSON carries plain values; numpy arrays become lists only when small
(L{MAX_JSON_ARRAY} items), and L{twisted_lab.data.Export}/L{Signal} become
a summary plus their data.  Big arrays go as C{.npy} (L{npy_bytes}) or as
binary WebSocket frames (L{pack_frame}).
"""
from __future__ import annotations

import io
import json
import math
import struct
from typing import Any

import numpy as np
import numpy.typing as npt

from twisted_lab.data import Export, Signal

__all__ = ["MAX_JSON_ARRAY", "to_json", "dumps", "npy_bytes", "pack_frame", "frame_image",
           "signal_summary"]

#: Arrays up to this many items are inlined in JSON; bigger ones are summarised.
MAX_JSON_ARRAY = 65536


def _number(value: float) -> Any:
    return value if math.isfinite(value) else str(value)


def signal_summary(signal: Signal, with_data: bool = True) -> dict[str, Any]:
    """A JSON-friendly form of a L{Signal} (data inlined when small)."""
    out: dict[str, Any] = {
        "name": signal.name, "kind": signal.kind, "dim": signal.dim, "units": signal.units,
        "labels": list(signal.labels), "shape": list(signal.shape),
        "timestamp": signal.timestamp,
        "axes": [{"label": a.label, "units": a.units, "index": a.index, "size": a.size,
                  "data": to_json(a.data)} for a in signal.axes],
    }
    if with_data:
        out["data"] = [to_json(channel) for channel in signal.data]
    return out


def to_json(value: Any) -> Any:
    """
    A JSON-friendly copy of a device value.

    @return: plain dicts, lists, strings, numbers, booleans and C{None};
        non-finite floats as strings (C{"nan"}), big arrays as a summary
        C{{"shape", "dtype", "truncated": true}}.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, np.generic):
        return to_json(value.item())
    if isinstance(value, np.ndarray):
        if value.size > MAX_JSON_ARRAY:
            return {"shape": list(value.shape), "dtype": str(value.dtype), "truncated": True}
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            return [to_json(v) for v in value.tolist()]
        return value.tolist()
    if isinstance(value, Export):
        return {"name": value.name, "timestamp": value.timestamp,
                "signals": [signal_summary(s) for s in value.signals]}
    if isinstance(value, Signal):
        return signal_summary(value)
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def dumps(value: Any) -> bytes:
    """C{to_json(value)} as compact UTF-8 JSON."""
    return json.dumps(to_json(value), separators=(",", ":"), allow_nan=False).encode()


def npy_bytes(array: npt.NDArray[Any]) -> bytes:
    """An array in the C{.npy} format (C{numpy.load} reads it back; no pickles)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def frame_image(array: npt.NDArray[Any], max_side: int) -> npt.NDArray[Any]:
    """
    An image reduced for drawing: every k-th pixel so that no side exceeds
    C{max_side}, as C{float32} (or C{uint16}/C{uint8} kept as they are),
    C-contiguous.
    """
    image = np.asarray(array)
    if image.ndim > 2:
        image = image.reshape(image.shape[-2], image.shape[-1]) if image.size == \
            image.shape[-2] * image.shape[-1] else image[(0,) * (image.ndim - 2)]
    step = max(1, math.ceil(max(image.shape) / max(1, max_side)))
    if step > 1:
        image = image[::step, ::step]
    if image.dtype not in (np.uint16, np.uint8, np.float32):
        image = image.astype(np.float32)
    return np.ascontiguousarray(image)


def pack_frame(header: dict[str, Any], array: npt.NDArray[Any]) -> bytes:
    """
    One binary WebSocket message: a 4-byte little-endian header length, the
    JSON header (with C{shape} and C{dtype} added, padded with spaces to a
    multiple of 8 bytes so the data is aligned), then the raw little-endian
    array bytes.
    """
    data = np.ascontiguousarray(array)
    if data.dtype.byteorder == ">":
        data = data.byteswap().view(data.dtype.newbyteorder("<"))
    head = dict(header, shape=list(data.shape), dtype=data.dtype.name)
    text = json.dumps(to_json(head), separators=(",", ":")).encode()
    text += b" " * ((-(len(text) + 4)) % 8)
    return struct.pack("<I", len(text)) + text + data.tobytes()
