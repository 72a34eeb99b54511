# -*- test-case-name: tests.test_bigjson -*-
"""
JSON of large arrays without holding the reactor.

Two parts, used by every protocol that writes arrays as JSON (LECO, PLESTY
without C{binary}):

  - L{ArrayWriter}: a JSON encoding in which each large numpy array is
    written by C{orjson} (native ndarray serialisation, 10-40 times faster
    than C{tolist()} + the standard library), in slices of about
    L{SLICE_ELEMENTS} elements.  C{orjson} holds the GIL for a whole call,
    so slicing is what lets the reactor thread run between slices when the
    encoding runs on a worker thread.  The rest of the document is written
    by the standard library with the caller's C{default} hook, so small
    values keep their exact form.  Slices with NaN or infinities are
    written by the standard library (C{NaN}, C{Infinity}, as before), since
    C{orjson} would write C{null}.
  - L{EncoderPool}: a small thread pool (a service) that runs encodings of
    large values; L{shared_pool} gives the one of a reactor.  A value is
    large when L{weight} (its number of array elements and list items) is
    at least L{BIG}; smaller values are encoded at once, on the calling
    thread (their fast path).
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, TypeVar

import numpy as np
from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

orjson: Any
try:
    import orjson
except ImportError:  # pragma: no cover - orjson is an install requirement
    orjson = None

__all__ = ["ArrayWriter", "EncoderPool", "shared_pool", "weight", "BIG", "ARRAY_MIN",
           "SLICE_ELEMENTS", "array_json"]

_T = TypeVar("_T")

#: Arrays with at least this many elements are written by L{array_json}.
ARRAY_MIN = 4096
#: About this many elements per C{orjson} call (a few ms at most).
SLICE_ELEMENTS = 32768
#: Values of at least this L{weight} are encoded on the L{EncoderPool}.
BIG = 16384

_ORJSON_KINDS = frozenset(
    np.dtype(t) for t in ("float64", "float32", "int64", "int32", "int16", "int8",
                          "uint64", "uint32", "uint16", "uint8", "bool"))

log = Logger()


def weight(value: Any, _depth: int = 0) -> int:
    """
    A cheap estimate of the work of encoding C{value}: array elements plus
    list and dict items, looking into L{twisted_lab.data} objects.  It stops
    counting past L{BIG}.
    """
    if isinstance(value, np.ndarray):
        return int(value.size)
    if isinstance(value, (str, bytes, bytearray)):
        return len(value) // 8
    if _depth > 20:
        return 0
    if isinstance(value, dict):
        items = list(value.values())
    elif isinstance(value, (list, tuple)):
        items = value if len(value) <= 64 else None  # type: ignore[assignment]
        if items is None:
            return len(value) * max(1, weight(value[0], _depth + 1))
    else:
        data = getattr(value, "data", None)
        signals = getattr(value, "signals", None)
        axes = getattr(value, "axes", None)
        items = [x for x in (data, signals, axes) if isinstance(x, (list, tuple, np.ndarray))]
        if not items:
            return 1
    total = len(items)
    for item in items:
        total += weight(item, _depth + 1)
        if total >= BIG:
            break
    return total


def _std_slice(part: np.ndarray[Any, Any]) -> bytes:
    return json.dumps(part.tolist(), separators=(",", ":"), allow_nan=True).encode()


def array_json(array: np.ndarray[Any, Any], pause: bool = True) -> bytes:
    """
    The JSON text of an array, as C{json.dumps(array.tolist())} would give
    it (values equal; floats in their shortest form), written in slices.

    @param pause: give up the GIL between slices (C{time.sleep(0)}), so
        other threads (the reactor's) run while a worker thread encodes.
    """
    return b"".join(_array_pieces(array, pause))


def _array_pieces(array: np.ndarray[Any, Any], pause: bool) -> list[Any]:
    """
    L{array_json}'s text as pieces to join (C{bytes} and views of them), so
    that the document is copied once, when joined.
    """
    if orjson is None or array.dtype not in _ORJSON_KINDS or array.ndim == 0:
        return [_std_slice(array)]
    a = np.ascontiguousarray(array)
    if a.dtype.byteorder not in "=|":
        a = a.astype(a.dtype.newbyteorder("="))
    if len(a) == 0:
        return [_std_slice(a)]
    row = max(1, a[0].size)
    step = max(1, SLICE_ELEMENTS // row)
    floats = a.dtype.kind == "f"
    widen = a.dtype == np.float32
    pieces: list[Any] = [b"["]
    option = orjson.OPT_SERIALIZE_NUMPY
    for start in range(0, len(a), step):
        part = a[start:start + step]
        if widen:
            # orjson writes float32 in its shortest float32 form; the standard
            # library writes the float64 value (what a reader decodes)
            part = part.astype(np.float64)
        if floats and not np.isfinite(part).all():
            text = _std_slice(part)
        else:
            text = orjson.dumps(part, option=option)
        if start:
            pieces.append(b",")
        pieces.append(memoryview(text)[1:-1])
        if pause:
            time.sleep(0)
    pieces.append(b"]")
    return pieces


class ArrayWriter:
    """
    One JSON document in which large arrays are written by L{array_json}.

    The caller's encoder calls L{array} from its C{default} hook for each
    numpy array; L{finish} turns the encoder's output into the document::

        writer = ArrayWriter()
        text = json.dumps(obj, default=lambda v: writer.array(v) ...)
        body = writer.finish(text.encode())
    """

    def __init__(self, pause: bool = True) -> None:
        self.pause = pause
        self._nonce = ""  # made at the first large array: small documents pay nothing
        self._arrays: list[np.ndarray[Any, Any]] = []

    def array(self, value: np.ndarray[Any, Any]) -> Any:
        """What the C{default} hook returns for an array: a placeholder
        string for a large one, the nested lists for a small one."""
        if value.size < ARRAY_MIN or value.ndim == 0:
            return value.tolist()
        if not self._nonce:
            self._nonce = os.urandom(8).hex()
        self._arrays.append(value)
        return f"@tl-array:{self._nonce}:{len(self._arrays) - 1}@"

    def finish(self, text: bytes) -> bytes:
        """The document: C{text} with each placeholder replaced by its array."""
        if not self._arrays:
            return text
        pieces = []
        at = 0
        for index, array in enumerate(self._arrays):
            token = f'"@tl-array:{self._nonce}:{index}@"'.encode()
            found = text.find(token, at)
            if found < 0:
                raise ValueError("an array placeholder is missing from the encoded document")
            pieces.append(memoryview(text)[at:found])
            pieces.extend(_array_pieces(array, self.pause))
            at = found + len(token)
        pieces.append(memoryview(text)[at:])
        self._arrays = []
        return b"".join(pieces)


class EncoderPool(Service):
    """
    A small thread pool for encoding and decoding large values.

    L{run} calls a function on a worker thread when the pool runs and the
    reactor can be called from threads; otherwise (not started, a C{Clock}
    in tests) on the calling thread.

    @param reactor: the reactor (C{callFromThread}, shutdown triggers).
    @param threads: the most worker threads.
    """

    log = Logger()

    def __init__(self, reactor: Any, threads: int = 2) -> None:
        self.reactor = reactor
        self.threads = threads
        self.pool: ThreadPool | None = None
        self.setName("encoder-pool")

    def startService(self) -> None:
        """Start the worker threads (created on demand)."""
        Service.startService(self)
        if self.pool is None:
            self.pool = ThreadPool(0, self.threads, name="twisted_lab-encoder")
            self.pool.start()

    def stopService(self) -> None:
        """Stop the worker threads, after the work queued."""
        Service.stopService(self)
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.stop()

    def run(self, fn: Callable[..., _T], *args: Any) -> Deferred[_T]:
        """
        C{fn(*args)} on a worker thread.

        @return: a L{Deferred} firing, on the reactor thread, with its
            result or failure.
        """
        if self.pool is None or not hasattr(self.reactor, "callFromThread"):
            return maybeDeferred(fn, *args)
        return deferToThreadPool(self.reactor, self.pool, fn, *args)


_shared: dict[int, EncoderPool] = {}


def shared_pool(reactor: Any) -> EncoderPool:
    """
    The L{EncoderPool} every protocol of C{reactor} shares: started at first
    use, stopped when the reactor shuts down.  A reactor without
    C{addSystemEventTrigger} (a C{Clock}) gets a pool that encodes on the
    calling thread.
    """
    pool = _shared.get(id(reactor))
    if pool is not None and pool.reactor is reactor:
        return pool
    pool = EncoderPool(reactor)
    _shared[id(reactor)] = pool
    add_trigger = getattr(reactor, "addSystemEventTrigger", None)
    if add_trigger is not None and hasattr(reactor, "callFromThread"):
        pool.startService()

        def stop() -> None:
            if _shared.get(id(reactor)) is pool:
                del _shared[id(reactor)]
            pool.stopService()

        add_trigger("during", "shutdown", stop)
    return pool
