# -*- test-case-name: tests.test_leco_pymodaq_plugins -*-
"""
Our LECO actors as PyMoDAQ 5 users meet them: the real C{DAQ_Move_LECODirector}
and 2D C{DAQ_2DViewer_LECODirector} plugins of pymodaq_plugins_mock 5.3.0
(pymodaq 5.3.8, the pymodaq5 peer venv), headless, direct our simulated
stage and camera through our Coordinator.  The checks on PyMoDAQ's side run
in the peer script (C{tests/peers/pymodaq5_plugins.py}); this test checks
ours.  It fails (never skips) when the peer is missing.
"""
from __future__ import annotations

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from tests.test_leco_coordinator import CoordinatorMixin
from tests.test_leco_pymodaq_interop import run_pymodaq5
from twisted_lab.devices.simulated import SimulatedCamera, SimulatedStage
from twisted_lab.protocols.leco.actor import DeviceActor
from twisted_lab.registry import DeviceRegistry

#: What the peer script checks, one C{CHECK <label> ok} line each.
CHECKS = ["ini_stage", "settings_tree", "units", "bounds", "set_units_sent", "move_abs",
          "move_rel", "move_home", "stop_motion", "get_actuator_value", "ini_detector",
          "detector_settings", "frame", "frame_shape", "axes"]


class DirectorPluginTests(CoordinatorMixin, TestCase):
    """PyMoDAQ 5's LECODirector plugins drive our actors like PyMoDAQ actors."""

    timeout = 240

    async def test_director_plugins(self) -> None:
        """
        C{ini_stage}/C{ini_detector} succeed; the director takes the stage's
        units (settings tree and C{set_units}); move_abs, move_rel,
        move_home and stop report positions; a grab delivers the camera
        frame with its axes; a setting changed through the director reaches
        the device.
        """
        coordinator = self.start_coordinator("N1")
        registry = DeviceRegistry(reactor)
        stage = SimulatedStage("stage", reactor, units="mm", speed=1000.0)
        camera = SimulatedCamera("camera", reactor, width=64, height=48)
        registry.register(stage)
        registry.register(camera)
        await camera.set("exposure", 0.01)
        for name in ("stage", "camera"):
            actor = DeviceActor(registry, name, coordinator.endpoint, reactor, pymodaq=True)
            actor.startService()
            self.addCleanup(actor.stopService)
            await actor.when_signed_in()
        peer = run_pymodaq5(self, "pymodaq5_plugins.py", str(coordinator.port), "stage",
                            "camera")
        code = await peer.ended
        output = peer.out.decode()
        self.assertEqual(code, 0, output + peer.err.decode()[-4000:])
        self.assertIn("DONE", output)
        for label in CHECKS:
            self.assertIn(f"CHECK {label} ok", output)
        self.assertIn("SET speed 25.0", output)
        self.assertEqual(await stage.get("speed"), 25.0)
        self.assertEqual(await stage.position(), 0.0)
