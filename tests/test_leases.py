# -*- test-case-name: tests.test_leases -*-
"""
Tests for L{twisted_lab.leases}.
"""
from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.errors import LabError, LeaseConflict
from twisted_lab.leases import LeaseTable, Owner, overlaps

A = Owner("plesty", "a")
B = Owner("leco", "b")


class OverlapTests(SynchronousTestCase):
    """Which resources cover each other."""

    def test_overlaps(self) -> None:
        """A device covers its sub-resources; siblings and prefixes of other names do not."""
        self.assertTrue(overlaps("stage", "stage"))
        self.assertTrue(overlaps("stage", "stage/position"))
        self.assertTrue(overlaps("stage/position", "stage"))
        self.assertFalse(overlaps("stage/position", "stage/speed"))
        self.assertFalse(overlaps("stage", "stage2"))


class LeaseTableTests(SynchronousTestCase):
    """Acquire, conflict, renew, expire and release."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.table = LeaseTable(self.clock)

    def test_all_or_nothing(self) -> None:
        """If one resource is held, none of the request is granted."""
        self.table.acquire(A, ["stage"])
        with self.assertRaises(LeaseConflict) as caught:
            self.table.acquire(B, ["meter", "stage"])
        self.assertEqual((caught.exception.resource, caught.exception.holder), ("stage", "plesty:a"))
        self.assertIsNone(self.table.holder("meter"))

    def test_conflict_on_sub_resource(self) -> None:
        """Leasing a device conflicts with another owner's lease on one of its parts."""
        self.table.acquire(A, ["stage/position"])
        self.assertRaises(LeaseConflict, self.table.acquire, B, ["stage"])
        self.table.acquire(B, ["stage/speed"])

    def test_same_owner_may_add(self) -> None:
        """An owner may lease more of what it already holds."""
        self.table.acquire(A, ["stage"])
        self.table.acquire(A, ["stage/position", "meter"])
        self.assertEqual(len(self.table.leases(A)), 2)

    def test_empty_and_bad_ttl_refused(self) -> None:
        """A lease of nothing, or with a non-positive ttl, is refused."""
        self.assertRaises(LabError, self.table.acquire, A, [])
        self.assertRaises(LabError, self.table.acquire, A, ["x"], ttl=0)

    def test_expiry(self) -> None:
        """A lease with a ttl expires on the clock, freeing its resources."""
        self.table.acquire(A, ["stage"], ttl=10)
        self.clock.advance(9.9)
        self.assertEqual(self.table.holder("stage"), A)
        self.clock.advance(0.2)
        self.assertIsNone(self.table.holder("stage"))
        self.table.acquire(B, ["stage"])

    def test_renew_postpones_expiry(self) -> None:
        """renew() restarts the time to live; renew_owner() renews all of an owner's leases."""
        lease = self.table.acquire(A, ["stage"], ttl=10)
        self.clock.advance(8)
        self.table.renew(lease)
        self.clock.advance(8)
        self.assertEqual(self.table.holder("stage"), A)
        self.assertEqual(self.table.renew_owner(A), 1)
        self.clock.advance(9)
        self.assertEqual(self.table.holder("stage"), A)
        self.clock.advance(1.1)
        self.assertIsNone(self.table.holder("stage"))

    def test_renew_ended_lease_fails(self) -> None:
        """Renewing a released lease fails with a message."""
        lease = self.table.acquire(A, ["stage"])
        self.table.release(lease)
        self.assertRaises(LabError, self.table.renew, lease)

    def test_release_cancels_timer(self) -> None:
        """Releasing leaves no pending timer on the clock."""
        lease = self.table.acquire(A, ["stage"], ttl=10)
        self.table.release(lease)
        self.table.release(lease)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_release_owner(self) -> None:
        """release_owner() frees every lease of that owner only."""
        self.table.acquire(A, ["stage"], ttl=5)
        self.table.acquire(A, ["meter"])
        self.table.acquire(B, ["camera"])
        self.assertEqual(self.table.release_owner(A), ["stage", "meter"])
        self.assertEqual(self.table.holder("camera"), B)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_check(self) -> None:
        """check() passes for the holder and for free resources, and refuses others."""
        self.table.acquire(A, ["stage"])
        self.table.check(A, ["stage/position"])
        self.table.check(B, ["meter"])
        self.assertRaises(LeaseConflict, self.table.check, B, ["stage/position"])
        self.assertRaises(LeaseConflict, self.table.check, None, ["stage"])

    def test_clear(self) -> None:
        """clear() drops every lease and timer."""
        self.table.acquire(A, ["stage"], ttl=5)
        self.table.clear()
        self.assertEqual(self.table.leases(), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])
