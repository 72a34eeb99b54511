# -*- test-case-name: tests.test_flow -*-
"""
Bounds on what a connection may leave unsent to a peer that does not read.

L{SendBudget} counts the bytes queued for one peer and watches progress: a
peer with more than C{limit} bytes waiting, or that took nothing for
C{deadline} seconds while bytes were waiting, is reported once (the owner
logs it and drops the peer).  Protocols use it where they queue outgoing
data themselves (the PyMoDAQ L{ChunkWriter}); ZeroMQ sockets bound their
queues with high-water marks instead.
"""
from __future__ import annotations

from typing import Any, Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["SendBudget", "DEFAULT_SEND_LIMIT", "DEFAULT_SEND_DEADLINE"]

#: Bytes a peer may have waiting (four 2048 x 2048 float64 frames).
DEFAULT_SEND_LIMIT = 4 * (32 << 20) + (1 << 20)
#: Seconds a peer may take nothing while bytes wait for it.
DEFAULT_SEND_DEADLINE = 30.0


class SendBudget:
    """
    The bytes waiting for one peer, with a size limit and a stall deadline.

    @param clock: for the deadline.
    @param exceeded: called once, with the reason, when the peer goes past
        the limit or the deadline.
    @ivar waiting: bytes queued and not yet taken by the transport.
    @ivar exhausted: C{True} once C{exceeded} was called.
    """

    def __init__(self, clock: IReactorTime, exceeded: Callable[[str], Any],
                 limit: int = DEFAULT_SEND_LIMIT,
                 deadline: float = DEFAULT_SEND_DEADLINE) -> None:
        self.clock = clock
        self.exceeded = exceeded
        self.limit = limit
        self.deadline = deadline
        self.waiting = 0
        self.exhausted = False
        self._timer: IDelayedCall | None = None

    def queued(self, size: int) -> bool:
        """
        C{size} more bytes wait for the peer.

        @return: C{False} when that goes past the limit (reported).
        """
        if self.waiting + size > self.limit:
            self._exceed(f"{self.waiting + size} bytes would wait for a peer that does not "
                         f"read (limit {self.limit})")
            return False
        self.waiting += size
        if self._timer is None and not self.exhausted and self.waiting > 0:
            self._timer = self.clock.callLater(self.deadline, self._stalled)
        return True

    def taken(self, size: int) -> None:
        """The transport took C{size} bytes: progress, the deadline starts again."""
        self.waiting = max(0, self.waiting - size)
        if self._timer is not None:
            if self.waiting == 0:
                self._cancel()
            else:
                self._timer.reset(self.deadline)

    def stop(self) -> None:
        """The connection is gone: forget everything, report nothing."""
        self.waiting = 0
        self._cancel()

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _stalled(self) -> None:
        self._timer = None
        self._exceed(f"the peer took nothing for {self.deadline} s while {self.waiting} "
                     f"bytes waited")

    def _exceed(self, reason: str) -> None:
        self._cancel()
        if not self.exhausted:
            self.exhausted = True
            self.exceeded(reason)
