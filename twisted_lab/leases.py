# -*- test-case-name: tests.test_leases -*-
"""
Leases: locks on devices and sub-resources that hold across every protocol.

A resource is a device name (C{"stage"}) or C{"device/sub-resource"}
(C{"stage/position"}); a lease on C{"stage"} covers every C{"stage/..."}.
An owner is C{(protocol, peer id)}.  Leases are kept in memory by the
registry; their expiry is driven by the injected clock.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, NamedTuple

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from twisted_lab.errors import LabError, LeaseConflict

__all__ = ["Owner", "Lease", "LeaseTable", "overlaps"]


class Owner(NamedTuple):
    """
    Who holds a lease: the protocol and the peer's id within it.
    """

    protocol: str
    peer: str

    def __str__(self) -> str:
        return f"{self.protocol}:{self.peer}"


def overlaps(a: str, b: str) -> bool:
    """
    C{True} when resources C{a} and C{b} cover a common part.

    C{"stage"} overlaps C{"stage"} and C{"stage/position"}; C{"stage/position"}
    does not overlap C{"stage/velocity"}.
    """
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


@dataclass(eq=False)
class Lease:
    """
    One all-or-nothing grant of resources to an owner.

    @ivar owner: the holder.
    @ivar resources: the resources held.
    @ivar ttl: seconds it lives without renewal, or C{None} for no expiry.
    @ivar expires: clock time of expiry, or C{None}.
    """

    owner: Owner
    resources: frozenset[str]
    ttl: float | None = None
    expires: float | None = None
    _timer: IDelayedCall | None = field(default=None, repr=False)


class LeaseTable:
    """
    The leases of one registry.

    @param clock: drives expiry (the reactor, or a L{twisted.internet.task.Clock}).
    """

    log = Logger()

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._leases: list[Lease] = []

    def leases(self, owner: Owner | None = None) -> list[Lease]:
        """The live leases, all or one owner's."""
        return [lease for lease in self._leases if owner is None or lease.owner == owner]

    def holder(self, resource: str) -> Owner | None:
        """The owner of a lease overlapping C{resource}, or C{None}."""
        for lease in self._leases:
            if any(overlaps(resource, held) for held in lease.resources):
                return lease.owner
        return None

    def check(self, owner: Owner | None, resources: Iterable[str]) -> None:
        """
        Refuse if another owner holds any of C{resources}.

        @param owner: the caller; C{None} for a caller that holds nothing.
        @raise LeaseConflict: naming the first conflicting resource and its holder.
        """
        for resource in resources:
            for lease in self._leases:
                if lease.owner == owner:
                    continue
                if any(overlaps(resource, held) for held in lease.resources):
                    raise LeaseConflict(resource, str(lease.owner))

    def acquire(self, owner: Owner, resources: Iterable[str], ttl: float | None = None) -> Lease:
        """
        Lease all of C{resources} to C{owner}, or none of them.

        @param ttl: seconds until it expires unless renewed; C{None} for never.
        @return: the new L{Lease}.
        @raise LeaseConflict: another owner holds one of them.
        """
        wanted = frozenset(resources)
        if not wanted:
            raise LabError("a lease needs at least one resource")
        if ttl is not None and ttl <= 0:
            raise LabError(f"lease ttl must be positive, got {ttl!r}")
        self.check(owner, sorted(wanted))
        lease = Lease(owner, wanted, ttl)
        self._leases.append(lease)
        self._arm(lease)
        self.log.info("{owner} leased {resources}", owner=str(owner), resources=sorted(wanted))
        return lease

    def renew(self, lease: Lease, ttl: float | None = None) -> None:
        """
        Restart a lease's time to live (optionally with a new C{ttl}).

        @raise LabError: the lease was released or has expired.
        """
        if lease not in self._leases:
            raise LabError(f"lease of {sorted(lease.resources)} by {lease.owner} is no longer held")
        if ttl is not None:
            lease.ttl = ttl
        self._arm(lease)

    def renew_owner(self, owner: Owner) -> int:
        """Renew every lease of C{owner}; return how many."""
        mine = self.leases(owner)
        for lease in mine:
            self._arm(lease)
        return len(mine)

    def release(self, lease: Lease) -> None:
        """Give a lease back (a no-op if it already ended)."""
        if lease in self._leases:
            self._drop(lease)
            self.log.info("{owner} released {resources}", owner=str(lease.owner),
                          resources=sorted(lease.resources))

    def release_owner(self, owner: Owner) -> list[str]:
        """
        Release every lease of C{owner} (on disconnect).

        @return: the resources freed.
        """
        freed: list[str] = []
        for lease in self.leases(owner):
            self._drop(lease)
            freed.extend(sorted(lease.resources))
        if freed:
            self.log.info("released {resources} of {owner}", owner=str(owner), resources=freed)
        return freed

    def clear(self) -> None:
        """Drop every lease and cancel every timer (on shutdown)."""
        for lease in list(self._leases):
            self._drop(lease)

    def _arm(self, lease: Lease) -> None:
        if lease._timer is not None and lease._timer.active():
            lease._timer.cancel()
        lease._timer = None
        if lease.ttl is not None:
            lease.expires = self._clock.seconds() + lease.ttl
            lease._timer = self._clock.callLater(lease.ttl, self._expire, lease)

    def _expire(self, lease: Lease) -> None:
        lease._timer = None
        if lease in self._leases:
            self._leases.remove(lease)
            self.log.warn("lease of {resources} by {owner} expired after {ttl} s",
                          resources=sorted(lease.resources), owner=str(lease.owner), ttl=lease.ttl)

    def _drop(self, lease: Lease) -> None:
        if lease._timer is not None and lease._timer.active():
            lease._timer.cancel()
        lease._timer = None
        self._leases.remove(lease)
