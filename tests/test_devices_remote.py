# -*- test-case-name: tests.test_devices_remote -*-
"""
Tests for L{twisted_lab.devices.remote}: the link-following part every
imported device shares (the protocols' own tests cover each user).
"""
from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.description import Description, Parameter
from twisted_lab.devices.base import BaseDevice
from twisted_lab.devices.remote import RemoteDeviceMixin
from twisted_lab.errors import DeviceOffline
from twisted_lab.events import OFFLINE, ONLINE, LabEvent
from twisted_lab.waiting import PendingCalls


class _Remote(RemoteDeviceMixin, BaseDevice):
    """A remote device whose calls wait in a L{PendingCalls}."""

    def __init__(self, clock: Clock) -> None:
        super().__init__("far", [Parameter("x", "float")])
        self.pending: PendingCalls[int] = PendingCalls(clock)
        self.checks = 0

    def fail_pending(self, error: Exception) -> None:
        self.pending.fail_all(error)

    def check(self) -> Deferred[None]:
        self.checks += 1
        return succeed(None)


class RemoteDeviceMixinTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.device = _Remote(self.clock)
        self.events: list[LabEvent] = []
        self.device.subscribe(self.events.append)

    def test_link_down_fails_pending_and_goes_offline(self) -> None:
        """C{link_down} marks the device offline and fails waiting calls with
        L{DeviceOffline} carrying the reason; it says whether it was online."""
        waiting = self.device.pending.add(1)
        self.assertTrue(self.device.link_down("the peer went"))
        failure = self.failureResultOf(waiting, DeviceOffline)
        self.assertIn("the peer went", str(failure.value))
        self.assertFalse(self.device.online)
        self.assertEqual([e.kind for e in self.events], [OFFLINE])
        self.assertFalse(self.device.link_down("again"), "already offline")

    def test_link_up_takes_description_and_comes_back(self) -> None:
        """C{link_up} takes a fresh description and goes online (same object)."""
        self.device.link_down("gone")
        fresh = Description.build("far", [Parameter("y", "int")], [])
        self.assertTrue(self.device.link_up(fresh))
        self.assertTrue(self.device.online)
        self.assertIs(self.device.description, fresh)
        self.assertEqual([e.kind for e in self.events], [OFFLINE, ONLINE])
        self.assertFalse(self.device.link_up(), "already online")

    def test_liveness_runs_on_the_clock_and_stops(self) -> None:
        """C{start_liveness} checks every interval on the given clock (once, however
        often started); C{stop_liveness} stops it and fails the waiting calls."""
        self.device.start_liveness(self.device.check, 2.0, self.clock, now=False)
        self.device.start_liveness(self.device.check, 2.0, self.clock, now=False)
        self.clock.advance(2.0)
        self.clock.advance(2.0)
        self.assertEqual(self.device.checks, 2)
        waiting = self.device.pending.add(1)
        self.device.stop_liveness("director stopped")
        self.failureResultOf(waiting, DeviceOffline)
        self.clock.advance(10.0)
        self.assertEqual(self.device.checks, 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_fail_pending_is_required(self) -> None:
        """A protocol that does not say where its calls wait is told so."""

        class Bare(RemoteDeviceMixin, BaseDevice):
            pass

        with self.assertRaises(NotImplementedError):
            Bare("bare").link_down("x")

    def test_every_protocol_uses_it(self) -> None:
        """Every protocol's remote device kinds share the mixin."""
        from twisted_lab.protocols.la4.imports import LA4NodeDevice
        from twisted_lab.protocols.leco.imports import RemoteActorDevice
        from twisted_lab.protocols.leco.pymodaq_director import (PyMoDAQRemoteActuator,
                                                                 PyMoDAQRemoteDetector)
        from twisted_lab.protocols.plesty.remote import (PlestyRemoteActuator,
                                                         PlestyRemoteDetector,
                                                         PlestyRemoteDevice)
        from twisted_lab.protocols.pymodaq.remote import RemoteActuator, RemoteGrabber
        kinds: list[Any] = [LA4NodeDevice, RemoteActorDevice, PyMoDAQRemoteActuator,
                            PyMoDAQRemoteDetector, PlestyRemoteActuator, PlestyRemoteDetector,
                            PlestyRemoteDevice, RemoteActuator, RemoteGrabber]
        for kind in kinds:
            self.assertTrue(issubclass(kind, RemoteDeviceMixin), kind)
