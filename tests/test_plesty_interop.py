# -*- test-case-name: tests.test_plesty_interop -*-
"""
Interoperability with the real peer, plesty-lib 0.6.0 (Python 3.12 venv in
C{.peers/plesty}) and 0.5.2 (C{.peers/plesty05}), still supported by its
authors: its C{build_client} against our server, and our client against its
C{build_server} hosting its C{DemoDevice}.  Every test runs against both
releases.  These tests fail (never skip) when a peer is not installed.
"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.peers import PEER_SPECS, peer_env, peer_python
from twisted_lab.devices.wrap import WrappedDevice
from twisted_lab.protocols.plesty.imports import PlestyClient, RemoteError, ResourceRefused
from twisted_lab.protocols.plesty.remote import PlestyImportService
from twisted_lab.protocols.plesty.export import PlestyServerService
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeDevice

PEERS = Path(__file__).resolve().parent / "peers"


def start_plesty_server(test: TestCase, peer: str = "plesty") -> Any:
    """
    Start plesty-lib's server with its DemoDevice; return a Deferred firing
    with its address.  The process is stopped at cleanup.

    @param peer: the peer venv (C{plesty} or C{plesty05}).
    """
    process = subprocess.Popen(
        [str(peer_python(peer)), str(PEERS / "plesty_server.py")], env=peer_env(peer),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def stop() -> None:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()

    test.addCleanup(stop)
    assert process.stdout is not None
    d = deferToThread(process.stdout.readline)
    return d.addCallback(lambda line: line.strip())


class SlowInstrument:
    """A blocking driver whose C{settle} takes longer than a short client timeout."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def settle(self) -> float:
        """Block for C{seconds}, then return them."""
        time.sleep(self.seconds)
        return self.seconds


class DeferredSlowInstrument:
    """The same operation, run on the reactor without a driver deadline."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.running: list[Deferred[float]] = []

    def settle(self) -> Deferred[float]:
        """Fire with C{seconds} after that many seconds."""
        d = deferLater(reactor, self.seconds, lambda: self.seconds)
        self.running.append(d)
        return d


class PlestyClientAgainstOurServerMixin:
    """plesty-lib's build_client drives our server."""

    timeout = 120
    peer = "plesty"

    async def test_build_client(self: Any) -> None:
        """query, write, call, identity, describe, refused and granted resources, release."""
        registry = DeviceRegistry(reactor)
        registry.register(FakeDevice("powermeter", {"wavelength": 532.0, "serial": "S1"},
                                     actions={"measure_power": lambda samples=10: samples * 1e-3},
                                     readonly=["serial"]))
        server = PlestyServerService(registry, "powermeter", "tcp://127.0.0.1:*", reactor)
        server.startService()
        self.addCleanup(server.stopService)
        python = peer_python(self.peer)
        result = await deferToThread(
            subprocess.run, [str(python), str(PEERS / "plesty_client.py"), server.address,
                             "wavelength", "600", "measure_power"],
            env=peer_env(self.peer), capture_output=True, text=True, timeout=90)
        self.assertEqual(result.returncode, 0, result.stderr)
        out = json.loads(result.stdout)
        self.assertEqual(out["connect"], {"client_id": "client-A", "resources": ["wavelength"],
                                          "metadata": {"experiment": "run-42"}})
        self.assertEqual(out["methods"], ["get_config_list", "identity", "measure_power",
                                          "query", "write"])
        self.assertEqual(out["doc_parameters"], ["wavelength", "serial"])
        self.assertEqual((out["query"], out["write"], out["query_after"]), (532.0, True, 600.0))
        self.assertEqual(out["identity"], "twisted_lab,device,powermeter,0.1.0")
        self.assertEqual(out["config_list"], ["wavelength", "serial"])
        self.assertEqual(out["func"], {"ok": 0.004})
        self.assertIn("UnknownParameter", out["unknown_param"]["error"])
        self.assertIn("AttributeError", out["private"]["error"])
        self.assertIn("AttributeError", out["unadvertised"]["error"])
        self.assertIn("ResourceAllocationError", out["refused"]["error"])
        self.assertIn("plesty:client-A", out["refused"]["error"])
        self.assertEqual(out["granted_after_release"]["resources"], ["wavelength"])
        self.assertIsNone(registry.leases.holder("powermeter/wavelength"))


    async def test_budget(self: Any) -> None:
        """
        A 2 s operation on a device whose driver deadline is 4 s succeeds
        through plesty-lib's client with a 1 s default timeout, because
        C{describe} publishes the 4 s budget; the same operation on a device
        without a deadline publishes none and the client gives up.
        """
        registry = DeviceRegistry(reactor)
        slow = WrappedDevice("slow", SlowInstrument(2.0), reactor, threaded=True, deadline=4.0)
        slow.startService()
        self.addCleanup(slow.stopService)
        registry.register(slow)
        loose = DeferredSlowInstrument(2.0)
        registry.register(WrappedDevice("loose", loose))
        servers = []
        for name in ("slow", "loose"):
            server = PlestyServerService(registry, name, "tcp://127.0.0.1:*", reactor)
            server.startService()
            self.addCleanup(server.stopService)
            servers.append(server.address)
        result = await deferToThread(
            subprocess.run, [str(peer_python(self.peer)), str(PEERS / "plesty_budget_client.py"),
                             *servers, "settle", "1000"],
            env=peer_env(self.peer), capture_output=True, text=True, timeout=90)
        self.assertEqual(result.returncode, 0, result.stderr)
        out = json.loads(result.stdout)
        self.assertEqual(out["plesty-lib"], PEER_SPECS[self.peer]["versions"]["plesty-lib"])
        self.assertEqual(out["budgets"], {"settle": 4.0})
        self.assertEqual(out["budgeted"]["ok"], 2.0, out)
        self.assertEqual(out["budgeted_by_name"]["ok"], 2.0, out)
        self.assertEqual(out["unbudgeted_budgets"], {})
        self.assertIn("TimeoutError", out["unbudgeted"]["error"])
        self.assertLess(out["unbudgeted"]["seconds"], 2.0)  # gave up before it ended
        self.assertEqual(len(loose.running), 1)
        await loose.running[0]  # the operation the client gave up on still ends


    async def test_client_field_test(self: Any) -> None:
        """
        plesty-lib's own client-tier field test (C{ClientFieldTest}, attached
        to our server) passes its gates: connect, describe, protocol
        fidelity, functions, timeout recovery and resource allocation.  (Its
        wrapper-modes gate restarts the server, which an attached run cannot
        do: plesty-lib skips it, as for any server on another machine.)
        """
        registry = DeviceRegistry(reactor)
        registry.register(FakeDevice("powermeter", {"wavelength": 532.0, "averages": 4,
                                                    "serial": "S1"},
                                     actions={"measure_power": lambda samples=10: samples * 1e-3},
                                     readonly=["serial"]))
        server = PlestyServerService(registry, "powermeter", "tcp://127.0.0.1:*", reactor)
        server.startService()
        self.addCleanup(server.stopService)
        result = await deferToThread(
            subprocess.run, [str(peer_python(self.peer)), str(PEERS / "plesty_field_test.py"),
                             server.address, "wavelength,averages", "measure_power",
                             "wavelength", self.mktemp()],
            env=peer_env(self.peer), capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        out = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertEqual(out["plesty-lib"], PEER_SPECS[self.peer]["versions"]["plesty-lib"])
        statuses = {name: gate["status"] for name, gate in out["gates"].items()}
        for gate in ("connect", "describe", "protocol_fidelity", "functions",
                     "timeout_recovery", "resource_allocation"):
            self.assertEqual(statuses.get(gate), "pass", out)
        self.assertTrue(out["ok"], out)


class PlestyClientAgainstOurServerTests(PlestyClientAgainstOurServerMixin, TestCase):
    """plesty-lib 0.6.0's build_client drives our server."""


class Plesty05ClientAgainstOurServerTests(PlestyClientAgainstOurServerMixin, TestCase):
    """plesty-lib 0.5.2's build_client drives our server."""

    peer = "plesty05"


class OurClientAgainstPlestyServerMixin:
    """Our client and import service drive plesty-lib's server and DemoDevice."""

    timeout = 120
    peer = "plesty"

    async def test_client(self: Any) -> None:
        """connect, describe, query, write, call, identity, errors, resources refused."""
        address = await start_plesty_server(self, self.peer)
        self.assertTrue(address.startswith("tcp://127.0.0.1:"), address)
        client = PlestyClient(reactor, address, timeout=10.0, resources=["axis/x"])
        self.addCleanup(client.close)
        info = await client.connect()
        self.assertEqual(info["resources"], ["axis/x"])
        described = await client.describe()
        self.assertIn("measure_power", described["methods"])
        self.assertEqual(await client.query("wavelength"), 532.0)
        self.assertTrue(await client.write("wavelength", 600.0))
        self.assertEqual(await client.query("wavelength", timeout=2.0), 600.0)
        self.assertEqual(await client.query("MOTOR.position"), 0.0)
        with self.assertRaises(RemoteError) as caught:
            await client.query("nope")
        self.assertEqual(caught.exception.type, "KeyError")
        other = PlestyClient(reactor, address, timeout=10.0, resources="axis/x")
        self.addCleanup(other.close)
        with self.assertRaises(ResourceRefused):
            await other.connect()
        free = PlestyClient(reactor, address, timeout=10.0)
        self.addCleanup(free.close)
        await free.connect()
        # (plesty-lib passes a resource-holding client's resources to every
        # call, which get_config_list and identity do not accept: ask unlocked)
        self.assertIn("MOTOR.position", await free.get_config_list())
        self.assertEqual(await free.identity_string(), "PLESTY,DemoDevice,DEMO-0001,1.0.0")
        self.assertEqual(await free.call("measure_power", samples=5), {"power": 0.005})
        self.assertIn("Unknown request type", str(await self._error(free.ping())))
        await client.close()
        await other.connect()

    async def _error(self: Any, d: Any) -> Exception:
        try:
            await d
        except Exception as e:
            return e
        raise AssertionError("no error")

    async def test_import_demo_device(self: Any) -> None:
        """plesty-lib's DemoDevice becomes a registry device, grouped parameters included."""
        address = await start_plesty_server(self, self.peer)
        registry = DeviceRegistry(reactor)
        service = PlestyImportService(registry, "demo", address, reactor, timeout=10.0,
                                      keepalive=0.2)
        service.startService()
        self.addCleanup(service.stopService)
        device = await registry.when_registered("demo")
        description = device.description
        self.assertIn("MOTOR.position", description.parameters)
        self.assertTrue(description.parameters["serial"].readonly)
        self.assertEqual(description.parameters["wavelength"].limits, (185.0, 2500.0))
        self.assertEqual(await device.get("MOTOR.position"), 0.0)
        self.assertEqual(await device.set("wavelength", 700.0), 700.0)
        self.assertEqual(await device.get("wavelength"), 700.0)
        self.assertEqual(await device.call("measure_power", 3), {"power": 0.003})
        self.assertEqual(await device.call("identity"), "PLESTY,DemoDevice,DEMO-0001,1.0.0")
        await deferToThread(lambda: None)
        self.assertTrue(device.online)


class OurClientAgainstPlestyServerTests(OurClientAgainstPlestyServerMixin, TestCase):
    """Our client and import service drive plesty-lib 0.6.0's server."""


class OurClientAgainstPlesty05ServerTests(OurClientAgainstPlestyServerMixin, TestCase):
    """Our client and import service drive plesty-lib 0.5.2's server."""

    peer = "plesty05"
