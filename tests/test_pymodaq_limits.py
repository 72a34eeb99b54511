# -*- test-case-name: tests.test_pymodaq_limits -*-
"""
What a PyMoDAQ client can make the lab hold is bounded and given back:
C{Info} names cost O(1) each and are capped, imported devices are capped and
unregistered after their client left, connections are capped and must
complete their handshake in time.
"""
from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.protocols.guard import ConnectionGuard, Refused
from twisted_lab.protocols.pymodaq import remote
from twisted_lab.protocols.pymodaq.remote import INFO_PREFIX, MAX_INFOS, RemoteGrabber
from twisted_lab.protocols.pymodaq.imports import INFOS_GRACE, PyMoDAQServerFactory
from twisted_lab.registry import DeviceRegistry
from tests.test_pymodaq_server import GRABBER_XML, Client, msg


class InfoNamesTests(SynchronousTestCase):
    """Many C{Info} names: one description build, a cap, nothing lost below it."""

    def test_description_built_once_for_many_names(self) -> None:
        """
        2,000 new C{Info} names build the description once, when it is next
        read, not once per name (the quadratic rebuild the issue measured).
        """
        device = RemoteGrabber("cam", Clock())
        builds: list[int] = []
        original = device._build_description

        def counting(*args: Any) -> Any:
            builds.append(len(args[0]))
            return original(*args)

        device._build_description = counting  # type: ignore[method-assign]
        for i in range(1000):
            device.update_info(f"n{i}", "v")
        self.assertEqual(builds, [])
        parameters = device.description.parameters
        self.assertEqual(len(builds), 1)
        self.assertIn(INFO_PREFIX + "n999", parameters)
        self.assertEqual(device.description.parameters, parameters)
        self.assertEqual(len(builds), 1)
        self.assertEqual(self.successResultOf(device.get(INFO_PREFIX + "n5")), "v")

    def test_cap(self) -> None:
        """Past L{MAX_INFOS} names a new name is refused; known names still update."""
        self.patch(remote, "MAX_INFOS", 10)
        device = RemoteGrabber("cam", Clock())
        self.assertTrue(all(device.update_info(f"n{i}", "v") for i in range(10)))
        self.assertFalse(device.update_info("n10", "v"))
        self.assertTrue(device.update_info("n3", "w"))
        self.assertNotIn(INFO_PREFIX + "n10", device.description.parameters)
        self.assertEqual(self.successResultOf(device.get(INFO_PREFIX + "n3")), "w")
        self.assertEqual(MAX_INFOS, 1024)

    def test_cap_over_the_wire_logged_rate_limited(self) -> None:
        """A client flooding new names past the cap keeps its connection; few lines logged."""
        self.patch(remote, "MAX_INFOS", 5)
        clock = Clock()
        factory = PyMoDAQServerFactory(DeviceRegistry(clock), clock)
        client = Client(factory, 5001)
        client.send(msg("GRABBER") + msg("Infos", GRABBER_XML))
        with capturedLogs() as events:
            client.send(b"".join(msg("Info", f"n{i}", "v") for i in range(500)))
        self.assertFalse(client.transport.disconnecting)
        self.assertEqual(len(client.proto.device._infos), 5)
        self.assertLessEqual(len(events), 6)
        clock.advance(10)
        factory.stop()


class SettingsSizeTests(SynchronousTestCase):
    """A settings tree over C{max_settings_size} is refused before it is parsed."""

    def test_oversize_infos_closes(self) -> None:
        """The connection closes with the reason logged; nothing is registered."""
        clock = Clock()
        registry = DeviceRegistry(clock)
        factory = PyMoDAQServerFactory(registry, clock, max_settings=1000)
        client = Client(factory, 5001)
        big = GRABBER_XML.replace(">cam<", ">" + "x" * 2000 + "<")
        with capturedLogs() as events:
            client.send(msg("GRABBER") + msg("Infos", big))
        self.assertTrue(client.transport.disconnecting)
        self.assertIn("exceeds max_settings_size (1000)",
                      " ".join(str(e.get("reason", "")) for e in events))
        self.assertEqual(registry.names(), [])
        self.assertEqual(len(factory.connections), 1)  # until the transport reports it gone
        client.close()
        factory.stop()

    def test_small_infos_parsed(self) -> None:
        """A tree under the limit is mirrored as usual."""
        clock = Clock()
        factory = PyMoDAQServerFactory(DeviceRegistry(clock), clock, max_settings=10000)
        client = Client(factory, 5001)
        client.send(msg("GRABBER") + msg("Infos", GRABBER_XML))
        self.assertFalse(client.transport.disconnecting)
        self.assertIn("exposure", client.proto.device.description.parameters)
        client.close()
        factory.stop()


class DeviceBoundTests(SynchronousTestCase):
    """Imported devices: expired after their client left; capped."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.registry = DeviceRegistry(self.clock)
        self.factory = PyMoDAQServerFactory(self.registry, self.clock, max_clients=3,
                                            forget_after=60.0)

    def grabber(self, title: str, port: int) -> Client:
        client = Client(self.factory, port)
        client.send(msg("GRABBER") + msg("Infos", GRABBER_XML.replace(">cam<", f">{title}<")))
        return client

    def test_offline_device_forgotten(self) -> None:
        """
        A client that leaves leaves an offline device that is unregistered,
        and its settings dropped, C{forget_after} seconds later.
        """
        client = self.grabber("cam", 5001)
        name = client.proto.device.name
        device = client.proto.device
        client.close()
        self.assertIn(name, self.registry.names())
        self.clock.advance(59)
        self.assertIn(name, self.registry.names())
        self.clock.advance(1)
        self.assertNotIn(name, self.registry.names())
        self.assertEqual(device._settings, {})
        self.assertEqual(self.factory.devices, {})

    def test_reconnect_keeps_device(self) -> None:
        """A client back within C{forget_after} gets its device, which then stays."""
        client = self.grabber("cam", 5001)
        device = client.proto.device
        client.close()
        self.clock.advance(30)
        again = self.grabber("cam", 5002)
        self.assertIs(again.proto.device, device)
        self.clock.advance(3600)
        self.assertIn(device.name, self.registry.names())

    def test_many_titles_bounded(self) -> None:
        """
        300 connections with distinct titles, one after the other, leave
        at most C{max_clients} devices: the oldest offline one makes room.
        """
        for i in range(300):
            self.grabber(f"t{i}", 6000 + i).close()
        self.assertEqual(len(self.registry.names()), 3)
        self.assertEqual(sorted(self.factory.devices),
                         ["t297_127_0_0_1", "t298_127_0_0_1", "t299_127_0_0_1"])

    def test_full_of_online_clients_refused(self) -> None:
        """With C{max_clients} clients online, another is closed with a reason."""
        clients = [self.grabber(f"t{i}", 5001 + i) for i in range(3)]
        with capturedLogs() as events:
            extra = self.grabber("t9", 5009)
        self.assertTrue(extra.transport.disconnecting)
        self.assertIn("max_clients", " ".join(str(e.get("reason", "")) for e in events))
        self.assertEqual(len(self.registry.names()), 3)
        self.assertTrue(all(c.proto.device.online for c in clients))

    def tearDown(self) -> None:
        self.factory.stop()


class GuardTests(SynchronousTestCase):
    """Connections: capped, handshake deadline."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.factory = PyMoDAQServerFactory(
            DeviceRegistry(self.clock), self.clock,
            guard=ConnectionGuard(self.clock, "PyMoDAQ", max_connections=4, max_per_host=3,
                                  handshake_timeout=5.0))

    def test_handshake_deadline(self) -> None:
        """A client silent for C{handshake_timeout} is closed; one that sent its type is not."""
        silent = Client(self.factory, 5001)
        talker = Client(self.factory, 5002)
        talker.send(msg("GRABBER"))
        self.clock.advance(INFOS_GRACE)
        self.clock.advance(5)
        self.assertTrue(silent.transport.disconnecting)
        self.assertFalse(talker.transport.disconnecting)
        self.assertEqual(self.factory.guard.expired, 1)
        silent.close()
        self.assertEqual(self.factory.guard.count, 1)

    def test_caps(self) -> None:
        """Over C{max_per_host} (and C{max_connections}) a connection is refused at once."""
        clients = [Client(self.factory, 5001 + i) for i in range(3)]
        refused = self.factory.buildProtocol(clients[0].transport.getPeer())
        self.assertIsInstance(refused, Refused)
        clients[0].close()
        self.assertNotIsInstance(self.factory.buildProtocol(clients[0].transport.getPeer()),
                                 Refused)
        self.assertEqual(self.factory.guard.refused, 1)

    def tearDown(self) -> None:
        self.factory.stop()
        for call in self.clock.getDelayedCalls():
            call.cancel()
