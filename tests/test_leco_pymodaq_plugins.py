# -*- test-case-name: tests.test_leco_pymodaq_plugins -*-
"""
Our LECO actors as PyMoDAQ 5 users meet them: the real C{DAQ_Move_LECODirector}
and 2D C{DAQ_2DViewer_LECODirector} plugins of pymodaq_plugins_mock 5.3.0
(pymodaq 5.3.8, the pymodaq5 peer venv), headless, direct our simulated
stage and camera through our Coordinator: once as their control module's
worker runs them (C{tests/peers/pymodaq5_plugins.py}, every callback checked),
once inside PyMoDAQ's own C{DAQ_Move} and C{DAQ_Viewer}
(C{tests/peers/pymodaq5_modules.py}).  The checks on PyMoDAQ's side run in
the peer scripts; these tests check ours.  They fail (never skip) when the
peer is missing.
"""
from __future__ import annotations

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from tests.test_leco_coordinator import CoordinatorMixin
from tests.test_leco_pymodaq_interop import run_pymodaq5
from twisted_lab.devices.simulated import SimulatedCamera, SimulatedStage
from twisted_lab.protocols.leco.export import DeviceActor
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

    async def test_inside_control_modules(self) -> None:
        """
        Inside PyMoDAQ's own C{DAQ_Move} and C{DAQ_Viewer} (actuator and 2D
        detector C{LECODirector}, configured in the module's settings):
        init succeeds, the module's units are the stage's, move_abs,
        move_rel and move_home report positions, a snap delivers the camera
        frame with its axes, and a setting changed in the module's tree
        reaches the device.
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
        peer = run_pymodaq5(self, "pymodaq5_modules.py", str(coordinator.port), "stage",
                            "camera")
        code = await peer.ended
        output = peer.out.decode()
        self.assertEqual(code, 0, output + peer.err.decode()[-4000:])
        self.assertIn("DONE", output)
        for label in ("module_ini_stage", "module_units", "module_move_abs", "module_move_rel",
                      "module_move_home", "module_ini_detector", "module_frame",
                      "module_axes"):
            self.assertIn(f"CHECK {label} ok", output)
        self.assertIn("SET speed 30.0", output)
        self.assertEqual(await stage.get("speed"), 30.0)
        self.assertEqual(await stage.position(), 0.0)
