# -*- test-case-name: tests.test_access_leco -*-
"""
Who may do what over LECO: the Coordinator's allow-list (ZAP) and CURVE,
roles on the Coordinator's methods and on our actors, federation limits
and duplicate node sign-in; with our Components and real pyleco
(.peers/pyleco) over loopback.
"""
from __future__ import annotations

import os
from typing import Any

import zmq.auth
from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from tests.peers.pyleco_process import spawn
from tests.test_leco_coordinator import CoordinatorMixin, request, sleep
from twisted_lab.access import AccessPolicy, CurveConfig, Role
from twisted_lab.errors import AccessDenied, DeviceTimeout
from twisted_lab.protocols.leco.export import DeviceActor
from twisted_lab.protocols.leco.coordinator import CoordinatorService
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeActuator, FakeDevice


def lab() -> DeviceRegistry:
    registry = DeviceRegistry(reactor)
    registry.register(FakeDevice("oven", {"temperature": 20.0},
                                 actions={"double": lambda x: 2 * x}))
    registry.register(FakeActuator("stage"))
    return registry


class LabMixin(CoordinatorMixin):
    """Our Coordinator with a policy, and actors reached through its hub."""

    def lab(self, policy: AccessPolicy | None = None, **kwargs: Any
            ) -> tuple[CoordinatorService, DeviceRegistry]:
        coordinator = self.start_coordinator(policy=policy, **kwargs)
        registry = lab()
        for name in ("oven", "stage"):
            actor = DeviceActor(registry, name, "", reactor, hub=coordinator.local_hub,
                                role_of=coordinator.role_of)
            actor.startService()
            self.addCleanup(actor.stopService)  # type: ignore[attr-defined]
        return coordinator, registry

    async def signed_in(self, coordinator: CoordinatorService, *names: str) -> None:
        for _ in range(200):
            if all(n in coordinator.local_names() for n in names):
                return
            await sleep(0.01)
        raise AssertionError(f"{names} not signed in")


class AllowListTests(LabMixin, TestCase):
    """A Component outside the allow-list never reaches the Coordinator."""

    timeout = 30

    async def test_refused_before_any_handler(self) -> None:
        """With 127.0.0.1 not allowed, a Component's sign-in gets no answer and leaves
        no trace (no name, no node, no log of a message)."""
        coordinator, registry = self.lab(AccessPolicy.build(["10.0.0.0/8"]))
        await self.signed_in(coordinator, "oven", "stage")
        raw = self.raw(coordinator)
        raw.send(request(b"COORDINATOR", b"intruder", "sign_in"))
        raw.send(request(b"N1.oven", b"intruder", "get_parameters",
                         {"parameters": ["temperature"]}))
        await sleep(0.5)
        self.assertEqual(raw.received, [])
        self.assertEqual(sorted(coordinator.local_names()), ["oven", "stage"])
        self.assertEqual(sorted(registry.names()), ["oven", "stage"])

    async def test_default_allows_loopback(self) -> None:
        """The default policy (loopback, operate) lets a local Component in."""
        coordinator, _ = self.lab()
        component = await self.component("ok", coordinator)
        self.assertEqual(await component.ask("oven", "get_parameters",
                                             {"parameters": ["temperature"]}),
                         ({"temperature": 20.0}, []))


class RoleTests(LabMixin, TestCase):
    """read < operate < admin, on our actors and on the Coordinator."""

    timeout = 30

    async def client(self, role: str, **kwargs: Any) -> tuple[Any, CoordinatorService,
                                                                  DeviceRegistry]:
        coordinator, registry = self.lab(AccessPolicy.build(role=role), **kwargs)
        await self.signed_in(coordinator, "oven", "stage")
        return await self.component("client", coordinator), coordinator, registry

    async def refused(self, d: Any, needed: str) -> None:
        e = await self.assertFailure(d, AccessDenied)
        self.assertIn(f"needs the {needed} role", str(e))

    async def test_read(self) -> None:
        """A read client may describe, get and call actions that change nothing; it may
        not set, call other actions, move or lock."""
        client, _, registry = await self.client("read")
        self.assertEqual((await client.ask("oven", "get_parameters",
                                           {"parameters": ["temperature"]}))[0],
                         {"temperature": 20.0})
        self.assertIn("parameters", (await client.ask("oven", "describe"))[0])
        await self.refused(client.ask("oven", "set_parameters",
                                      {"parameters": {"temperature": 99.0}}), "operate")
        await self.refused(client.ask("oven", "call_action",
                                      {"action": "double", "args": [2]}), "operate")
        await self.refused(client.ask("stage", "call_action", {"action": "move_abs",
                                                               "args": [3.0]}), "operate")
        self.assertEqual((await client.ask("stage", "call_action", {"action": "position"}))[0],
                         0.0)  # an action that changes nothing
        await self.refused(client.ask("stage", "move_abs", {"position": 3.0}), "operate")
        await self.refused(client.ask("stage", "lock", {}), "operate")
        self.assertEqual(await registry.lookup("oven").get("temperature"), 20.0)
        self.assertEqual(registry.leases.leases(), [])

    async def test_operate(self) -> None:
        """An operate client may set, call and lock, not shut down actors or the
        Coordinator, force-unlock, add nodes or remove addresses."""
        client, coordinator, registry = await self.client("operate")
        await client.ask("oven", "set_parameters", {"parameters": {"temperature": 30.0}})
        self.assertEqual(await registry.lookup("oven").get("temperature"), 30.0)
        self.assertEqual((await client.ask("oven", "call_action",
                                           {"action": "double", "args": [2]}))[0], 4)
        self.assertEqual((await client.ask("stage", "lock", {}))[0], True)
        await self.refused(client.ask("stage", "force_unlock", {}), "admin")
        await self.refused(client.ask("oven", "shut_down"), "admin")
        await self.refused(client.ask("COORDINATOR", "shut_down"), "admin")
        await self.refused(client.ask("COORDINATOR", "add_nodes",
                                      {"nodes": {"X": "127.0.0.1:1"}}), "admin")
        await self.refused(client.ask("COORDINATOR", "remove_expired_addresses",
                                      {"expiration_time": 0}), "admin")
        await self.refused(client.ask("COORDINATOR", "set_log_level", {"level": "DEBUG"}),
                           "admin")
        await sleep(0.1)
        self.assertTrue(coordinator.running)
        self.assertEqual(sorted(coordinator.local_names()), ["client", "oven", "stage"])
        self.assertEqual(coordinator._waiting, {})

    async def test_admin(self) -> None:
        """An admin client may force-unlock, remove expired addresses and shut down an
        actor and the Coordinator."""
        client, coordinator, registry = await self.client("admin")
        locker = await self.component("locker", coordinator)
        self.assertEqual((await locker.ask("stage", "lock", {}))[0], True)
        await client.ask("stage", "force_unlock", {})
        self.assertEqual(registry.leases.leases(), [])
        await client.ask("COORDINATOR", "remove_expired_addresses", {"expiration_time": 60})
        await client.ask("oven", "shut_down")
        await sleep(0.1)
        self.assertNotIn("oven", coordinator.local_names())
        await client.ask("COORDINATOR", "shut_down")
        await sleep(0.2)
        self.assertFalse(coordinator.running)

    async def test_roles_by_network(self) -> None:
        """C{roles} gives 127.0.0.1 admin while the default role is read."""
        coordinator, _ = self.lab(AccessPolicy.build(role="read",
                                                     roles={"127.0.0.1/32": "admin"}))
        client = await self.component("client", coordinator)
        await client.ask("oven", "set_parameters", {"parameters": {"temperature": 1.0}})
        self.assertEqual(coordinator.role_of("N1.client"), Role.ADMIN)


class FederationTests(LabMixin, TestCase):
    """Outgoing links only to configured nodes, the link allow-list or the asker."""

    timeout = 30

    async def test_add_nodes_unknown_not_dialled(self) -> None:
        """Even an admin's add_nodes does not dial an address outside C{federate} and
        C{link_allow}; with C{link_allow} it does."""
        coordinator, _ = self.lab(AccessPolicy.build(role="admin"))
        client = await self.component("client", coordinator)
        await client.ask("COORDINATOR", "add_nodes",
                         {"nodes": {"X%d" % i: f"127.0.0.1:{20000 + i}" for i in range(50)}})
        self.assertEqual(coordinator._waiting, {})
        allowed, _ = self.lab(AccessPolicy.build(role="admin"), link_allow=["127.0.0.0/8"])
        client2 = await self.component("client2", allowed)
        await client2.ask("COORDINATOR", "add_nodes", {"nodes": {"Y": "127.0.0.1:20001"}})
        self.assertEqual(list(allowed._waiting), ["127.0.0.1:20001"])

    async def test_federation_of_two_labs(self) -> None:
        """Two of our Coordinators, one configured to link to the other, federate: the
        other links back (the asker's own address) and routes both ways."""
        n2, _ = self.lab()
        n1 = self.start_coordinator("N1b", coordinators=[f"127.0.0.1:{n2.port}"])
        for _ in range(300):
            if "N1b" in n2.nodes() and "N1" in n1.nodes():
                break
            await sleep(0.01)
        self.assertIn("N1b", n2.nodes())
        self.assertIn("N1", n1.nodes())
        remote = await self.component("far", n1)
        self.assertEqual((await remote.ask("N1.oven", "get_parameters",
                                           {"parameters": ["temperature"]}))[0],
                         {"temperature": 20.0})

    async def test_duplicate_node_sign_in_refused(self) -> None:
        """A second connection signing in under a live node's name is refused; the
        first keeps the routing."""
        coordinator, _ = self.lab()
        first, second = self.raw(coordinator), self.raw(coordinator)
        first.send(request(b"COORDINATOR", b"N9.COORDINATOR", "coordinator_sign_in"))
        self.assertIn(b'"result":null', (await first.next())[-1])
        second.send(request(b"COORDINATOR", b"N9.COORDINATOR", "coordinator_sign_in"))
        self.assertIn(b"Another Coordinator is known", (await second.next())[-1])
        self.assertEqual([n[0] for n in coordinator._node_ids.values()], [b"N9"])

    async def test_node_cannot_speak_for_another(self) -> None:
        """A signed-in node's connection cannot send as a Component of another node."""
        coordinator, _ = self.lab()
        node = self.raw(coordinator)
        node.send(request(b"COORDINATOR", b"N9.COORDINATOR", "coordinator_sign_in"))
        await node.next()
        node.send(request(b"N1.oven", b"N7.someone", "get_parameters",
                          {"parameters": ["temperature"]}))
        reply = await node.next()
        self.assertIn(b"-32090", reply[-1])  # not signed in


class CurveTests(LabMixin, TestCase):
    """CURVE: real pyleco with the server key talks to the lab; without it, refused."""

    timeout = 60

    def keys(self) -> tuple[str, str]:
        directory = self.mktemp()
        os.makedirs(directory)
        public, secret = zmq.auth.create_certificates(directory, "lab")
        return os.path.abspath(public), os.path.abspath(secret)

    async def test_pyleco_with_and_without_key(self) -> None:
        """pyleco's Communicator with the server's public key signs in and calls our
        actor; a plain one is refused and leaves no trace in the Coordinator or the
        registry."""
        public, secret = self.keys()
        coordinator, registry = self.lab(curve=CurveConfig.load(secret))
        await self.signed_in(coordinator, "oven", "stage")
        good = spawn(self, "pyleco_driver.py", "client", str(coordinator.port), "keyed", "2.0",
                     public)
        first = await good.line()
        self.assertIn('"ok"', first)
        got = await good.command(op="director", actor="N1.oven", call="get_parameters",
                                 args=[["temperature"]])
        self.assertEqual(got, {"ok": {"temperature": 20.0}})
        bad = spawn(self, "pyleco_driver.py", "client", str(coordinator.port), "plain", "1.0")
        first = await bad.line()
        self.assertIn('"error"', first)
        self.assertNotIn("plain", coordinator.local_names())
        self.assertEqual(sorted(registry.names()), ["oven", "stage"])
        self.assertEqual(sorted(coordinator.local_names()), ["keyed", "oven", "stage"])

    async def test_our_component_without_key_times_out(self) -> None:
        """Our own ZeroMQ Component without CURVE cannot sign in to a CURVE Coordinator."""
        _public, secret = self.keys()
        coordinator, _ = self.lab(curve=CurveConfig.load(secret))
        from twisted_lab.protocols.leco.component import Component
        component = Component("plain", coordinator.endpoint, reactor, timeout=0.5)
        component.startService()
        self.addCleanup(component.stopService)
        await self.assertFailure(component.ask("oven", "describe"), DeviceTimeout)
        self.assertNotIn("plain", coordinator.local_names())


class PylecoAllowListTests(LabMixin, TestCase):
    """Real pyleco outside the allow-list."""

    timeout = 60

    async def test_pyleco_refused(self) -> None:
        """pyleco's Communicator from a network not in C{allow} cannot sign in and
        leaves no trace; the refusal is counted by the ZAP handler."""
        coordinator, registry = self.lab(AccessPolicy.build(["10.0.0.0/8"]))
        await self.signed_in(coordinator, "oven", "stage")
        proc = spawn(self, "pyleco_driver.py", "client", str(coordinator.port), "outsider",
                     "1.0")
        self.assertIn('"error"', await proc.line())
        self.assertEqual(sorted(coordinator.local_names()), ["oven", "stage"])
        self.assertEqual(sorted(registry.names()), ["oven", "stage"])
