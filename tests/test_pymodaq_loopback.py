# -*- test-case-name: tests.test_pymodaq_loopback -*-
"""
End-to-end over real loopback sockets: our client role exports registry
devices to our server role, which imports them into another registry.
"""
from __future__ import annotations


import numpy as np
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase

from twisted_lab.data import Export, Signal
from twisted_lab.protocols.pymodaq.export import PyMoDAQClientFactory, PyMoDAQExportService
from twisted_lab.protocols.pymodaq.imports import PyMoDAQServerFactory
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeActuator, FakeDetector
from tests.polling import until


class LoopbackTests(TestCase):
    """Both roles of ours, talking over 127.0.0.1."""

    timeout = 60

    async def setUp(self) -> None:
        self.local = DeviceRegistry(reactor)
        self.remote = DeviceRegistry(reactor)
        self.image = np.random.default_rng(0).random((2048, 2048))
        self.stage = FakeActuator("stage", units="mm")
        self.camera = FakeDetector("camera", Export("camera", [Signal(
            "camera", [self.image], units="counts", kind="DataFromPlugins")]))
        self.local.register(self.stage)
        self.local.register(self.camera)
        self.factory = PyMoDAQServerFactory(self.remote, reactor, call_timeout=10,
                                            rules=[{"name": "rstage", "type": "ACTUATOR"},
                                                   {"name": "rcamera", "type": "GRABBER"}])
        self.port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            self.factory)
        self.addCleanup(self.port.stopListening)
        self.addCleanup(self.factory.stop)
        self.endpoint = f"tcp:host=127.0.0.1:port={self.port.getHost().port}"
        self.services = [PyMoDAQExportService(reactor, self.endpoint,
                                              PyMoDAQClientFactory(self.local, name))
                         for name in ("stage", "camera")]
        for service in self.services:
            service.startService()
            self.addCleanup(service.stopService)
        await until(lambda: sorted(self.remote.names()) == ["rcamera", "rstage"])

    async def test_big_frame_and_moves(self) -> None:
        """A 2048×2048 float64 frame crosses intact; moves round-trip with units."""
        rcamera = await self.remote.get("rcamera")
        export = await rcamera.grab()
        np.testing.assert_array_equal(export[0].data[0], self.image)
        self.assertEqual(export[0].units, "counts")
        rstage = await self.remote.get("rstage")
        self.assertEqual(rstage.units, "mm")
        self.assertEqual(await rstage.move_abs(1.5), 1.5)
        self.assertEqual(await rstage.move_rel(0.5), 2.0)
        self.assertEqual(await rstage.position(), 2.0)
        self.assertEqual(self.stage.current, 2.0)

    async def test_concurrent_calls(self) -> None:
        """Calls to both imported devices at once each get their own reply."""
        rcamera = await self.remote.get("rcamera")
        rstage = await self.remote.get("rstage")
        from twisted.internet.defer import gatherResults
        grabs = [rcamera.grab() for _ in range(3)]
        moves = [rstage.move_abs(float(i)) for i in range(5)]
        done = await gatherResults(grabs + moves)
        self.assertEqual(done[3:], [0.0, 1.0, 2.0, 3.0, 4.0])
        for export in done[:3]:
            self.assertEqual(export[0].shape, (2048, 2048))

    async def test_quit_offline_and_reconnect(self) -> None:
        """
        Stopping an export sends Quit: the imported device goes offline;
        restarting it brings the same device back online.
        """
        rstage = await self.remote.get("rstage")
        await self.services[0].stopService()
        await until(lambda: not rstage.online)
        self.services[0].startService()
        await until(lambda: rstage.online)
        self.assertIs(await self.remote.get("rstage"), rstage)
        self.assertEqual(await rstage.move_abs(3.0), 3.0)

    async def test_parameter_sync(self) -> None:
        """A parameter set on the imported device reaches the exported one and back."""
        from tests.test_pymodaq_peer_support import make_camera
        cam2 = make_camera("cam2")
        self.local.register(cam2)
        self.factory.rules.insert(0, {"name": "rcam2", "contains": "exposure"})
        service = PyMoDAQExportService(reactor, self.endpoint,
                                       PyMoDAQClientFactory(self.local, "cam2"))
        service.startService()
        self.addCleanup(service.stopService)
        await until(lambda: "rcam2" in self.remote.names() and
                         "exposure" in self.remote._devices["rcam2"]._settings)
        rcam2 = await self.remote.get("rcam2")
        await rcam2.set("exposure", 2.5)
        await until(lambda: cam2._values["exposure"] == 2.5)
        await cam2.set("exposure", 3.5)
        await until(lambda: rcam2._values["exposure"] == 3.5)


class WriteThroughTests(TestCase):
    """Small messages are written to the socket at once; when the socket takes only
    part, or output is already queued, the rest goes through the transport in order."""

    timeout = 60

    async def test_many_near_megabyte_messages_in_order(self) -> None:
        """Twenty concurrent grabs of a 960 KB frame (written directly, so partial
        socket sends happen) interleaved with position queries all arrive intact."""
        local, remote = DeviceRegistry(reactor), DeviceRegistry(reactor)
        image = np.random.default_rng(1).random((600, 200))
        local.register(FakeDetector("cam", Export("cam", [Signal("cam", [image])])))
        local.register(FakeActuator("stage", units="mm"))
        factory = PyMoDAQServerFactory(remote, reactor, call_timeout=20,
                                       rules=[{"name": "rstage", "type": "ACTUATOR"},
                                              {"name": "rcam", "type": "GRABBER"}])
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        self.addCleanup(factory.stop)
        endpoint = f"tcp:host=127.0.0.1:port={port.getHost().port}"
        for name in ("cam", "stage"):
            service = PyMoDAQExportService(reactor, endpoint, PyMoDAQClientFactory(local, name))
            service.startService()
            self.addCleanup(service.stopService)
        await until(lambda: sorted(remote.names()) == ["rcam", "rstage"])
        await until(lambda: remote.lookup("rcam").online and remote.lookup("rstage").online)
        cam, stage = remote.lookup("rcam"), remote.lookup("rstage")
        grabs = [cam.grab() for _ in range(20)]
        positions = [stage.position() for _ in range(20)]
        for d in grabs:
            export = await d
            np.testing.assert_array_equal(export[0].data[0], image)
        self.assertEqual([await d for d in positions], [0.0] * 20)
