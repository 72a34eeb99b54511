"""
Tests for L{twisted_lab.devices.wrap}: any Python object as a device.
"""
from __future__ import annotations

import threading

from twisted.application.service import IService
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from twisted_lab.devices.plugins import load_factory, plugin_for
from twisted_lab.devices.wrap import WrappedDevice
from twisted_lab.errors import (ConfigError, DriverError, InvalidValue, ReadOnly, UnknownAction,
                                UnknownParameter)
from twisted_lab.interfaces import IDevice
from twisted_lab.options import validate


class Laser:
    """A laser controller."""

    def __init__(self, power: float = 1.5) -> None:
        self.power = power
        self.label = "L1"
        self.enabled = False
        self._secret = "hidden"
        self._temperature = 25.0

    @property
    def temperature(self) -> float:
        """Head temperature."""
        return self._temperature

    @property
    def setpoint(self) -> float:
        return self._temperature

    @setpoint.setter
    def setpoint(self, value: float) -> None:
        self._temperature = value

    def fire(self, duration: float, *, repeat: int = 1) -> float:
        """Fire for a while."""
        return duration * repeat

    def get_status(self) -> str:
        return "ok"

    def fail(self) -> None:
        raise RuntimeError("interlock open")

    def later(self) -> Deferred[str]:
        return succeed("deferred")

    async def coro(self, x: int) -> int:
        return x + 1

    def _reset(self) -> None:
        raise AssertionError("private methods are never called")


def make_laser(power: float = 2.0) -> Laser:
    """A factory for the python plugin test."""
    return Laser(power)


class WrapTests(SynchronousTestCase):
    """Direct (unthreaded) wrapping."""

    def setUp(self) -> None:
        self.laser = Laser()
        # writes allowed explicitly (python devices are read-only by default)
        self.device = WrappedDevice("laser", self.laser, writable=["*"])

    def test_interface_and_doc(self) -> None:
        """The wrapper provides IDevice; the class docstring becomes its doc."""
        verifyObject(IDevice, self.device)
        self.assertEqual(self.device.description.doc, "A laser controller.")

    def test_private_names_hidden(self) -> None:
        """Names starting with _ are neither parameters nor actions."""
        desc = self.device.description
        self.assertEqual(sorted(desc.parameters),
                         ["enabled", "label", "power", "setpoint", "temperature"])
        self.assertEqual(sorted(desc.actions), ["coro", "fail", "fire", "get_status", "later"])
        self.failureResultOf(self.device.get("_secret"), UnknownParameter)
        self.failureResultOf(self.device.call("_reset"), UnknownAction)
        self.failureResultOf(self.device.call("__init__"), UnknownAction)

    def test_types_inferred(self) -> None:
        """Attribute types come from values, property types from annotations."""
        params = self.device.description.parameters
        self.assertEqual((params["power"].type, params["label"].type, params["enabled"].type,
                          params["temperature"].type), ("float", "str", "bool", "float"))
        self.assertEqual(params["temperature"].doc, "Head temperature.")

    def test_attributes(self) -> None:
        """Attributes are read and written on the object; wrong types are refused."""
        self.assertEqual(self.successResultOf(self.device.get("power")), 1.5)
        self.successResultOf(self.device.set("power", 3))
        self.assertEqual(self.laser.power, 3.0)
        f = self.failureResultOf(self.device.set("power", "high"), InvalidValue)
        self.assertIn("laser.power must be float", str(f.value))

    def test_properties(self) -> None:
        """A property without a setter is read-only; one with a setter is writable."""
        self.assertTrue(self.device.description.parameters["temperature"].readonly)
        self.assertEqual(self.successResultOf(self.device.get("temperature")), 25.0)
        self.failureResultOf(self.device.set("temperature", 30.0), ReadOnly)
        self.successResultOf(self.device.set("setpoint", 30.0))
        self.assertEqual(self.laser._temperature, 30.0)

    def test_actions(self) -> None:
        """Methods become actions with arguments from their signature."""
        fire = self.device.description.actions["fire"]
        self.assertEqual([(a.name, a.type, a.required) for a in fire.arguments],
                         [("duration", "float", True), ("repeat", "int", False)])
        self.assertEqual(self.successResultOf(self.device.call("fire", 2.0, repeat=3)), 6.0)
        self.assertFalse(self.device.description.actions["get_status"].mutating)
        self.failureResultOf(self.device.call("fire"), InvalidValue)
        self.failureResultOf(self.device.call("fire", "long"), InvalidValue)

    def test_async_results(self) -> None:
        """Methods returning Deferreds or coroutines are awaited."""
        self.assertEqual(self.successResultOf(self.device.call("later")), "deferred")
        self.assertEqual(self.successResultOf(self.device.call("coro", 1)), 2)

    def test_exceptions(self) -> None:
        """An exception from the object becomes DriverError with its reason."""
        f = self.failureResultOf(self.device.call("fail"), DriverError)
        self.assertIn("interlock open", str(f.value))

    def test_read_only_by_default(self) -> None:
        """Without C{writable}, attributes and properties are read-only: a client cannot
        replace the object's state; C{writable} opens the named ones only."""
        laser = Laser()
        device = WrappedDevice("l", laser)
        self.assertTrue(all(p.readonly for p in device.description.parameters.values()))
        self.failureResultOf(device.set("power", 3.0), ReadOnly)
        self.failureResultOf(device.set("setpoint", 3.0), ReadOnly)
        self.assertEqual(laser.power, 1.5)
        some = WrappedDevice("l", laser, writable=["power"])
        self.successResultOf(some.set("power", 3.0))
        self.failureResultOf(some.set("label", "x"), ReadOnly)

    def test_include_exclude(self) -> None:
        """include/exclude select names; private names stay hidden even if included."""
        device = WrappedDevice("l", Laser(), include=["power", "fire", "_secret"],
                               exclude=["fire"])
        self.assertEqual(list(device.description.parameters), ["power"])
        self.assertEqual(list(device.description.actions), [])


class ThreadedWrapTests(TestCase):
    """Wrapping a blocking object: every access runs on a worker thread."""

    async def test_threaded(self) -> None:
        """Calls run off the reactor thread and the device is an IService."""
        class Blocking:
            def where(self) -> int:
                return threading.get_ident()

        device = WrappedDevice("b", Blocking(), reactor, threaded=True)
        verifyObject(IService, device)
        device.startService()
        self.addCleanup(device.stopService)
        self.assertNotEqual(await device.call("where"), threading.get_ident())
        self.assertFalse(device.busy)

    async def test_python_plugin(self) -> None:
        """The 'python' plugin imports factory 'module:callable' and passes kwargs; by
        default the device is threaded and read-only."""
        plugin = plugin_for("python")
        options = validate(plugin.options, {"factory": "tests.test_devices_wrap:make_laser",
                                            "kwargs": {"power": 4.0}})
        self.assertTrue(options["threaded"])
        device = plugin.make_device("laser", options, reactor)
        self.assertIsNotNone(device.runner)
        device.startService()
        self.addCleanup(device.stopService)
        self.assertEqual(await device.get("power"), 4.0)
        await self.assertFailure(device.set("power", 1.0), ReadOnly)

    async def test_python_plugin_writable(self) -> None:
        """C{writable} in the config opens the named parameters."""
        plugin = plugin_for("python")
        options = validate(plugin.options, {"factory": "tests.test_devices_wrap:make_laser",
                                            "writable": ["power"], "threaded": False})
        device = plugin.make_device("laser", options, reactor)
        self.assertIsNone(device.runner)
        await device.set("power", 2.0)
        self.assertEqual(await device.get("power"), 2.0)


class LoadFactoryTests(SynchronousTestCase):
    """load_factory imports, never evaluates."""

    def test_errors(self) -> None:
        """Malformed specs, missing modules/attributes and non-callables are ConfigErrors."""
        for spec in ("os.getcwd", "__import__('os'):system", "no_such_module_x:f",
                     "tests.test_devices_wrap:nothing", "tests.test_devices_wrap:__doc__"):
            self.assertRaises(ConfigError, load_factory, spec)
        self.assertIs(load_factory("tests.test_devices_wrap:make_laser"), make_laser)


