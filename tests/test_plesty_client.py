# -*- test-case-name: tests.test_plesty_client -*-
"""
Tests for L{twisted_lab.protocols.plesty.imports} and
L{twisted_lab.protocols.plesty.remote}: our DEALER client and the imported
remote device against our own server, over real loopback sockets.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from twisted_lab.data import Export
from twisted_lab.errors import (DeviceOffline, InvalidValue, ReadOnly, UnknownParameter)
from twisted_lab.interfaces import IActuator, IDetector, IDevice
from twisted_lab.protocols.plesty.imports import (PlestyClient, RemoteError, RemoteTimeout,
                                                 ResourceRefused, remote_error)
from twisted_lab.protocols.plesty.remote import (PlestyImportService,
                                                 description_from_describe)
from twisted_lab.protocols.plesty.export import PlestyServerService
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeActuator, FakeDetector, FakeDevice
from tests.polling import until


class _SlowDevice(FakeDevice):
    """Reads of C{slow} wait for the test."""

    def __init__(self) -> None:
        super().__init__("meter", {"wavelength": 532.0, "slow": 0.0},
                         actions={"spectrum": lambda n=8: np.arange(float(n))},
                         readonly=["slow"])
        self.pending: list[Deferred[Any]] = []

    def read_parameter(self, name: str) -> Any:
        if name == "slow":
            d: Deferred[Any] = Deferred()
            self.pending.append(d)
            return d
        return super().read_parameter(name)


class RemoteErrorTests(SynchronousTestCase):
    """Error replies map to local exceptions."""

    def test_lab_error_names(self) -> None:
        """A twisted_lab error type name gives that class, with the message."""
        error = remote_error({"status": "error", "type": "UnknownParameter", "error": "no x"})
        self.assertIsInstance(error, UnknownParameter)
        self.assertEqual(str(error), "no x")

    def test_plesty_names(self) -> None:
        """TimeoutError, ResourceAllocationError and others from plesty-lib."""
        self.assertIsInstance(remote_error({"type": "TimeoutError", "error": ""}),
                              RemoteTimeout)
        self.assertIsInstance(remote_error({"type": "ResourceAllocationError", "error": ""}),
                              ResourceRefused)
        error = remote_error({"type": "KeyError", "error": "'param'"})
        self.assertIsInstance(error, RemoteError)
        self.assertEqual(str(error), "KeyError: 'param'")

    def test_no_arbitrary_class(self) -> None:
        """A type naming a non-error attribute of the errors module is not instantiated."""
        self.assertIsInstance(remote_error({"type": "Any", "error": ""}), RemoteError)


class DescriptionTests(SynchronousTestCase):
    """A plesty-lib describe result becomes a Description."""

    DESCRIBED = {
        "methods": ["check_errors", "identity", "measure_power", "query", "reset", "write"],
        "budgets": {},
        "doc": {"parameters": {
            "default": [{"name": "wavelength", "dtype": "float", "unit": "nm", "default": 532.0,
                         "read_only": False, "min_value": 185.0, "max_value": 2500.0,
                         "options": None, "description": "Operating wavelength."},
                        {"name": "serial", "dtype": "str", "read_only": True}],
            "motor": [{"name": "position", "dtype": "float", "unit": "mm"}]},
            "functions": [{"name": "measure_power", "iparams": [
                {"name": "samples", "dtype": "int", "default": 10, "required": True}]}]}}

    def test_parameters_from_config_list(self) -> None:
        """Grouped keys from get_config_list find their doc entries."""
        d = description_from_describe("demo", self.DESCRIBED,
                                      ["wavelength", "serial", "MOTOR.position"])
        self.assertEqual(list(d.parameters), ["wavelength", "serial", "MOTOR.position"])
        self.assertEqual(d.parameters["wavelength"].limits, (185.0, 2500.0))
        self.assertTrue(d.parameters["serial"].readonly)
        self.assertEqual(d.parameters["MOTOR.position"].units, "mm")

    def test_actions(self) -> None:
        """Methods become actions (not query/write), with their doc arguments."""
        d = description_from_describe("demo", self.DESCRIBED)
        self.assertEqual(sorted(d.actions), ["check_errors", "get_config_list", "identity",
                                             "measure_power", "reset"])
        self.assertEqual(d.actions["measure_power"].arguments[0].default, 10)
        self.assertFalse(d.actions["identity"].mutating)

    def test_budgets(self) -> None:
        """An operation's published budget becomes its action's budget; bad ones are dropped."""
        described = dict(self.DESCRIBED, budgets={"measure_power": 12.5, "reset": -1,
                                                  "identity": "soon"})
        d = description_from_describe("demo", described)
        self.assertEqual(d.actions["measure_power"].budget, 12.5)
        self.assertIsNone(d.actions["reset"].budget)
        self.assertIsNone(d.actions["identity"].budget)

    def test_minimal(self) -> None:
        """An old server's describe (methods only) is enough."""
        d = description_from_describe("old", {"methods": ["identity"]})
        self.assertEqual(list(d.parameters), [])
        self.assertIn("identity", d.actions)


class ClientLoopbackTests(TestCase):
    """Our client against our server."""

    def setUp(self) -> None:
        self.registry = DeviceRegistry(reactor)
        self.device = _SlowDevice()
        self.registry.register(self.device)
        self.server = PlestyServerService(self.registry, "meter", "tcp://127.0.0.1:*", reactor)
        self.server.startService()
        self.addCleanup(self.server.stopService)

    def client(self, **kwargs: Any) -> PlestyClient:
        client = PlestyClient(reactor, self.server.address, **kwargs)
        self.addCleanup(client.close)
        return client

    async def test_operations(self) -> None:
        """connect, query, write, call, identity, get_config_list, describe, help."""
        client = self.client()
        info = await client.connect()
        self.assertEqual(info["client_id"], client.identity)
        self.assertEqual(await client.query("wavelength"), 532.0)
        self.assertTrue(await client.write("wavelength", 600.0))
        self.assertEqual(await client.query("wavelength", timeout=2.0), 600.0)
        self.assertEqual(await client.identity_string(), "twisted_lab,device,meter,0.1.0")
        self.assertEqual(await client.get_config_list(), ["wavelength", "slow"])
        self.assertIn("spectrum", (await client.describe())["methods"])
        self.assertIn("wavelength", (await client.help())["help"])
        self.assertEqual(await client.ping(), "pong")

    async def test_binary_array(self) -> None:
        """An array result arrives as an ndarray (binary frames)."""
        client = self.client()
        result = await client.call("spectrum", 1000)
        self.assertIsInstance(result, np.ndarray)
        np.testing.assert_array_equal(result, np.arange(1000.0))

    async def test_typed_errors(self) -> None:
        """Error replies become the twisted_lab errors of the same name."""
        client = self.client()
        with self.assertRaises(UnknownParameter):
            await client.query("nope")
        with self.assertRaises(ReadOnly):
            await client.write("slow", 1.0)
        with self.assertRaises(RemoteError):
            await client.call("_private")

    async def test_resources_refused(self) -> None:
        """A held resource refuses a second client's connect with ResourceRefused."""
        first = self.client(resources=["wavelength"])
        await first.connect()
        with self.assertRaises(ResourceRefused) as caught:
            await self.client(resources="wavelength").connect()
        self.assertIn(first.identity, str(caught.exception))
        await first.close()
        await self.client(resources="wavelength").connect()

    async def test_timeout_rebuilds_socket(self) -> None:
        """After a timeout the socket is rebuilt; the late reply never answers the next request."""
        client = self.client(timeout=0.3)
        await client.connect()
        old = client.identity
        with self.assertRaises(RemoteTimeout):
            await client.query("slow")
        self.assertNotEqual(client.identity, old)
        self.device.pending.pop().callback(111.0)
        self.assertEqual(await client.query("wavelength"), 532.0)

    async def test_stable_id_drops_stale_reply(self) -> None:
        """With a stable client_id the late reply reaches the new socket and is dropped."""
        client = self.client(timeout=0.3, client_id="fixed")
        await client.connect()
        with self.assertRaises(RemoteTimeout):
            await client.query("slow")
        self.assertEqual(client.identity, "fixed")
        second = client.query("wavelength")
        self.device.pending.pop().callback(111.0)
        self.assertEqual(await second, 532.0)

    async def test_server_timeout(self) -> None:
        """The request's own timeout comes back as RemoteTimeout, the device then busy."""
        client = self.client()
        with self.assertRaises(RemoteTimeout):
            await client.query("slow", timeout=0.1)
        with self.assertRaises(Exception) as caught:
            await client.query("wavelength")
        self.assertEqual(type(caught.exception).__name__, "DeviceBusy")
        self.device.pending.pop().callback(1.0)
        self.assertEqual(await client.query("wavelength"), 532.0)

    async def test_closed_client(self) -> None:
        """Requests on a closed client fail with DeviceOffline."""
        client = self.client()
        await client.close()
        with self.assertRaises(DeviceOffline):
            await client.query("wavelength")


class ImportTests(TestCase):
    """A PLESTY server imported as a registry device."""

    def setUp(self) -> None:
        self.remote_registry = DeviceRegistry(reactor)
        self.remote_registry.register(FakeDevice("meter", {"wavelength": 532.0},
                                                 readonly=[]))
        self.remote_registry.register(FakeActuator("stage"))
        self.remote_registry.register(FakeDetector("camera"))
        self.servers: dict[str, PlestyServerService] = {}
        for name in ("meter", "stage", "camera"):
            server = PlestyServerService(self.remote_registry, name, "tcp://127.0.0.1:*",
                                         reactor)
            server.startService()
            self.addCleanup(lambda s=server: s.running and s.stopService())
            self.servers[name] = server
        self.registry = DeviceRegistry(reactor)

    def importer(self, name: str, local: str) -> PlestyImportService:
        service = PlestyImportService(self.registry, local, self.servers[name].address,
                                      reactor, timeout=0.5, keepalive=0.1, retry=0.1)
        service.startService()
        self.addCleanup(service.stopService)
        return service

    async def test_remote_device(self) -> None:
        """The remote device is registered with the server's parameters and works."""
        self.importer("meter", "remote_meter")
        device = await self.registry.when_registered("remote_meter")
        verifyObject(IDevice, device)
        self.assertEqual(list(device.description.parameters), ["wavelength"])
        self.assertEqual(await device.get("wavelength"), 532.0)
        self.assertEqual(await device.set("wavelength", 700.0), 700.0)
        self.assertEqual(await self.remote_registry.lookup("meter").get("wavelength"), 700.0)
        with self.assertRaises(InvalidValue):
            await device.set("wavelength", "red")

    async def test_remote_actuator_and_detector(self) -> None:
        """A remote twisted_lab actuator/detector is imported as one."""
        self.importer("stage", "remote_stage")
        self.importer("camera", "remote_camera")
        stage = await self.registry.when_registered("remote_stage")
        camera = await self.registry.when_registered("remote_camera")
        verifyObject(IActuator, stage)
        verifyObject(IDetector, camera)
        self.assertEqual(await stage.move_abs(3.0), 3.0)
        self.assertEqual(await stage.position(), 3.0)
        export = await camera.grab()
        self.assertIsInstance(export, Export)
        np.testing.assert_array_equal(export.signals[0].data[0], np.arange(4.0))

    async def test_offline_and_back(self) -> None:
        """The device goes offline when the server stops, and back online (same object)."""
        service = self.importer("meter", "remote_meter")
        device = await self.registry.when_registered("remote_meter")
        server = self.servers["meter"]
        address = server.address
        server.stopService()
        await until(lambda: not device.online)
        with self.assertRaises(DeviceOffline):
            await device.get("wavelength")
        again = PlestyServerService(self.remote_registry, "meter", address, reactor)
        again.startService()
        self.addCleanup(again.stopService)
        await until(lambda: device.online)
        self.assertIs(self.registry.lookup("remote_meter"), device)
        self.assertEqual(await device.get("wavelength"), 532.0)
        self.assertIs(service.device, device)
