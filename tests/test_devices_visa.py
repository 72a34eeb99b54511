"""
Tests for L{twisted_lab.devices.visa}: a SCPI instrument through pyvisa,
against the pyvisa-sim instruments shipped in
C{twisted_lab/devices/sim_instruments.yaml}.

pyvisa runs on the device's worker thread, so these tests use the real
reactor; every device is stopped (resource closed, thread joined) in a
cleanup.
"""
from __future__ import annotations

import threading
from typing import Any

from twisted.application.service import IService
from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from twisted_lab.devices.plugins import plugin_for
from twisted_lab.devices.visa import SIM_BACKEND, ScpiParameter, VisaDevice, parse_table
from twisted_lab.errors import (ConfigError, DeviceBusy, DeviceOffline, DeviceTimeout,
                                DriverError, InvalidValue, ReadOnly, UnknownParameter)
from twisted_lab.interfaces import IDevice
from twisted_lab.options import validate

PSU_TABLE: list[dict[str, Any]] = [
    {"name": "voltage", "type": "float", "units": "V", "query": "VOLT?",
     "write": "VOLT {value:.3f}", "minimum": 0.0, "maximum": 30.0},
    {"name": "current", "type": "float", "units": "A", "query": "CURR?",
     "write": "CURR {value:.3f}", "minimum": 0.0, "maximum": 3.0},
    {"name": "output", "type": "bool", "query": "OUTP?", "write": "OUTP {value}"},
    {"name": "mode", "type": "str", "query": "MODE?", "write": "MODE {value}",
     "choices": ["CV", "CC"]},
    {"name": "measured", "type": "float", "units": "V", "query": "MEAS:VOLT?"},
]


class VisaSimTests(TestCase):
    """L{VisaDevice} against the pyvisa-sim power supply."""

    def device(self, resource: str = "GPIB0::5::INSTR", **kwargs: Any) -> VisaDevice:
        kwargs.setdefault("parameters", PSU_TABLE)
        device = VisaDevice("psu", reactor, resource, backend=SIM_BACKEND, **kwargs)
        device.startService()
        self.addCleanup(device.stopService)
        return device

    async def test_interfaces(self) -> None:
        """The VISA device provides IDevice and IService."""
        device = self.device()
        verifyObject(IDevice, device)
        verifyObject(IService, device)
        self.assertEqual(await device.get("resource"), "GPIB0::5::INSTR")

    async def test_identity(self) -> None:
        """identity sends *IDN? and returns the stripped answer."""
        self.assertEqual(await self.device().call("identity"),
                         "TWISTED_LAB,SIMPSU-1,0001,0.1.0")

    async def test_parameters_round_trip(self) -> None:
        """Table parameters are read with their query and written with their template."""
        device = self.device()
        voltage = await device.get("voltage")
        self.assertIsInstance(voltage, float)
        self.assertEqual(await device.set("voltage", 12.5), 12.5)
        self.assertEqual(await device.get("voltage"), 12.5)
        self.assertEqual(await device.set("output", True), True)
        self.assertIs(await device.get("output"), True)
        await device.set("output", False)
        self.assertIs(await device.get("output"), False)
        await device.set("mode", "CC")
        self.assertEqual(await device.get("mode"), "CC")
        measured = await device.get("measured")
        self.assertTrue(4.98 <= measured <= 5.02)

    async def test_write_and_query_actions(self) -> None:
        """write and query send one free command line each."""
        device = self.device()
        await device.call("write", "CURR 1.250")
        self.assertEqual(await device.call("query", "CURR?"), "1.250")

    async def test_multimeter(self) -> None:
        """The shipped multimeter answers READ? and a choice-limited range."""
        device = self.device("GPIB0::22::INSTR", parameters=[
            {"name": "reading", "query": "READ?", "units": "V"},
            {"name": "range", "query": "VOLT:RANG?", "write": "VOLT:RANG {value:.3f}",
             "choices": [0.1, 1.0, 10.0, 100.0, 1000.0]}])
        self.assertTrue(1.2 <= await device.get("reading") <= 1.3)
        await device.set("range", 100)
        self.assertEqual(await device.get("range"), 100.0)
        with self.assertRaises(InvalidValue):
            await device.set("range", 5.0)

    async def test_bad_input(self) -> None:
        """Limits, choices, types, read-only and unknown names give specific errors."""
        device = self.device()
        before = (await device.get("voltage"), await device.get("output"))
        with self.assertRaises(InvalidValue) as caught:
            await device.set("voltage", 50)
        self.assertIn("above the maximum 30.0 V", str(caught.exception))
        with self.assertRaises(InvalidValue):
            await device.set("voltage", "5; *RST")
        with self.assertRaises(InvalidValue) as caught:
            await device.set("mode", "CV\nOUTP 1")
        self.assertIn("'CC'", str(caught.exception))
        with self.assertRaises(ReadOnly):
            await device.set("measured", 1.0)
        with self.assertRaises(UnknownParameter) as unknown:
            await device.get("power")
        self.assertIn("voltage", str(unknown.exception))
        with self.assertRaises(InvalidValue):
            await device.call("write", "VOLT 1\n*RST")
        with self.assertRaises(InvalidValue):
            await device.call("query", "  ")
        # nothing bad reached the instrument
        self.assertEqual((await device.get("voltage"), await device.get("output")), before)

    async def test_driver_error(self) -> None:
        """A query the instrument does not answer fails with DriverError (pyvisa timeout)."""
        device = self.device(timeout=0.2)
        with self.assertRaises(DriverError) as caught:
            await device.call("query", "*RST")
        self.assertIn("query('*RST')", str(caught.exception))
        self.assertFalse(device.busy)

    async def test_unparsable_answer(self) -> None:
        """An answer that is not of the parameter's type is a DriverError naming it."""
        device = self.device(parameters=[{"name": "idn", "query": "*IDN?"}])
        with self.assertRaises(DriverError) as caught:
            await device.get("idn")
        self.assertIn("TWISTED_LAB", str(caught.exception))
        self.assertIn("not a float", str(caught.exception))

    async def test_open_failure(self) -> None:
        """A resource that cannot be opened makes calls fail with the reason."""
        device = self.device("not a visa resource")
        with self.assertRaises(DriverError) as caught:
            await device.call("identity")
        self.assertIn("not open", str(caught.exception))

    async def test_not_started(self) -> None:
        """Calls before startService fail with DeviceOffline."""
        device = VisaDevice("psu", reactor, "GPIB0::5::INSTR", backend=SIM_BACKEND)
        with self.assertRaises(DeviceOffline):
            await device.call("identity")

    async def test_stop_closes_and_joins(self) -> None:
        """stopService closes the resource and joins the worker thread."""
        device = self.device()
        await device.call("identity")
        assert device.runner._pool is not None
        threads = list(device.runner._pool.threads)
        await device.stopService()
        self.assertIsNone(device._instrument)
        self.assertFalse(any(t.is_alive() for t in threads))
        with self.assertRaises(DeviceOffline):
            await device.get("voltage")

    async def test_plugin(self) -> None:
        """The 'visa' plugin builds the device from config options (backend 'sim')."""
        plugin = plugin_for("visa")
        options = validate(plugin.options, {"resource": "ASRL1::INSTR", "backend": "sim",
                                            "parameters": PSU_TABLE[:1]})
        device = plugin.make_device("psu", options, reactor)
        self.assertTrue(IService.providedBy(device))
        device.startService()
        self.addCleanup(device.stopService)
        self.assertIsInstance(await device.get("voltage"), float)


class _BlockingInstrument:
    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate

    def query(self, command: str) -> str:
        self.gate.wait(30)
        return "1.0"

    def write(self, command: str) -> None:
        pass

    def close(self) -> None:
        pass


class _FakeManager:
    def __init__(self, instrument: Any) -> None:
        self.instrument = instrument

    def open_resource(self, resource: str, **kwargs: Any) -> Any:
        return self.instrument

    def close(self) -> None:
        pass


class VisaDeadlineTests(TestCase):
    """A hung instrument makes the VISA device time out and report busy."""

    async def test_hung_instrument(self) -> None:
        """Past the deadline: DeviceTimeout, then DeviceBusy until the driver returns."""
        gate = threading.Event()
        self.addCleanup(gate.set)
        device = VisaDevice("psu", reactor, "X", parameters=PSU_TABLE[:1], timeout=0.05,
                            resource_manager=lambda backend: _FakeManager(
                                _BlockingInstrument(gate)))
        device.startService()
        self.addCleanup(device.stopService)
        with self.assertRaises(DeviceTimeout):
            await device.get("voltage")
        self.assertTrue(device.busy)
        with self.assertRaises(DeviceBusy):
            await device.get("voltage")


class ScpiTableTests(SynchronousTestCase):
    """The declarative table refuses anything that could send arbitrary text."""

    def test_template_fields(self) -> None:
        """A write template has exactly one plain {value} field."""
        for template in ("VOLT", "VOLT {value} {other}", "VOLT {value.__class__}",
                         "VOLT {0}", "VOLT {value", "VOLT {value:q}"):
            self.assertRaises(ConfigError, ScpiParameter, "v", "VOLT?", write=template)

    def test_free_text_parameter(self) -> None:
        """A writable str parameter needs choices."""
        e = self.assertRaises(ConfigError, ScpiParameter, "label", "LAB?", type="str",
                              write="LAB {value}")
        self.assertIn("choices", str(e))

    def test_bad_entries(self) -> None:
        """Bad names, types, queries and duplicate names are ConfigErrors."""
        self.assertRaises(ConfigError, ScpiParameter, "_x", "X?")
        self.assertRaises(ConfigError, ScpiParameter, "x", "X?", type="complex")
        self.assertRaises(ConfigError, ScpiParameter, "x", "X? {value}")
        self.assertRaises(ConfigError, parse_table, [{"name": "x", "query": "X?"}] * 2)
        self.assertRaises(ConfigError, parse_table, [{"name": "write", "query": "X?"}])
        self.assertRaises(ConfigError, parse_table, [{"name": "x"}])

    def test_format(self) -> None:
        """Values are formatted with numbers only; booleans as 0/1."""
        volt = ScpiParameter("v", "VOLT?", write="VOLT {value:.2f}")
        self.assertEqual(volt.format(1.234), "VOLT 1.23")
        out = ScpiParameter("o", "OUTP?", type="bool", write="OUTP {value}")
        self.assertEqual(out.format(True), "OUTP 1")
        self.assertEqual(out.parse("ON\n", "psu"), True)
        self.assertRaises(DriverError, out.parse, "maybe", "psu")
        count = ScpiParameter("n", "N?", type="int", write="N {value:d}")
        self.assertEqual(count.parse("+4.00000E+00", "psu"), 4)
        self.assertRaises(DriverError, count.parse, "4.5", "psu")
