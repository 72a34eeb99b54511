# -*- test-case-name: tests.test_service -*-
"""
Tests for L{twisted_lab.service}: building, starting and stopping a lab.
"""
from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_lab.config import default_config, parse_config
from twisted_lab.errors import LabError
from twisted_lab.leases import Owner
from twisted_lab.registry import DeviceRegistry
from twisted_lab.service import LabService, build_service
from tests.test_discovery import add_third_party


class BuildServiceTests(SynchronousTestCase):
    """build_service() registers the devices and builds one child per protocol."""

    def setUp(self) -> None:
        add_third_party(self)
        self.clock = Clock()
        self.registry = DeviceRegistry(self.clock)
        self.config = parse_config({
            "devices": {"t1": {"type": "acme.thermometer", "kelvin": 4},
                        "h1": {"type": "acme.heater"}},
            "acme": {"port": 7001},
        }, "lab.toml")
        self.service = build_service(self.registry, self.config, self.clock)

    def test_tree(self) -> None:
        """The tree is lab → devices, then one named child per protocol section."""
        self.assertIsInstance(self.service, LabService)
        self.assertEqual([s.name for s in self.service], ["devices", "acme"])
        self.assertEqual(self.service.getServiceNamed("acme").section, {"port": 7001})
        self.assertIs(self.service.getServiceNamed("acme").registry, self.registry)

    def test_file_options_beside_the_config(self) -> None:
        """
        An option naming a file (C{*_file}) with a relative path is resolved
        next to the config file; an absolute one is kept; the LECO
        dashboard's states file is one.
        """
        import os

        config = parse_config({"leco": {"states_file": "states.json", "export": [],
                                        "data_proxy": False}}, "/srv/lab/lab.toml")
        leco = build_service(DeviceRegistry(self.clock), config, self.clock) \
            .getServiceNamed("leco")
        store = leco.getServiceNamed("dashboard").store
        self.assertEqual(str(store.path), os.path.join("/srv/lab", "states.json"))
        config = parse_config({"leco": {"states_file": "/var/lib/x.json", "export": [],
                                        "data_proxy": False}}, "/srv/lab/lab.toml")
        leco = build_service(DeviceRegistry(self.clock), config, self.clock) \
            .getServiceNamed("leco")
        self.assertEqual(str(leco.getServiceNamed("dashboard").store.path), "/var/lib/x.json")

    def test_devices_registered(self) -> None:
        """Every configured device is in the registry with its options applied."""
        self.assertEqual(self.registry.names(), ["t1", "h1"])
        self.assertEqual(self.successResultOf(self.registry.lookup("t1").get("temperature")), 4.0)

    def test_service_devices_start_and_stop(self) -> None:
        """A device that is a service starts and stops with the lab; others are not children."""
        heater = self.registry.lookup("h1")
        devices = self.service.getServiceNamed("devices")
        self.assertEqual([s.name for s in devices], ["h1"])
        self.service.startService()
        self.assertTrue(heater.running)
        self.successResultOf(self.service.stopService())
        self.assertFalse(heater.running)

    def test_stop_clears_leases(self) -> None:
        """Stopping the lab releases every lease and leaves no timer behind."""
        self.service.startService()
        self.registry.acquire(Owner("plesty", "c"), ["t1"], ttl=30)
        self.successResultOf(self.service.stopService())
        self.assertEqual(self.registry.leases.leases(), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_started_logged_once_reactor_runs(self) -> None:
        """
        "lab started" is logged once the reactor runs, not when the services
        start: under twistd that line means its signal handlers are in place
        (a SIGINT sent on seeing it stops the lab cleanly). A lab stopped
        before the reactor ran never says it started.
        """
        from twisted.internet.testing import MemoryReactorClock
        from twisted.logger import globalLogPublisher

        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)

        def started() -> list[str]:
            return [e["log_format"] for e in events
                    if e.get("log_format", "").startswith("lab started")]

        for stop_first in (False, True):
            del events[:]
            core = MemoryReactorClock()
            lab = LabService(DeviceRegistry(core), core)
            lab.startService()
            self.assertEqual(started(), [])
            if stop_first:
                self.successResultOf(lab.stopService())
            core.run()
            self.assertEqual(len(started()), 0 if stop_first else 1)

    def test_same_registry_twice_refused(self) -> None:
        """Building the same devices into one registry twice is refused (duplicate names)."""
        self.assertRaises(LabError, build_service, self.registry, self.config, self.clock)


class LiveLabTests(TestCase):
    """The built-in simulated lab on the real reactor: starts, serves, stops clean."""

    timeout = 60

    async def test_default_lab_start_stop(self) -> None:
        """build_service(default_config()) registers all five devices (la4 through its
        protocol), listens on every default loopback port, and stopping it closes
        every port and leaves nothing behind in the reactor (trial checks)."""
        from tests.test_lab_process import PORTS, connectable

        busy = [name for name, port in PORTS.items() if connectable(port)]
        self.assertEqual(busy, [], "default ports already in use: another lab is running")
        registry = DeviceRegistry(reactor)
        lab = build_service(registry, default_config(), reactor)
        lab.startService()
        try:
            la4 = await registry.when_registered("la4").addTimeout(10, reactor)
            for _ in range(100):
                if la4.online:
                    break
                await deferLater(reactor, 0.1)
            self.assertTrue(la4.online)
            self.assertEqual(sorted(registry.names()),
                             ["camera", "la4", "powermeter", "spectrometer", "stage"])
            for name, port in PORTS.items():
                self.assertTrue(connectable(port), name)
        finally:
            await lab.stopService()
        # ZeroMQ closes its sockets in its own I/O thread, a moment after close()
        for _ in range(50):
            still = [name for name, port in PORTS.items() if connectable(port)]
            if not still:
                break
            await deferLater(reactor, 0.1)
        self.assertEqual(still, [])
