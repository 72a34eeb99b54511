# -*- test-case-name: tests.test_waiting -*-
"""Tests for L{twisted_lab.waiting}: pending calls and event waiters."""
from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.errors import DeviceOffline, DeviceTimeout
from twisted_lab.waiting import KeyedWaiters, PendingCalls, Waiters, with_deadline


class WithDeadlineTests(SynchronousTestCase):
    """L{with_deadline} is C{addTimeout} with the owner's error."""

    def test_fails_with_the_owners_error_at_the_deadline(self) -> None:
        """Past the deadline the Deferred fails with C{error()}, not before."""
        clock = Clock()
        d: Deferred[int] = with_deadline(Deferred(), 5, clock, lambda: DeviceTimeout("late"))
        clock.advance(4.9)
        self.assertNoResult(d)
        clock.advance(0.2)
        self.assertEqual(str(self.failureResultOf(d, DeviceTimeout).value), "late")

    def test_result_in_time_cancels_the_timer(self) -> None:
        """A result before the deadline passes through and leaves no timer."""
        clock = Clock()
        d: Deferred[int] = with_deadline(Deferred(), 5, clock, lambda: DeviceTimeout("late"))
        d.callback(3)
        self.assertEqual(self.successResultOf(d), 3)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_canceller_result_is_kept(self) -> None:
        """A canceller that fires the Deferred with a value keeps that value."""
        clock = Clock()
        d: Deferred[str] = with_deadline(Deferred(lambda d: d.callback("gave up")), 1, clock,
                                         lambda: DeviceTimeout("late"))
        clock.advance(1)
        self.assertEqual(self.successResultOf(d), "gave up")


class PendingCallsTests(SynchronousTestCase):
    """L{PendingCalls}: calls keyed by id, with deadlines, failed together."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.calls: PendingCalls[int] = PendingCalls(self.clock)

    def test_resolve(self) -> None:
        """C{resolve(key)} fires that call only and forgets it."""
        a = self.calls.add(1)
        b = self.calls.add(2)
        self.assertTrue(self.calls.resolve(1, "one"))
        self.assertEqual(self.successResultOf(a), "one")
        self.assertNoResult(b)
        self.assertEqual((1 in self.calls, 2 in self.calls, len(self.calls)), (False, True, 1))
        self.assertFalse(self.calls.resolve(1, "again"))

    def test_reject(self) -> None:
        """C{reject(key)} fails that call with the error given."""
        d = self.calls.add(1)
        self.assertTrue(self.calls.reject(1, ValueError("no")))
        self.failureResultOf(d, ValueError)
        self.assertFalse(self.calls.reject(1, ValueError("no")))

    def test_deadline(self) -> None:
        """Past its deadline a call fails with the error chosen and is forgotten,
        so a late reply finds nothing; the timer is on the injected clock."""
        d = self.calls.add(7, 2.0, lambda: DeviceTimeout("no answer to 7"))
        self.clock.advance(1.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.assertIn("no answer to 7", str(self.failureResultOf(d, DeviceTimeout).value))
        self.assertNotIn(7, self.calls)
        self.assertFalse(self.calls.resolve(7, "late"))

    def test_deadline_default_error(self) -> None:
        """Without an error factory the deadline fails with C{defer.TimeoutError}."""
        d = self.calls.add(1, 1.0)
        self.clock.advance(1)
        self.failureResultOf(d, defer.TimeoutError)

    def test_reply_cancels_deadline(self) -> None:
        """A reply in time leaves no timer behind."""
        self.calls.add(1, 3.0, lambda: DeviceTimeout("x"))
        self.calls.resolve(1, None)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancel_forgets_and_calls_canceller(self) -> None:
        """Cancelling a call forgets it, stops its timer and runs the owner's canceller."""
        seen: list[Any] = []
        d = self.calls.add(1, 3.0, lambda: DeviceTimeout("x"), canceller=seen.append)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual((seen, len(self.calls), self.clock.getDelayedCalls()), ([d], 0, []))

    def test_deadline_runs_canceller(self) -> None:
        """The deadline runs the owner's canceller too (to stop a resend, say)."""
        seen: list[Any] = []
        d = self.calls.add(1, 1.0, lambda: DeviceTimeout("x"), canceller=seen.append)
        self.clock.advance(1)
        self.failureResultOf(d, DeviceTimeout)
        self.assertEqual(seen, [d])

    def test_fail_all(self) -> None:
        """C{fail_all} fails every call and leaves none pending or timed."""
        ds = [self.calls.add(i, 5.0, lambda: DeviceTimeout("x")) for i in range(3)]
        self.calls.fail_all(DeviceOffline("gone"))
        for d in ds:
            self.failureResultOf(d, DeviceOffline)
        self.assertEqual((len(self.calls), self.clock.getDelayedCalls()), (0, []))

    def test_duplicate_key(self) -> None:
        """A key can wait only once."""
        self.calls.add(1)
        self.assertRaises(KeyError, self.calls.add, 1)

    def test_info_and_pop(self) -> None:
        """C{get} returns what was stored with a call; C{pop} forgets it unfired."""
        d = self.calls.add(1, info={"method": "pong"})
        entry = self.calls.get(1)
        assert entry is not None
        self.assertEqual((entry.info, entry.deferred), ({"method": "pong"}, d))
        self.assertIs(self.calls.pop(1), entry)
        self.assertNoResult(d)
        self.assertIsNone(self.calls.get(1))
        self.assertEqual(list(self.calls), [])


class WaitersTests(SynchronousTestCase):
    """L{Waiters}: each caller its own cancellable Deferred."""

    def test_each_caller_its_own(self) -> None:
        """Every C{when()} is a new Deferred; C{fire} fires them all with the result."""
        waiters: Waiters[int] = Waiters()
        a, b = waiters.when(), waiters.when()
        self.assertIsNot(a, b)
        a.addCallback(lambda n: n + 1)
        self.assertEqual(waiters.fire(4), 2)
        self.assertEqual((self.successResultOf(a), self.successResultOf(b)), (5, 4))
        self.assertEqual(len(waiters), 0)

    def test_cancel_removes(self) -> None:
        """A cancelled waiter is not fired later."""
        waiters: Waiters[int] = Waiters()
        a, b = waiters.when(), waiters.when()
        a.cancel()
        self.failureResultOf(a, CancelledError)
        self.assertEqual(waiters.fire(1), 1)
        self.assertEqual(self.successResultOf(b), 1)

    def test_fail(self) -> None:
        """C{fail} fails every waiter."""
        waiters: Waiters[int] = Waiters()
        a = waiters.when()
        self.assertEqual(waiters.fail(DeviceOffline("stopped")), 1)
        self.failureResultOf(a, DeviceOffline)

    def test_deadline(self) -> None:
        """A waiter with a deadline fails with the error chosen and leaves the list."""
        clock = Clock()
        waiters: Waiters[int] = Waiters(clock)
        a = waiters.when(2, lambda: DeviceTimeout("no event"))
        b = waiters.when()
        clock.advance(2)
        self.failureResultOf(a, DeviceTimeout)
        self.assertEqual(waiters.fire(3), 1)
        self.assertEqual(self.successResultOf(b), 3)

    def test_deadline_needs_clock(self) -> None:
        """A deadline without a clock is refused."""
        self.assertRaises(ValueError, Waiters().when, 1)

    def test_when_or_now(self) -> None:
        """C{when_or_now(True, x)} is already fired; C{when_or_now(False, x)} waits."""
        waiters: Waiters[str] = Waiters()
        self.assertEqual(self.successResultOf(waiters.when_or_now(True, "ok")), "ok")
        self.assertNoResult(waiters.when_or_now(False, "ok"))


class KeyedWaitersTests(SynchronousTestCase):
    """L{KeyedWaiters}: waiters per event name."""

    def test_fire_by_key(self) -> None:
        """C{fire(key)} fires the waiters of that key only."""
        waiters: KeyedWaiters[str, int] = KeyedWaiters()
        a, b, c = waiters.when("x"), waiters.when("x"), waiters.when("y")
        self.assertEqual(waiters.fire("x", 1), 2)
        self.assertEqual((self.successResultOf(a), self.successResultOf(b)), (1, 1))
        self.assertNoResult(c)
        self.assertEqual(waiters.fire("x", 2), 0)

    def test_cancel_prunes_key(self) -> None:
        """Cancelling the last waiter of a key forgets the key."""
        waiters: KeyedWaiters[str, int] = KeyedWaiters()
        a = waiters.when("x")
        self.assertIn("x", waiters)
        a.cancel()
        self.failureResultOf(a, CancelledError)
        self.assertNotIn("x", waiters)

    def test_deadline_and_fail_all(self) -> None:
        """Deadlines fail one waiter; C{fail_all} fails the others, of every key."""
        clock = Clock()
        waiters: KeyedWaiters[str, int] = KeyedWaiters(clock)
        a = waiters.when("x", 1, lambda: DeviceTimeout("no x"))
        b, c = waiters.when("x"), waiters.when("y")
        clock.advance(1)
        self.failureResultOf(a, DeviceTimeout)
        self.assertEqual(waiters.fail_all(DeviceOffline("gone")), 2)
        self.failureResultOf(b, DeviceOffline)
        self.failureResultOf(c, DeviceOffline)
        self.assertEqual(waiters.fail("x", DeviceOffline("gone")), 0)
