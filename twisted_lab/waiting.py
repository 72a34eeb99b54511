# -*- test-case-name: tests.test_waiting -*-
"""
Waiting, written once: calls awaiting their replies, and callers awaiting an
event.

Every protocol has calls that wait for a reply with a deadline and must all
fail when the peer goes away, and methods such as C{when_signed_in()} where
each caller waits for an event.  They all use this module:

  - L{PendingCalls}: one L{Deferred} per key (a conversation id, a request
    id, a sequence number), each with a deadline from
    L{Deferred.addTimeout} on the injected clock; L{PendingCalls.fail_all}
    when the peer goes.
  - L{Waiters}: the callers of one C{when_<event>()} method, each with its
    own cancellable L{Deferred} (in the manner of txtorcon's
    C{SingleObserver}), optionally with a deadline.
  - L{KeyedWaiters}: the same, for events that have a name (a device name,
    a callback method).

Cancelling any of these Deferreds forgets it (no later reply or event
reaches it, its timer is cancelled); the deadline fails it with the error
its owner chose (a L{twisted_lab.errors.DeviceTimeout} naming what was not
answered), not with C{defer.TimeoutError}.
"""
from __future__ import annotations

from typing import Any, Callable, Generic, Hashable, Iterator, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

__all__ = ["with_deadline", "PendingCalls", "Pending", "Waiters", "KeyedWaiters"]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

#: Makes the error a deadline fails a call with.
ErrorFactory = Callable[[], Exception]


def with_deadline(d: Deferred[T], timeout: float, clock: IReactorTime,
                  error: ErrorFactory) -> Deferred[T]:
    """
    Give C{d} a deadline: past C{timeout} seconds on C{clock}, C{d} is
    cancelled (its canceller runs) and fails with C{error()}.

    @return: C{d}.
    """
    def timed_out(result: Any, timeout: float) -> Any:
        if isinstance(result, Failure):
            return Failure(error())
        return result  # the canceller gave a result: keep it

    return d.addTimeout(timeout, clock, onTimeoutCancel=timed_out)


class Pending(Generic[T]):
    """
    One call in a L{PendingCalls}.

    @ivar deferred: what the caller holds.
    @ivar info: what the owner stored with it (the request, a retry).
    """

    __slots__ = ("deferred", "info")

    def __init__(self, deferred: Deferred[T], info: Any) -> None:
        self.deferred = deferred
        self.info = info


class PendingCalls(Generic[K]):
    """
    Calls waiting for their replies, keyed by an id.

    @param clock: the clock of the deadlines (the injected reactor).
    """

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self._calls: dict[K, Pending[Any]] = {}

    def add(self, key: K, timeout: float | None = None, error: ErrorFactory | None = None,
            info: Any = None, canceller: Callable[[Deferred[Any]], None] | None = None
            ) -> Deferred[Any]:
        """
        Wait for the reply to C{key}.

        @param timeout: seconds from now, or C{None} for no deadline.
        @param error: the exception the deadline fails the call with (a
            C{defer.TimeoutError} when C{None}).
        @param info: anything to keep with the call (see L{get}).
        @param canceller: called (after the call is forgotten) when the
            caller, or the deadline, cancels the L{Deferred}.
        @return: a new L{Deferred} for the reply.
        @raise KeyError: C{key} is already waiting.
        """
        if key in self._calls:
            raise KeyError(f"a call with key {key!r} is already pending")

        def cancel(d: Deferred[Any]) -> None:
            if self._calls.get(key) is entry:
                del self._calls[key]
            if canceller is not None:
                canceller(d)

        d: Deferred[Any] = Deferred(cancel)
        entry = Pending(d, info)
        self._calls[key] = entry
        if timeout is not None:
            if error is None:
                d.addTimeout(timeout, self.clock)
            else:
                with_deadline(d, timeout, self.clock, error)
        return d

    def get(self, key: K) -> Pending[Any] | None:
        """The pending call of C{key}, or C{None}."""
        return self._calls.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._calls

    def __len__(self) -> int:
        return len(self._calls)

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._calls))

    def pop(self, key: K) -> Pending[Any] | None:
        """Forget the call of C{key} without firing it (the caller fires it)."""
        return self._calls.pop(key, None)

    def resolve(self, key: K, result: Any) -> bool:
        """
        Fire the call of C{key} with C{result}.

        @return: C{False} when no call waited for C{key}.
        """
        entry = self._calls.pop(key, None)
        if entry is not None:
            entry.deferred.callback(result)
        return entry is not None

    def reject(self, key: K, error: Exception | Failure) -> bool:
        """
        Fail the call of C{key}.

        @return: C{False} when no call waited for C{key}.
        """
        entry = self._calls.pop(key, None)
        if entry is not None:
            entry.deferred.errback(error)
        return entry is not None

    def fail_all(self, error: Exception | Failure) -> None:
        """Fail every pending call with C{error} (the peer went away)."""
        calls, self._calls = self._calls, {}
        for entry in calls.values():
            if not entry.deferred.called:
                entry.deferred.errback(error)


class Waiters(Generic[T]):
    """
    The callers waiting for one event; each gets its own L{Deferred}.

    @param clock: the clock of deadlines given to L{when} (needed only then).
    """

    def __init__(self, clock: IReactorTime | None = None) -> None:
        self.clock = clock
        self._waiting: list[Deferred[T]] = []

    def when(self, timeout: float | None = None, error: ErrorFactory | None = None
             ) -> Deferred[T]:
        """
        A new L{Deferred} firing at the next L{fire} (or failing at L{fail});
        cancelling it stops the wait.

        @param timeout: seconds from now, or C{None} for no deadline.
        @param error: the exception the deadline fails it with.
        """
        def cancel(d: Deferred[T]) -> None:
            if d in self._waiting:
                self._waiting.remove(d)

        d: Deferred[T] = Deferred(cancel)
        self._waiting.append(d)
        if timeout is not None:
            if self.clock is None:
                raise ValueError("a deadline needs the Waiters' clock")
            if error is None:
                d.addTimeout(timeout, self.clock)
            else:
                with_deadline(d, timeout, self.clock, error)
        return d

    def when_or_now(self, ready: bool, result: T) -> Deferred[T]:
        """L{when}, or a fired L{Deferred} of C{result} when C{ready}."""
        return succeed(result) if ready else self.when()

    def __len__(self) -> int:
        return len(self._waiting)

    def fire(self, result: T) -> int:
        """
        The event happened: fire every waiter with C{result}.

        @return: how many waited.
        """
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(result)
        return len(waiting)

    def fail(self, error: Exception | Failure) -> int:
        """
        The event will not happen: fail every waiter.

        @return: how many waited.
        """
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.errback(error)
        return len(waiting)


class KeyedWaiters(Generic[K, T]):
    """
    Callers waiting for named events (C{when(name)}); each gets its own
    L{Deferred}.

    @param clock: the clock of deadlines given to L{when}.
    """

    def __init__(self, clock: IReactorTime | None = None) -> None:
        self.clock = clock
        self._waiting: dict[K, Waiters[T]] = {}

    def when(self, key: K, timeout: float | None = None, error: ErrorFactory | None = None
             ) -> Deferred[T]:
        """A new L{Deferred} firing at the next C{fire(key, ...)}; see L{Waiters.when}."""
        waiters = self._waiting.get(key)
        if waiters is None:
            waiters = self._waiting[key] = Waiters(self.clock)
        d = waiters.when(timeout, error)

        def prune(result: Any) -> Any:
            if not waiters and self._waiting.get(key) is waiters:
                del self._waiting[key]
            return result

        d.addBoth(prune)
        return d

    def __contains__(self, key: object) -> bool:
        return key in self._waiting

    def fire(self, key: K, result: T) -> int:
        """Fire every waiter of C{key}; @return: how many waited."""
        waiters = self._waiting.pop(key, None)
        return 0 if waiters is None else waiters.fire(result)

    def fail(self, key: K, error: Exception | Failure) -> int:
        """Fail every waiter of C{key}; @return: how many waited."""
        waiters = self._waiting.pop(key, None)
        return 0 if waiters is None else waiters.fail(error)

    def fail_all(self, error: Exception | Failure) -> int:
        """Fail every waiter of every key; @return: how many waited."""
        waiting, self._waiting = self._waiting, {}
        return sum(waiters.fail(error) for waiters in waiting.values())
