# -*- test-case-name: tests.test_leco_dashboard -*-
"""
The lab as a PyMoDAQ 5.3 dashboard (L{twisted_lab.protocols.leco.dashboard}):
its state file, and PyMoDAQ 5's own listener asking the dashboard methods
(pymodaq 5.3.8, the pymodaq5 peer venv; the test fails, never skips, when the
peer is missing).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.test_leco_coordinator import CoordinatorMixin
from tests.test_leco_pymodaq_interop import run_pymodaq5
from twisted_lab.devices.simulated import SimulatedCamera, SimulatedStage
from twisted_lab.errors import ConfigError
from twisted_lab.protocols.leco.export import DeviceActor
from twisted_lab.protocols.leco.dashboard import DashboardComponent, StateStore
from twisted_lab.registry import DeviceRegistry


class StateStoreTests(SynchronousTestCase):
    """States are kept in a JSON file, written atomically."""

    def test_round_trip(self) -> None:
        """Saved states are in the file, read back by a new store."""
        path = Path(self.mktemp()) / "states.json"
        store = StateStore(path)
        store.save("fast", {"stage": {"speed": 20.0}})
        store.save("slow", {"stage": {"speed": 1.0}})
        self.assertEqual(StateStore(path).states, store.states)
        self.assertEqual(StateStore(path).names(), ["fast", "slow"])
        self.assertTrue(store.delete("slow"))
        self.assertFalse(store.delete("slow"))
        self.assertEqual(StateStore(path).names(), ["fast"])

    def test_atomic(self) -> None:
        """
        A write goes to a temporary file that is renamed over the old one: a
        write that fails half-way leaves the old file whole and no temporary
        file behind.
        """
        path = Path(self.mktemp()) / "states.json"
        store = StateStore(path)
        store.save("a", {"stage": {"speed": 2.0}})
        before = path.read_bytes()
        inode = os.stat(path).st_ino
        store.save("b", {"stage": {"speed": 3.0}})
        self.assertNotEqual(os.stat(path).st_ino, inode)  # a new file, renamed in place

        class Boom(Exception):
            pass

        real_fsync = os.fsync

        def failing(fd: int) -> None:
            raise Boom()

        before = path.read_bytes()
        os.fsync = failing  # type: ignore[assignment]
        try:
            self.assertRaises(Boom, store.save, "c", {"stage": {"speed": 4.0}})
        finally:
            os.fsync = real_fsync  # type: ignore[assignment]
        self.assertEqual(path.read_bytes(), before)
        self.assertEqual(sorted(p.name for p in path.parent.iterdir()), ["states.json"])

    def test_bad_file(self) -> None:
        """A file that is not a states file is a clear ConfigError."""
        path = Path(self.mktemp())
        path.write_text("[1, 2]")
        self.assertRaises(ConfigError, StateStore, path)
        path.write_text("{not json")
        self.assertRaises(ConfigError, StateStore, path)

    def test_memory(self) -> None:
        """Without a path, states live in memory."""
        store = StateStore(None)
        store.save("x", {})
        self.assertEqual(store.names(), ["x"])


class DashboardInteropTests(CoordinatorMixin, TestCase):
    """PyMoDAQ 5's listener asks our dashboard for devices, states and experiments."""

    timeout = 180

    async def test_pymodaq_dashboard_methods(self) -> None:
        """
        get_devices lists our actors by kind; get_states lists the saved
        state; apply_state writes it back, changing two devices' settings;
        an unknown state answers done=false; experiments are an empty list
        and applying one answers done=false.
        """
        coordinator = self.start_coordinator("N1")
        registry = DeviceRegistry(reactor)
        stage = SimulatedStage("stage", reactor, speed=20.0)
        camera = SimulatedCamera("camera", reactor, width=16, height=16)
        registry.register(stage)
        registry.register(camera)
        for name in ("stage", "camera"):
            actor = DeviceActor(registry, name, coordinator.endpoint, reactor)
            actor.startService()
            self.addCleanup(actor.stopService)
        path = Path(self.mktemp()) / "lab-states.json"
        dashboard = DashboardComponent(registry, coordinator.endpoint, reactor,
                                       StateStore(path), {"stage": "stage", "camera": "camera"})
        dashboard.startService()
        self.addCleanup(dashboard.stopService)
        await dashboard.when_signed_in()
        await camera.set("exposure", 0.05)
        me = await self.component("me", coordinator)
        self.assertEqual(await me.ask("dashboard", "save_state", {"state": "fast"}),
                         (["fast"], []))
        saved = json.loads(path.read_text())["states"]["fast"]
        self.assertEqual((saved["stage"]["speed"], saved["camera"]["exposure"]), (20.0, 0.05))
        await stage.set("speed", 1.0)
        await camera.set("exposure", 0.5)
        peer = run_pymodaq5(self, "pymodaq5_dashboard.py", str(coordinator.port), "fast")
        code = await peer.ended
        output = peer.out.decode()
        self.assertEqual(code, 0, output + peer.err.decode()[-4000:])
        for label in ("devices", "states", "apply_state", "apply_unknown_state", "experiments",
                      "apply_experiment"):
            self.assertIn(f"CHECK {label} ok", output)
        self.assertIn("DONE", output)
        self.assertEqual(await stage.get("speed"), 20.0)
        self.assertEqual(await camera.get("exposure"), 0.05)
