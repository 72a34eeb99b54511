# -*- test-case-name: tests.test_memory -*-
"""
Give freed large buffers back to the system.

glibc's C{malloc} raises its mmap threshold each time a large block is freed
(up to 32 MiB): after the first few multi-megabyte messages (camera frames,
their JSON replies), later ones come from the heap, and the heap keeps the
pages once they are freed.  A peer that made the lab hold 40 camera replies
then leaves +100 MB behind after it has gone.  L{return_large_frees} pins the
threshold, so that every block of L{MMAP_THRESHOLD} bytes or more is its own
mapping, returned to the system when freed.  Elsewhere (musl, macOS,
Windows) it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["return_large_frees", "MMAP_THRESHOLD"]

#: Blocks of this size or more are mapped on their own (glibc C{M_MMAP_THRESHOLD}).
MMAP_THRESHOLD = 1 << 20
_M_MMAP_THRESHOLD = -3


def return_large_frees(threshold: int = MMAP_THRESHOLD) -> bool:
    """
    Pin glibc's mmap threshold at C{threshold} bytes (process-wide).

    @return: C{True} when it was set (a glibc C library), else C{False}.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
