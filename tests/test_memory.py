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


_CHILD = textwrap.dedent("""
    import re, sys
    from twisted_lab.memory import return_large_frees
    if sys.argv[1] == "pinned":
        assert return_large_frees()

    def rss():
        with open("/proc/self/status") as f:
            return int(re.search(r"VmRSS:\\s+(\\d+)", f.read()).group(1)) * 1024

    # glibc raises its threshold after a large block is freed
    warm = bytearray(16 << 20)
    del warm
    before = rss()
    # each block followed by a small one that stays (as the lab's objects do),
    # so a heap cannot shrink from its top
    blocks, kept = [], []
    for _ in range(40):
        block = bytearray(4 << 20)
        block[::4096] = b"x" * (1024)  # touch every page
        blocks.append(block)
        kept.append(bytearray(128 << 10))  # too big for any hole below: placed after it
    del block
    held = rss()
    del blocks
    print(before, held, rss())
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


class ReturnLargeFreesTests(SynchronousTestCase):
    """Large blocks freed go back to the system."""

    def _child(self, mode: str) -> tuple[int, int, int]:
        out = subprocess.run([sys.executable, "-c", _CHILD, mode], capture_output=True,
                             text=True, check=True, timeout=120, env=_ENV).stdout.split()
        before, held, after = (int(x) for x in out)
        return before, held, after

    def test_rss_returns(self) -> None:
        """With the threshold pinned, 160 MB of 4 MiB blocks allocated and freed leave
        RSS within 10 % of where it was plus the small blocks still kept (without it
        glibc keeps them on its heap)."""
        if not sys.platform.startswith("linux"):
            raise self.failureException("the lab's CI runs on Linux (glibc)")
        before, held, after = self._child("pinned")
        self.assertGreater(held - before, 100 << 20)
        self.assertLess(after, (before + 40 * (128 << 10)) * 1.1)

    def test_default_keeps(self) -> None:
        """The control: without it, the same blocks stay in the process after they are
        freed (what the lab did before: +100 MB after a slow LECO reader left), so the
        test above measures something."""
        before, held, after = self._child("default")
        self.assertGreater(after - before, 100 << 20)


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
