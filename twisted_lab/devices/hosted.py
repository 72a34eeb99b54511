# -*- test-case-name: tests.test_devices_pymeasure -*-
"""
The life cycle shared by every hosted instrument driver (PLESTY device
packages, pymeasure instruments, PyMoDAQ instrument plugins).

A L{HostedDriver} is mixed into a L{BaseDevice} (or L{BaseActuator},
L{BaseDetector}).  It owns one L{DriverRunner}: every call into the driver
runs on that worker thread, with a deadline.  The device is an L{IService}:

  - starting it starts the thread and runs L{HostedDriver.open_driver}
    there (the driver's C{connect}, C{ini_stage}, the instrument's
    constructor); the device is offline until that succeeds;
  - a failed connection is retried every C{retry} seconds, the device
    staying offline meanwhile;
  - a driver call that fails with a lost connection (L{HostedDriver.lost})
    marks the device offline, closes the driver and reconnects;
  - stopping it runs L{HostedDriver.close_driver} (the driver's
    C{disconnect}/C{close}) and joins the thread.

A call that overran its deadline leaves the device busy (C{DeviceBusy} to
new callers) until the driver returns: L{DriverRunner} does that.
"""
from __future__ import annotations

from typing import Any, Callable

from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_lab.drivers import DriverRunner, OnWorkerThread
from twisted_lab.errors import DeviceOffline, DriverError

__all__ = ["HostedDriver"]


@implementer(IService)
class HostedDriver(OnWorkerThread):
    """
    Mixin: a device whose blocking driver runs on its own worker thread and
    whose connection follows the lab's start and stop.

    Subclasses implement L{open_driver} and L{close_driver} (both run on the
    worker thread) and call L{drive} for every access to the driver.

    @ivar runner: the L{DriverRunner}.
    @ivar retry: seconds between two connection attempts.
    @ivar connect_deadline: the deadline of L{open_driver}, in seconds.
    """

    retry = 5.0
    connect_deadline = 30.0

    def init_hosted(self, reactor: Any, deadline: float, retry: float = 5.0,
                    connect_deadline: float = 30.0) -> None:
        """
        Set up the runner; call from the subclass's C{__init__}, after the
        base device's C{__init__} (the device starts offline).
        """
        self._reactor = reactor
        self.runner = DriverRunner(reactor, getattr(self, "name"), deadline=deadline)
        self.retry = retry
        self.connect_deadline = connect_deadline
        self._retry_call: IDelayedCall | None = None
        self._connecting: Deferred[Any] | None = None
        self.connected = False
        self.last_error = ""
        self.online = False

    # -- for subclasses ---------------------------------------------------------------

    def open_driver(self) -> Any:
        """Connect to the instrument (on the worker thread)."""
        raise NotImplementedError

    def close_driver(self) -> Any:
        """Disconnect from the instrument (on the worker thread)."""

    def opened(self, result: Any) -> None:
        """Called on the reactor thread once L{open_driver} returned C{result}."""

    def lost(self, error: BaseException) -> bool:
        """
        Whether a driver exception means the connection is gone (the device
        then goes offline and reconnects).  By default: C{ConnectionError}
        and C{OSError} other than timeouts.
        """
        return isinstance(error, (ConnectionError, BrokenPipeError)) or (
            isinstance(error, OSError) and not isinstance(error, TimeoutError))

    # -- state ------------------------------------------------------------------------

    # -- IService ---------------------------------------------------------------------

    def startService(self) -> None:
        """Start the worker thread and connect."""
        OnWorkerThread.startService(self)
        self._connect()

    def stopService(self) -> Deferred[None]:
        """Disconnect (if connected) and stop the worker thread."""
        Service.stopService(self)
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None
        getattr(self, "set_online")(False)
        d: Deferred[Any] = succeed(None)
        if self.connected:
            self.connected = False
            d = self.runner.run(self.close_driver, timeout=self.connect_deadline)
            d.addErrback(self._log_failure, "disconnect")
        d.addCallback(lambda _: self.runner.stop())
        return d.addCallback(lambda _: None)

    # -- connection -------------------------------------------------------------------

    def _connect(self) -> None:
        self._retry_call = None
        if not self.running or self._connecting is not None:
            return
        d = self.runner.run(self.open_driver, timeout=self.connect_deadline)
        self._connecting = d

        def ok(result: Any) -> None:
            self._connecting = None
            if not self.running:
                return
            self.connected = True
            self.last_error = ""
            self.opened(result)
            getattr(self, "log").info("{device}: driver connected", device=self.name)
            getattr(self, "set_online")(True)

        def failed(failure: Failure) -> None:
            self._connecting = None
            self.last_error = failure.getErrorMessage()
            getattr(self, "log").warn(
                "{device}: driver did not connect ({reason}); retrying in {retry} s",
                device=self.name, reason=self.last_error, retry=self.retry)
            self._schedule()

        d.addCallbacks(ok, failed)

    def _schedule(self) -> None:
        if self.running and self._retry_call is None:
            self._retry_call = self._reactor.callLater(self.retry, self._connect)

    def _log_failure(self, failure: Failure, what: str) -> None:
        getattr(self, "log").warn("{device}: driver {what} failed: {reason}", device=self.name,
                                  what=what, reason=failure.getErrorMessage())

    def reconnect(self, reason: str) -> None:
        """Mark the device offline, close the driver and connect again."""
        if not self.connected:
            return
        self.connected = False
        self.last_error = reason
        getattr(self, "log").warn("{device}: connection lost ({reason}); reconnecting",
                                  device=self.name, reason=reason)
        getattr(self, "set_online")(False)
        d = self.runner.run(self.close_driver, timeout=self.connect_deadline)
        d.addErrback(self._log_failure, "disconnect")
        d.addBoth(lambda _: self._schedule())

    # -- access -----------------------------------------------------------------------

    def drive(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None,
              **kwargs: Any) -> Deferred[Any]:
        """
        Run C{fn(*args, **kwargs)} on the worker thread, with a deadline.

        @return: a L{Deferred} of its result; L{DeviceOffline} when not
            connected, L{DeviceBusy}/L{DeviceTimeout}/L{DriverError} as
            L{DriverRunner.run} says.
        """
        if not self.connected:
            reason = f": {self.last_error}" if self.last_error else ""
            return fail(DeviceOffline(
                f"device {self.name!r} is offline (driver not connected{reason})"))
        d = self.runner.run(fn, *args, timeout=timeout, **kwargs)
        return d.addErrback(self._check_lost)

    def _check_lost(self, failure: Failure) -> Failure:
        error = failure.value
        cause = error.__cause__ if isinstance(error, DriverError) else None
        if cause is not None and self.lost(cause):
            self.reconnect(f"{type(cause).__name__}: {cause}")
        return failure

    name: str

