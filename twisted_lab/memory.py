# -*- test-case-name: tests.test_memory -*-
"""
Give freed memory back to the system.

glibc's C{malloc} raises its mmap threshold each time a large block is freed
(up to 32 MiB): after the first few multi-megabyte messages (camera frames,
their JSON replies), later ones come from the heap, and the heap keeps the
pages once they are freed.  A peer that made the lab hold 40 camera replies
then leaves +100 MB behind after it has gone.  L{return_large_frees} pins the
threshold, so that every block of L{MMAP_THRESHOLD} bytes or more is its own
mapping, returned to the system when freed.

Small blocks freed in the middle of the heap (libzmq's subscription trie
after 20,000 subscriptions, the state of 200 clients that came and went)
stay in the process too: L{TrimService} calls C{malloc_trim(0)} every 5
seconds, which hands the free pages inside the heap back.  Elsewhere (musl,
macOS, Windows) both do nothing.

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

__all__ = ["return_large_frees", "trim", "freeze_startup", "TrimService", "MMAP_THRESHOLD"]

#: Blocks of this size or more are mapped on their own (glibc C{M_MMAP_THRESHOLD}).
MMAP_THRESHOLD = 1 << 20
_M_MMAP_THRESHOLD = -3


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


def return_large_frees(threshold: int = MMAP_THRESHOLD) -> bool:
    """
    Pin glibc's mmap threshold at C{threshold} bytes (process-wide).

    @return: C{True} when it was set (a glibc C library), else C{False}.
    """
    mallopt = _libc_call("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))


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
