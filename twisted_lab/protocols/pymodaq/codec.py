# -*- test-case-name: tests.test_pymodaq_codec -*-
"""
Encoders and decoders for the primitives and objects of PyMoDAQ's TCP/IP
serializer (C{specs/pymodaq-tcp.md} §2), mapped onto L{twisted_lab.data}.

Encoding produces a I{list of chunks}: small C{bytes} pieces for headers and a
C{memoryview} of each array's C-contiguous data, so that a big image is never
copied before it reaches the transport (see L{chunks_size}, L{join}).

Decoding is done by L{Reader}, a cursor over a buffer that raises
L{Incomplete} (with the buffer offset it needs) when the data stop short, so
that L{twisted_lab.protocols.pymodaq.message} can resume when more arrive.

The DataWithAxes field set depends on the peer's release (§9): see
L{WireVersion} and L{VERSIONS}.
"""
from __future__ import annotations

import builtins
import struct
import time
from dataclasses import dataclass
from typing import Any, Callable, Generator, List, Sequence, Union

import numpy as np
import numpy.typing as npt

from twisted_lab.data import SIGNAL_KINDS, Axis, Export, Signal
from twisted_lab.errors import InvalidValue, ProtocolError
from twisted_lab.formats.pymodaq.data import (Layout, check_array, signal_fields,
                                              signal_from_fields, tcp_layout)
from twisted_lab.formats.pymodaq.objects import ParameterWithPath

__all__ = [
    "WireVersion", "VERSIONS", "DEFAULT_VERSION", "version", "Chunk", "Incomplete", "Fill",
    "Reader", "Encoder", "join", "chunks_size", "parse_dtype",
    "MAX_NDIM", "MAX_DEPTH", "Pull",
]

#: A piece of an encoded message.
Chunk = Union[bytes, memoryview]
#: A resumable read: yields how many more bytes (beyond the reader's
#: position) it needs, or a L{Fill}; returns the value read.
Pull = Generator[Union[int, "Fill"], Any, Any]

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


class Incomplete(Exception):
    """
    The buffer ends before the item being read.

    @ivar need: the buffer offset up to which data are needed.
    """

    def __init__(self, need: int) -> None:
        self.need = need


class Fill:
    """
    Yielded by a pull reader (L{Reader.pull}) when a large array's raw data
    are not all buffered: the driver collects its C{nbytes} directly into an
    array of bytes and sends that array back into the generator.
    """

    __slots__ = ("nbytes",)

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes


#: Composite list elements may nest at most this deep (deeper is refused,
#: before Python's recursion limit could be reached).
MAX_DEPTH = 32
_NESTED = frozenset(("list", "dwa", "dte", "parameter"))


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


#: After the distribution: one channel, tagged "array", a float64 array of shape (1,).
_ONE_F8_CHANNEL = (_U32.pack(1) + _string("array") + _string("<f8") + _U32.pack(8)
                   + _U32.pack(1) + _U32.pack(1))
#: The labels list of one channel, up to its label.
_ONE_LABEL = _U32.pack(1) + _string("string")
#: Encoded C{DataWithAxes} pieces of 0D one-channel signals (see L{_scalar_parts}).
_SCALAR_PARTS: dict[tuple[Any, ...], tuple[builtins.bytes, builtins.bytes, builtins.bytes]] = {}
_NATIVE_F8 = np.dtype(np.float64)


def _scalar_parts(wire: WireVersion, kind: str, name: str, units: str, source: str, dim: str,
                  distribution: str, label: str,
                  origin: str) -> tuple[builtins.bytes, builtins.bytes, builtins.bytes]:
    """
    The constant parts of a one-channel float64 0D signal without axes,
    errors, extra attributes or navigation: what precedes the timestamp, what
    lies between it and the value, and what follows the value (cached).
    """
    key = (wire.units, wire.errors, wire.extra, kind, name, units, source, dim, distribution,
           label, origin)
    parts = _SCALAR_PARTS.get(key)
    if parts is None:
        middle = [_string(name)]
        if wire.units:
            middle.append(_string(units))
        middle += [_string(source), _string(dim), _string(distribution), _ONE_F8_CHANNEL]
        tail = _ONE_LABEL + _string(label) + _string(origin) + b"\0" * (
            8 + 4 * wire.errors + 4 * wire.extra)
        parts = (_string(kind) + _F8_HEADER, b"".join(middle), tail)
        if len(_SCALAR_PARTS) < 256:
            _SCALAR_PARTS[key] = parts
    return parts


def _string_at(buf: Any, p: int, end: int) -> tuple[str | None, int]:
    """The string at C{p} and the offset after it, or C{(None, -1)} (short, not UTF-8)."""
    q = p + 4
    if q > end:
        return None, -1
    r = q + _U32.unpack_from(buf, p)[0]
    if r > end:
        return None, -1
    try:
        return str(buf[q:r], "utf-8"), r
    except UnicodeDecodeError:
        return None, -1


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
        data = signal.data
        if (len(data) == 1 and not signal.axes and not signal.errors and not signal.extra
                and not signal.nav_indexes and data[0].shape == (1,)
                and data[0].dtype == _NATIVE_F8 and len(signal.labels) == 1):
            head, middle, tail = _scalar_parts(
                wire, signal.kind, signal.name, signal.units, signal.source, signal.dim,
                signal.distribution, str(signal.labels[0]), signal.origin)
            out.append(b"".join((head, _F8.pack(float(signal.timestamp)), middle,
                                 data[0].tobytes(), tail)))
            return
        self.string(out, signal.kind)
        fields = signal_fields(signal)
        for field, form in _layout(wire):
            value = fields[field]
            if form == "scalar":
                self.scalar(out, value)
            elif form == "string":
                self.string(out, value)
            elif form == "extra":
                self.list(out, list(value))
                for item in value.values():
                    self.element(out, item)
            elif form == "list:scalar":
                self.list(out, value)
            else:
                tag = form[5:]
                write = getattr(self, _READERS[tag])
                out.append(_u32(len(value)))
                for item in value:
                    out.append(_string(tag))
                    write(out, item)

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
            out.append(self.actuator(float(position), name, units))
            return
        self.signal(out, position)

    def actuator(self, value: float, name: str = "", units: str = "",
                 timestamp: float | None = None) -> builtins.bytes:
        """
        The bytes of a C{DataActuator} holding C{value} (4.x wire versions),
        as C{Signal.scalar(name, value, units=units, kind="DataActuator")}
        encodes, without building the L{Signal}.
        """
        head, middle, tail = _scalar_parts(self.wire, "DataActuator", name, units, "raw",
                                           "Data0D", "uniform", "CH00", "")
        stamp = time.time() if timestamp is None else timestamp
        return b"".join((head, _F8.pack(stamp), middle, _F8.pack(value), tail))

    def grab_reply(self, out: List[Chunk], export: Export) -> None:
        """What follows C{Done}: an L{Export}, or (legacy) a list of its arrays."""
        if self.wire.legacy:
            self.list(out, [channel for signal in export for channel in signal.data])
        else:
            self.export(out, export)


class Reader:
    """
    A cursor over a buffer holding PyMoDAQ primitives.

    Plain reads (C{string()}, C{signal()}, ...) raise L{Incomplete} when the
    buffer ends too early, and L{ProtocolError} on malformed data.

    Resumable reads (L{pull}) are generators for data that arrive in pieces:
    each C{yield} asks its driver for more bytes (an C{int}: how many beyond
    L{pos} it needs) or for a large array's data (a L{Fill}: the driver
    collects them outside the buffer and sends the array back); the driver
    may drop the bytes before L{pos} from the buffer between steps (it then
    lowers L{pos}).  A pull reader tries each item with the plain read first
    and descends into the item only when that fails, so every byte is
    examined a bounded number of times however the data are split
    (L{examined} counts them).

    @ivar buf: the buffer (C{bytes}, C{bytearray} or C{memoryview}).
    @ivar pos: the current offset.
    @ivar end: the end of valid data.
    @ivar large: arrays of at least this many bytes that are not all
        buffered are collected outside the buffer by pull reads (L{Fill}).
    @ivar examined: bytes examined by pull reads and their plain attempts.
    @ivar depth: current nesting of composite list elements.
    """

    __slots__ = ("buf", "pos", "end", "wire", "large", "examined", "depth", "_layout")

    def __init__(self, buf: Any, pos: int = 0, end: int | None = None,
                 wire: str | WireVersion = DEFAULT_VERSION,
                 large: int | None = None) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end
        self.wire = version(wire)
        self.large = large
        self.examined = 0
        self.depth = 0
        #: The last position layout read (see L{_scalar_signal}).
        self._layout: tuple[builtins.bytes, builtins.bytes, builtins.bytes, Signal] | None = None

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
        if self.buf[p:p + 11] == _F8_HEADER and p + 19 <= self.end:
            self.pos = p + 19
            value: float = _F8.unpack_from(self.buf, p + 11)[0]
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

    def _array_header(self) -> tuple[np.dtype[Any], int, tuple[int, ...]]:
        dtype = parse_dtype(self.string())
        nbytes = self.u32()
        ndim = self.u32()
        if ndim > MAX_NDIM:
            raise ProtocolError(f"array has {ndim} dimensions (at most {MAX_NDIM})")
        shape = tuple(self.u32() for _ in range(ndim))
        check_array("array", dtype, shape, nbytes)
        return dtype, nbytes, shape

    def ndarray(self) -> npt.NDArray[Any]:
        """An array (at least 1-D)."""
        dtype, nbytes, shape = self._array_header()
        p = self.pos
        q = p + nbytes
        if q > self.end:
            raise Incomplete(q)
        data = np.frombuffer(self.buf, dtype=np.uint8, count=nbytes, offset=p).copy()
        self.pos = q
        array = data.view(dtype).reshape(shape)
        return array if shape else array.reshape(1)

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
        if tag == "axis":
            return self.axis()
        if tag not in _NESTED:
            raise ProtocolError(f"unknown list element type {tag[:40]!r}")
        self._enter()
        try:
            if tag == "list":
                return self.list()
            if tag == "dwa":
                return self.signal()
            if tag == "dte":
                return self.export()
            path = self.list()
            return ParameterWithPath([str(p) for p in path], self.bytes())
        finally:
            self.depth -= 1

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.depth -= 1
            raise ProtocolError(f"list elements nested more than {MAX_DEPTH} deep")

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
        return _make_axis(label, units, data, self.scalar(), self.scalar())

    def signal(self) -> Signal:
        """A DataWithAxes (any class of the family) as a L{Signal}."""
        wire = self.wire
        if not wire.legacy:
            fast = self._scalar_signal()
            if fast is not None:
                return fast
        kind = self.string()
        if kind not in SIGNAL_KINDS:
            raise ProtocolError(f"{kind[:40]!r} is not a DataWithAxes class")
        fields: dict[str, Any] = {}
        for field, form in _layout(wire):
            if form == "scalar":
                fields[field] = self.scalar()
            elif form == "string":
                fields[field] = self.string()
            elif form == "extra":
                names = self._typed_list("string", "extra attribute names")
                fields[field] = {name: self.element() for name in names}
            else:
                fields[field] = self._typed_list(form[5:], field)
        return _make_signal(kind, fields)

    def _scalar_signal(self) -> Signal | None:
        """
        The common layout of a position (a one-channel float64 0D signal
        without axes, errors, extra attributes or navigation) read in one
        go; C{None}, having consumed nothing, for anything else (incomplete,
        another layout or malformed: the general reader then takes it).
        """
        buf, p, end = self.buf, self.pos, self.end
        layout = self._layout
        if layout is not None:
            # The same device sends the same layout: only its timestamp and value differ.
            head, middle, tail, template = layout
            at = p + len(head)
            value_at = at + 8 + len(middle)
            after = value_at + 8 + len(tail)
            if (after <= end and buf[p:at] == head and buf[at + 8:value_at] == middle
                    and buf[value_at + 8:after] == tail):
                self.pos = after
                return _scalar_like(template, _F8.unpack_from(buf, at)[0],
                                    _F8.unpack_from(buf, value_at)[0])
        start = p
        wire = self.wire
        kind, p = _string_at(buf, p, end)
        if p < 0 or p + 19 > end or buf[p:p + 11] != _F8_HEADER:
            return None
        timestamp: float = _F8.unpack_from(buf, p + 11)[0]
        at = p + 11
        name, p = _string_at(buf, p + 19, end)
        units: str | None = ""
        if wire.units and p >= 0:
            units, p = _string_at(buf, p, end)
        if p < 0:
            return None
        source, p = _string_at(buf, p, end)
        dim, p = _string_at(buf, p, end) if p >= 0 else (None, -1)
        distribution, p = _string_at(buf, p, end) if p >= 0 else (None, -1)
        n = len(_ONE_F8_CHANNEL)
        if p < 0 or p + n + 8 > end or buf[p:p + n] != _ONE_F8_CHANNEL:
            return None
        value: float = _F8.unpack_from(buf, p + n)[0]
        value_at = p + n
        p += n + 8
        n = len(_ONE_LABEL)
        if buf[p:p + n] != _ONE_LABEL:
            return None
        label, p = _string_at(buf, p + n, end)
        origin, p = _string_at(buf, p, end) if p >= 0 else (None, -1)
        n = 8 + 4 * wire.errors + 4 * wire.extra
        if p < 0 or p + n > end or buf[p:p + n] != bytes(n) or kind not in SIGNAL_KINDS or not dim:
            return None
        if (name is None or units is None or source is None or distribution is None
                or label is None or origin is None):
            return None  # (not reached: p >= 0 means every string was read)
        try:
            signal = Signal(name, [np.array((value,), dtype=np.float64)], labels=[label],
                            units=units, timestamp=timestamp, origin=origin, kind=kind,
                            source=source, distribution=distribution, dim=dim)
        except (ValueError, TypeError):
            return None
        self.pos = p + n
        self._layout = (bytes(buf[start:at]), bytes(buf[at + 8:value_at]),
                        bytes(buf[value_at + 8:p + n]), signal)
        return signal

    def export(self) -> Export:
        """A C{DataToExport} as an L{Export}."""
        self._class_name("DataToExport")
        timestamp = self.scalar()
        name = self.string()
        signals = self._typed_list("dwa", "DataToExport")
        return _make_export(name, signals, timestamp)

    def position(self) -> Signal:
        """A position: a C{DataActuator}, or (legacy) a scalar wrapped in one."""
        if self.wire.legacy:
            return _legacy_position(self.scalar())
        return self.signal()

    def grab_reply(self) -> Export:
        """What follows C{Done}: an L{Export} (legacy: a list of arrays, one signal each)."""
        if not self.wire.legacy:
            return self.export()
        return _legacy_export(self._typed_list("array", "Done"))

    # -- resumable reads -------------------------------------------------------

    def pull(self, method: str) -> Pull:
        """
        Read an item (named by its plain read method, as C{"signal"})
        resumably: a generator for C{yield from} (see the class docstring).
        """
        return self._item(getattr(self, method), getattr(self, "pull_" + method, None))

    def _item(self, read: Callable[[], Any], pull: Callable[[], Pull] | None) -> Pull:
        """Try the plain read; if the data stop short, read it piece by piece."""
        p = self.pos
        try:
            value = read()
        except Incomplete:
            self.examined += self.pos - p
            self.pos = p
        else:
            self.examined += self.pos - p
            return value
        if pull is None:
            return (yield from self._leaf(read))
        return (yield from pull())

    def _leaf(self, read: Callable[[], Any]) -> Pull:
        """
        A small item (string, scalar): retried whole once its bytes are in
        (each retry re-reads at most a few length fields).
        """
        while True:
            p = self.pos
            try:
                value = read()
            except Incomplete as e:
                self.examined += self.pos - p
                self.pos = p
                yield e.need - p
            else:
                self.examined += self.pos - p
                return value

    def pull_ndarray(self) -> Pull:
        """An array; a large one's data are requested with a L{Fill}."""
        dtype, nbytes, shape = yield from self._leaf(self._array_header)
        if self.end - self.pos < nbytes and self.large is not None and nbytes >= self.large:
            data = yield Fill(nbytes)
        else:
            while self.end - self.pos < nbytes:
                yield nbytes
            p = self.pos
            data = np.frombuffer(self.buf, dtype=np.uint8, count=nbytes, offset=p).copy()
            self.pos = p + nbytes
            self.examined += nbytes
        array = data.view(dtype).reshape(shape)
        return array if shape else array.reshape(1)

    def pull_list(self) -> Pull:
        """A count, then tagged elements."""
        count = yield from self._leaf(self.u32)
        items: List[Any] = []
        for _ in range(count):
            items.append((yield from self._item(self.element, self.pull_element)))
        return items

    def pull_element(self) -> Pull:
        """One tagged list element."""
        tag = yield from self._leaf(self.string)
        if tag in ("string", "scalar", "bool", "bytes"):
            return (yield from self._leaf(lambda: self.tagged(tag)))
        if tag == "array":
            return (yield from self._item(self.ndarray, self.pull_ndarray))
        if tag == "axis":
            return (yield from self._item(self.axis, self.pull_axis))
        if tag not in _NESTED:
            raise ProtocolError(f"unknown list element type {tag[:40]!r}")
        self._enter()
        try:
            if tag == "list":
                return (yield from self._item(self.list, self.pull_list))
            if tag == "dwa":
                return (yield from self._item(self.signal, self.pull_signal))
            if tag == "dte":
                return (yield from self._item(self.export, self.pull_export))
            path = yield from self._item(self.list, self.pull_list)
            return ParameterWithPath([str(p) for p in path], (yield from self._leaf(self.bytes)))
        finally:
            self.depth -= 1

    def _pull_typed_list(self, tag: str, what: str) -> Pull:
        items: List[Any] = []
        raw = _string(tag)
        method = _READERS[tag]
        read = getattr(self, method)
        pull = getattr(self, "pull_" + method, None)
        for _ in range((yield from self._leaf(self.u32))):
            yield from self._leaf(lambda: self._expect(raw, what))
            items.append((yield from self._item(read, pull)))
        return items

    def pull_axis(self) -> Pull:
        """An C{Axis}."""
        yield from self._leaf(lambda: self._class_name("Axis"))
        label = yield from self._leaf(self.string)
        units = yield from self._leaf(self.string)
        data = yield from self._item(self.ndarray, self.pull_ndarray)
        index = yield from self._leaf(self.scalar)
        return _make_axis(label, units, data, index, (yield from self._leaf(self.scalar)))

    def pull_signal(self) -> Pull:
        """A DataWithAxes (any class of the family) as a L{Signal}."""
        kind = yield from self._leaf(self.string)
        if kind not in SIGNAL_KINDS:
            raise ProtocolError(f"{kind[:40]!r} is not a DataWithAxes class")
        fields: dict[str, Any] = {}
        for field, form in _layout(self.wire):
            if form == "scalar":
                fields[field] = yield from self._leaf(self.scalar)
            elif form == "string":
                fields[field] = yield from self._leaf(self.string)
            elif form == "extra":
                names = yield from self._pull_typed_list("string", "extra attribute names")
                extra: dict[str, Any] = {}
                for name in names:
                    extra[name] = yield from self._item(self.element, self.pull_element)
                fields[field] = extra
            else:
                fields[field] = yield from self._pull_typed_list(form[5:], field)
        return _make_signal(kind, fields)

    def pull_export(self) -> Pull:
        """A C{DataToExport} as an L{Export}."""
        yield from self._leaf(lambda: self._class_name("DataToExport"))
        timestamp = yield from self._leaf(self.scalar)
        name = yield from self._leaf(self.string)
        signals = yield from self._pull_typed_list("dwa", "DataToExport")
        return _make_export(name, signals, timestamp)

    def pull_position(self) -> Pull:
        """A position: a C{DataActuator}, or (legacy) a scalar wrapped in one."""
        if self.wire.legacy:
            return _legacy_position((yield from self._leaf(self.scalar)))
        return (yield from self._item(self.signal, self.pull_signal))

    def pull_grab_reply(self) -> Pull:
        """What follows C{Done}: an L{Export} (legacy: a list of arrays, one signal each)."""
        if not self.wire.legacy:
            return (yield from self._item(self.export, self.pull_export))
        return _legacy_export((yield from self._pull_typed_list("array", "Done")))


def _scalar_like(template: Signal, timestamp: float, value: float) -> Signal:
    """
    A copy of a validated one-channel 0D L{Signal} with another timestamp and
    value (what the constructor would build from the same fields, without
    validating them again).
    """
    signal = object.__new__(Signal)
    fields = signal.__dict__
    fields.update(template.__dict__)
    fields["data"] = [np.array((value,), dtype=np.float64)]
    fields["timestamp"] = timestamp
    fields["labels"] = list(template.labels)
    fields["axes"] = []
    fields["errors"] = []
    fields["extra"] = {}
    return signal


def _make_axis(label: str, units: str, data: npt.NDArray[Any], index: Any,
               spread_order: Any) -> Axis:
    if not isinstance(index, int) or not isinstance(spread_order, int):
        raise ProtocolError(f"axis {label!r}: index and spread order must be integers")
    return Axis(label, units, data, index, spread_order)


def _make_signal(kind: str, fields: dict[str, Any]) -> Signal:
    if not isinstance(fields["timestamp"], float):
        raise ProtocolError(f"{kind} {fields['name']!r}: timestamp is not a float")
    return signal_from_fields(kind, fields)


def _layout(wire: WireVersion) -> Layout:
    """The C{DataWithAxes} layout a peer release reads and writes."""
    return tcp_layout(wire.units, wire.errors, wire.extra)


def _make_export(name: str, signals: List[Signal], timestamp: Any) -> Export:
    if not isinstance(timestamp, float):
        raise ProtocolError(f"DataToExport {name!r}: timestamp is not a float")
    return Export(name, signals, timestamp=timestamp)


def _legacy_position(value: Any) -> Signal:
    if not isinstance(value, (int, float)):
        raise ProtocolError(f"position {value!r} is not a number")
    return Signal.scalar("", float(value), kind="DataActuator")


def _legacy_export(arrays: List[Any]) -> Export:
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
