# -*- test-case-name: tests.test_devices_adapters -*-
"""
Tests for L{twisted_lab.devices.adapters}: parameters of any device served
as an actuator or a 0D detector, following the target's state and leases.
"""
from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_lab.config import parse_config
from twisted_lab.devices.adapters import ParameterActuator, ParameterDetector
from twisted_lab.errors import DeviceOffline, InvalidValue, LeaseConflict
from twisted_lab.events import DATA, LabEvent
from twisted_lab.interfaces import IActuator, IDetector
from twisted_lab.leases import Owner
from twisted_lab.registry import DeviceRegistry
from twisted_lab.service import build_service
from twisted_lab.description import Parameter
from twisted_lab.devices.base import BaseDevice

PLESTY = Owner("plesty", "c1")
PYMODAQ = Owner("pymodaq", "main-pc")


class Board(BaseDevice):
    """A board with a bounded light level in percent."""

    def __init__(self) -> None:
        super().__init__("board", [Parameter("light", "float", "%", minimum=0, maximum=100,
                                             default=0.0),
                                   Parameter("temperature", "float", "degC", readonly=True,
                                             default=21.5)])


class AdapterTests(SynchronousTestCase):
    """Adapters over a registry device."""

    def setUp(self) -> None:
        self.registry = DeviceRegistry(Clock())
        self.board = Board()
        self.registry.register(self.board)
        self.actuator = ParameterActuator("light", "board", "light", "%")
        self.detector = ParameterDetector("board_sensors", "board", ["light", "temperature"])
        for adapter in (self.actuator, self.detector):
            self.registry.register(adapter)
            adapter.attach_registry(self.registry)

    def test_interfaces(self) -> None:
        """The adapters provide IActuator and IDetector."""
        self.assertTrue(verifyObject(IActuator, self.actuator))
        self.assertTrue(verifyObject(IDetector, self.detector))

    def test_move_writes_parameter(self) -> None:
        """move_abs writes the target's parameter; position reads it; move_rel adds."""
        self.assertEqual(self.successResultOf(self.actuator.move_abs(40)), 40.0)
        self.assertEqual(self.successResultOf(self.board.get("light")), 40.0)
        self.assertEqual(self.successResultOf(self.actuator.move_rel(5)), 45.0)
        self.assertEqual(self.successResultOf(self.actuator.position()), 45.0)

    def test_target_limits_apply(self) -> None:
        """The target's limits refuse an out-of-range move with InvalidValue."""
        failure = self.failureResultOf(self.actuator.move_abs(150), InvalidValue)
        self.assertIn("above the maximum 100", str(failure.value))

    def test_target_change_reported_as_position(self) -> None:
        """A change of the target parameter (by anyone) is a position data event."""
        events: list[LabEvent] = []
        self.actuator.subscribe(events.append)
        self.successResultOf(self.board.set("light", 12))
        self.assertEqual(events, [LabEvent(DATA, "light", "position", 12.0)])

    def test_grab_reads_parameters(self) -> None:
        """grab() returns one 0D signal per parameter with the target's units."""
        self.successResultOf(self.board.set("light", 30))
        export = self.successResultOf(self.detector.grab())
        self.assertEqual([(s.name, s.value(), s.units, s.dim) for s in export],
                         [("light", 30.0, "%", "Data0D"), ("temperature", 21.5, "degC", "Data0D")])

    def test_follows_online_state(self) -> None:
        """The adapters go offline with their target, and calls fail with DeviceOffline."""
        self.board.set_online(False)
        self.assertFalse(self.actuator.online)
        self.failureResultOf(self.actuator.move_abs(1), DeviceOffline)
        self.failureResultOf(self.detector.grab(), DeviceOffline)
        self.board.set_online(True)
        self.assertTrue(self.detector.online)
        self.registry.unregister("board")
        self.assertFalse(self.actuator.online)

    def test_lease_on_target_holds(self) -> None:
        """A lease on the target (taken through PLESTY) refuses moves through the adapter
        by another owner, naming the holder; the holder itself may move."""
        self.registry.acquire(PLESTY, ["board"])
        guarded = self.successResultOf(self.registry.guarded("light", PYMODAQ))
        failure = self.failureResultOf(guarded.move_abs(10), LeaseConflict)
        self.assertIn("locked by plesty:c1", str(failure.value))
        mine = self.successResultOf(self.registry.guarded("light", PLESTY))
        self.assertEqual(self.successResultOf(mine.move_abs(10)), 10.0)


class ConfigTests(SynchronousTestCase):
    """Adapters are configured by name and attached to the registry by build_service."""

    def test_configured(self) -> None:
        """adapter.actuator over a simulated power meter's WAVELENGTH moves it."""
        clock = Clock()
        registry = DeviceRegistry(clock)
        config = parse_config({"devices": {
            "pm": {"type": "sim.powermeter"},
            "wl": {"type": "adapter.actuator", "device": "pm", "parameter": "WAVELENGTH",
                   "units": "nm"},
            "pm0d": {"type": "adapter.detector", "device": "pm", "parameters": ["WAVELENGTH"]},
        }})
        build_service(registry, config, clock)
        self.assertEqual(self.successResultOf(registry.lookup("wl").move_abs(800)), 800.0)
        export = self.successResultOf(registry.lookup("pm0d").grab())
        self.assertEqual(export[0].value(), 800.0)
