# -*- test-case-name: tests.test_leco_interop -*-
"""
Interoperability with real pyleco 0.6.0.post1 (its venv, .peers/pyleco),
over loopback.  These tests fail (never skip) when the peer is missing.
"""
from __future__ import annotations

import json
from typing import Any

import zmq
from twisted.internet import reactor
from twisted.logger import capturedLogs
from twisted.trial.unittest import TestCase

from tests.peers.pyleco_process import PeerProcess, spawn
from tests.test_leco_coordinator import CoordinatorMixin, sleep
from twisted_lab.errors import DeviceOffline, LabError
from twisted_lab.protocols.leco.export import DeviceActor
from twisted_lab.protocols.leco.coordinator import CoordinatorService, advertised_address
from twisted_lab.protocols.leco.datapub import ProxyService, RegistryPublisher
from twisted_lab.protocols.leco.imports import RemoteActorDevice
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeActuator, FakeDevice


class PylecoMixin(CoordinatorMixin):
    async def pyleco_coordinator(self, namespace: str, *args: str) -> tuple[PeerProcess, int]:
        proc = spawn(self, "pyleco_coordinator.py", namespace, *args)
        line = await proc.line()
        self.assertTrue(line.startswith("PORT "), line)  # type: ignore[attr-defined]
        return proc, int(line.split()[1])

    async def pyleco_client(self, port: int, name: str = "pyclient") -> PeerProcess:
        proc = spawn(self, "pyleco_driver.py", "client", str(port), name)
        first = json.loads(await proc.line())
        self.assertIn("ok", first)  # type: ignore[attr-defined]
        return proc

    async def pyleco_actor(self, port: int, name: str = "pyactor") -> PeerProcess:
        proc = spawn(self, "pyleco_driver.py", "actor", str(port), name)
        line = await proc.line()
        self.assertTrue(line.startswith("READY"), line)  # type: ignore[attr-defined]
        return proc

    async def actor(self, registry: DeviceRegistry, device: str, address: str) -> DeviceActor:
        actor = DeviceActor(registry, device, address, reactor)
        actor.startService()
        self.addCleanup(actor.stopService)  # type: ignore[attr-defined]
        await actor.when_signed_in()
        return actor


def lab() -> DeviceRegistry:
    registry = DeviceRegistry(reactor)
    registry.register(FakeDevice("oven", {"temperature": 20.0, "label": "a"},
                                 actions={"double": lambda x: 2 * x}))
    registry.register(FakeActuator("stage"))
    return registry


class PylecoCoordinatorTests(PylecoMixin, TestCase):
    """pyleco's Coordinator + our actors, called by pyleco's Director and Communicator."""

    timeout = 60

    async def test_director_generic_methods(self) -> None:
        """pyleco Director get_parameters / set_parameters / call_action on our actor."""
        _, port = await self.pyleco_coordinator("N1")
        registry = lab()
        actor = await self.actor(registry, "oven", f"tcp://127.0.0.1:{port}")
        self.assertEqual(actor.full_name, "N1.oven")
        client = await self.pyleco_client(port)
        got = await client.command(op="director", actor="N1.oven", call="get_parameters",
                                   args=[["temperature", "label"]])
        self.assertEqual(got, {"ok": {"temperature": 20.0, "label": "a"}})
        got = await client.command(op="director", actor="oven", call="set_parameters",
                                   args=[{"temperature": 25.5}])
        self.assertEqual(got, {"ok": None})
        self.assertEqual(await registry.lookup("oven").get("temperature"), 25.5)
        got = await client.command(op="director", actor="N1.oven", call="call_action",
                                   args=["double", 21])
        self.assertEqual(got, {"ok": 42})
        got = await client.command(op="director", actor="N1.oven", call="get_rpc_capabilities")
        names = {m["name"] for m in got["ok"]["methods"]}
        self.assertTrue({"get_parameters", "set_parameters", "call_action", "pong"} <= names)

    async def test_director_errors_and_actuator(self) -> None:
        """Errors reach pyleco as JSON-RPC errors; an actuator moves through call_action."""
        _, port = await self.pyleco_coordinator("N1")
        registry = lab()
        await self.actor(registry, "oven", f"tcp://127.0.0.1:{port}")
        await self.actor(registry, "stage", f"tcp://127.0.0.1:{port}")
        client = await self.pyleco_client(port)
        got = await client.command(op="director", actor="N1.oven", call="get_parameters",
                                   args=[["nope"]])
        self.assertEqual(got["error"]["rpc"]["code"], -32603)
        self.assertIn("UnknownParameter", got["error"]["rpc"]["data"])
        got = await client.command(op="ask", receiver="N1.oven", method="no_such_method")
        self.assertEqual(got["error"]["rpc"]["code"], -32601)
        got = await client.command(op="director", actor="N1.stage", call="call_action",
                                   args=["move_abs", 3.5])
        self.assertEqual(got, {"ok": 3.5})
        got = await client.command(op="director", actor="N1.stage", call="call_action",
                                   args=["position"])
        self.assertEqual(got, {"ok": 3.5})

    async def test_our_component_binary_with_pyleco_actor(self) -> None:
        """Our Component calls a pyleco Actor's binary method through pyleco's Coordinator."""
        _, port = await self.pyleco_coordinator("N1")
        await self.pyleco_actor(port, "pyactor")
        me = await self.component("me", f"tcp://127.0.0.1:{port}")
        self.assertEqual(await me.ask("N1.pyactor", "add", {"a": 2, "b": 3}), (5, []))
        result = await me.ask("pyactor", "blob", {"note": "x"}, [b"\x01\x02\x03"])
        self.assertEqual(result, ({"got": [3], "note": "x"}, [b"\xde\xad\xbe\xef"]))


class OurCoordinatorTests(PylecoMixin, TestCase):
    """Our Coordinator with pyleco Components, Actors and Director."""

    timeout = 60

    async def test_pyleco_components(self) -> None:
        """pyleco signs in, routes to our actor and its Actor, gets our error replies."""
        coordinator = self.start_coordinator("N1")
        port = coordinator.port
        registry = lab()
        await self.actor(registry, "oven", coordinator.endpoint)
        await self.pyleco_actor(port, "pyactor")
        client = await self.pyleco_client(port)
        got = await client.command(op="director", actor="N1.oven", call="get_parameters",
                                   args=[["temperature"]])
        self.assertEqual(got, {"ok": {"temperature": 20.0}})
        got = await client.command(op="director", actor="pyactor", call="get_parameters",
                                   args=[["value", "items"]])
        self.assertEqual(got, {"ok": {"value": 0, "items": [1, 2, 3]}})
        got = await client.command(op="ask", receiver="N1.pyactor", method="blob",
                                   params={"note": "y"}, binary=["0102"])
        self.assertEqual(got, {"ok": [{"got": [2], "note": "y"}, ["deadbeef"]]})
        got = await client.command(op="ask", receiver="COORDINATOR",
                                   method="send_local_components")
        self.assertEqual(set(got["ok"]), {"oven", "pyactor", "pyclient"})
        got = await client.command(op="ask", receiver="ghost", method="x")
        self.assertEqual(got["error"]["rpc"]["code"], -32093)
        got = await client.command(op="ask", receiver="N9.ghost", method="x")
        self.assertEqual(got["error"]["rpc"]["code"], -32092)
        # pyleco Director, our Component: the reverse direction
        me = await self.component("me", coordinator)
        self.assertEqual(await me.ask("pyactor", "add", {"a": 1, "b": 2}), (3, []))

    async def test_pyleco_name_conflict_and_expiry(self) -> None:
        """A pyleco client whose name is taken is refused; silent ones expire."""
        coordinator = self.start_coordinator("N1", cleaning_interval=0.2, expiration_time=0.3)
        registry = lab()
        await self.actor(registry, "oven", coordinator.endpoint)
        proc = spawn(self, "pyleco_driver.py", "client", str(coordinator.port), "oven")
        await proc.ended  # pyleco raises on the -32091 sign-in answer
        self.assertIn(b"already taken", proc.stderr)
        client = await self.pyleco_client(coordinator.port, "quiet")
        self.assertIn("quiet", coordinator.local_names())
        # pyleco's Communicator sends no heartbeats and does not answer pong
        waited = 0
        while "quiet" in coordinator.local_names() and waited < 40:
            await sleep(0.1)
            waited += 1
        self.assertNotIn("quiet", coordinator.local_names())
        # it signs in again by itself when told -32090
        got = await client.command(op="ask", receiver="oven", method="get_parameters",
                                   params={"parameters": ["label"]})
        self.assertEqual(got, {"ok": {"label": "a"}})


class FederationInteropTests(PylecoMixin, TestCase):
    """Our Coordinator federated with pyleco's, both ways, messages routed across."""

    timeout = 60

    async def wait_linked(self, coordinator: Any, namespace: str) -> None:
        waited = 0
        while namespace not in coordinator.nodes() and waited < 100:
            await sleep(0.05)
            waited += 1
        self.assertIn(namespace, coordinator.nodes())

    async def test_pyleco_links_to_us(self) -> None:
        """pyleco (N2, started with our address) links; calls cross both ways."""
        ours = self.start_coordinator("N1")
        registry = lab()
        await self.actor(registry, "oven", ours.endpoint)
        _, port2 = await self.pyleco_coordinator("N2", "--federate", f"127.0.0.1:{ours.port}")
        await self.wait_linked(ours, "N2")
        await self.pyleco_actor(port2, "pyactor")
        client = await self.pyleco_client(port2)
        got = await client.command(op="director", actor="N1.oven", call="get_parameters",
                                   args=[["temperature"]])
        self.assertEqual(got, {"ok": {"temperature": 20.0}})
        me = await self.component("me", ours)
        self.assertEqual(await me.ask("N2.pyactor", "add", {"a": 4, "b": 5}), (9, []))
        await sleep(0.2)
        globals_, _ = await me.ask("COORDINATOR", "send_global_components")
        self.assertIn("pyactor", globals_.get("N2", []))

    async def test_we_link_to_pyleco(self) -> None:
        """We (N1, configured with pyleco's address) link; calls cross both ways."""
        _, port2 = await self.pyleco_coordinator("N2")
        ours = self.start_coordinator("N1", coordinators=[f"127.0.0.1:{port2}"])
        await self.wait_linked(ours, "N2")
        registry = lab()
        await self.actor(registry, "oven", ours.endpoint)
        await self.pyleco_actor(port2, "pyactor")
        me = await self.component("me", ours)
        self.assertEqual(await me.ask("N2.pyactor", "add", {"a": 1, "b": 1}), (2, []))
        client = await self.pyleco_client(port2)
        got = await client.command(op="director", actor="N1.oven", call="call_action",
                                   args=["double", 4])
        self.assertEqual(got, {"ok": 8})
        got = await client.command(op="ask", receiver="N2.COORDINATOR", method="send_nodes")
        self.assertEqual(set(got["ok"]), {"N1", "N2"})


class NodeInteropTests(PylecoMixin, TestCase):
    """Node sign-in and advertised addresses, as pyleco's Coordinators see them."""

    timeout = 60

    async def nodes_of(self, port: int) -> dict[str, str]:
        client = await self.pyleco_client(port, "nodeprobe")
        got = await client.command(op="ask", receiver="COORDINATOR", method="send_nodes")
        return got["ok"]  # type: ignore[no-any-return]

    async def test_duplicate_node_refused(self) -> None:
        """
        A second pyleco Coordinator signing in as node N2 while the first N2
        is linked is refused ("Another Coordinator is known!", as pyleco
        refuses it); the first keeps its routing.
        """
        ours = self.start_coordinator("N1")
        _, port2 = await self.pyleco_coordinator("N2", "--federate", f"127.0.0.1:{ours.port}")
        await FederationInteropTests.wait_linked(self, ours, "N2")  # type: ignore[arg-type]
        await self.pyleco_actor(port2, "pyactor")
        with capturedLogs() as events:
            _, port3 = await self.pyleco_coordinator("N2", "--federate",
                                                     f"127.0.0.1:{ours.port}")
            await sleep(1.0)
        refused = [e for e in events if "refused a second Coordinator" in e.get("log_format", "")]
        self.assertEqual(len(refused), 1, events)
        # the impostor did not link: its directory knows only itself
        self.assertEqual(set(await self.nodes_of(port3)), {"N2"})
        # the first N2 still gets our messages
        self.assertEqual(ours.nodes()["N2"], f"127.0.0.1:{port2}")
        me = await self.component("me", ours)
        self.assertEqual(await me.ask("N2.pyactor", "add", {"a": 2, "b": 3}), (5, []))

    async def linked_from_pyleco(self, ours: Any, port2: int) -> dict[str, str]:
        """Sign in to pyleco's N2; return N2's directory once it knows N1."""
        await FederationInteropTests.wait_linked(self, ours, "N2")  # type: ignore[arg-type]
        nodes: dict[str, str] = {}
        for _ in range(20):
            nodes = await self.nodes_of(port2)
            if "N1" in nodes:
                break
            await sleep(0.1)
        return nodes

    async def test_advertised_bind_address(self) -> None:
        """Bound to a specific address (127.0.0.1), pyleco is told that address."""
        _, port2 = await self.pyleco_coordinator("N2")
        ours = self.start_coordinator("N1", coordinators=[f"127.0.0.1:{port2}"])
        self.assertEqual(ours.advertised, f"127.0.0.1:{ours.port}")
        self.assertEqual(await self.linked_from_pyleco(ours, port2),
                         {"N1": f"127.0.0.1:{ours.port}", "N2": f"127.0.0.1:{port2}"})

    async def test_advertised_configured(self) -> None:
        """With C{advertise}, pyleco is told that name with our port, and links back through it."""
        _, port2 = await self.pyleco_coordinator("N2")
        ours = self.start_coordinator("N1", coordinators=[f"127.0.0.1:{port2}"],
                                      advertised="localhost")
        nodes = await self.linked_from_pyleco(ours, port2)
        self.assertEqual(nodes["N1"], f"localhost:{ours.port}")
        client = await self.pyleco_client(port2)
        got = await client.command(op="ask", receiver="N1.COORDINATOR", method="send_nodes")
        self.assertEqual(set(got["ok"]), {"N1", "N2"})  # routed over pyleco's link to us

    async def test_advertised_all_interfaces(self) -> None:
        """
        Bound to every interface, the host name is advertised (never
        0.0.0.0).  Only loopback is ever bound: the interface choice is
        faked by computing our address as if the bound endpoint were
        C{0.0.0.0}, with a host name that resolves to loopback.
        """
        self.assertEqual(advertised_address("tcp://0.0.0.0:4242", None, lambda: "labpc"),
                         "labpc:4242")
        _, port2 = await self.pyleco_coordinator("N2")
        ours = self.start_coordinator("N1", hostname=lambda: "localhost")
        assert ours.endpoint is not None
        ours.advertised = advertised_address(ours.endpoint.replace("127.0.0.1", "0.0.0.0"),
                                             None, ours.hostname)
        ours.connect_node(f"127.0.0.1:{port2}")
        nodes = await self.linked_from_pyleco(ours, port2)
        self.assertEqual(nodes["N1"], f"localhost:{ours.port}")
        self.assertNotIn("0.0.0.0", json.dumps(nodes))


class RestartInteropTests(PylecoMixin, TestCase):
    """Federation with pyleco survives a restart of either Coordinator."""

    timeout = 90

    async def test_pyleco_restarts(self) -> None:
        """
        We federate with pyleco's N2; pyleco's Coordinator stops and starts
        again on the same port: we sign in there again and calls cross again.
        """
        first, port2 = await self.pyleco_coordinator("N2")
        ours = self.start_coordinator("N1", coordinators=[f"127.0.0.1:{port2}"],
                                      cleaning_interval=0.2, expiration_time=0.5)
        await FederationInteropTests.wait_linked(self, ours, "N2")  # type: ignore[arg-type]
        me = await self.component("me", ours)
        await self.pyleco_actor(port2, "pyactor")
        self.assertEqual(await me.ask("N2.pyactor", "add", {"a": 1, "b": 2}), (3, []))
        await first.stop()
        await sleep(0.5)
        _, again = await self.pyleco_coordinator("N2", "--port", str(port2))
        self.assertEqual(again, port2)
        await self.pyleco_actor(port2, "pyactor")
        for _ in range(100):
            if "N2" in ours.nodes():
                try:
                    self.assertEqual(await me.ask("N2.pyactor", "add", {"a": 2, "b": 2}),
                                     (4, []))
                    break
                except LabError:
                    pass
            await sleep(0.1)
        else:
            self.fail("no route to N2.pyactor after pyleco's restart")
        client = await self.pyleco_client(port2)
        got = await client.command(op="ask", receiver="N2.COORDINATOR", method="send_nodes")
        self.assertEqual(set(got["ok"]), {"N1", "N2"})

    async def test_we_restart(self) -> None:
        """
        pyleco's N2 federates with our N1; ours stops and starts again on the
        same port, configured with N2: calls from pyleco reach us again.
        """
        ours = self.start_coordinator("N1", cleaning_interval=0.2, expiration_time=0.5)
        _, port2 = await self.pyleco_coordinator("N2", "--federate", f"127.0.0.1:{ours.port}")
        await FederationInteropTests.wait_linked(self, ours, "N2")  # type: ignore[arg-type]
        endpoint = ours.endpoint
        await ours.stopService()
        for attempt in range(50):
            second = CoordinatorService("N1", endpoint, reactor,  # type: ignore[arg-type]
                                        coordinators=[f"127.0.0.1:{port2}"],
                                        cleaning_interval=0.2, expiration_time=0.5)
            try:
                second.startService()
                break
            except zmq.ZMQError:
                if attempt == 49:
                    raise
                await sleep(0.1)
        self.addCleanup(second.stopService)
        registry = lab()
        await self.actor(registry, "oven", second.endpoint)  # type: ignore[arg-type]
        client = await self.pyleco_client(port2)
        for _ in range(100):
            got = await client.command(op="director", actor="N1.oven", call="get_parameters",
                                       args=[["temperature"]])
            if got == {"ok": {"temperature": 20.0}}:
                break
            await sleep(0.1)
        self.assertEqual(got, {"ok": {"temperature": 20.0}})


class DirectorInteropTests(PylecoMixin, TestCase):
    """Our Director imports a pyleco Actor as a registry device."""

    timeout = 60

    async def test_remote_pyleco_actor(self) -> None:
        """get/set/call reach the pyleco device; it goes offline and back with its actor."""
        _, port = await self.pyleco_coordinator("N1")
        actor_proc = await self.pyleco_actor(port, "pyactor")
        me = await self.component("director", f"tcp://127.0.0.1:{port}")
        registry = DeviceRegistry(reactor)
        device = RemoteActorDevice("remote", "N1.pyactor", me, ["value"], ["scale"],
                                   timeout=2.0, poll_interval=0.2)
        registry.register(device)
        device.start_polling()
        self.addCleanup(device.stop_polling)
        self.assertEqual(await device.get("value"), 0)
        await device.set("value", 3)
        self.assertEqual(await device.get("value"), 3)
        self.assertEqual(await device.call("scale", 2), 6)
        await self.assertFailure(device.call("fail"), LabError)
        await actor_proc.stop()
        waited = 0
        while device.online and waited < 50:
            await sleep(0.1)
            waited += 1
        self.assertFalse(device.online)
        await self.assertFailure(device.get("value"), DeviceOffline)
        await self.pyleco_actor(port, "pyactor")
        waited = 0
        while not device.online and waited < 50:
            await sleep(0.1)
            waited += 1
        self.assertTrue(device.online)
        self.assertIs(registry.lookup("remote"), device)
        self.assertEqual(await device.get("value"), 0)


class DataInteropTests(PylecoMixin, TestCase):
    """Our data proxy and publisher, received by pyleco's ExtendedMessageHandler."""

    timeout = 60

    async def test_pyleco_subscriber(self) -> None:
        """A parameter change and a move are received with topic N1.oven / N1.stage."""
        coordinator = self.start_coordinator("N1")
        proxy = ProxyService(reactor, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*")
        proxy.startService()
        self.addCleanup(proxy.stopService)
        registry = lab()
        oven = await self.actor(registry, "oven", coordinator.endpoint)
        publisher = RegistryPublisher(registry, reactor, proxy.xsub_endpoint,
                                      {"oven": lambda: oven.full_name})
        publisher.startService()
        self.addCleanup(publisher.stopService)
        data_port = int(proxy.xpub_endpoint.rsplit(":", 1)[1])
        sub = spawn(self, "pyleco_driver.py", "subscriber", str(coordinator.port),
                    str(data_port), "listener", "N1.oven", "1")
        self.assertEqual(json.loads(await sub.line()), {"ready": True})
        await sleep(0.2)
        await registry.lookup("oven").set("temperature", 30.0)
        got = json.loads(await sub.line())
        self.assertEqual((got["topic"], got["type"], got["data"]),
                         ("N1.oven", 1, {"temperature": 30.0}))
