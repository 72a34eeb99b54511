# -*- test-case-name: tests.test_drivers -*-
"""
Running blocking instrument drivers without blocking the reactor.

A L{DriverRunner} owns one worker thread (a one-thread
L{twisted.python.threadpool.ThreadPool}) per instrument, so that calls to one
instrument are serialised and the reactor thread never waits on a driver.

Every call has a deadline, measured from the moment the call starts running
on the worker (calls queued behind another one wait their turn first).  A
call past its deadline fails with L{DeviceTimeout}; the runner then reports
C{busy} until the driver really returns, and while it is busy every new call
fails at once with L{DeviceBusy} (callers are told, not queued silently).
Calls that were already queued behind the overrunning call fail with
L{DeviceBusy} too.

A driver exception becomes L{DriverError} carrying the reason;
L{twisted_lab.errors.LabError} subclasses raised by the driver are passed on
unchanged.

The runner is an L{IService}: add it (or a device that owns one) to the lab's
service tree, and its thread starts and stops with the lab.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from twisted_lab.errors import DeviceBusy, DeviceOffline, DeviceTimeout, DriverError, LabError

__all__ = ["DriverRunner", "DriverService", "OnWorkerThread"]


def _daemon_thread(*args: Any, **kwargs: Any) -> threading.Thread:
    # A driver stuck forever must not keep the process alive at exit.
    kwargs["daemon"] = True
    return threading.Thread(*args, **kwargs)


class _DriverThreadPool(ThreadPool):
    """A L{ThreadPool} whose worker threads are daemons."""

    threadFactory = staticmethod(_daemon_thread)  # type: ignore[assignment]


def _describe_call(fn: Callable[..., Any], args: tuple[Any, ...]) -> str:
    name = getattr(fn, "__name__", None) or repr(fn)
    shown = []
    for arg in args[:2]:
        text = repr(arg)
        shown.append(text if len(text) <= 40 else text[:37] + "...")
    if len(args) > 2:
        shown.append("...")
    return f"{name}({', '.join(shown)})"


class _Call:
    """
    One call submitted to a L{DriverRunner}.

    Not a L{twisted_lab.waiting.PendingCalls} entry: its deadline starts when
    the worker thread begins it (a queued call is not timed, so
    C{Deferred.addTimeout} at submission would be wrong), and its expiry does
    more than fail the caller (the runner marks the device busy until the
    overrunning call returns on the worker, L{DriverRunner._expired}).
    """

    def __init__(self, runner: DriverRunner, fn: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any], timeout: float) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.timeout = timeout
        self.label = _describe_call(fn, args)
        #: set (on the reactor thread) when the caller no longer wants it to run
        self.skip = False
        #: set on the worker thread (under the runner's lock) when it begins
        self.running = False
        self.started = False
        self.finished = False
        self.overran = False
        self.timer: IDelayedCall | None = None
        self.deferred: Deferred[Any] = Deferred(lambda d: runner._cancel(self))


class DriverRunner(Service):
    """
    Run one instrument's blocking driver calls on its own worker thread.

    @ivar name: the device name (used in messages and the thread name).
    @ivar deadline: the default deadline of a call, in seconds.
    """

    log = Logger()

    def __init__(self, reactor: Any, name: str, deadline: float = 5.0) -> None:
        """
        @param reactor: the reactor (it must provide C{callFromThread} and
            C{callLater}).
        @param name: the device name.
        @param deadline: the default deadline of each call, in seconds.
        """
        if deadline <= 0:
            raise ValueError(f"deadline must be positive, got {deadline!r}")
        self._reactor = reactor
        self.name = name
        self.deadline = deadline
        self._pool: ThreadPool | None = None
        self._queued: list[_Call] = []
        self._current: _Call | None = None
        self._overrunning: _Call | None = None
        self._stopping: Deferred[None] | None = None
        self._lock = threading.Lock()

    # -- state -------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """C{True} between L{start} and L{stop}."""
        return self._pool is not None and self._stopping is None

    @property
    def busy(self) -> bool:
        """C{True} while a call that overran its deadline still runs on the worker."""
        return self._overrunning is not None

    # -- IService ----------------------------------------------------------------

    def startService(self) -> None:
        """Start the worker thread with the service."""
        Service.startService(self)
        self.start()

    def stopService(self) -> Deferred[None]:
        """Stop (and join) the worker thread with the service."""
        Service.stopService(self)
        return self.stop()

    # -- control -----------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        if self._pool is not None:
            return
        pool = _DriverThreadPool(1, 1, name=f"driver-{self.name}")
        pool.start()
        self._pool = pool
        self._stopping = None
        self.log.debug("driver thread of {device} started", device=self.name)

    def stop(self, timeout: float | None = None) -> Deferred[None]:
        """
        Stop the worker thread.

        Calls still queued fail with L{DeviceOffline}.  The returned
        L{Deferred} fires once the thread has finished (it is joined from a
        helper thread, so the reactor is never blocked), or after C{timeout}
        seconds (default: the deadline plus one second) if a driver call is
        stuck; the stuck call then fails with L{DeviceOffline} and its daemon
        thread is abandoned.

        @return: a L{Deferred} firing with C{None}.
        """
        pool = self._pool
        if pool is None:
            return succeed(None)
        if self._stopping is not None:
            return self._chain(self._stopping)
        done: Deferred[None] = Deferred()
        self._stopping = done
        queued, self._queued = self._queued, []
        for call in queued:
            if self._skip(call):
                self._fail(call, DeviceOffline(
                    f"device {self.name!r}: {call.label} was not run: the driver is stopping"))

        def joined() -> None:
            pool.stop()
            self._reactor.callFromThread(finished, False)

        def finished(abandoned: bool) -> None:
            if done.called:
                return
            if watchdog.active():
                watchdog.cancel()
            running = self._current or self._overrunning
            if running is not None and running.timer is not None:
                if running.timer.active():
                    running.timer.cancel()
                running.timer = None
            if abandoned and running is not None:
                self.log.warn(
                    "driver thread of {device} still runs {call}; abandoning it",
                    device=self.name, call=running.label)
                running.skip = True
                self._fail(running, DeviceOffline(
                    f"device {self.name!r}: {running.label} did not return before the driver "
                    f"stopped"))
            self._pool = None
            self._current = None
            self._overrunning = None
            self.log.debug("driver thread of {device} stopped", device=self.name)
            done.callback(None)

        grace = self.deadline + 1.0 if timeout is None else timeout
        watchdog = self._reactor.callLater(grace, finished, True)
        threading.Thread(target=joined, name=f"driver-{self.name}-join", daemon=True).start()
        return self._chain(done)

    @staticmethod
    def _chain(d: Deferred[None]) -> Deferred[None]:
        out: Deferred[None] = Deferred()

        def relay(result: Any) -> Any:
            out.callback(None)
            return result

        d.addBoth(relay)
        return out

    # -- calls -------------------------------------------------------------------

    def run(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None,
            **kwargs: Any) -> Deferred[Any]:
        """
        Run C{fn(*args, **kwargs)} on the worker thread.

        @param timeout: this call's deadline in seconds (default: L{deadline}),
            counted from when it starts running on the worker.
        @return: a L{Deferred} firing with the result; it fails with
            L{DeviceTimeout} past the deadline, L{DeviceBusy} while an earlier
            call overruns, L{DeviceOffline} when the runner is not started,
            L{DriverError} when the driver raises.
        """
        if self._pool is None or self._stopping is not None:
            return fail(DeviceOffline(
                f"device {self.name!r}: the driver thread is not running "
                f"(start the device's service first)"))
        if self._overrunning is not None:
            return fail(DeviceBusy(
                f"device {self.name!r} is busy: {self._overrunning.label} overran its "
                f"{self._overrunning.timeout:g} s deadline and has not returned yet"))
        limit = self.deadline if timeout is None else timeout
        if limit <= 0:
            return fail(DeviceTimeout(f"device {self.name!r}: deadline must be positive, "
                                      f"got {limit!r}"))
        call = _Call(self, fn, args, kwargs, limit)
        self._queued.append(call)
        result = deferToThreadPool(self._reactor, self._pool, self._invoke, call)
        result.addBoth(self._returned, call)
        return call.deferred

    def _skip(self, call: _Call) -> bool:
        """Mark a call not to be run; C{False} if the worker already began it."""
        with self._lock:
            if call.running:
                return False
            call.skip = True
            return True

    def _invoke(self, call: _Call) -> Any:
        # On the worker thread.
        with self._lock:
            if call.skip:
                return None
            call.running = True
        self._reactor.callFromThread(self._started, call)
        return call.fn(*call.args, **call.kwargs)

    def _started(self, call: _Call) -> None:
        # On the reactor thread, before the call's result can arrive.
        if call in self._queued:
            self._queued.remove(call)
        call.started = True
        self._current = call
        if not call.deferred.called:
            call.timer = self._reactor.callLater(call.timeout, self._expired, call)

    def _expired(self, call: _Call) -> None:
        call.timer = None
        if call.finished:
            return
        call.overran = True
        self._overrunning = call
        self.log.warn("{device}: {call} overran its {deadline} s deadline",
                      device=self.name, call=call.label, deadline=call.timeout)
        self._fail(call, DeviceTimeout(
            f"device {self.name!r}: {call.label} did not finish within its "
            f"{call.timeout:g} s deadline; the device stays busy until the driver returns",
            device=self.name, call=call.label, deadline=call.timeout))
        queued, self._queued = self._queued, []
        for waiting in queued:
            if not self._skip(waiting):
                continue
            self._fail(waiting, DeviceBusy(
                f"device {self.name!r} is busy: {call.label} overran its deadline; "
                f"{waiting.label} was not run"))

    def _returned(self, result: Any, call: _Call) -> None:
        # On the reactor thread, when the worker is done with the call.
        call.finished = True
        if call in self._queued:
            self._queued.remove(call)
        if self._current is call:
            self._current = None
        if call.timer is not None and call.timer.active():
            call.timer.cancel()
        call.timer = None
        if self._overrunning is call:
            self._overrunning = None
            if isinstance(result, Failure):
                self.log.info("{device}: overrunning {call} finally failed: {reason}",
                              device=self.name, call=call.label,
                              reason=result.getErrorMessage())
            else:
                self.log.info("{device}: overrunning {call} finally returned; no longer busy",
                              device=self.name, call=call.label)
            return None
        if call.deferred.called or call.skip:
            if isinstance(result, Failure) and call.started:
                self.log.info("{device}: result of abandoned {call} failed: {reason}",
                              device=self.name, call=call.label,
                              reason=result.getErrorMessage())
            return None
        if isinstance(result, Failure):
            call.deferred.errback(self._driver_failure(call, result))
        else:
            call.deferred.callback(result)
        return None

    def _driver_failure(self, call: _Call, failure: Failure) -> Failure:
        if isinstance(failure.value, LabError):
            return failure
        reason = failure.getErrorMessage()
        error = DriverError(
            f"device {self.name!r}: {call.label} failed: {type(failure.value).__name__}: {reason}",
            device=self.name, call=call.label, reason=reason)
        error.__cause__ = failure.value
        return Failure(error)

    def _fail(self, call: _Call, error: Exception) -> None:
        if not call.deferred.called:
            call.deferred.errback(Failure(error))

    def _cancel(self, call: _Call) -> None:
        # Canceller of a call's Deferred: a queued call is not run; a running
        # call cannot be interrupted, its result is dropped.
        if self._skip(call) and call in self._queued:
            self._queued.remove(call)
        if call.timer is not None and call.timer.active():
            call.timer.cancel()
        call.timer = None
        call.deferred.errback(Failure(CancelledError(
            f"device {self.name!r}: {call.label} cancelled")))


#: L{DriverRunner} is itself the service that starts and stops its thread.
DriverService = DriverRunner


class OnWorkerThread(Service):
    """
    Mixin: a device that is a service with its own L{DriverRunner}
    (C{runner}, set by the device's C{__init__}): the worker thread starts
    with the service, and the device is busy while a call that overran its
    deadline still runs.  List it before the base device class (its C{busy}
    wins).
    """

    runner: DriverRunner

    @property
    def busy(self) -> bool:
        """C{True} while a call that overran its deadline still runs."""
        return self.runner.busy

    def startService(self) -> None:
        """Start the worker thread."""
        Service.startService(self)
        self.runner.start()
