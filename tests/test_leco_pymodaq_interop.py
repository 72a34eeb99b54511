# -*- test-case-name: tests.test_leco_pymodaq_interop -*-
"""
Interoperability of our PyMoDAQ-over-LECO code with the real PyMoDAQ 5.3.8,
through a real pyleco Coordinator bound to 127.0.0.1 on a free port:

  - PyMoDAQ's own C{ActuatorDirector}/C{DetectorDirector} drive our actors and
    decode our serializall frames into real C{DataActuator}/C{DataToExport}
    (tests/peers/pymodaq5_director.py checks values, units, axes, shapes);
  - our director drives PyMoDAQ 5 modules (the mock actuator and detector of
    pymodaq_plugins_mock in a headless C{DAQ_Move}/C{DAQ_Viewer}) connected to
    LECO through their C{ActorListener} (tests/peers/pymodaq5_actor.py).

These tests fail (never skip) when the peer venvs are missing.
"""
from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from twisted_lab.data import Axis, Export, Signal
from twisted_lab.description import Parameter
from twisted_lab.devices.base import BaseDetector
from twisted_lab.protocols.leco.component import Component
from twisted_lab.protocols.leco.pymodaq_actor import register_pymodaq_methods
from twisted_lab.protocols.leco.pymodaq_director import make_remote
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeActuator
from tests.peers import peer_env, peer_python
from tests.peers.pyleco_process import spawn

HERE = pathlib.Path(__file__).resolve().parent / "peers"


class SpectroDetector(BaseDetector):
    """A detector with one setting and a 1D + 2D export."""

    dims = ("Data1D", "Data2D")

    def __init__(self, name: str = "spectro") -> None:
        super().__init__(name, [Parameter("exposure", "float", units="s", minimum=0.0,
                                          default=0.1)])

    def _grab(self) -> Export:
        spectrum = Signal("spectrum", [np.linspace(0, 1, 128)], units="counts",
                          axes=[Axis("wavelength", "nm", np.linspace(400, 800, 128), 0)],
                          kind="DataFromPlugins", extra={"do_plot": True, "do_save": False})
        frame = Signal("frame", [np.arange(16 * 32, dtype=np.uint16).reshape(16, 32)],
                       labels=["image"], kind="DataFromPlugins",
                       axes=[Axis("y", "px", np.arange(16.0), 0),
                             Axis("x", "px", np.arange(32.0), 1)])
        return Export(self.name, [spectrum, frame])


class RunToEnd(ProcessProtocol):
    """Collect a peer script's output and exit status."""

    def __init__(self) -> None:
        self.out = b""
        self.err = b""
        self.ended: Deferred[int] = Deferred()
        self.done = False

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Any) -> None:
        self.done = True
        self.ended.callback(reason.value.exitCode)


def run_pymodaq5(test: TestCase, script: str, *args: str) -> RunToEnd:
    """Run C{tests/peers/<script>} in the pymodaq5 venv; killed at cleanup if still running."""
    python = peer_python("pymodaq5")  # PeerMissing: the test fails
    proto = RunToEnd()
    process = reactor.spawnProcess(proto, str(python), [str(python), str(HERE / script), *args],
                                   env=peer_env("pymodaq5"), path=str(HERE))

    def kill() -> Deferred[int] | None:
        if not proto.done:
            try:
                process.signalProcess("KILL")
            except ProcessExitedAlready:
                pass
            return proto.ended
        return None

    test.addCleanup(kill)
    return proto


class _Interop(TestCase):
    timeout = 120

    async def coordinator(self) -> int:
        peer = spawn(self, "pyleco_coordinator.py", "N1")
        line = await peer.line(60)
        self.assertTrue(line.startswith("PORT "), line)
        return int(line.split()[1])

    async def component(self, name: str, port: int) -> Component:
        component = Component(name, f"tcp://127.0.0.1:{port}", reactor, timeout=2.0)
        component.startService()
        self.addCleanup(component.stopService)
        await component.when_signed_in().addTimeout(10, reactor)
        return component


class PyMoDAQDirectsUsTests(_Interop):
    async def test_pymodaq_directors_drive_our_actors(self) -> None:
        """PyMoDAQ 5's ActuatorDirector and DetectorDirector move, read, snap, grab, get and
        set settings on our actors; every callback frame decodes in PyMoDAQ to the right
        DataActuator / DataToExport / ParameterWithPath (checked peer-side)."""
        port = await self.coordinator()
        registry = DeviceRegistry(reactor)
        stage = FakeActuator("stage", units="mm")
        spectro = SpectroDetector()
        registry.register(stage)
        registry.register(spectro)
        for name in ("stage", "spectro"):
            register_pymodaq_methods(await self.component(name, port), registry, name)
        peer = run_pymodaq5(self, "pymodaq5_director.py", str(port), "stage", "spectro")
        code = await peer.ended
        output = peer.out.decode()
        self.assertEqual(code, 0, output + peer.err.decode()[-3000:])
        self.assertIn("DONE", output)
        self.assertNotIn("FAILED", output)
        self.assertGreaterEqual(output.count(" ok"), 30)
        self.assertEqual(stage.current, 0.0)
        self.assertEqual(self.successResultOf(spectro.get("exposure")), 0.5)


class WeDirectPyMoDAQTests(_Interop):
    async def test_our_director_drives_pymodaq_modules(self) -> None:
        """Our remote devices drive PyMoDAQ 5's mock actuator and detector behind their
        ActorListener: moves (absolute, relative) complete with set_move_done, position() reads send_position,
        grab() returns the DataToExport of set_data, settings arrive as XML."""
        port = await self.coordinator()
        peer = spawn_actor(self, port)
        await peer.ready
        registry = DeviceRegistry(reactor)
        component = await self.component("twisted_director", port)
        actuator = make_remote(component, registry, "mock_stage", "pmd5_move", "pymodaq_actuator",
                               reactor, timeout=2.0)
        detector = make_remote(component, registry, "mock_camera", "pmd5_viewer",
                               "pymodaq_detector", reactor, timeout=2.0)
        self.addCleanup(actuator.stop_polling)
        self.addCleanup(detector.stop_polling)
        for _ in range(50):
            if actuator.settings_xml and detector.settings_xml:
                break
            await deferLater(reactor, 0.1)
        self.assertIsNotNone(actuator.settings_xml)
        self.assertIsNotNone(detector.settings_xml)
        # The Mock actuator's first axis is in µm with a precision (epsilon) of 1 µm: it
        # reports move_done once within 1 µm of the target (first-order, tau 0.5 s).
        reached = await actuator.move_abs(10.0)
        self.assertLessEqual(abs(reached - 10.0), 1.0)
        self.assertEqual(actuator.units, "\u00b5m")
        here = await actuator.position()
        self.assertLessEqual(abs(here - 10.0), 1.0)
        reached = await actuator.move_rel(-5.0)
        self.assertLessEqual(abs(reached - (here - 5.0)), 1.0)
        # (DAQ_Move 5.3.8 sends no set_move_done after a LECO move_home: not tested here)
        export = await detector.grab()
        self.assertIsInstance(export, Export)
        self.assertGreaterEqual(len(export), 1)
        self.assertIn(export[0].kind, ("DataFromPlugins", "DataWithAxes", "DataRaw"))
        self.assertTrue(all(isinstance(s.data[0], np.ndarray) for s in export))
        peer.write_line("quit")


class ActorPeer(RunToEnd):
    """The PyMoDAQ module peer: fires C{ready} on its READY line."""

    def __init__(self) -> None:
        super().__init__()
        self.ready: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        super().outReceived(data)
        if b"READY" in self.out and not self.ready.called:
            self.ready.callback(None)

    def processEnded(self, reason: Any) -> None:
        if not self.ready.called:
            self.ready.errback(RuntimeError("PyMoDAQ module peer exited: "
                                            + self.out.decode()[-2000:]
                                            + self.err.decode()[-3000:]))
        super().processEnded(reason)

    def write_line(self, text: str) -> None:
        if not self.done:
            self.transport.write(text.encode() + b"\n")  # type: ignore[union-attr]


def spawn_actor(test: TestCase, port: int) -> ActorPeer:
    python = peer_python("pymodaq5")
    proto = ActorPeer()
    process = reactor.spawnProcess(
        proto, str(python), [str(python), str(HERE / "pymodaq5_actor.py"), str(port)],
        env=peer_env("pymodaq5"), path=str(HERE))

    def kill() -> Deferred[int] | None:
        if not proto.done:
            try:
                process.signalProcess("KILL")
            except ProcessExitedAlready:
                pass
            return proto.ended
        return None

    test.addCleanup(kill)
    proto.ready.addTimeout(90, reactor)
    return proto
