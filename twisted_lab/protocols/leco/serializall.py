# -*- test-case-name: tests.test_leco_pymodaq_serializall -*-
"""
A byte-compatible codec for the serializall / pymodaq_data 5.x binary format.

PyMoDAQ 5 sends its data objects over LECO as one additional binary frame
made by C{serializall.SerializableFactory.get_apply_serializer}.  This module
reads and writes that format without serializall, PyMoDAQ or Qt, mapping the
PyMoDAQ classes onto L{twisted_lab.data}:

  - C{Axis} ↔ L{Axis};
  - C{DataWithAxes}, C{DataRaw}, C{DataActuator}, C{DataFromPlugins},
    C{DataCalculated} ↔ L{Signal} (C{Signal.kind} is the class name);
  - C{DataToExport} ↔ L{Export};
  - C{ParameterWithPath} ↔ L{ParameterWithPath} (path + the parameter XML);
  - the primitives C{None}, C{str}, C{bytes}, C{int}, C{float}, C{complex},
    C{bool}, C{numpy.ndarray}, C{list}, C{tuple}, C{dict}.

Format (spec leco.md §13.5): all integers are unsigned 32-bit big-endian; an
object is C{u32 len(T) | T | body} with C{T} the Python class name.  Decoding
is strict: any truncation, unknown type tag, inconsistent length or shape, or
trailing byte raises L{ProtocolError}, never anything else; no allocation is
made from a length before it is checked against the bytes actually present.

Arrays are decoded without copying: they are read-only views on the frame.
"""
from __future__ import annotations

import struct
from typing import Any, Callable

import numpy as np

from twisted_lab import headroom
from twisted_lab.data import SIGNAL_KINDS, Axis, Export, Signal
from twisted_lab.errors import InvalidValue, ProtocolError
from twisted_lab.formats.pymodaq.data import (SERIALIZALL_LAYOUT, check_array, signal_fields,
                                              signal_from_fields)
from twisted_lab.formats.pymodaq.objects import ParameterWithPath

__all__ = ["encode", "encode_buffer", "decode", "decode_prefix", "MAX_DEPTH"]

#: How deeply containers may nest before a frame is refused.
MAX_DEPTH = 64

_U32 = struct.Struct(">I")
_NUMERIC_KINDS = "biufc"
_ARRAY_KINDS = "biufcSU"
_SCALAR_DTYPES = {"int": "<i8", "float": "<f8", "complex": "<c16", "bool": "|b1"}


# -- encoding ---------------------------------------------------------------


def encode(obj: Any) -> bytes:
    """
    Serialize C{obj} exactly as serializall does.

    @param obj: a primitive, a numpy array, a L{Signal}, L{Axis}, L{Export}
        or L{ParameterWithPath}, or a list/tuple/dict of those.
    @return: the frame.
    @raise InvalidValue: C{obj} (or something inside it) cannot be encoded.
    """
    parts: list[Any] = []
    _encode(obj, parts, 0)
    return b"".join(parts)


def encode_buffer(obj: Any) -> bytes | np.ndarray[Any, Any]:
    """
    L{encode}, for large values.  When the value's one large array has room
    around it (L{headroom.empty}), the frame is laid out around the array's
    own memory, with no copy (L{headroom.lay_out}).  Otherwise it is a new
    C{uint8} array filled by numpy copies, which release the GIL
    (C{bytes.join} holds it), so a worker thread serialising a 32 MiB frame
    does not stop the reactor thread.

    @return: the frame (C{bytes} when small), a buffer to send as is.
    @raise InvalidValue: as L{encode}.
    """
    parts: list[Any] = []
    _encode(obj, parts, 0)
    sizes = [len(p) if isinstance(p, bytes) else memoryview(p).nbytes for p in parts]
    total = sum(sizes)
    if total < (1 << 20):
        return b"".join(parts)
    laid_out = headroom.lay_out(parts, sizes)
    if laid_out is not None:  # a frame read into room: no copy
        return laid_out
    out = np.empty(total, dtype=np.uint8)
    at = 0
    for part, size in zip(parts, sizes):
        if size:
            np.copyto(out[at:at + size], np.frombuffer(part, dtype=np.uint8))
        at += size
    return out


def _tag(name: str, parts: list[Any]) -> None:
    raw = name.encode()
    parts.append(_U32.pack(len(raw)))
    parts.append(raw)


def _str_body(text: str, parts: list[Any]) -> None:
    raw = text.encode()
    parts.append(_U32.pack(len(raw)))
    parts.append(raw)


def _encode_str(text: str, parts: list[Any]) -> None:
    _tag("str", parts)
    _str_body(text, parts)


def _encode_scalar(name: str, dtype: str, value: Any, parts: list[Any]) -> None:
    _tag(name, parts)
    _str_body(dtype, parts)
    raw = np.array([value], dtype=dtype).tobytes()
    parts.append(_U32.pack(len(raw)))
    parts.append(raw)


def _encode_int(value: int, parts: list[Any]) -> None:
    if -(2**63) <= value < 2**63:
        _encode_scalar("int", "<i8", value, parts)
    elif 0 <= value < 2**64:
        _encode_scalar("int", "<u8", value, parts)  # what numpy picks, as serializall does
    else:
        raise InvalidValue(f"integer {value} does not fit in 64 bits")


def _encode_array(array: np.ndarray, parts: list[Any]) -> None:
    if array.dtype.kind not in _ARRAY_KINDS or array.dtype.fields is not None:
        raise InvalidValue(f"cannot serialize a numpy array of dtype {array.dtype}")
    if any(n >= 2**32 for n in array.shape) or array.nbytes >= 2**32:
        raise InvalidValue(f"array of shape {array.shape} is too large for serializall")
    _tag("ndarray", parts)
    _str_body(array.dtype.str, parts)
    parts.append(_U32.pack(array.nbytes))
    parts.append(_U32.pack(array.ndim))
    for n in array.shape:
        parts.append(_U32.pack(n))
    contiguous = np.ascontiguousarray(array)
    parts.append(contiguous.reshape(-1).data.cast("B") if contiguous.size else b"")


def _encode_seq(name: str, items: Any, parts: list[Any], depth: int) -> None:
    _tag(name, parts)
    parts.append(_U32.pack(len(items)))
    for item in items:
        _encode(item, parts, depth + 1)


def _encode_axis(axis: Axis, parts: list[Any], depth: int) -> None:
    _tag("Axis", parts)
    _encode_str(axis.label, parts)
    _encode_str(axis.units, parts)
    _encode_array(np.asarray(axis.data), parts)
    _encode_int(int(axis.index), parts)
    _encode_int(int(axis.spread_order), parts)


def _encode_extras(extra: dict[str, Any], parts: list[Any], depth: int) -> None:
    _encode_seq("list", list(extra), parts, depth)
    for value in extra.values():
        _encode(value, parts, depth + 1)


def _encode_signal(signal: Signal, parts: list[Any], depth: int) -> None:
    _tag(signal.kind, parts)
    fields = signal_fields(signal)
    for field, form in SERIALIZALL_LAYOUT:
        value = fields[field]
        if form == "scalar":
            _encode_scalar("float", "<f8", value, parts)
        elif form == "string":
            _encode_str(value, parts)
        elif form == "extra":
            _encode_extras(value, parts, depth)
        else:
            _encode_seq("list", value, parts, depth)


def _encode_export(export: Export, parts: list[Any], depth: int) -> None:
    _tag("DataToExport", parts)
    _encode_scalar("float", "<f8", float(export.timestamp), parts)
    _encode_str(export.name, parts)
    _encode_seq("list", export.signals, parts, depth)
    _encode_extras(export.extra, parts, depth)


def _encode(obj: Any, parts: list[Any], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidValue(f"value nests deeper than {MAX_DEPTH} levels")
    if obj is None:
        _tag("NoneType", parts)
    elif isinstance(obj, bool) or isinstance(obj, np.bool_):
        _encode_scalar("bool", "|b1", bool(obj), parts)
    elif isinstance(obj, (int, np.integer)):
        _encode_int(int(obj), parts)
    elif isinstance(obj, (float, np.floating)):
        _encode_scalar("float", "<f8", float(obj), parts)
    elif isinstance(obj, (complex, np.complexfloating)):
        _encode_scalar("complex", "<c16", complex(obj), parts)
    elif isinstance(obj, str):
        _encode_str(obj, parts)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        raw = bytes(obj)
        _tag("bytes", parts)
        parts.append(_U32.pack(len(raw)))
        parts.append(raw)
    elif isinstance(obj, np.ndarray):
        _encode_array(obj, parts)
    elif isinstance(obj, list):
        _encode_seq("list", obj, parts, depth)
    elif isinstance(obj, tuple):
        _encode_seq("tuple", obj, parts, depth)
    elif isinstance(obj, dict):
        _tag("dict", parts)
        _encode_seq("list", list(obj), parts, depth)
        for value in obj.values():
            _encode(value, parts, depth + 1)
    elif isinstance(obj, Signal):
        _encode_signal(obj, parts, depth)
    elif isinstance(obj, Export):
        _encode_export(obj, parts, depth)
    elif isinstance(obj, Axis):
        _encode_axis(obj, parts, depth)
    elif isinstance(obj, ParameterWithPath):
        _tag("ParameterWithPath", parts)
        _encode_seq("list", list(obj.path), parts, depth)
        _encode(bytes(obj.xml), parts, depth + 1)
    else:
        raise InvalidValue(f"cannot serialize a {type(obj).__name__} with serializall")


# -- decoding ---------------------------------------------------------------


class _Reader:
    """A bounds-checked cursor over one frame."""

    __slots__ = ("buf", "pos", "end")

    def __init__(self, data: bytes | bytearray | memoryview, pos: int = 0) -> None:
        self.buf = memoryview(data).cast("B")
        self.pos = pos
        self.end = len(self.buf)

    def left(self) -> int:
        return self.end - self.pos

    def take(self, n: int, what: str) -> memoryview:
        if n > self.end - self.pos:
            raise ProtocolError(
                f"serializall frame truncated: {what} needs {n} bytes at offset {self.pos}, "
                f"{self.end - self.pos} left"
            )
        start = self.pos
        self.pos += n
        return self.buf[start:self.pos]

    def u32(self, what: str) -> int:
        value: int = _U32.unpack(self.take(4, what))[0]
        return value

    def text(self, what: str) -> str:
        n = self.u32(what + " length")
        raw = self.take(n, what)
        try:
            return bytes(raw).decode()
        except UnicodeDecodeError:
            raise ProtocolError(f"serializall {what} at offset {self.pos - n} is not UTF-8") from None


def decode(data: bytes | bytearray | memoryview) -> Any:
    """
    Deserialize one whole frame.

    @return: the object (see the module docstring for the mapping).
    @raise ProtocolError: the frame is malformed, holds an unknown type, or
        has bytes left over after the object.
    """
    obj, end = decode_prefix(data)
    if end != len(memoryview(data).cast("B")):
        raise ProtocolError(f"serializall frame has {len(memoryview(data).cast('B')) - end} "
                            f"trailing bytes after the object")
    return obj


def decode_prefix(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[Any, int]:
    """
    Deserialize the object starting at C{offset}.

    @return: the object and the offset just after it.
    @raise ProtocolError: the bytes are malformed.
    """
    reader = _Reader(data, offset)
    try:
        return _decode(reader, 0), reader.pos
    except ProtocolError:
        raise
    except (ValueError, TypeError, OverflowError, MemoryError) as e:
        raise ProtocolError(f"malformed serializall frame: {type(e).__name__}: {e}") from None


def _decode(r: _Reader, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ProtocolError(f"serializall frame nests deeper than {MAX_DEPTH} levels")
    name = r.text("type tag")
    decoder = _DECODERS.get(name)
    if decoder is None:
        raise ProtocolError(f"unknown serializall type {name!r} at offset {r.pos - len(name)}")
    return decoder(r, depth)


def _expect(r: _Reader, depth: int, kind: type | tuple[type, ...], what: str) -> Any:
    value = _decode(r, depth + 1)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(f"serializall {what}: expected {_kind_name(kind)}, "
                            f"got {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return "/".join(k.__name__ for k in kind)
    return kind.__name__


def _dtype(text: str, kinds: str) -> np.dtype[Any]:
    try:
        dtype = np.dtype(text)
    except TypeError:
        raise ProtocolError(f"serializall dtype {text!r} is not a numpy dtype") from None
    if dtype.kind not in kinds or dtype.fields is not None or dtype.itemsize == 0:
        raise ProtocolError(f"serializall dtype {text!r} is not allowed here")
    return dtype


def _d_none(r: _Reader, depth: int) -> None:
    return None


def _d_str(r: _Reader, depth: int) -> str:
    return r.text("str")


def _d_bytes(r: _Reader, depth: int) -> bytes:
    return bytes(r.take(r.u32("bytes length"), "bytes"))


def _d_scalar(name: str) -> Callable[[_Reader, int], Any]:
    def decode_scalar(r: _Reader, depth: int) -> Any:
        dtype = _dtype(r.text(name + " dtype"), _NUMERIC_KINDS)
        n = r.u32(name + " length")
        raw = r.take(n, name)
        if n != dtype.itemsize:
            raise ProtocolError(f"serializall {name}: {n} bytes for dtype {dtype.str}")
        value = np.frombuffer(raw, dtype=dtype)[0]
        # serializall converts by the letters in the dtype string.
        text = dtype.str
        if "f" in text:
            return float(value)
        if "i" in text:
            return int(value)
        if "c" in text:
            return complex(value)
        if "b" in text:
            return bool(value)
        return value.item()

    return decode_scalar


def _d_ndarray(r: _Reader, depth: int) -> np.ndarray:
    dtype = _dtype(r.text("ndarray dtype"), _ARRAY_KINDS)
    nbytes = r.u32("ndarray length")
    ndim = r.u32("ndarray ndim")
    if ndim * 4 > r.left():
        raise ProtocolError(f"serializall ndarray claims {ndim} dimensions, frame too short")
    shape = tuple(r.u32("ndarray shape") for _ in range(ndim))
    check_array("serializall ndarray", dtype, shape, nbytes)
    raw = r.take(nbytes, "ndarray data")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _d_list(r: _Reader, depth: int) -> list[Any]:
    count = r.u32("list count")
    if count * 11 > r.left():  # the smallest object (an empty str) takes 11 bytes
        raise ProtocolError(f"serializall list of {count} items cannot fit in {r.left()} bytes")
    return [_decode(r, depth + 1) for _ in range(count)]


def _d_tuple(r: _Reader, depth: int) -> tuple[Any, ...]:
    return tuple(_d_list(r, depth))


def _d_dict(r: _Reader, depth: int) -> dict[Any, Any]:
    keys = _expect(r, depth, list, "dict keys")
    out: dict[Any, Any] = {}
    for key in keys:
        try:
            out[key] = _decode(r, depth + 1)
        except TypeError:
            raise ProtocolError(f"serializall dict key of type {type(key).__name__} "
                                f"is not hashable") from None
    return out


def _d_axis(r: _Reader, depth: int) -> Axis:
    label = _expect(r, depth, str, "Axis label")
    units = _expect(r, depth, str, "Axis units")
    data = _expect(r, depth, np.ndarray, "Axis data")
    index = _expect(r, depth, int, "Axis index")
    spread_order = _expect(r, depth, int, "Axis spread_order")
    return Axis(label, units, data, index, spread_order)


def _d_extras(r: _Reader, depth: int, what: str) -> dict[str, Any]:
    names = _expect(r, depth, list, what + " extra_attributes")
    if not all(isinstance(n, str) for n in names):
        raise ProtocolError(f"serializall {what}: extra attribute names must be str")
    return {n: _decode(r, depth + 1) for n in names}


def _list_of(value: list[Any], kind: type, what: str) -> list[Any]:
    for item in value:
        if not isinstance(item, kind) or (kind is int and isinstance(item, bool)):
            raise ProtocolError(f"serializall {what}: expected a list of {kind.__name__}, "
                                f"found {type(item).__name__}")
    return value


#: What a typed list of a serializall C{DataWithAxes} holds.
_LIST_ITEMS: dict[str, type] = {"array": np.ndarray, "string": str, "scalar": int, "axis": Axis}


def _d_signal(kind: str) -> Callable[[_Reader, int], Signal]:
    def decode_signal(r: _Reader, depth: int) -> Signal:
        fields: dict[str, Any] = {}
        for field, form in SERIALIZALL_LAYOUT:
            what = f"{kind} {field}"
            if form == "scalar":
                fields[field] = _expect(r, depth, (float, int), what)
            elif form == "string":
                fields[field] = _expect(r, depth, str, what)
            elif form == "extra":
                fields[field] = _d_extras(r, depth, kind)
            else:
                fields[field] = _list_of(_expect(r, depth, list, what), _LIST_ITEMS[form[5:]],
                                         what)
        return signal_from_fields(kind, fields, "serializall ")

    return decode_signal


def _d_export(r: _Reader, depth: int) -> Export:
    timestamp = _expect(r, depth, (float, int), "DataToExport timestamp")
    name = _expect(r, depth, str, "DataToExport name")
    signals = _list_of(_expect(r, depth, list, "DataToExport data"), Signal, "DataToExport data")
    extra = _d_extras(r, depth, "DataToExport")
    return Export(name, signals, timestamp=timestamp, extra=extra)


def _d_parameter(r: _Reader, depth: int) -> ParameterWithPath:
    path = _list_of(_expect(r, depth, list, "ParameterWithPath path"), str,
                    "ParameterWithPath path")
    xml = _expect(r, depth, bytes, "ParameterWithPath XML")
    return ParameterWithPath(path, xml)


_DECODERS: dict[str, Callable[[_Reader, int], Any]] = {
    "NoneType": _d_none,
    "str": _d_str,
    "bytes": _d_bytes,
    "int": _d_scalar("int"),
    "float": _d_scalar("float"),
    "complex": _d_scalar("complex"),
    "bool": _d_scalar("bool"),
    "ndarray": _d_ndarray,
    "list": _d_list,
    "tuple": _d_tuple,
    "dict": _d_dict,
    "Axis": _d_axis,
    "DataToExport": _d_export,
    "ParameterWithPath": _d_parameter,
}
_DECODERS.update({kind: _d_signal(kind) for kind in SIGNAL_KINDS})
