# -*- test-case-name: tests.test_flow -*-
"""
Bounds on what a connection may leave unsent to a peer that does not read.

L{SendBudget} counts the bytes queued for one peer and watches progress: a
peer with more than C{limit} bytes waiting, or that took nothing for
C{deadline} seconds while bytes were waiting, is reported once (the owner
logs it and drops the peer).  Protocols use it where they queue outgoing
data themselves (the PyMoDAQ L{ChunkWriter}).

L{PeerSendBudget} is the same bound for a ZeroMQ socket that talks to many
peers (a ROUTER): ZeroMQ's high-water marks count messages, not bytes, so
every large message handed to ZeroMQ is tracked (a C{zmq.MessageTracker} is
C{done} once ZeroMQ wrote it out or dropped it) and counted against its
peer.  A peer with more than C{limit} bytes unwritten, or whose oldest
unwritten message is older than C{deadline}, is reported once (the owner
logs it and drops the peer, or answers with an error instead of more data).
Used by the LECO Coordinator and the PLESTY server through
L{twisted_lab.protocols.zmqutil.ZmqConnection.send_within}.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["SendBudget", "PeerSendBudget", "DEFAULT_SEND_LIMIT", "DEFAULT_SEND_DEADLINE"]

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


class Tracker(Protocol):
    """What L{PeerSendBudget} needs of a C{zmq.MessageTracker}."""

    @property
    def done(self) -> bool:
        """C{True} once the message is out of the sender's hands."""


class PeerSendBudget:
    """
    The bytes of large messages waiting in a ZeroMQ socket, per peer, with a
    size limit and a stall deadline.

    A peer past either is refused more (L{admit} says C{False}) until what
    waits for it is written out or dropped by ZeroMQ (the peer left), so
    what a peer that does not read can pin stays within C{limit}; the first
    refusal of each such episode is reported through C{exceeded}.

    @param clock: for the deadline (the age of the oldest waiting message).
    @param exceeded: called with the peer and the reason, once per episode
        (the owner logs it and drops the peer, or answers with an error).
    @ivar limit: bytes that may wait for one peer.
    @ivar deadline: seconds the oldest waiting message of a peer may wait.
    """

    #: sends between two sweeps of peers with nothing left waiting
    SWEEP_EVERY = 256

    def __init__(self, clock: IReactorTime, exceeded: Callable[[bytes, str], Any],
                 limit: int = DEFAULT_SEND_LIMIT,
                 deadline: float = DEFAULT_SEND_DEADLINE) -> None:
        self.clock = clock
        self.exceeded = exceeded
        self.limit = limit
        self.deadline = deadline
        self._waiting: dict[bytes, list[tuple[Tracker, int, float]]] = {}
        self._refused: set[bytes] = set()
        self._sends = 0

    def waiting(self, peer: bytes) -> int:
        """Bytes of tracked messages not yet written out to C{peer}."""
        return sum(size for tracker, size, _ in self._waiting.get(peer, ()) if not tracker.done)

    def refused(self, peer: bytes) -> bool:
        """C{True} while C{peer} is past its budget (its last L{admit} said C{False})."""
        return peer in self._refused

    def peers(self) -> list[bytes]:
        """The peers with tracked messages (some may be written out already)."""
        return list(self._waiting)

    def admit(self, peer: bytes, size: int) -> bool:
        """
        May C{size} more bytes go to C{peer}?

        @return: C{False} when the peer is past the limit or the deadline
            (C{exceeded} was called, the first time).
        """
        entries = self._waiting.get(peer)
        if not entries:
            self._refused.discard(peer)
            return True
        waiting = [e for e in entries if not e[0].done]
        if not waiting:
            del self._waiting[peer]
            self._refused.discard(peer)
            return True
        self._waiting[peer] = waiting
        queued = sum(e[1] for e in waiting)
        age = self.clock.seconds() - waiting[0][2]
        if queued + size <= self.limit and age <= self.deadline:
            self._refused.discard(peer)
            return True
        if peer not in self._refused:
            self._refused.add(peer)
            self.exceeded(peer, f"{queued} bytes waited for {age:.1f} s (limits "
                                f"{self.limit} bytes, {self.deadline} s); a message of "
                                f"{size} bytes was not sent")
        return False

    def sent(self, peer: bytes, tracker: Tracker | None, size: int) -> None:
        """A message of C{size} bytes went to ZeroMQ for C{peer}, tracked by C{tracker}."""
        if tracker is not None and not tracker.done:
            self._waiting.setdefault(peer, []).append((tracker, size, self.clock.seconds()))
        self._sends += 1
        if self._sends >= self.SWEEP_EVERY:
            self._sends = 0
            for key in [k for k, v in self._waiting.items() if all(e[0].done for e in v)]:
                del self._waiting[key]
                self._refused.discard(key)

    def clear(self) -> None:
        """Forget every peer (the socket closed)."""
        self._waiting.clear()
        self._refused.clear()
