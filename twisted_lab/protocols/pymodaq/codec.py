# -*- test-case-name: tests.test_pymodaq_codec -*-
"""
Encoders and decoders for the primitives and objects of PyMoDAQ's TCP/IP
serializer (C{specs/pymodaq-tcp.md} §2), mapped onto L{twisted_lab.data}.

Encoding produces a I{list of chunks}: small C{bytes} pieces for headers and a
C{memoryview} of each array's C-contiguous data, so that a big image is never
copied before it reaches the transport (see L{chunks_size}, L{join}).

Decoding is done by L{Reader}, a cursor over a buffer that raises
L{Incomplete} (with the buffer offset it needs) when the data stop short, so
that L{twisted_lab.protocols.pymodaq.parser} can resume when more arrive.

The DataWithAxes field set depends on the peer's release (§9): see
L{WireVersion} and L{VERSIONS}.
"""
from __future__ import annotations

import builtins
import struct
from dataclasses import dataclass
from typing import Any, List, NamedTuple, Sequence, Union

import numpy as np
import numpy.typing as npt

from twisted_lab.data import SIGNAL_KINDS, Axis, Export, Signal
from twisted_lab.errors import InvalidValue, ProtocolError

__all__ = [
    "WireVersion", "VERSIONS", "DEFAULT_VERSION", "version", "Chunk", "Incomplete", "Fill",
    "ParameterWithPath", "Reader", "Encoder", "join", "chunks_size", "parse_dtype",
    "MAX_NDIM",
]

#: A piece of an encoded message.
Chunk = Union[bytes, memoryview]

_U32 = struct.Struct("!I")
#: Arrays with more dimensions than this are refused (numpy's own limit is 64).
MAX_NDIM = 32
_SIMPLE_KINDS = frozenset("biufcSU")


@dataclass(frozen=True)
class WireVersion:
    """
    The message layout of one range of PyMoDAQ releases.

    @ivar name: the config name (C{"4.4"}).
    @ivar legacy: C{True} for ≤ 4.0: list of arrays after C{Done}, C{<f8} scalars as positions.
    @ivar units: DataWithAxes carries C{units} (4.4+).
    @ivar errors: DataWithAxes carries C{errors} (4.2+).
    @ivar extra: DataWithAxes carries extra attributes (4.1.3+).
    @ivar bool_tag: the list tag of a Python C{bool} (C{"bool"} from 4.4.7, else C{"scalar"}).
    """

    name: str
    legacy: bool = False
    units: bool = True
    errors: bool = True
    extra: bool = True
    bool_tag: str = "bool"


#: The accepted wire versions by config name.
VERSIONS: dict[str, WireVersion] = {
    "4.4": WireVersion("4.4"),
    "4.3": WireVersion("4.3", units=False, bool_tag="scalar"),
    "4.2": WireVersion("4.2", units=False, bool_tag="scalar"),
    "4.1.3": WireVersion("4.1.3", units=False, errors=False, bool_tag="scalar"),
    "4.1": WireVersion("4.1", units=False, errors=False, extra=False, bool_tag="scalar"),
    "legacy": WireVersion("legacy", legacy=True, units=False, errors=False, extra=False,
                          bool_tag="scalar"),
}
DEFAULT_VERSION = VERSIONS["4.4"]


def version(name: str | WireVersion) -> WireVersion:
    """
    The L{WireVersion} of a config name.

    @raise InvalidValue: unknown name.
    """
    if isinstance(name, WireVersion):
        return name
    try:
        return VERSIONS[name]
    except KeyError:
        raise InvalidValue(f"unknown PyMoDAQ wire version {name!r}; "
                           f"use one of {', '.join(VERSIONS)}") from None


class ParameterWithPath(NamedTuple):
    """A C{parameter} list element: a settings path and one parameter's XML."""

    path: list[str]
    xml: bytes


class Incomplete(Exception):
    """
    The buffer ends before the item being read.

    @ivar need: the buffer offset up to which data are needed.
    """

    def __init__(self, need: int) -> None:
        self.need = need


class Fill(Exception):
    """
    A large array's raw data start at buffer offset C{at}; the caller should
    collect its C{nbytes} directly into an array (see L{Reader.fills}).
    """

    def __init__(self, at: int, nbytes: int) -> None:
        self.at = at
        self.nbytes = nbytes


_DTYPES: dict[str, np.dtype[Any]] = {}


def parse_dtype(text: str) -> np.dtype[Any]:
    """
    The numpy dtype named by a wire dtype string, if it is a simple one.

    @raise ProtocolError: numpy cannot parse it, or it is an object,
        structured, sub-array or zero-size type.
    """
    dtype = _DTYPES.get(text)
    if dtype is not None:
        return dtype
    try:
        dtype = np.dtype(text)
    except Exception as e:
        raise ProtocolError(f"dtype {text!r} is not a numpy dtype ({e})") from None
    if (dtype.kind not in _SIMPLE_KINDS or dtype.hasobject or dtype.fields is not None
            or dtype.subdtype is not None or dtype.itemsize == 0):
        raise ProtocolError(f"dtype {text!r} is not a simple numeric or string dtype")
    if len(_DTYPES) < 256:
        _DTYPES[text] = dtype
    return dtype


def join(chunks: Sequence[Chunk]) -> bytes:
    """The bytes of an encoded chunk list."""
    return b"".join(chunks)


def chunks_size(chunks: Sequence[Chunk]) -> int:
    """The number of bytes of an encoded chunk list."""
    return sum(len(c) if isinstance(c, bytes) else c.nbytes for c in chunks)


def _u32(n: int) -> bytes:
    if not 0 <= n < 1 << 32:
        raise InvalidValue(f"{n} does not fit in the protocol's unsigned 32-bit length")
    return _U32.pack(n)


_STRINGS: dict[str, bytes] = {}
_F8 = struct.Struct("<d")
_F8_HEADER = b"\x00\x00\x00\x03<f8\x00\x00\x00\x08"
#: The Reader method of each typed-list element type.
_READERS = {"array": "ndarray", "string": "string", "scalar": "scalar", "axis": "axis",
            "dwa": "signal"}


def _string(text: str) -> bytes:
    cached = _STRINGS.get(text)
    if cached is not None:
        return cached
    raw = text.encode("utf-8")
    out = _u32(len(raw)) + raw
    if len(text) <= 32 and len(_STRINGS) < 1024:
        _STRINGS[text] = out
    return out


class Encoder:
    """
    Encodes values in the layout of one L{WireVersion}.

    Every method appends chunks to C{out} (a list) and returns nothing.
    """

    def __init__(self, wire: str | WireVersion = DEFAULT_VERSION) -> None:
        self.wire = version(wire)

    # -- primitives ------------------------------------------------------------

    def string(self, out: List[Chunk], text: str | bytes) -> None:
        """A length-prefixed UTF-8 string (or raw bytes)."""
        if isinstance(text, str):
            out.append(_string(text))
        else:
            out.append(_u32(len(text)) + bytes(text))

    def scalar(self, out: List[Chunk], value: Any) -> None:
        """dtype string + length + raw item (C{float} → C{<f8}, C{int} → C{<i8}, ...)."""
        if isinstance(value, np.ndarray):
            if value.size != 1:
                raise InvalidValue(f"a scalar must hold one value, got shape {value.shape}")
            item = value.reshape(1)
        elif isinstance(value, np.generic):
            item = np.array([value])
        elif isinstance(value, bool):
            item = np.array([value], dtype=np.bool_)
        elif isinstance(value, int):
            if not -(1 << 63) <= value < 1 << 63:
                raise InvalidValue(f"integer {value} does not fit in 64 bits")
            item = np.array([value], dtype="<i8")
        elif isinstance(value, float):
            out.append(b"\x00\x00\x00\x03<f8\x00\x00\x00\x08" + struct.pack("<d", value))
            return
        elif isinstance(value, complex):
            item = np.array([value], dtype="<c16")
        else:
            raise InvalidValue(f"cannot send {type(value).__name__} {value!r} as a scalar")
        if item.dtype.kind not in _SIMPLE_KINDS:
            raise InvalidValue(f"cannot send dtype {item.dtype} as a scalar")
        raw = item.tobytes()
        out.append(_string(item.dtype.str) + _u32(len(raw)) + raw)

    def ndarray(self, out: List[Chunk], array: npt.NDArray[Any]) -> None:
        """dtype, nbytes, ndim, shape, then the raw C-order data (not copied)."""
        array = np.asarray(array)
        if array.dtype.kind not in _SIMPLE_KINDS or array.dtype.fields is not None:
            raise InvalidValue(f"cannot send arrays of dtype {array.dtype}")
        if array.ndim > MAX_NDIM:
            raise InvalidValue(f"cannot send {array.ndim}-dimensional arrays")
        array = np.ascontiguousarray(array) if array.ndim else array.reshape(1)
        header = [_string(array.dtype.str), _u32(array.nbytes), _u32(array.ndim)]
        header.extend(_u32(n) for n in array.shape)
        out.append(b"".join(header))
        if array.nbytes:
            data = memoryview(array.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
            out.append(data if array.nbytes > 4096 else data.tobytes())

    def list(self, out: List[Chunk], items: Sequence[Any]) -> None:
        """A count, then each item as type tag + value."""
        out.append(_u32(len(items)))
        for item in items:
            self.element(out, item)

    def element(self, out: List[Chunk], item: Any) -> None:
        """One tagged list element (tag chosen by type, in PyMoDAQ 4.4.11's order)."""
        if isinstance(item, Signal):
            out.append(_string("dwa"))
            self.signal(out, item)
        elif isinstance(item, Axis):
            out.append(_string("axis"))
            self.axis(out, item)
        elif isinstance(item, np.ndarray):
            out.append(_string("array"))
            self.ndarray(out, item)
        elif isinstance(item, (bytes, bytearray)):
            out.append(_string("bytes"))
            self.string(out, bytes(item))
        elif isinstance(item, str):
            out.append(_string("string"))
            self.string(out, item)
        elif isinstance(item, bool):
            out.append(_string(self.wire.bool_tag))
            self.scalar(out, item)
        elif isinstance(item, (int, float, complex, np.generic)):
            out.append(_string("scalar"))
            self.scalar(out, item)
        elif isinstance(item, ParameterWithPath):
            out.append(_string("parameter"))
            self.list(out, list(item.path))
            self.string(out, item.xml)
        elif isinstance(item, (list, tuple)):
            out.append(_string("list"))
            self.list(out, item)
        elif isinstance(item, Export):
            out.append(_string("dte"))
            self.export(out, item)
        else:
            raise InvalidValue(f"cannot send {type(item).__name__} {item!r} in a list")

    # -- composites ------------------------------------------------------------

    def axis(self, out: List[Chunk], axis: Axis) -> None:
        """An L{Axis} as PyMoDAQ's C{Axis}."""
        out.append(_string("Axis"))
        self.string(out, axis.label)
        self.string(out, axis.units)
        self.ndarray(out, axis.data)
        self.scalar(out, int(axis.index))
        self.scalar(out, int(axis.spread_order))

    def signal(self, out: List[Chunk], signal: Signal) -> None:
        """A L{Signal} as the DataWithAxes class named by its C{kind}."""
        wire = self.wire
        self.string(out, signal.kind)
        self.scalar(out, float(signal.timestamp))
        self.string(out, signal.name)
        if wire.units:
            self.string(out, signal.units)
        self.string(out, signal.source)
        self.string(out, signal.dim)
        self.string(out, signal.distribution)
        out.append(_u32(len(signal.data)))
        for channel in signal.data:
            out.append(_string("array"))
            self.ndarray(out, channel)
        self.list(out, [str(label) for label in signal.labels])
        self.string(out, signal.origin)
        self.list(out, [int(i) for i in signal.nav_indexes])
        out.append(_u32(len(signal.axes)))
        for axis in signal.axes:
            out.append(_string("axis"))
            self.axis(out, axis)
        if wire.errors:
            out.append(_u32(len(signal.errors)))
            for error in signal.errors:
                out.append(_string("array"))
                self.ndarray(out, error)
        if wire.extra:
            self.list(out, list(signal.extra))
            for value in signal.extra.values():
                self.element(out, value)

    def export(self, out: List[Chunk], export: Export) -> None:
        """An L{Export} as PyMoDAQ's C{DataToExport}."""
        out.append(_string("DataToExport"))
        self.scalar(out, float(export.timestamp))
        self.string(out, export.name)
        out.append(_u32(len(export.signals)))
        for signal in export.signals:
            out.append(_string("dwa"))
            self.signal(out, signal)

    def position(self, out: List[Chunk], position: Signal | float, units: str = "",
                 name: str = "") -> None:
        """
        A position: a C{DataActuator} (4.x) or a C{<f8} scalar (legacy).

        @param position: a L{Signal} or a number (wrapped in a C{DataActuator}).
        """
        if self.wire.legacy:
            value = position.value() if isinstance(position, Signal) else position
            self.scalar(out, float(value))
            return
        if not isinstance(position, Signal):
            position = Signal.scalar(name, float(position), units=units, kind="DataActuator")
        self.signal(out, position)

    def grab_reply(self, out: List[Chunk], export: Export) -> None:
        """What follows C{Done}: an L{Export}, or (legacy) a list of its arrays."""
        if self.wire.legacy:
            self.list(out, [channel for signal in export for channel in signal.data])
        else:
            self.export(out, export)


class Reader:
    """
    A cursor over a buffer holding PyMoDAQ primitives.

    Reads raise L{Incomplete} when the buffer ends too early, and
    L{ProtocolError} on malformed data.  An array of at least C{large} bytes
    whose data are not all buffered raises L{Fill}; the caller then collects
    the data and puts the array in C{fills} under its offset, and the next
    read at that offset takes it from there (consuming no buffer bytes).

    @ivar buf: the buffer (C{bytes}, C{bytearray} or C{memoryview}).
    @ivar pos: the current offset.
    @ivar end: the end of valid data.
    """

    __slots__ = ("buf", "pos", "end", "wire", "fills", "large")

    def __init__(self, buf: Any, pos: int = 0, end: int | None = None,
                 wire: str | WireVersion = DEFAULT_VERSION,
                 fills: dict[int, npt.NDArray[np.uint8]] | None = None,
                 large: int | None = None) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end
        self.wire = version(wire)
        self.fills = fills
        self.large = large

    def at_end(self) -> bool:
        """C{True} when every byte was read."""
        return self.pos >= self.end

    # -- primitives ------------------------------------------------------------

    def u32(self) -> int:
        """A big-endian unsigned 32-bit integer."""
        p = self.pos
        q = p + 4
        if q > self.end:
            raise Incomplete(q)
        self.pos = q
        value: int = _U32.unpack_from(self.buf, p)[0]
        return value

    def raw(self, n: int) -> builtins.bytes:
        """C{n} bytes."""
        p = self.pos
        q = p + n
        if q > self.end:
            raise Incomplete(q)
        self.pos = q
        return bytes(self.buf[p:q])

    def bytes(self) -> builtins.bytes:
        """A length-prefixed byte string."""
        return self.raw(self.u32())

    def string(self) -> str:
        """A length-prefixed UTF-8 string."""
        p = self.pos
        end = self.end
        if p + 4 > end:
            raise Incomplete(p + 4)
        buf = self.buf
        q = p + 4 + _U32.unpack_from(buf, p)[0]
        if q > end:
            raise Incomplete(q)
        self.pos = q
        try:
            return str(buf[p + 4:q], "utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError(f"string is not UTF-8 ({e})") from None

    def _expect(self, raw: builtins.bytes, what: str) -> None:
        """Read a string that must equal the encoded C{raw} (a tag)."""
        p = self.pos
        q = p + len(raw)
        if q > self.end:
            self.string()  # raises Incomplete, or reads a different, shorter string
        elif self.buf[p:q] == raw:
            self.pos = q
            return
        else:
            self.string()
        self.pos = p
        got = self.string()
        raise ProtocolError(f"{what}: element of type {got[:40]!r}, expected "
                            f"{raw[4:].decode()!r}")

    def scalar(self) -> Any:
        """
        A scalar: C{float}, C{int} or C{complex} for those kinds, else a numpy scalar.
        """
        p = self.pos
        if self.buf[p:p + 15] == _F8_HEADER and p + 23 <= self.end:
            self.pos = p + 23
            value: float = _F8.unpack_from(self.buf, p + 15)[0]
            return value
        dtype = parse_dtype(self.string())
        n = self.u32()
        if n != dtype.itemsize:
            raise ProtocolError(f"scalar of dtype {dtype.str} has {n} bytes, "
                                f"expected {dtype.itemsize}")
        item = np.frombuffer(self.raw(n), dtype=dtype)[0]
        kind = dtype.kind
        if kind == "f":
            return float(item)
        if kind == "i":
            return int(item)
        if kind == "c":
            return complex(item)
        return item

    def ndarray(self) -> npt.NDArray[Any]:
        """An array (at least 1-D)."""
        dtype = parse_dtype(self.string())
        nbytes = self.u32()
        ndim = self.u32()
        if ndim > MAX_NDIM:
            raise ProtocolError(f"array has {ndim} dimensions (at most {MAX_NDIM})")
        shape = tuple(self.u32() for _ in range(ndim))
        count = 1
        for n in shape:
            count *= n
        if count * dtype.itemsize != nbytes:
            raise ProtocolError(f"array of shape {shape} and dtype {dtype.str} needs "
                                f"{count * dtype.itemsize} bytes, the message says {nbytes}")
        p = self.pos
        fills = self.fills
        if fills is not None and p in fills:
            data = fills[p]
        else:
            q = p + nbytes
            if q > self.end:
                if self.large is not None and nbytes >= self.large:
                    raise Fill(p, nbytes)
                raise Incomplete(q)
            data = np.frombuffer(self.buf, dtype=np.uint8, count=nbytes, offset=p).copy()
            self.pos = q
        array = data.view(dtype).reshape(shape)
        return array if ndim else array.reshape(1)

    def list(self) -> List[Any]:
        """A count, then tagged elements."""
        return [self.element() for _ in range(self.u32())]

    def element(self) -> Any:
        """One tagged list element."""
        return self.tagged(self.string())

    def tagged(self, tag: str) -> Any:
        """The value of an element whose tag was read."""
        if tag == "string":
            return self.string()
        if tag == "array":
            return self.ndarray()
        if tag == "scalar":
            return self.scalar()
        if tag == "bool":
            value = self.scalar()
            return bool(value)
        if tag == "bytes":
            return self.bytes()
        if tag == "list":
            return self.list()
        if tag == "axis":
            return self.axis()
        if tag == "dwa":
            return self.signal()
        if tag == "dte":
            return self.export()
        if tag == "parameter":
            path = self.list()
            return ParameterWithPath([str(p) for p in path], self.bytes())
        raise ProtocolError(f"unknown list element type {tag[:40]!r}")

    def _typed_list(self, tag: str, what: str) -> List[Any]:
        items: List[Any] = []
        raw = _string(tag)
        read = getattr(self, _READERS[tag])
        for _ in range(self.u32()):
            self._expect(raw, what)
            items.append(read())
        return items

    # -- composites ------------------------------------------------------------

    def _class_name(self, expected: str) -> None:
        raw = _string(expected)
        p = self.pos
        if self.buf[p:p + len(raw)] == raw:
            self.pos = p + len(raw)
            return
        name = self.string()
        if name != expected:
            raise ProtocolError(f"expected an {expected}, got {name[:40]!r}")

    def axis(self) -> Axis:
        """An C{Axis}."""
        self._class_name("Axis")
        label = self.string()
        units = self.string()
        data = self.ndarray()
        index = self.scalar()
        spread_order = self.scalar()
        if not isinstance(index, int) or not isinstance(spread_order, int):
            raise ProtocolError(f"axis {label!r}: index and spread order must be integers")
        return Axis(label, units, data, index, spread_order)

    def signal(self) -> Signal:
        """A DataWithAxes (any class of the family) as a L{Signal}."""
        wire = self.wire
        kind = self.string()
        if kind not in SIGNAL_KINDS:
            raise ProtocolError(f"{kind[:40]!r} is not a DataWithAxes class")
        timestamp = self.scalar()
        name = self.string()
        units = self.string() if wire.units else ""
        source = self.string()
        dim = self.string()
        distribution = self.string()
        data = self._typed_list("array", "data")
        labels = self._typed_list("string", "labels")
        origin = self.string()
        nav = self._typed_list("scalar", "nav_indexes")
        axes = self._typed_list("axis", "axes")
        errors = self._typed_list("array", "errors") if wire.errors else []
        extra: dict[str, Any] = {}
        if wire.extra:
            for key in self._typed_list("string", "extra attribute names"):
                extra[key] = self.element()
        if not isinstance(timestamp, float):
            raise ProtocolError(f"{kind} {name!r}: timestamp is not a float")
        try:
            return Signal(name, data, labels=labels, units=units, axes=axes,
                          timestamp=timestamp, origin=origin, kind=kind, source=source,
                          distribution=distribution, nav_indexes=tuple(int(i) for i in nav),
                          errors=errors, extra=extra, dim=dim)
        except (ValueError, TypeError) as e:
            raise ProtocolError(f"invalid {kind}: {e}") from None

    def export(self) -> Export:
        """A C{DataToExport} as an L{Export}."""
        self._class_name("DataToExport")
        timestamp = self.scalar()
        name = self.string()
        signals = self._typed_list("dwa", "DataToExport")
        if not isinstance(timestamp, float):
            raise ProtocolError(f"DataToExport {name!r}: timestamp is not a float")
        return Export(name, signals, timestamp=timestamp)

    def position(self) -> Signal:
        """A position: a C{DataActuator}, or (legacy) a scalar wrapped in one."""
        if self.wire.legacy:
            value = self.scalar()
            if not isinstance(value, (int, float)):
                raise ProtocolError(f"position {value!r} is not a number")
            return Signal.scalar("", float(value), kind="DataActuator")
        return self.signal()

    def grab_reply(self) -> Export:
        """What follows C{Done}: an L{Export} (legacy: a list of arrays, one signal each)."""
        if not self.wire.legacy:
            return self.export()
        arrays = self._typed_list("array", "Done")
        return Export("", [Signal(f"CH{i:02d}", [a], kind="DataFromPlugins")
                           for i, a in enumerate(arrays)])


def encode(method: str, value: Any, wire: str | WireVersion = DEFAULT_VERSION) -> builtins.bytes:
    """
    Encode one value with an L{Encoder} method (C{"string"}, C{"signal"}, ...).

    @return: the bytes.
    """
    out: List[Chunk] = []
    getattr(Encoder(wire), method)(out, value)
    return join(out)


def decode(method: str, data: bytes, wire: str | WireVersion = DEFAULT_VERSION) -> Any:
    """
    Decode one complete value with a L{Reader} method.

    @raise ProtocolError: malformed, truncated, or followed by extra bytes.
    """
    reader = Reader(data, wire=wire)
    try:
        value = getattr(reader, method)()
    except Incomplete as e:
        raise ProtocolError(f"truncated: {e.need - len(data)} more bytes needed") from None
    if not reader.at_end():
        raise ProtocolError(f"{len(data) - reader.pos} bytes left over")
    return value
