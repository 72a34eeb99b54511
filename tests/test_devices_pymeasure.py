# -*- test-case-name: tests.test_devices_pymeasure -*-
"""
Tests for L{twisted_lab.devices.pymeasure_device}: pymeasure's own
C{KeysightE36312A} class over pyvisa-sim (the simulated instrument in
C{twisted_lab/devices/sim_instruments.yaml}), hosted as a device, and driven
from plesty-lib's client and pyleco's Director over loopback.
"""
from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

from pymeasure.instruments.keysight import KeysightE36312A
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.peers import peer_env, peer_python
from tests.test_leco_interop import PylecoMixin
from twisted_lab.config import parse_config
from twisted_lab.devices.pymeasure_device import PymeasureDevice, describe_class, units_from_doc
from twisted_lab.devices.visa import SIM_BACKEND
from twisted_lab.errors import (ConfigError, DeviceBusy, DeviceOffline, DeviceTimeout,
                                DriverError, InvalidValue, ReadOnly)
from twisted_lab.protocols.plesty.export import PlestyServerService
from twisted_lab.registry import DeviceRegistry
from twisted_lab.tap import check_devices

PEERS = Path(__file__).resolve().parent / "peers"
RESOURCE = "GPIB0::7::INSTR"
TERMINATIONS = {"read_termination": "\n", "write_termination": "\n"}
#: released by the tests to let a hanging driver call return
GATE = threading.Event()


class HangingSupply(KeysightE36312A):
    """The E36312A with two misbehaving methods."""

    def hang(self) -> str:
        """Block until the test releases it."""
        GATE.wait(30)
        return "returned"

    def explode(self) -> None:
        """Raise."""
        raise RuntimeError("the driver broke")


class Flaky(KeysightE36312A):
    """An E36312A whose link drops."""

    def drop(self) -> None:
        """Lose the connection."""
        raise ConnectionResetError("link lost")


class Unreachable(KeysightE36312A):
    """An E36312A whose connection is refused."""

    attempts = 0

    def __init__(self, adapter: Any, **kwargs: Any) -> None:
        Unreachable.attempts += 1
        raise ConnectionRefusedError("connection refused by the instrument")


class DescribeTests(SynchronousTestCase):
    """The description comes from the class, without an instrument."""

    def test_limits_choices_readonly_channels(self) -> None:
        """strict_range gives limits, strict_discrete_set choices, measurements are read-only,
        channels become <channel>.<property> sub-parameters, methods actions."""
        parameters, actions = describe_class(KeysightE36312A)
        by_name = {p.name: p for p in parameters}
        setpoint = by_name["ch_2.voltage_setpoint"]
        self.assertEqual((setpoint.type, setpoint.minimum, setpoint.maximum, setpoint.readonly),
                         ("float", 0, 25, False))
        self.assertIn("output voltage", setpoint.doc)
        self.assertEqual(by_name["ch_1.output_enabled"].choices, (True, False))
        self.assertEqual(by_name["ch_1.output_enabled"].type, "bool")
        self.assertTrue(by_name["ch_3.voltage"].readonly)
        self.assertTrue(by_name["id"].readonly)
        self.assertEqual({a.name for a in actions}, {"reset", "clear", "shutdown"})
        self.assertNotIn("write", {a.name for a in actions})

    def test_units_from_doc(self) -> None:
        """Units are read from the usual docstring phrasings, nothing invented otherwise."""
        self.assertEqual(units_from_doc("Measure the power in W."), "W")
        self.assertEqual(units_from_doc("Control the wavelength in nm."), "nm")
        self.assertEqual(units_from_doc("Frequency (Hz) of the output"), "Hz")
        self.assertEqual(units_from_doc("Control the output voltage in Volts."), "V")
        self.assertEqual(units_from_doc("Control whether the output is on."), "")


class HostedTests(TestCase):
    """The instrument hosted on its driver thread, over pyvisa-sim."""

    timeout = 60

    async def device(self, name: str = "psu", cls: type = KeysightE36312A,
                     resource: str = RESOURCE, deadline: float = 5.0,
                     retry: float = 5.0) -> PymeasureDevice:
        device = PymeasureDevice(name, reactor, cls, resource,
                                 {"visa_library": SIM_BACKEND, **TERMINATIONS},
                                 deadline=deadline, retry=retry)
        self.assertFalse(device.online)
        device.startService()
        self.addCleanup(device.stopService)
        for _ in range(200):
            if device.online or device.last_error:
                break
            await deferLater(reactor, 0.02, lambda: None)
        return device

    async def test_read_write_channels(self) -> None:
        """Channel parameters are read and written through pymeasure's own properties."""
        psu = await self.device()
        self.assertTrue(psu.online)
        self.assertEqual(await psu.get("id"), "Keysight Technologies,E36312A,SIM0001,2.1.0")
        self.assertEqual(await psu.set("ch_2.voltage_setpoint", 12.5), 12.5)
        self.assertEqual(await psu.get("ch_2.voltage_setpoint"), 12.5)
        await psu.set("ch_3.output_enabled", True)
        self.assertIs(await psu.get("ch_3.output_enabled"), True)
        self.assertIs(await psu.get("ch_1.output_enabled"), False)
        self.assertIsNone(await psu.call("clear"))

    async def test_limits_before_the_instrument(self) -> None:
        """A value outside the validator's limits fails with InvalidValue and nothing is
        written; the instance's own limits of a dynamic property (ch_1: 0..6 V) apply."""
        psu = await self.device()
        sent: list[str] = []
        adapter = psu.instrument.adapter
        original = adapter.write

        def spy(command: str, **kwargs: Any) -> None:
            sent.append(command)
            original(command, **kwargs)

        adapter.write = spy
        error = await self.assertFailure(psu.set("ch_2.voltage_setpoint", 25.5), InvalidValue)
        self.assertIn("above the maximum 25", str(error))
        error = await self.assertFailure(psu.set("ch_1.voltage_setpoint", 7.0), InvalidValue)
        self.assertIn("above the maximum 6", str(error))
        self.assertEqual(psu.description.parameters["ch_1.voltage_setpoint"].maximum, 6)
        await self.assertFailure(psu.set("ch_1.output_enabled", 1), InvalidValue)
        await self.assertFailure(psu.set("ch_1.voltage", 1.0), ReadOnly)
        self.assertEqual(sent, [])
        await psu.set("ch_1.voltage_setpoint", 5.5)
        self.assertEqual(sent, ["VOLT 5.5, (@1)"])

    async def test_hang_is_contained(self) -> None:
        """A hanging driver call fails with DeviceTimeout; the device is busy until it
        returns; another device's calls go on meanwhile."""
        GATE.clear()
        self.addCleanup(GATE.set)
        slow = await self.device("slow", HangingSupply, resource="GPIB0::8::INSTR", deadline=0.3)
        other = await self.device("other", resource="GPIB0::9::INSTR")
        error = await self.assertFailure(slow.call("hang"), DeviceTimeout)
        self.assertIn("hang", str(error))
        self.assertTrue(slow.busy)
        await self.assertFailure(slow.get("id"), DeviceBusy)
        self.assertEqual(await other.set("ch_2.voltage_setpoint", 3.0), 3.0)
        GATE.set()
        for _ in range(100):
            if not slow.busy:
                break
            await deferLater(reactor, 0.02, lambda: None)
        self.assertFalse(slow.busy)
        self.assertIn("E36312A", await slow.get("id"))

    async def test_raise_is_contained(self) -> None:
        """A driver exception becomes DriverError naming it; the device stays usable."""
        psu = await self.device("broken", HangingSupply, resource="GPIB0::10::INSTR")
        error = await self.assertFailure(psu.call("explode"), DriverError)
        self.assertIn("the driver broke", str(error))
        self.assertTrue(psu.online)
        self.assertIn("E36312A", await psu.get("id"))

    async def test_offline_until_connected(self) -> None:
        """An instrument that cannot be opened leaves the device offline, with the reason,
        and the connection is retried."""
        Unreachable.attempts = 0
        psu = await self.device(cls=Unreachable, retry=0.05)
        self.assertFalse(psu.online)
        error = await self.assertFailure(psu.get("id"), DeviceOffline)
        self.assertIn("psu", str(error))
        self.assertIn("connection refused by the instrument", psu.last_error)
        await deferLater(reactor, 0.3, lambda: None)
        self.assertGreater(Unreachable.attempts, 2)
        self.assertFalse(psu.online)

    async def test_reconnect_after_a_lost_connection(self) -> None:
        """A call that fails with a lost connection takes the device offline (listeners are
        told), the driver is reopened, and the device comes back online."""
        psu = await self.device(cls=Flaky, resource="GPIB0::11::INSTR", retry=0.05)
        first = psu.instrument
        events: list[str] = []
        psu.subscribe(lambda event: events.append(event.kind))
        error = await self.assertFailure(psu.call("drop"), DriverError)
        self.assertIn("link lost", str(error))
        self.assertFalse(psu.online)
        await self.assertFailure(psu.get("id"), DeviceOffline)
        for _ in range(200):
            if psu.online:
                break
            await deferLater(reactor, 0.02, lambda: None)
        self.assertTrue(psu.online)
        self.assertIsNot(psu.instrument, first)
        self.assertIn("E36312A", await psu.get("id"))
        self.assertEqual([k for k in events if k in ("online", "offline")],
                         ["offline", "online"])

    async def test_stop_disconnects(self) -> None:
        """Stopping the device closes the adapter and takes it offline."""
        psu = await self.device(resource="GPIB0::11::INSTR")
        await psu.stopService()
        self.assertFalse(psu.online)
        self.assertIsNone(psu.instrument)
        psu.startService()
        for _ in range(200):
            if psu.online:
                break
            await deferLater(reactor, 0.02, lambda: None)
        self.assertTrue(psu.online)


class CheckTests(SynchronousTestCase):
    """--check validates a pymeasure device against its class."""

    def check(self, **table: Any) -> None:
        config = parse_config({"lab": {"simulated": False},
                               "devices": {"psu": {"type": "pymeasure", **table}}}, "lab.toml")
        check_devices(config)

    def test_good(self) -> None:
        """A real Instrument class with accepted arguments passes."""
        self.check(instrument="pymeasure.instruments.keysight:KeysightE36312A",
                   adapter=RESOURCE, visa_library="sim", kwargs={"name": "PSU"})

    def test_no_such_class(self) -> None:
        """A missing class is reported with the file and key."""
        with self.assertRaises(ConfigError) as e:
            self.check(instrument="pymeasure.instruments.keysight:Nope", adapter=RESOURCE)
        self.assertIn("lab.toml: devices.psu.instrument:", str(e.exception))

    def test_not_an_instrument(self) -> None:
        """A class that is not an Instrument is refused."""
        with self.assertRaises(ConfigError) as e:
            self.check(instrument="json:JSONDecoder", adapter=RESOURCE)
        self.assertIn("not a pymeasure Instrument subclass", str(e.exception))


class DrivenOverProtocolsTests(PylecoMixin, TestCase):
    """The hosted instrument, served over PLESTY and LECO, driven by the real clients."""

    timeout = 120

    async def test_plesty_and_pyleco(self) -> None:
        """plesty-lib's client and pyleco's Director read and write it; the limits hold
        (InvalidValue on the wire)."""
        registry = DeviceRegistry(reactor)
        psu = PymeasureDevice("psu", reactor, KeysightE36312A, "GPIB0::12::INSTR",
                              {"visa_library": SIM_BACKEND, **TERMINATIONS})
        registry.register(psu)
        psu.startService()
        self.addCleanup(psu.stopService)
        while not psu.online:
            await deferLater(reactor, 0.02, lambda: None)
        server = PlestyServerService(registry, "psu", "tcp://127.0.0.1:*", reactor)
        server.startService()
        self.addCleanup(server.stopService)
        ops = [{"op": "write", "name": "ch_2.voltage_setpoint", "value": 4.25},
               {"op": "query", "name": "ch_2.voltage_setpoint"},
               {"op": "write", "name": "ch_1.voltage_setpoint", "value": 7.0},
               {"op": "query", "name": "id"},
               {"op": "describe"}]
        result = await deferToThread(
            subprocess.run, [str(peer_python("plesty")), str(PEERS / "plesty_ops.py"),
                             server.address, "client-A", "[]", json.dumps(ops)],
            env=peer_env("plesty"), capture_output=True, text=True, timeout=90)
        self.assertEqual(result.returncode, 0, result.stderr)
        out = json.loads(result.stdout)
        self.assertEqual(out[0], {"ok": True})
        self.assertEqual(out[1], {"ok": 4.25})
        self.assertIn("InvalidValue", out[2]["error"])
        self.assertIn("above the maximum 6", out[2]["error"])
        self.assertEqual(out[3], {"ok": "Keysight Technologies,E36312A,SIM0001,2.1.0"})
        names = {p["name"] for p in out[4]["ok"]["parameters"]}
        self.assertIn("ch_3.output_enabled", names)

        coordinator = self.start_coordinator("N1")
        await self.actor(registry, "psu", coordinator.endpoint)
        client = await self.pyleco_client(coordinator.port)
        got = await client.command(op="director", actor="N1.psu", call="set_parameters",
                                   args=[{"ch_3.voltage_setpoint": 2.5}])
        self.assertEqual(got, {"ok": None})
        got = await client.command(op="director", actor="N1.psu", call="get_parameters",
                                   args=[["ch_3.voltage_setpoint", "ch_2.voltage_setpoint"]])
        self.assertEqual(got, {"ok": {"ch_3.voltage_setpoint": 2.5,
                                      "ch_2.voltage_setpoint": 4.25}})
        got = await client.command(op="director", actor="N1.psu", call="set_parameters",
                                   args=[{"ch_3.voltage_setpoint": 30}])
        self.assertIn("error", got)
        self.assertIn("above the maximum 25", json.dumps(got))
        self.assertEqual(await psu.get("ch_3.voltage_setpoint"), 2.5)
