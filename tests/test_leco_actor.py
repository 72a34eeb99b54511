# -*- test-case-name: tests.test_leco_actor -*-
"""
Our actors (registry devices as LECO Components), our Director's remote
device, and the C{[leco]} plugin, over loopback with our Coordinator.
"""
from __future__ import annotations

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from tests.test_leco_coordinator import CoordinatorMixin, sleep
from twisted_lab.errors import (DeviceOffline, InvalidValue, LeaseConflict, ReadOnly,
                                UnknownParameter)
from twisted_lab.interfaces import IDevice, IProtocolPlugin
from twisted_lab.leases import Owner
from twisted_lab.options import validate
from twisted_lab.protocols.leco.export import DeviceActor
from twisted_lab.protocols.leco.imports import RemoteActorDevice
from twisted_lab.protocols.leco.plugin import plugin
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeActuator, FakeDevice


def lab() -> DeviceRegistry:
    registry = DeviceRegistry(reactor)
    registry.register(FakeDevice("oven", {"temperature": 20.0, "serial": "X1"},
                                 actions={"double": lambda x: 2 * x}, readonly=["serial"]))
    registry.register(FakeActuator("stage"))
    return registry


class ActorTests(CoordinatorMixin, TestCase):
    """DeviceActor maps pyleco's actor methods onto the device model."""

    timeout = 20

    async def setUp_actor(self) -> tuple[DeviceRegistry, object]:
        coordinator = self.start_coordinator()
        registry = lab()
        actor = DeviceActor(registry, "oven", coordinator.endpoint, reactor)
        actor.startService()
        self.addCleanup(actor.stopService)
        await actor.when_signed_in()
        stage = DeviceActor(registry, "stage", coordinator.endpoint, reactor)
        stage.startService()
        self.addCleanup(stage.stopService)
        await stage.when_signed_in()
        return registry, await self.component("client", coordinator)

    async def test_get_set_call(self) -> None:
        """get_parameters, set_parameters and call_action reach the device."""
        registry, client = await self.setUp_actor()
        self.assertEqual(await client.ask("oven", "get_parameters",
                                          {"parameters": ["temperature", "serial"]}),
                         ({"temperature": 20.0, "serial": "X1"}, []))
        await client.ask("oven", "set_parameters", {"parameters": {"temperature": 30}})
        self.assertEqual(await registry.lookup("oven").get("temperature"), 30.0)
        self.assertEqual(await client.ask("oven", "call_action",
                                          {"action": "double", "args": [4]}), (8, []))
        self.assertEqual(await client.ask("stage", "call_action",
                                          {"action": "move_abs", "kwargs": {"position": 2}}),
                         (2.0, []))

    async def test_errors(self) -> None:
        """Unknown parameters, read-only, invalid values, wrong params come back typed."""
        registry, client = await self.setUp_actor()
        await self.assertFailure(client.ask("oven", "get_parameters", {"parameters": ["x"]}),
                                 UnknownParameter)
        await self.assertFailure(client.ask("oven", "set_parameters",
                                            {"parameters": {"serial": "Y"}}), ReadOnly)
        await self.assertFailure(client.ask("oven", "set_parameters",
                                            {"parameters": {"temperature": "hot"}}),
                                 InvalidValue)
        await self.assertFailure(client.ask("oven", "get_parameters", {"bogus": 1}),
                                 InvalidValue)

    async def test_lease_holds(self) -> None:
        """A lease taken through another protocol refuses LECO writes (-32050)."""
        registry, client = await self.setUp_actor()
        registry.acquire(Owner("plesty", "peer"), ["oven"])
        e = await self.assertFailure(client.ask("oven", "set_parameters",
                                                {"parameters": {"temperature": 1}}),
                                     LeaseConflict)
        self.assertEqual(e.rpc_code, -32050)
        self.assertEqual(await client.ask("oven", "get_parameters",
                                          {"parameters": ["temperature"]}),
                         ({"temperature": 20.0}, []))

    async def test_device_registered_later(self) -> None:
        """The device is looked up at call time: unknown first, then served."""
        coordinator = self.start_coordinator()
        registry = DeviceRegistry(reactor)
        actor = DeviceActor(registry, "late", coordinator.endpoint, reactor)
        actor.startService()
        self.addCleanup(actor.stopService)
        client = await self.component("client", coordinator)
        await actor.when_signed_in()
        await self.assertFailure(client.ask("late", "get_parameters", {"parameters": ["v"]}),
                                 Exception)
        registry.register(FakeDevice("late", {"v": 1}))
        self.assertEqual(await client.ask("late", "get_parameters", {"parameters": ["v"]}),
                         ({"v": 1}, []))


class DirectorTests(CoordinatorMixin, TestCase):
    """RemoteActorDevice drives one of our actors and follows its presence."""

    timeout = 20

    async def test_remote_device(self) -> None:
        """Reads, writes, calls; offline when the actor signs out; back when it returns."""
        coordinator = self.start_coordinator()
        registry = lab()
        actor = DeviceActor(registry, "oven", coordinator.endpoint, reactor)
        actor.startService()
        await actor.when_signed_in()
        me = await self.component("director", coordinator)
        device = RemoteActorDevice("remote_oven", "N1.oven", me, ["temperature"], ["double"],
                                   poll_interval=0.1)
        verifyObject(IDevice, device)
        device.start_polling()
        self.addCleanup(device.stop_polling)
        self.assertEqual(await device.get("temperature"), 20.0)
        self.assertEqual(await device.set("temperature", 21.0), 21.0)
        self.assertEqual(await device.call("double", 5), 10)
        await actor.stopService()
        await sleep(0.4)
        self.assertFalse(device.online)
        await self.assertFailure(device.get("temperature"), DeviceOffline)
        actor.startService()
        self.addCleanup(actor.stopService)
        await sleep(0.4)
        self.assertTrue(device.online)
        self.assertEqual(await device.get("temperature"), 21.0)


class PluginTests(SynchronousTestCase):
    """The [leco] plugin: schema, default section, service tree."""

    def test_provides(self) -> None:
        """The plugin provides IProtocolPlugin."""
        verifyObject(IProtocolPlugin, plugin)

    def test_default_section(self) -> None:
        """The simulated lab: Coordinator on 127.0.0.1:12300, namespace lab, all devices."""
        names = ["stage", "powermeter", "spectrometer", "camera", "la4"]
        section = validate(plugin.options, plugin.default_section(names))
        self.assertEqual((section["host"], section["port"], section["namespace"],
                          section["export"]), ("127.0.0.1", 12300, "lab", names))
        service = plugin.make_service(DeviceRegistry(), section, reactor)
        children = sorted(s.name for s in service)
        self.assertIn("coordinator", children)
        self.assertIn("actor-stage", children)
        self.assertIn("data-proxy", children)

    def test_advertise(self) -> None:
        """
        The C{advertise} key: by default the bind address when it is a
        specific one, the host name when bound to every interface (nothing
        is bound here: the computed address is read without starting), and
        the configured name, with the port, when given.
        """
        import socket

        def advertised(**keys: object) -> str:
            section = validate(plugin.options, {"export": [], "data_proxy": False, **keys})
            coordinator = plugin.make_service(DeviceRegistry(), section, reactor) \
                .getServiceNamed("coordinator")
            return coordinator.nodes()["lab"]  # type: ignore[no-any-return]

        self.assertEqual(advertised(), "127.0.0.1:12300")
        self.assertEqual(advertised(host="0.0.0.0"), f"{socket.gethostname()}:12300")
        self.assertEqual(advertised(host="*", port=5000), f"{socket.gethostname()}:5000")
        self.assertEqual(advertised(host="0.0.0.0", advertise="labpc.example.org"),
                         "labpc.example.org:12300")
        self.assertEqual(advertised(advertise="gw:4000"), "gw:4000")

    def test_remote_kinds(self) -> None:
        """Remote actors validate their kind."""
        from twisted_lab.errors import ConfigError
        self.assertRaises(ConfigError, validate, plugin.options,
                          {"remote": [{"name": "x", "kind": "other"}]})
        section = validate(plugin.options, {"remote": [{"name": "x"}], "coordinator": False})
        service = plugin.make_service(DeviceRegistry(), section, reactor)
        self.assertIn("director", [s.name for s in service])


class LiveSectionTests(TestCase):
    """A whole [leco] section on free ports, running on the real reactor."""

    timeout = 20

    async def test_every_port_zero(self) -> None:
        """
        Ports 0: the Coordinator and the proxy take free ports, the publisher
        reaches the proxy in memory (its inproc endpoint), and a subscriber
        gets a parameter change under the actor's full name; a ZeroMQ client
        calls the hub actor.
        """
        import json

        import zmq

        from twisted_lab.protocols.leco.component import Component
        from twisted_lab.protocols.zmqutil import open_connection

        registry = lab()
        section = validate(plugin.options, {"port": 0, "namespace": "N7", "export": ["oven"],
                                            "data_publish_port": 0,
                                            "data_subscribe_port": 0})
        service = plugin.make_service(registry, section, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        coordinator = service.getServiceNamed("coordinator")
        proxy = service.getServiceNamed("data-proxy")
        self.assertNotIn(":0", proxy.xsub_endpoint)
        self.assertNotIn(":0", proxy.xpub_endpoint)
        publisher = service.getServiceNamed("data-publisher")
        self.assertEqual(publisher.address(), proxy.inproc_endpoint)
        self.assertTrue(proxy.inproc_endpoint.startswith("inproc://"))
        await service.getServiceNamed("actor-oven").when_signed_in()

        received: list[list[bytes]] = []
        subscriber = open_connection(reactor, zmq.SUB, received.append)
        self.addCleanup(subscriber.close)
        subscriber.setsockopt(zmq.SUBSCRIBE, b"N7.oven")
        subscriber.connect(proxy.xpub_endpoint)  # type: ignore[arg-type]
        client = Component("client", coordinator.endpoint, reactor)
        client.startService()
        self.addCleanup(client.stopService)
        await client.when_signed_in()
        # a subscription takes a moment to reach the publisher: write until one arrives
        for value in range(100):
            await client.ask("oven", "set_parameters", {"parameters": {"temperature": value}})
            if received:
                break
            await sleep(0.05)
        self.assertTrue(received, "no data message through the proxy")
        topic, _, payload = received[0][:3]
        self.assertEqual(topic, b"N7.oven")
        self.assertIn("temperature", json.loads(payload))
