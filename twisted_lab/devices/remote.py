# -*- test-case-name: tests.test_devices_remote -*-
"""
What every imported device shares, whatever its protocol.

A device served by a peer (a PyMoDAQ client connected to our server, a LECO
actor we direct, a PLESTY server we are a client of, an LA4 node) is a
device like any other, with one difference: it has a link to its peer.
L{RemoteDeviceMixin} makes the device follow that link, once for every
protocol:

  - L{RemoteDeviceMixin.link_up}: the peer is there (again): take its fresh
    description, if any, and go online (same object, same name);
  - L{RemoteDeviceMixin.link_down}: the peer went: go offline and fail
    every call waiting on it with L{DeviceOffline};
  - L{RemoteDeviceMixin.start_liveness}/L{RemoteDeviceMixin.stop_liveness}:
    for protocols whose link is not a connection (LECO), a periodic check
    on the injected clock; stopping it fails the calls waiting too.

Each protocol keeps in its own package what only it has: how calls wait for
replies (L{RemoteDeviceMixin.fail_pending} is its hook), how the peer is
asked, and what its replies mean.
"""
from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from twisted_lab.description import Description
from twisted_lab.errors import DeviceOffline

__all__ = ["RemoteDeviceMixin"]


class RemoteDeviceMixin:
    """
    The link-following part of an imported device; mix it in before
    L{twisted_lab.devices.base.BaseDevice} (or one of its kinds).
    """

    log: Logger
    name: str
    online: bool
    _description: Description
    set_online: Callable[[bool], None]
    #: the periodic liveness check, while it runs
    _liveness: LoopingCall | None = None

    def fail_pending(self, error: Exception) -> None:
        """
        Fail every call waiting on the peer with C{error}: each protocol
        says where its calls wait.
        """
        raise NotImplementedError(f"{type(self).__name__} must say how its calls wait")

    def update_description(self, description: Description) -> None:
        """Take a fresh description of the peer's device (after a reconnection)."""
        self._description = description

    def link_up(self, description: Description | None = None) -> bool:
        """
        The peer is there: take its C{description} (when given) and go online.

        @return: C{True} when the device was offline (it is back).
        """
        if description is not None:
            self.update_description(description)
        was_online = self.online
        self.set_online(True)
        return not was_online

    def link_down(self, reason: str) -> bool:
        """
        The peer went: go offline, and fail every call waiting on it with
        L{DeviceOffline}C{(reason)}.

        @return: C{True} when the device was online (it just went).
        """
        was_online = self.online
        self.set_online(False)
        self.fail_pending(DeviceOffline(reason))
        return was_online

    def start_liveness(self, check: Callable[[], Deferred[Any] | None], interval: float,
                       clock: Any, now: bool) -> None:
        """
        Run C{check} every C{interval} seconds on C{clock} (idempotent); a
        check that raises is logged and ends the checks.

        @param now: run the first check at once.
        """
        if self._liveness is not None:
            return
        self._liveness = LoopingCall(check)
        self._liveness.clock = clock
        self._liveness.start(interval, now=now).addErrback(
            lambda f: self.log.failure("liveness check of {device}", f, device=self.name))

    def stop_liveness(self, reason: str) -> None:
        """Stop the checks and fail the calls waiting (the device stays registered)."""
        if self._liveness is not None and self._liveness.running:
            self._liveness.stop()
        self._liveness = None
        self.fail_pending(DeviceOffline(reason))
