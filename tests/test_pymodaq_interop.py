# -*- test-case-name: tests.test_pymodaq_interop -*-
"""
Interoperability with the real pymodaq 4.4.11, 4.3.7, 4.2.5 and 4.1.5 (one
venv each, see C{tests/peers}), each spoken to in its own wire version
(4.4, 4.3, 4.2, 4.1.3): every test below runs against every release.

These tests fail (never skip) when a peer is not installed.

  - client role: PyMoDAQ's own C{TCPServer} plugins (0D/1D/2D viewer, move)
    drive our export connection: grabs, moves, position queries, C{set_info}
    and our C{Info_xml} pushes;
  - server role: PyMoDAQ's own C{TCPClient} as GRABBER and ACTUATOR at once
    connect to our listener and are grabbed, moved and configured through
    the registry; they go offline on leaving and come back under their name.
"""
from __future__ import annotations

from typing import Any

from twisted.internet import reactor, task
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase

from tests.test_pymodaq_peer_support import make_camera, start_peer
from twisted_lab.errors import DeviceOffline
from twisted_lab.protocols.pymodaq.export import PyMoDAQClientFactory, PyMoDAQExportService
from twisted_lab.protocols.pymodaq.imports import PyMoDAQServerFactory
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeActuator
from tests.polling import until


def units_on_wire(wire: str, units: str) -> str:
    """
    The units a peer of C{wire} sees: data units (and an actuator's axis
    units) travel only from PyMoDAQ 4.4 on (spec pymodaq-tcp.md §9).
    """
    return units if wire == "4.4" else ""


class ClientRoleInteropMixin:
    """PyMoDAQ's TCPServer plugins drive a registry device we export."""

    timeout = 120
    #: the peer venv and the wire version we speak to it
    peer = "pymodaq4"
    wire = "4.4"

    async def export(self: Any, kind: str, device: Any) -> Any:
        """Start the peer server of C{kind}, export C{device} to it."""
        registry = DeviceRegistry(reactor)
        registry.register(device)
        peer = start_peer(self, "pymodaq4_server.py", kind, peer=self.peer)
        port = (await peer.next("port", 90))["port"]
        service = PyMoDAQExportService(reactor, f"tcp:host=127.0.0.1:port={port}",
                                       PyMoDAQClientFactory(registry, device.name,
                                                            wire=self.wire))
        service.startService()
        self.addCleanup(service.stopService)
        peer.send(op="wait_client")
        client = await peer.next("client")
        return peer, client

    async def grab(self: Any, kind: str, dim: str, shape: list[int]) -> Any:
        camera = make_camera("camera", dim)
        peer, client = await self.export(kind, camera)
        self.assertEqual(client["types"], ["GRABBER"])
        self.assertEqual(client["settings"], {"exposure": 0.1})
        peer.send(op="grab")
        data = await peer.next("data")
        (signal,) = data["signals"]
        self.assertEqual((data["name"], signal["kind"], signal["dim"], signal["units"],
                          signal["shape"]),
                         ("camera", "DataFromPlugins", dim, units_on_wire(self.wire, "counts"),
                          shape))
        self.assertEqual(signal["first"], 1.0)
        return peer, camera, signal

    async def test_viewer_0d_grab(self: Any) -> None:
        """The 0D viewer server grabs our detector's value with its units."""
        await self.grab("0D", "Data0D", [1])

    async def test_viewer_1d_grab(self: Any) -> None:
        """The 1D viewer server grabs our spectrum with its axis."""
        _, _, signal = await self.grab("1D", "Data1D", [5])
        self.assertEqual(signal["axes"], [{"label": "axis0", "units": "mm", "size": 5,
                                           "index": 0}])

    async def test_viewer_2d_grab_and_settings(self: Any) -> None:
        """
        The 2D viewer server grabs our image with both axes; its C{set_info}
        changes our parameter, and our parameter change reaches its settings.
        """
        peer, camera, signal = await self.grab("2D", "Data2D", [3, 4])
        self.assertEqual([(a["label"], a["size"], a["index"]) for a in signal["axes"]],
                         [("axis0", 3, 0), ("axis1", 4, 1)])
        peer.send(op="set_info", path=["exposure"], value=0.5)
        await peer.next("set_info_sent")
        await until(lambda: camera._values["exposure"] == 0.5)
        await camera.set("exposure", 0.7)
        for _ in range(50):
            peer.send(op="settings")
            settings = await peer.next("settings")
            if settings["settings"]["exposure"] == 0.7:
                break
            await task.deferLater(reactor, 0.2)
        self.assertEqual(settings["settings"], {"exposure": 0.7})
        self.assertEqual(settings["types"], ["GRABBER"])

    async def test_move_server(self: Any) -> None:
        """
        The move server reads our units, moves absolute/relative/home and
        queries the position; C{stop_motion} gets no reply and breaks nothing.
        """
        stage = FakeActuator("stage", units="mm")
        peer, client = await self.export("move", stage)
        self.assertEqual((client["types"], client["axis_unit"]),
                         (["ACTUATOR"], units_on_wire(self.wire, "mm")))
        peer.send(op="move_abs", value=1.5)
        self.assertEqual((await peer.next("move_done"))["value"], 1.5)
        peer.send(op="move_rel", value=0.25)
        self.assertEqual((await peer.next("move_done"))["value"], 1.75)
        self.assertEqual(stage.current, 1.75)
        peer.send(op="stop_motion")
        peer.send(op="get_actuator_value")
        reply = await peer.next("get_actuator_value")
        self.assertEqual((reply["value"], reply["units"]),
                         (1.75, units_on_wire(self.wire, "mm")))
        peer.send(op="move_home")
        self.assertEqual((await peer.next("move_done"))["value"], 0.0)
        self.assertIn(("stop",), stage.calls)


class ServerRoleInteropMixin:
    """PyMoDAQ's TCPClient instruments connect to our server role."""

    timeout = 150
    peer = "pymodaq4"
    wire = "4.4"

    async def test_grabber_and_actuator(self: Any) -> None:
        """
        A GRABBER and an ACTUATOR connect at once; each is a device we grab,
        move and configure through the registry; on leaving each goes offline
        (pending calls fail) and a reconnecting client gets its name back.
        """
        registry = DeviceRegistry(reactor)
        factory = PyMoDAQServerFactory(registry, reactor, self.wire, call_timeout=10)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        self.addCleanup(factory.stop)
        number = str(port.getHost().port)
        grabber = start_peer(self, "pymodaq4_client.py", "GRABBER", number, "cam",
                             peer=self.peer)
        actuator = start_peer(self, "pymodaq4_client.py", "ACTUATOR", number, peer=self.peer)
        await until(lambda: len(registry.names()) == 2 and all(
            d.online and d._settings for d in factory.devices.values()), 90)
        self.assertEqual(sorted(registry.names()),
                         ["cam_127_0_0_1", "pymodaq_actuator_127_0_0_1"])
        camera = await registry.get("cam_127_0_0_1")
        stage = await registry.get("pymodaq_actuator_127_0_0_1")

        export = await camera.grab()
        (signal,) = export.signals
        self.assertEqual((export.name, signal.kind, signal.dim, signal.units, signal.shape),
                         ("peer", "DataFromPlugins", "Data2D",
                          units_on_wire(self.wire, "counts"), (3, 4)))
        self.assertEqual([(a.label, a.units, a.size) for a in signal.axes],
                         [("rows", "mm", 3), ("cols", "um", 4)])

        description = await camera.describe()
        self.assertEqual(list(description.parameters),
                         ["title", "exposure", "mode", "camera.gain", "camera.cooled"])
        self.assertEqual(description.parameters["mode"].choices, ("fast", "slow"))
        self.assertEqual(await camera.get("camera.gain"), 2)
        await camera.set("exposure", 0.5)
        sent = await grabber.next("set_info")
        self.assertEqual(sent["path"], ["exposure"])
        self.assertIn(">0.5</exposure>", sent["xml"])
        grabber.send(op="info_xml", name="camera.gain", value=7)
        grabber.send(op="info", name="temperature", value="20 C")
        await until(lambda: camera._values.get("info.temperature") == "20 C")
        self.assertEqual(await camera.get("camera.gain"), 7)

        self.assertEqual(stage.units, "mm")  # from its settings tree, in every 4.x
        self.assertEqual(await stage.move_abs(1.5), 1.5)
        self.assertEqual((await actuator.next("move_abs"))["units"],
                         units_on_wire(self.wire, "mm"))
        self.assertEqual(await stage.move_rel(0.25), 1.75)
        self.assertEqual(await stage.position(), 1.75)
        self.assertEqual(await stage.move_home(), 0.0)

        await actuator.stop()
        await until(lambda: not stage.online)
        with self.assertRaises(DeviceOffline):
            await stage.position()
        self.assertTrue(camera.online)
        self.assertEqual((await camera.grab()).name, "peer")

        again = start_peer(self, "pymodaq4_client.py", "ACTUATOR", number, peer=self.peer)
        await until(lambda: stage.online, 90)
        self.assertIs(await registry.get("pymodaq_actuator_127_0_0_1"), stage)
        self.assertEqual(await stage.move_abs(2.0), 2.0)
        await again.next("move_abs")


class ClientRoleInterop44Tests(ClientRoleInteropMixin, TestCase):
    """pymodaq 4.4.11's TCPServer plugins, wire 4.4."""


class ClientRoleInterop43Tests(ClientRoleInteropMixin, TestCase):
    """pymodaq 4.3.7's TCPServer plugins, wire 4.3."""

    peer, wire = "pymodaq43", "4.3"


class ClientRoleInterop42Tests(ClientRoleInteropMixin, TestCase):
    """pymodaq 4.2.5's TCPServer plugins, wire 4.2."""

    peer, wire = "pymodaq42", "4.2"


class ClientRoleInterop41Tests(ClientRoleInteropMixin, TestCase):
    """pymodaq 4.1.5's TCPServer plugins, wire 4.1.3."""

    peer, wire = "pymodaq41", "4.1.3"


class ServerRoleInterop44Tests(ServerRoleInteropMixin, TestCase):
    """pymodaq 4.4.11's TCPClient instruments, wire 4.4."""


class ServerRoleInterop43Tests(ServerRoleInteropMixin, TestCase):
    """pymodaq 4.3.7's TCPClient instruments, wire 4.3."""

    peer, wire = "pymodaq43", "4.3"


class ServerRoleInterop42Tests(ServerRoleInteropMixin, TestCase):
    """pymodaq 4.2.5's TCPClient instruments, wire 4.2."""

    peer, wire = "pymodaq42", "4.2"


class ServerRoleInterop41Tests(ServerRoleInteropMixin, TestCase):
    """pymodaq 4.1.5's TCPClient instruments, wire 4.1.3."""

    peer, wire = "pymodaq41", "4.1.3"
