# -*- test-case-name: tests.test_registry -*-
"""
Tests for L{twisted_lab.registry}.
"""
from __future__ import annotations

from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_lab.errors import LabError, LeaseConflict, UnknownDevice
from twisted_lab.events import ADDED, CHANGED, DATA, OFFLINE, ONLINE, REMOVED, LabEvent
from twisted_lab.interfaces import IActuator, IDetector, IDevice
from twisted_lab.leases import Owner
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeActuator, FakeDetector, FakeDevice

PLESTY = Owner("plesty", "client-1")
LECO = Owner("leco", "lab.director")


class LookupTests(SynchronousTestCase):
    """Registering, looking up and waiting for devices."""

    def setUp(self) -> None:
        self.registry = DeviceRegistry(Clock())
        self.device = FakeDevice("meter", {"power": 1.0})

    def test_get_registered(self) -> None:
        """get() fires with the registered device."""
        self.registry.register(self.device)
        self.assertIs(self.successResultOf(self.registry.get("meter")), self.device)

    def test_get_unknown_names_known_devices(self) -> None:
        """get() of an unknown name fails with UnknownDevice listing the known ones."""
        self.registry.register(self.device)
        failure = self.failureResultOf(self.registry.get("nope"), UnknownDevice)
        self.assertIn("'nope'", str(failure.value))
        self.assertIn("meter", str(failure.value))

    def test_names_in_order(self) -> None:
        """names() lists devices in registration order; `in` and len work."""
        self.registry.register(self.device)
        self.registry.register(FakeDevice("aaa"))
        self.assertEqual(self.registry.names(), ["meter", "aaa"])
        self.assertIn("aaa", self.registry)
        self.assertEqual(len(self.registry), 2)

    def test_duplicate_name_refused(self) -> None:
        """A second, different device of the same name is refused; the same object is a no-op."""
        self.registry.register(self.device)
        self.registry.register(self.device)
        self.assertRaises(LabError, self.registry.register, FakeDevice("meter"))

    def test_non_device_refused(self) -> None:
        """An object that does not provide IDevice is refused."""
        class NotADevice:
            name = "x"
        self.assertRaises(LabError, self.registry.register, NotADevice())

    def test_unregister(self) -> None:
        """unregister() removes the device; a second unregister fails with UnknownDevice."""
        self.registry.register(self.device)
        self.assertIs(self.registry.unregister("meter"), self.device)
        self.assertNotIn("meter", self.registry)
        self.assertRaises(UnknownDevice, self.registry.unregister, "meter")

    def test_when_registered_waits(self) -> None:
        """when_registered() fires when the device arrives, each caller with its own Deferred."""
        first = self.registry.when_registered("meter")
        second = self.registry.when_registered("meter")
        self.assertIsNot(first, second)
        self.assertNoResult(first)
        self.registry.register(self.device)
        self.assertIs(self.successResultOf(first), self.device)
        self.assertIs(self.successResultOf(second), self.device)

    def test_when_registered_already_there(self) -> None:
        """when_registered() of a registered device fires at once."""
        self.registry.register(self.device)
        self.assertIs(self.successResultOf(self.registry.when_registered("meter")), self.device)

    def test_when_registered_cancel(self) -> None:
        """Cancelling one waiter removes only that waiter."""
        first = self.registry.when_registered("meter")
        second = self.registry.when_registered("meter")
        first.cancel()
        self.failureResultOf(first, CancelledError)
        self.registry.register(self.device)
        self.assertIs(self.successResultOf(second), self.device)
        self.assertNotIn("meter", self.registry._waiters)


class EventTests(SynchronousTestCase):
    """The registry relays device events to its subscribers."""

    def setUp(self) -> None:
        self.registry = DeviceRegistry(Clock())
        self.events: list[LabEvent] = []
        self.unsubscribe = self.registry.subscribe(self.events.append)

    def test_added_removed(self) -> None:
        """Registering and unregistering send added and removed."""
        self.registry.register(FakeDevice("d"))
        self.registry.unregister("d")
        self.assertEqual(self.events, [LabEvent(ADDED, "d"), LabEvent(REMOVED, "d")])

    def test_changed_online_offline(self) -> None:
        """A parameter change and online/offline transitions reach registry subscribers."""
        device = FakeDevice("d", {"x": 1.0})
        self.registry.register(device)
        self.successResultOf(device.set("x", 2.5))
        device.set_online(False)
        device.set_online(False)
        device.set_online(True)
        self.assertEqual(self.events[1:], [LabEvent(CHANGED, "d", "x", 2.5),
                                           LabEvent(OFFLINE, "d"), LabEvent(ONLINE, "d")])

    def test_data_events(self) -> None:
        """Moves and grabs are relayed as data events."""
        stage, camera = FakeActuator("stage"), FakeDetector("camera")
        self.registry.register(stage)
        self.registry.register(camera)
        self.successResultOf(stage.move_abs(3.0))
        export = self.successResultOf(camera.grab())
        self.assertEqual(self.events[2:], [LabEvent(DATA, "stage", "position", 3.0),
                                           LabEvent(DATA, "camera", None, export)])

    def test_unregistered_device_not_relayed(self) -> None:
        """After unregister, the device's events no longer reach the registry's subscribers."""
        device = FakeDevice("d", {"x": 1.0})
        self.registry.register(device)
        self.registry.unregister("d")
        del self.events[:]
        self.successResultOf(device.set("x", 2.0))
        self.assertEqual(self.events, [])

    def test_unsubscribe(self) -> None:
        """An unsubscribed listener gets nothing more."""
        self.unsubscribe()
        self.registry.register(FakeDevice("d"))
        self.assertEqual(self.events, [])

    def test_failing_listener_logged_others_served(self) -> None:
        """A listener that raises is logged and does not stop the other listeners."""
        def broken(event: LabEvent) -> None:
            raise RuntimeError("boom")
        later: list[LabEvent] = []
        self.registry.subscribe(broken)
        self.registry.subscribe(later.append)
        with capturedLogs() as logs:
            self.registry.register(FakeDevice("d"))
        self.assertEqual(later, [LabEvent(ADDED, "d")])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertTrue(any("failed" in e["log_format"] for e in logs))


class GuardedTests(SynchronousTestCase):
    """Mutating calls through guarded() respect every owner's leases."""

    def setUp(self) -> None:
        self.registry = DeviceRegistry(Clock())
        self.stage = FakeActuator("stage")
        self.meter = FakeDevice("meter", {"wavelength": 500.0, "power": 1.0},
                                actions={"zero": lambda: "zeroed"})
        self.registry.register(self.stage)
        self.registry.register(self.meter)

    def guarded(self, name: str, owner: Owner | None) -> object:
        return self.successResultOf(self.registry.guarded(name, owner))

    def test_provides_same_interfaces(self) -> None:
        """The guarded view provides the interfaces of the device it wraps."""
        self.assertTrue(verifyObject(IActuator, self.guarded("stage", LECO)))
        self.assertTrue(verifyObject(IDevice, self.guarded("meter", LECO)))
        self.assertFalse(IDetector.providedBy(self.guarded("meter", LECO)))

    def test_unknown_device(self) -> None:
        """guarded() of an unknown device fails with UnknownDevice."""
        self.failureResultOf(self.registry.guarded("nope", LECO), UnknownDevice)

    def test_set_refused_while_other_holds(self) -> None:
        """set() fails with LeaseConflict naming the holder; the value is unchanged."""
        self.registry.acquire(PLESTY, ["meter"])
        failure = self.failureResultOf(self.guarded("meter", LECO).set("wavelength", 600.0),
                                       LeaseConflict)
        self.assertEqual(failure.value.holder, "plesty:client-1")
        self.assertIn("locked by plesty:client-1", str(failure.value))
        self.assertEqual(self.successResultOf(self.meter.get("wavelength")), 500.0)

    def test_holder_may_set(self) -> None:
        """The holder itself may write."""
        self.registry.acquire(PLESTY, ["meter"])
        self.assertEqual(self.successResultOf(
            self.guarded("meter", PLESTY).set("wavelength", 600.0)), 600.0)

    def test_anonymous_caller_refused(self) -> None:
        """A caller with no owner is refused while anyone holds the device."""
        self.registry.acquire(PLESTY, ["meter"])
        self.failureResultOf(self.guarded("meter", None).set("wavelength", 1.0), LeaseConflict)

    def test_reads_pass(self) -> None:
        """Reads and describe are never refused."""
        self.registry.acquire(PLESTY, ["meter"])
        guarded = self.guarded("meter", LECO)
        self.assertEqual(self.successResultOf(guarded.get("power")), 1.0)
        self.assertEqual(self.successResultOf(guarded.describe()).name, "meter")

    def test_sub_resource_lease(self) -> None:
        """A lease on meter/wavelength blocks that parameter only."""
        self.registry.acquire(PLESTY, ["meter/wavelength"])
        guarded = self.guarded("meter", LECO)
        self.failureResultOf(guarded.set("wavelength", 1.0), LeaseConflict)
        self.assertEqual(self.successResultOf(guarded.set("power", 2.0)), 2.0)

    def test_mutating_action_refused(self) -> None:
        """A mutating action is refused while another owner holds the device."""
        self.registry.acquire(PLESTY, ["meter"])
        self.failureResultOf(self.guarded("meter", LECO).call("zero"), LeaseConflict)
        self.assertEqual(self.meter.calls, [])

    def test_non_mutating_action_allowed(self) -> None:
        """Actions declared non-mutating (position) run under another owner's lease."""
        self.registry.acquire(PLESTY, ["stage"])
        self.assertEqual(self.successResultOf(self.guarded("stage", LECO).call("position")), 0.0)

    def test_moves_refused_stop_allowed(self) -> None:
        """Moves are refused under another owner's lease, but anyone may stop."""
        self.registry.acquire(PLESTY, ["stage"])
        guarded = self.guarded("stage", LECO)
        for d in (guarded.move_abs(1.0), guarded.move_rel(1.0), guarded.move_home()):
            self.failureResultOf(d, LeaseConflict)
        self.assertEqual(self.stage.calls, [])
        self.assertEqual(self.successResultOf(guarded.stop()), 0.0)

    def test_release_owner_frees(self) -> None:
        """After the holder disconnects (release_owner), others may write."""
        self.registry.acquire(PLESTY, ["meter", "stage"])
        self.assertEqual(self.registry.release_owner(PLESTY), ["meter", "stage"])
        self.successResultOf(self.guarded("meter", LECO).set("wavelength", 1.0))
