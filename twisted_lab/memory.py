# -*- test-case-name: tests.test_memory -*-
"""
The lab's memory: reuse camera-sized buffers, give freed memory back to the
system every few seconds, and keep the garbage collector's pauses short.

A camera frame is 8–32 MiB, and every message that carries one needs a
buffer of that size: the frame as it is read, its encoding, the JSON text of
a plain client's reply.  glibc maps each block larger than its mmap
threshold on its own, so every such buffer is a fresh mapping whose pages
the kernel must fault in and zero as they are first written: about 8,000
page faults per 32 MiB frame, paid inside whichever thread writes it, and
with the GIL held when Python writes it.  L{reuse_large_buffers} makes glibc
keep them instead: blocks up to L{REUSE_UP_TO} bytes come from the heap, a
free heap top is kept up to L{HOLD_UP_TO} bytes, and every thread allocates
from the one heap (C{M_ARENA_MAX} 1: a per-thread arena's top is never
handed back by C{malloc_trim}).  Measured with C{bench/load.py} (issue 12),
against the threshold pinned at 1 MiB as before: the PyMoDAQ 4 camera path
21–35 frames/s instead of 16, and small-request p99 during LECO or PLESTY
JSON grabs mostly 6–19 ms instead of 13–30 ms.

L{TrimService} calls C{malloc_trim(0)} every 5 seconds, which hands every
free page of the heap back to the system: what a grab, a slow reader or a
flood of clients made the lab hold comes back within one interval after it
ends, large buffers (at most L{HOLD_UP_TO} bytes of free heap top between
trims) and small blocks freed in the middle of the heap (libzmq's
subscription trie after 20,000 subscriptions, the state of 200 clients that
came and went) alike.  Elsewhere (musl, macOS, Windows) both do nothing.

L{freeze_startup} moves every object that exists once the lab has started
(modules, classes, services: hundreds of thousands) out of the garbage
collector's reach: a full collection then scans only what was made since,
instead of pausing the reactor ~150 ms each time a flood of connections
triggers one.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import sys
import time
from typing import Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

__all__ = ["reuse_large_buffers", "trim", "freeze_startup", "TrimService", "REUSE_UP_TO",
           "HOLD_UP_TO"]

#: Blocks up to this size come from the heap, and are reused once freed
#: (glibc C{M_MMAP_THRESHOLD}): four 32 MiB camera frames.
REUSE_UP_TO = 128 << 20
#: Free memory at the heap's top kept for reuse until the next trim
#: (glibc C{M_TRIM_THRESHOLD}).
HOLD_UP_TO = 256 << 20
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


@functools.lru_cache(maxsize=None)
def _libc_call(name: str) -> Any:
    """A glibc function, or C{None} (not Linux, not glibc); looked up once."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return getattr(libc, name)
    except (OSError, AttributeError):
        return None


def reuse_large_buffers() -> bool:
    """
    Make glibc's C{malloc} reuse camera-sized buffers (process-wide): one
    arena for every thread, blocks up to L{REUSE_UP_TO} bytes from the heap,
    a free heap top kept up to L{HOLD_UP_TO} bytes.  Call it before the
    process starts threads (the lab does, in C{makeService}), and run a
    L{TrimService}, which gives the kept memory back.

    @return: C{True} when it was set (a glibc C library), else C{False}.
    """
    mallopt = _libc_call("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_THRESHOLD, REUSE_UP_TO),
                (_M_TRIM_THRESHOLD, HOLD_UP_TO))
    return all([bool(mallopt(option, value)) for option, value in settings])


def freeze_startup() -> int:
    """
    Collect once, then move every tracked object to the collector's
    permanent generation (C{gc.freeze}): later collections skip them.

    @return: how many objects were frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def trim() -> bool:
    """
    Give the free pages inside the heap back to the system (glibc's
    C{malloc_trim(0)}).

    @return: C{True} when some memory was released.
    """
    malloc_trim = _libc_call("malloc_trim")
    if malloc_trim is None:
        return False
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    return bool(malloc_trim(0))


class TrimService(Service):
    """
    Calls L{trim} every C{interval} seconds while running (nothing where
    there is no glibc); with C{freeze}, calls L{freeze_startup} once the
    reactor runs (C{callWhenRunning}: after everything else started, and
    after twistd installed its signal handlers, so a Ctrl-C during the
    collection stops the lab instead of raising C{KeyboardInterrupt} from a
    service's start).  A trim takes about a millisecond per 100 MB of heap;
    one slower than L{SLOW} seconds is logged.
    """

    log = Logger()
    #: seconds a trim may take before it is logged
    SLOW = 0.05

    def __init__(self, reactor: Any, interval: float = 5.0, freeze: bool = False) -> None:
        """
        @param reactor: runs the trims (L{IReactorTime}); with C{freeze}, also
            an L{IReactorCore}.
        """
        self.reactor = reactor
        self.interval = interval
        self.freeze = freeze
        self._loop: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        if self.freeze:
            self.reactor.callWhenRunning(self._freeze)
        if _libc_call("malloc_trim") is None:
            return
        self._loop = LoopingCall(self._trim)
        self._loop.clock = self.reactor
        self._loop.start(self.interval, now=False)

    def _freeze(self) -> None:
        if not self.running:
            return
        frozen = freeze_startup()
        self.log.debug("froze {count} startup objects", count=frozen)

    def _trim(self) -> None:
        started = time.monotonic()
        trim()
        took = time.monotonic() - started
        if took > self.SLOW:
            self.log.info("malloc_trim took {ms:.0f} ms", ms=took * 1000)

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
