"""
Tests for L{twisted_lab.devices.base} and the public fakes in
L{twisted_lab.testing}.
"""
from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_lab.data import Export
from twisted_lab.description import Action, Argument, Parameter
from twisted_lab.devices.base import BaseDevice
from twisted_lab.errors import (DeviceOffline, InvalidValue, ReadOnly, UnknownAction,
                                UnknownParameter)
from twisted_lab.events import CHANGED, DATA, OFFLINE, ONLINE, LabEvent
from twisted_lab.interfaces import IActuator, IDetector, IDevice
from twisted_lab.testing import FakeActuator, FakeDetector, FakeDevice, parameters_from


class Thermostat(BaseDevice):
    """A small subclass, as a user would write one."""

    def __init__(self) -> None:
        super().__init__("thermo", [
            Parameter("setpoint", "float", "K", minimum=4.0, maximum=300.0, default=77.0),
            Parameter("reading", "float", "K", readonly=True, default=77.0),
            Parameter("mode", "str", choices=("auto", "manual"), default="auto"),
        ], [Action("ramp", (Argument("rate", "float", units="K/min"),
                            Argument("target", "float", 300.0)))])

    def action_ramp(self, rate: float, target: float) -> tuple[float, float]:
        return (rate, target)


class BaseDeviceTests(SynchronousTestCase):
    """L{BaseDevice} checks names, types, limits and state, and sends events."""

    def setUp(self) -> None:
        self.device = Thermostat()
        self.events: list[LabEvent] = []
        self.unsubscribe = self.device.subscribe(self.events.append)

    def test_interface(self) -> None:
        """A subclass provides IDevice."""
        verifyObject(IDevice, self.device)
        self.assertFalse(self.device.busy)

    def test_describe(self) -> None:
        """describe() fires with the description of parameters and actions."""
        desc = self.successResultOf(self.device.describe())
        self.assertEqual(list(desc.parameters), ["setpoint", "reading", "mode"])
        self.assertEqual(desc.as_dict()["actions"]["ramp"]["arguments"][1]["default"], 300.0)

    def test_get_set(self) -> None:
        """set validates, stores and reports a change event."""
        self.assertEqual(self.successResultOf(self.device.set("setpoint", 100)), 100.0)
        self.assertEqual(self.successResultOf(self.device.get("setpoint")), 100.0)
        self.assertEqual(self.events, [LabEvent(CHANGED, "thermo", "setpoint", 100.0)])

    def test_bad_input(self) -> None:
        """Unknown, read-only, ill-typed and out-of-limit writes give specific errors."""
        f = self.failureResultOf(self.device.get("temp"), UnknownParameter)
        self.assertIn("it has: mode, reading, setpoint", str(f.value))
        f = self.failureResultOf(self.device.set("reading", 1.0), ReadOnly)
        self.assertIn("'reading'", str(f.value))
        f = self.failureResultOf(self.device.set("setpoint", "cold"), InvalidValue)
        self.assertIn("thermo.setpoint must be float", str(f.value))
        f = self.failureResultOf(self.device.set("setpoint", 1.0), InvalidValue)
        self.assertIn("below the minimum 4.0 K", str(f.value))
        f = self.failureResultOf(self.device.set("mode", "off"), InvalidValue)
        self.assertIn("'auto', 'manual'", str(f.value))
        self.assertEqual(self.events, [])

    def test_call(self) -> None:
        """call binds arguments (defaults, keywords) and runs action_<name>."""
        self.assertEqual(self.successResultOf(self.device.call("ramp", 2)), (2.0, 300.0))
        self.assertEqual(self.successResultOf(self.device.call("ramp", 1, target=10)),
                         (1.0, 10.0))
        f = self.failureResultOf(self.device.call("ramp"), InvalidValue)
        self.assertIn("missing its argument 'rate'", str(f.value))
        self.failureResultOf(self.device.call("ramp", 1, speed=2), InvalidValue)
        f = self.failureResultOf(self.device.call("explode"), UnknownAction)
        self.assertIn("it has: ramp", str(f.value))

    def test_offline(self) -> None:
        """An offline device fails every call with DeviceOffline and tells subscribers."""
        self.device.set_online(False)
        self.failureResultOf(self.device.get("setpoint"), DeviceOffline)
        self.failureResultOf(self.device.set("setpoint", 10.0), DeviceOffline)
        self.failureResultOf(self.device.call("ramp", 1), DeviceOffline)
        self.device.set_online(True)
        self.assertEqual([e.kind for e in self.events], [OFFLINE, ONLINE])

    def test_unsubscribe_and_failing_listener(self) -> None:
        """A failing listener is logged, not raised; unsubscribe stops events."""
        def broken(event: LabEvent) -> None:
            raise RuntimeError("listener bug")

        self.device.subscribe(broken)
        self.successResultOf(self.device.set("setpoint", 10.0))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.unsubscribe()
        self.unsubscribe()
        self.successResultOf(self.device.set("setpoint", 11.0))
        self.assertEqual(len(self.events), 1)
        self.flushLoggedErrors(RuntimeError)


class FakeTests(SynchronousTestCase):
    """The public fakes behave like real devices."""

    def test_fake_device(self) -> None:
        """FakeDevice infers types, records calls and runs given actions."""
        device = FakeDevice("d", {"gain": 1.0, "name": "x"}, actions={"double": lambda v: 2 * v},
                            readonly=["name"])
        verifyObject(IDevice, device)
        self.successResultOf(device.set("gain", 2))
        self.failureResultOf(device.set("name", "y"), ReadOnly)
        self.failureResultOf(device.set("gain", "big"), InvalidValue)
        self.assertEqual(self.successResultOf(device.call("double", 4)), 8)
        self.assertEqual(device.calls, [("set", "gain", 2.0), ("call", "double", 4)])

    def test_fake_actuator(self) -> None:
        """FakeActuator moves instantly or on finish(); stop fires pending moves."""
        actuator = FakeActuator("a", instant=False)
        verifyObject(IActuator, actuator)
        events: list[LabEvent] = []
        actuator.subscribe(events.append)
        d = actuator.move_abs(3)
        self.assertNoResult(d)
        actuator.finish()
        self.assertEqual(self.successResultOf(d), 3.0)
        self.assertEqual(events, [LabEvent(DATA, "a", "position", 3.0)])
        d = actuator.move_rel(1)
        self.assertEqual(self.successResultOf(actuator.stop()), 3.0)
        self.assertEqual(self.successResultOf(d), 3.0)
        self.assertEqual(self.successResultOf(actuator.call("position")), 3.0)

    def test_fake_detector(self) -> None:
        """FakeDetector grabs its export (also through call) and sends a data event."""
        detector = FakeDetector("det")
        verifyObject(IDetector, detector)
        events: list[LabEvent] = []
        detector.subscribe(events.append)
        export = self.successResultOf(detector.grab())
        self.assertIsInstance(export, Export)
        self.assertIs(self.successResultOf(detector.call("grab")), export)
        self.assertEqual([e.kind for e in events], [DATA, DATA])
        slow = FakeDetector("slow", instant=False)
        d = slow.grab()
        self.assertNoResult(d)
        slow.finish()
        self.successResultOf(d)

    def test_parameters_from(self) -> None:
        """parameters_from infers each type from its example value."""
        params: dict[str, Any] = {p.name: p for p in parameters_from(
            {"a": 1, "b": 1.0, "c": True, "d": "s", "e": [1], "f": {}, "g": None}, ["a"])}
        self.assertEqual([p.type for p in params.values()],
                         ["int", "float", "bool", "str", "list", "dict", "any"])
        self.assertTrue(params["a"].readonly)
