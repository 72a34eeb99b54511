# -*- test-case-name: tests.test_ratelog -*-
"""Tests for L{twisted_lab.ratelog}."""
from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.logger import Logger, LogLevel
from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.ratelog import BadInputLog


class BadInputLogTests(SynchronousTestCase):
    """Bad input is logged a few times per window, then summarised."""

    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.clock = Clock()
        self.bad = BadInputLog(Logger(observer=self.events.append), self.clock, period=10.0,
                               burst=3, max_keys=2)

    def test_burst_then_summary(self) -> None:
        """
        1,000 bad inputs from one peer in a window write C{burst} lines,
        then one summary line counting the rest when the window ends.
        """
        written = [self.bad.warn("p", "bad from {peer}", peer="p") for _ in range(1000)]
        self.assertEqual(written.count(True), 3)
        self.assertEqual(len(self.events), 3)
        self.assertEqual(self.events[0]["log_level"], LogLevel.warn)
        self.clock.advance(10)
        self.assertEqual(len(self.events), 4)
        self.assertEqual(self.events[3]["dropped"], 997)
        self.assertEqual(self.bad.suppressed, 997)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_keys_apart(self) -> None:
        """Each key has its own burst."""
        for _ in range(5):
            self.bad.warn("a", "x")
            self.bad.warn("b", "x")
        self.assertEqual(len(self.events), 6)

    def test_new_window(self) -> None:
        """After a window ends, the key logs again; no summary when nothing was left out."""
        for _ in range(3):
            self.bad.warn("a", "x")
        self.clock.advance(10)
        self.assertEqual(len(self.events), 3)
        self.assertTrue(self.bad.warn("a", "x"))

    def test_key_bound(self) -> None:
        """Beyond C{max_keys}, new keys share one window (memory stays bounded)."""
        for i in range(100):
            self.bad.warn(f"peer{i}", "x")
        self.assertLessEqual(len(self.bad._windows), 3)
        self.assertEqual(len(self.events), 2 + 3)
        self.clock.advance(10)
        self.assertIn("other peers", [e.get("key") for e in self.events])

    def test_without_clock(self) -> None:
        """Without a clock, the summary comes with the next line after the window."""
        events: list[dict[str, Any]] = []
        bad = BadInputLog(Logger(observer=events.append), None, period=1000.0, burst=1)
        bad.warn("a", "x")
        bad.warn("a", "x")
        self.assertEqual(len(events), 1)
        bad.period = -1.0
        bad.warn("a", "x")
        self.assertEqual([e.get("dropped") for e in events], [None, 1, None])

    def test_flush(self) -> None:
        """C{flush} writes the pending summaries and cancels their timers."""
        for _ in range(5):
            self.bad.warn("a", "x")
        self.bad.flush()
        self.assertEqual(self.events[-1]["dropped"], 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_no_timer_without_drops(self) -> None:
        """A window that left nothing out schedules nothing (no reactor residue)."""
        self.bad.warn("a", "x")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_ended_windows_make_room(self) -> None:
        """With every key slot taken by ended windows, a new key gets its own window."""
        self.bad.warn("a", "x")
        self.bad.warn("b", "x")
        self.clock.advance(11)
        self.assertTrue(self.bad.warn("c", "x"))
        self.assertIn("c", self.bad._windows)
