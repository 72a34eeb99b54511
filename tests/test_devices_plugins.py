"""
Tests for L{twisted_lab.devices.plugins}: the built-in device types.
"""
from __future__ import annotations

from twisted.application.service import IService
from twisted.internet.task import Clock
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_lab.devices.plugins import DEVICE_PLUGINS, SIMULATED_LAB, plugin_for
from twisted_lab.errors import ConfigError
from twisted_lab.interfaces import IActuator, IDetector, IDevice, IDevicePlugin
from twisted_lab.options import Option, validate
from twisted_lab.testing import FakeDevice


def fake_device() -> FakeDevice:
    """A factory returning a ready-made device (used by the python plugin test)."""
    return FakeDevice("ready", {"x": 1})


class PluginTests(SynchronousTestCase):
    """Every built-in type provides IDevicePlugin and builds its device."""

    def test_plugins_provide_interface(self) -> None:
        """Each plugin provides IDevicePlugin (and IPlugin) with Option schemas."""
        names = [p.type_name for p in DEVICE_PLUGINS]
        self.assertEqual(names, ["sim.stage", "sim.powermeter", "sim.spectrometer",
                                 "sim.camera", "sim.la4", "visa", "python",
                                 "adapter.actuator", "adapter.detector", "pymeasure",
                                 "plesty", "pymodaq.plugin"])
        for plugin in DEVICE_PLUGINS:
            verifyObject(IDevicePlugin, plugin)
            self.assertTrue(IPlugin.providedBy(plugin))
            self.assertTrue(plugin.description)
            for option in plugin.options.values():
                self.assertIsInstance(option, Option)

    def test_simulated_lab(self) -> None:
        """The simulated lab's four local devices build with their interfaces (the fifth,
        la4, is the LA4 node coordinated by the [la4] section)."""
        self.assertEqual(list(SIMULATED_LAB), ["stage", "powermeter", "spectrometer", "camera"])
        clock = Clock()
        devices = {}
        for name, (type_name, options) in SIMULATED_LAB.items():
            plugin = plugin_for(type_name)
            device = plugin.make_device(name, validate(plugin.options, options), clock)
            verifyObject(IDevice, device)
            self.assertEqual(device.name, name)
            self.assertFalse(IService.providedBy(device))
            devices[name] = device
        verifyObject(IActuator, devices["stage"])
        for name in ("powermeter", "spectrometer", "camera"):
            verifyObject(IDetector, devices[name])
        self.assertEqual(devices["camera"].width, 512)
        self.assertEqual(devices["camera"].dtype, "float64")

    def test_unknown_type(self) -> None:
        """An unknown type names the known ones."""
        e = self.assertRaises(ConfigError, plugin_for, "sim.laser")
        self.assertIn("sim.stage", str(e))

    def test_bad_options(self) -> None:
        """Options are validated by the schema: unknown keys and wrong types."""
        camera = plugin_for("sim.camera")
        self.assertRaises(ConfigError, validate, camera.options, {"depth": 8})
        self.assertRaises(ConfigError, validate, camera.options, {"dtype": "int8"})
        visa = plugin_for("visa")
        self.assertRaises(ConfigError, validate, visa.options, {})
        self.assertRaises(ConfigError, validate, visa.options,
                          {"resource": "X", "parameters": [{"name": "v"}]})

    def test_python_returns_ready_device(self) -> None:
        """A python factory that returns a device is used as is."""
        plugin = plugin_for("python")
        options = validate(plugin.options,
                           {"factory": "tests.test_devices_plugins:fake_device"})
        device = plugin.make_device("ready", options, Clock())
        self.assertIsInstance(device, FakeDevice)

    def test_python_factory_failure(self) -> None:
        """A factory that raises is reported as a ConfigError with its reason."""
        plugin = plugin_for("python")
        options = validate(plugin.options, {"factory": "tests.test_devices_plugins:fake_device",
                                            "kwargs": {"unexpected": 1}})
        e = self.assertRaises(ConfigError, plugin.make_device, "x", options, Clock())
        self.assertIn("unexpected", str(e))


class OptionalSimBackendTests(SynchronousTestCase):
    """pyvisa-sim is an optional extra: without it, backend "sim" is a clear error."""

    def test_missing_pyvisa_sim(self) -> None:
        """With pyvisa_sim not importable, building a visa device with backend
        "sim" raises a ConfigError naming the key and the extra to install."""
        import importlib.util

        real = importlib.util.find_spec
        self.patch(importlib.util, "find_spec",
                   lambda name, *a: None if name == "pyvisa_sim" else real(name, *a))
        plugin = plugin_for("visa")
        options = validate(plugin.options, {"resource": "ASRL1::INSTR", "backend": "sim"})
        e = self.assertRaises(ConfigError, plugin.make_device, "psu", options, None)
        self.assertIn("devices.psu.backend", str(e))
        self.assertIn("pip install 'twisted-lab[sim]'", str(e))
