# -*- test-case-name: tests.test_headroom -*-
"""
Large arrays with room around their bytes, so that a message wrapping one of
them can be laid out around it in place instead of copying it.

A LECO message in PyMoDAQ 5's format carries a camera frame inside one
ZeroMQ frame: serializall's header (the export's name, the array's dtype and
shape, ...) before the array's bytes, and the rest of the export (labels,
axes, ...) after them.  Built the plain way, that is one copy of the frame per
message: for a 32 MiB frame about 7 ms of CPU on the machines here, a tenth
of all the CPU a PyMoDAQ 4 -> lab -> LECO chain spends on it
(C{bench/chain.py}).  When the array came from L{empty} (the lab reads every
large PyMoDAQ 4 array into one), L{lay_out} writes the header and the rest
into the room around it and returns the whole message as one view of that
memory: ZeroMQ then sends the frame from where it was received.

One message at a time uses an array's room.  Another encoding of the same
array while the first message is still held (ZeroMQ has not sent it yet) is
copied, as before; once that message is released, the room is free again.
The array's own bytes are never written.  As with every zero-copy send, an
array must not be changed while a message holding it is on its way.
"""
from __future__ import annotations

import threading
import weakref
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["HEAD", "TAIL", "ROOMY_FROM", "empty", "has_room", "lay_out"]

#: Bytes of room before the data: a message's header must fit in it.
HEAD = 16 * 1024
#: Bytes of room after the data: what follows the array must fit in it (a
#: 2048x2048 camera's two float64 axes take 32 KiB).
TAIL = 64 * 1024
#: Arrays of fewer bytes get no room (copying them costs little).
ROOMY_FROM = 1 << 20


class _Room(np.ndarray):
    """
    The memory of one roomy array: L{HEAD} bytes of room, the data, L{TAIL}
    bytes of room (C{uint8}).  Only L{empty} makes these; the arrays it
    hands out are plain views of one.

    @ivar start: where the data begin.
    @ivar stop: where they end.
    @ivar lock: guards L{busy}.
    @ivar busy: a message laid out here is still held.
    """

    start: int
    stop: int
    lock: threading.Lock
    busy: bool

    def release(self) -> None:
        """The message laid out here is gone: the room is free again."""
        with self.lock:
            self.busy = False


def empty(shape: int | tuple[int, ...], dtype: npt.DTypeLike = np.uint8) -> np.ndarray[Any, Any]:
    """
    An uninitialised C-contiguous array, as C{numpy.empty}; one of
    L{ROOMY_FROM} bytes or more has L{HEAD} and L{TAIL} bytes of room
    around it.

    @return: a plain C{numpy.ndarray} (its memory belongs to an object only
        this module looks at).
    """
    dtype = np.dtype(dtype)
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    nbytes = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if nbytes < ROOMY_FROM:
        return np.empty(dims, dtype=dtype)
    room = np.ndarray.__new__(_Room, (HEAD + nbytes + TAIL,), np.uint8)
    room.start, room.stop = HEAD, HEAD + nbytes
    room.lock, room.busy = threading.Lock(), False
    data = np.asarray(room[HEAD:HEAD + nbytes])
    return data.view(dtype).reshape(dims)


def _room_of(part: Any) -> _Room | None:
    """The L{_Room} whose data C{part} (a memoryview) spans exactly, if any."""
    obj = part.obj if isinstance(part, memoryview) else part
    while isinstance(obj, np.ndarray) and obj.base is not None:
        obj = obj.base
    if not isinstance(obj, _Room):
        return None
    address = np.frombuffer(part, dtype=np.uint8).__array_interface__["data"][0]
    origin = obj.__array_interface__["data"][0]
    if address != origin + obj.start or memoryview(part).nbytes != obj.stop - obj.start:
        return None
    return obj


def has_room(array: np.ndarray[Any, Any]) -> bool:
    """C{True} when C{array} is all of an array L{empty} gave room to."""
    return array.flags.c_contiguous and _room_of(array.reshape(-1).data.cast("B")) is not None


def lay_out(parts: Sequence[Any], sizes: Sequence[int]) -> np.ndarray[Any, Any] | None:
    """
    The concatenation of C{parts}, built in place around its one large part
    when that part is all of a roomy array whose room is free and big
    enough; else C{None} (the caller copies).

    @param parts: C{bytes} and memoryviews of arrays, in message order.
    @param sizes: their lengths in bytes.
    @return: the message, a read-only C{uint8} view of the array's memory;
        the room is the message's until that view is released.
    """
    large = [i for i, size in enumerate(sizes) if size >= ROOMY_FROM]
    if len(large) != 1:
        return None
    i = large[0]
    room = _room_of(parts[i])
    if room is None:
        return None
    head = b"".join(parts[:i])
    tail = b"".join(parts[i + 1:])
    begin, end = room.start - len(head), room.stop + len(tail)
    if begin < 0 or end > len(room):
        return None
    with room.lock:
        if room.busy:
            return None
        room.busy = True
    room[begin:room.start] = np.frombuffer(head, dtype=np.uint8)
    room[room.stop:end] = np.frombuffer(tail, dtype=np.uint8)
    message = np.asarray(room[begin:end])
    message.flags.writeable = False  # nothing that reads it can change the array
    weakref.finalize(message, room.release)
    return message
