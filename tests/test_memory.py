# -*- test-case-name: tests.test_memory -*-
"""
Tests for L{twisted_lab.memory}.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from twisted.trial.unittest import SynchronousTestCase


_LARGE = textwrap.dedent("""
    import re, sys, threading
    from twisted_lab.memory import reuse_large_buffers, trim
    if sys.argv[1] == "reuse":
        assert reuse_large_buffers()

    def rss():
        with open("/proc/self/status") as f:
            return int(re.search(r"VmRSS:\\s+(\\d+)", f.read()).group(1)) * 1024

    before = rss()
    # camera-sized blocks and their copies (a frame, its encoding) made in
    # four threads at once (the reactor, the thread pool, libzmq's I/O
    # thread), each followed by a small block that stays (as the lab's
    # objects do), so no heap can shrink from its top; the last ones stay
    # until all are made
    blocks, kept = [], []

    def make(size):
        for _ in range(12):
            block = bytearray(size)
            block[::4096] = b"x" * (size // 4096)  # touch every page
            kept.append(bytearray(128 << 10))
            blocks[len(blocks):] = [block, bytes(block)]
            del blocks[:-8]

    workers = [threading.Thread(target=make, args=(size << 20,)) for size in (8, 20, 33)]
    for worker in workers:
        worker.start()
    make(33 << 20)
    for worker in workers:
        worker.join()
    held = rss()
    del blocks[:]
    freed = rss()
    trim()
    print(before, held, freed, rss())
""")

_REUSE = textwrap.dedent("""
    import resource, sys, threading
    from twisted_lab.memory import reuse_large_buffers
    if sys.argv[1] == "reuse":
        assert reuse_large_buffers()

    def frame():
        block = bytearray(32 << 20)  # a 2048x2048 float64 camera frame
        block[::4096] = b"x" * (8192)

    def faults(where):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        where()
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    frame()
    worker = threading.Thread(target=frame)
    worker.start()
    worker.join()
    in_thread = []
    worker = threading.Thread(target=lambda: in_thread.append(faults(frame)))
    worker.start()
    worker.join()
    print(faults(frame), in_thread[0])
""")


_SMALL = textwrap.dedent("""
    import re, sys
    from twisted_lab.memory import trim

    def rss():
        with open("/proc/self/status") as f:
            return int(re.search(r"VmRSS:\\s+(\\d+)", f.read()).group(1)) * 1024

    before = rss()
    # many small blocks, every 1024th kept (as a trie's nodes between others)
    blocks = [bytearray(b"y" * 1000) for _ in range(200000)]
    kept = blocks[::1024]
    held = rss()
    del blocks
    freed = rss()
    if sys.argv[1] == "trim":
        trim()
    print(before, held, freed, rss(), len(kept))
""")

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ENV = {**os.environ, "PYTHONPATH": _ROOT}


class ReuseLargeBuffersTests(SynchronousTestCase):
    """Camera-sized buffers are reused, and go back to the system at the next trim."""

    def setUp(self) -> None:
        if not sys.platform.startswith("linux"):
            raise self.failureException("the lab's CI runs on Linux (glibc)")

    def _child(self, script: str, mode: str) -> list[int]:
        out = subprocess.run([sys.executable, "-c", script, mode], capture_output=True,
                             text=True, check=True, timeout=120, env=_ENV).stdout.split()
        return [int(x) for x in out]

    def test_frame_buffer_reused(self) -> None:
        """A second 32 MiB buffer, after the first was freed, costs no fresh pages
        (fewer than 100 page faults, in the main thread and in another one)."""
        main, thread = self._child(_REUSE, "reuse")
        self.assertLess(main, 100)
        self.assertLess(thread, 100)

    def test_frame_buffer_mapped_afresh_by_default(self) -> None:
        """The control: glibc's default maps each 32 MiB buffer anew, and its 8,192
        pages fault in one by one as they are written."""
        main, thread = self._child(_REUSE, "default")
        self.assertGreater(main, 8000)
        self.assertGreater(thread, 8000)

    def test_rss_returns_at_trim(self) -> None:
        """Camera-sized blocks made and freed in four threads at once stay in the
        process for reuse (over 100 MB of them) until the next L{trim}, which
        leaves RSS within 10 % of where it was plus the small blocks still kept."""
        before, held, freed, after = self._child(_LARGE, "reuse")
        self.assertGreater(held - before, 150 << 20)
        self.assertGreater(freed - before, 100 << 20)
        self.assertLess(after, (before + 48 * (128 << 10)) * 1.1)


class TrimTests(SynchronousTestCase):
    """Small blocks freed inside the heap go back to the system with L{trim}."""

    def _child(self, mode: str) -> list[int]:
        out = subprocess.run([sys.executable, "-c", _SMALL, mode], capture_output=True,
                             text=True, check=True, timeout=120, env=_ENV).stdout.split()
        return [int(x) for x in out]

    def test_trim(self) -> None:
        """200 MB of 1 KB blocks freed with a few kept between them: the free pages
        stay in the process until L{trim}, which gives back at least 90 % of them."""
        before, held, freed, after, _ = self._child("trim")
        self.assertGreater(held - before, 150 << 20)
        self.assertLess(after - before, (held - before) * 0.1)

    def test_no_trim_keeps(self) -> None:
        """The control: without L{trim} the freed pages stay."""
        before, held, freed, after, _ = self._child("none")
        self.assertGreater(after - before, 150 << 20)

    def test_service_trims_periodically(self) -> None:
        """L{TrimService} calls L{trim} every C{interval} seconds while running."""
        from twisted.internet.task import Clock

        from twisted_lab import memory
        calls: list[int] = []
        self.patch(memory, "trim", lambda: calls.append(1) or True)
        clock = Clock()
        service = memory.TrimService(clock, interval=5.0)
        service.startService()
        clock.advance(5)
        clock.advance(5)
        self.assertEqual(len(calls), 2)
        service.stopService()
        clock.advance(20)
        self.assertEqual(len(calls), 2)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_service_freezes_startup_objects(self) -> None:
        """With C{freeze}, the objects that exist once the reactor runs move into the
        collector's permanent generation (full collections then skip them); not
        before the reactor runs (twistd's signal handlers are not in place yet)."""
        import gc

        from twisted.internet.testing import MemoryReactorClock

        from twisted_lab.memory import TrimService
        self.addCleanup(gc.unfreeze)
        gc.unfreeze()
        reactor = MemoryReactorClock()
        service = TrimService(reactor, freeze=True)
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(gc.get_freeze_count(), 0)
        reactor.run()
        self.assertGreater(gc.get_freeze_count(), 1000)
