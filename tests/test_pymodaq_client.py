# -*- test-case-name: tests.test_pymodaq_client -*-
"""
Tests for the client role (L{twisted_lab.protocols.pymodaq.export}) over
L{StringTransport}: the handshake bytes, the answers to each server command
(fed one byte at a time and all at once), leases, C{set_info}, C{Info_xml}
pushes and error replies.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from tests.test_pymodaq_peer_support import make_camera
from twisted_lab.data import Signal
from twisted_lab.leases import Owner
from twisted_lab.protocols.pymodaq.export import PyMoDAQClientFactory
from twisted_lab.protocols.pymodaq.codec import join
from twisted_lab.protocols.pymodaq.message import TO_SERVER, MessageParser, encode_message
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeActuator


def msg(command: str, *args: Any) -> bytes:
    return join(encode_message(command, *args))


class ClientTests(SynchronousTestCase):
    """One export connection, seen from the server's side of the wire."""

    def setUp(self) -> None:
        self.registry = DeviceRegistry(Clock())
        self.stage = FakeActuator("stage", units="mm")
        self.camera = make_camera()
        self.registry.register(self.stage)
        self.registry.register(self.camera)

    def connect(self, device: str, role: str = "") -> tuple[Any, StringTransport, MessageParser]:
        factory = PyMoDAQClientFactory(self.registry, device, role)
        proto = factory.buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 6341))
        proto.makeConnection(transport)
        return proto, transport, MessageParser(TO_SERVER)

    def received(self, transport: StringTransport, parser: MessageParser) -> list:
        out = parser.feed(transport.value())
        transport.clear()
        return out

    def test_actuator_handshake_bytes(self) -> None:
        """An actuator sends ACTUATOR then Infos with its units, byte-exact."""
        _, transport, _ = self.connect("stage")
        xml = (b'<settings type="group" title="settings" visible="1" removable="0" '
               b'readonly="0"><units type="str" title="units" visible="1" removable="0" '
               b'readonly="1">mm</units></settings>')
        self.assertEqual(transport.value(), msg("ACTUATOR") + msg("Infos", xml.decode()))

    def test_grabber_handshake(self) -> None:
        """A detector is a GRABBER; its parameters are its settings."""
        _, transport, parser = self.connect("camera")
        handshake = self.received(transport, parser)
        self.assertEqual([m.command for m in handshake], ["GRABBER", "Infos"])
        self.assertIn('<exposure type="float" title="exposure" visible="1" removable="0" '
                      'readonly="0" limits="[0.0, 10.0]">0.1</exposure>', handshake[1].args[0])

    def test_waits_for_device(self) -> None:
        """The handshake waits until the device is registered."""
        _, transport, parser = self.connect("late", role="GRABBER")
        self.assertEqual(transport.value(), b"")
        self.registry.register(make_camera("late"))
        self.assertEqual([m.command for m in self.received(transport, parser)],
                         ["GRABBER", "Infos"])

    def test_grab(self) -> None:
        """Send Data 2D (fed one byte at a time) is answered by Done + the grab."""
        proto, transport, parser = self.connect("camera")
        self.received(transport, parser)
        for byte in msg("Send Data 2D"):
            proto.dataReceived(bytes([byte]))
        (done,) = self.received(transport, parser)
        self.assertEqual(done.command, "Done")
        (signal,) = done.args[0].signals
        np.testing.assert_array_equal(signal.data[0], np.arange(12.0).reshape(3, 4) + 1)
        self.assertEqual([a.label for a in signal.axes], ["axis0", "axis1"])

    def test_moves_and_position(self) -> None:
        """move_abs/move_rel/move_home/get_actuator_value answered in order."""
        proto, transport, parser = self.connect("stage")
        self.received(transport, parser)
        target = Signal.scalar("x", 1.5, units="mm", kind="DataActuator")
        step = Signal.scalar("x", 0.25, units="mm", kind="DataActuator")
        proto.dataReceived(msg("move_abs", target) + msg("move_rel", step)
                           + msg("get_actuator_value") + msg("check_position")
                           + msg("move_home"))
        replies = self.received(transport, parser)
        self.assertEqual([(m.command, m.args[0].value(), m.args[0].units) for m in replies],
                         [("move_done", 1.5, "mm"), ("move_done", 1.75, "mm"),
                          ("position_is", 1.75, "mm"), ("position_is", 1.75, "mm"),
                          ("move_done", 0.0, "mm")])

    def test_slow_position_keeps_order(self) -> None:
        """
        A position query whose answer is not ready at once holds later
        commands back: the replies keep the order of the commands.
        """
        pending: list[Deferred[float]] = []
        self.stage._position = lambda: pending.append(Deferred()) or pending[-1]
        proto, transport, parser = self.connect("stage")
        self.received(transport, parser)
        proto.dataReceived(msg("get_actuator_value") + msg("move_abs", 2.0))
        self.assertEqual(self.received(transport, parser), [])
        pending[0].callback(1.0)
        replies = self.received(transport, parser)
        self.assertEqual([(m.command, m.args[0].value(), m.args[0].name) for m in replies],
                         [("position_is", 1.0, "stage"), ("move_done", 2.0, "stage")])

    def test_position_failure_reported(self) -> None:
        """A position query on an offline device is answered with an Info error."""
        proto, transport, parser = self.connect("stage")
        self.received(transport, parser)
        self.stage.set_online(False)
        with capturedLogs():
            proto.dataReceived(msg("get_actuator_value"))
        (reply,) = self.received(transport, parser)
        self.assertEqual(reply.command, "Info")
        self.assertIn("offline", reply.args[1])
        self.stage.set_online(True)
        proto.dataReceived(msg("check_position"))
        (reply,) = self.received(transport, parser)
        self.assertEqual((reply.command, reply.args[0].units), ("position_is", "mm"))

    def test_stop_jumps_the_queue(self) -> None:
        """stop_motion stops a running move; the move then reports where it stopped."""
        self.stage.instant = False
        proto, transport, parser = self.connect("stage")
        self.received(transport, parser)
        proto.dataReceived(msg("move_abs", 5.0) + msg("stop_motion"))
        self.assertIn(("stop",), self.stage.calls)
        (reply,) = self.received(transport, parser)
        self.assertEqual((reply.command, reply.args[0].value()), ("move_done", 0.0))

    def test_lease_conflict(self) -> None:
        """A move refused by another owner's lease is answered with an Info error, then
        move_done at the unchanged position (PyMoDAQ matches replies by order)."""
        self.registry.leases.acquire(Owner("plesty", "someone"), ["stage"])
        proto, transport, parser = self.connect("stage")
        self.received(transport, parser)
        with capturedLogs() as events:
            proto.dataReceived(msg("move_abs", 1.0))
        reply, done = self.received(transport, parser)
        self.assertEqual((done.command, done.args[0].value()), ("move_done", 0.0))
        self.assertEqual(reply.command, "Info")
        self.assertEqual(reply.args[0], "stage.move_abs")
        self.assertIn("LeaseConflict: resource 'stage/position' is locked by plesty:someone",
                      reply.args[1])
        self.assertEqual(self.stage.calls, [])
        self.assertTrue(any(e.get("code") == "LeaseConflict" for e in events))

    def test_set_info_and_push(self) -> None:
        """set_info sets our parameter; the change is pushed back as Info_xml."""
        proto, transport, parser = self.connect("camera")
        self.received(transport, parser)
        xml = ('<exposure type="float" title="exposure" visible="1" removable="0" '
               'readonly="0">0.5</exposure>')
        proto.dataReceived(msg("set_info", ["exposure"], xml))
        self.assertEqual(self.camera._values["exposure"], 0.5)
        (push,) = self.received(transport, parser)
        self.assertEqual((push.command, push.args[0]), ("Info_xml", ["settings", "exposure"]))
        self.assertIn(">0.5</exposure>", push.args[1])

    def test_set_info_invalid(self) -> None:
        """An out-of-limits or unknown set_info is answered by an Info error."""
        proto, transport, parser = self.connect("camera")
        self.received(transport, parser)
        proto.dataReceived(msg("set_info", ["exposure"],
                               '<exposure type="float">99</exposure>')
                           + msg("set_info", ["nope"], '<nope type="int">1</nope>'))
        replies = self.received(transport, parser)
        self.assertEqual([m.args[1].split(":")[0] for m in replies],
                         ["InvalidValue", "UnknownParameter"])
        self.assertEqual(self.camera._values["exposure"], 0.1)

    def test_unknown_command_closes(self) -> None:
        """An unknown server command closes the connection with a logged reason."""
        proto, transport, parser = self.connect("camera")
        with capturedLogs() as events:
            proto.dataReceived(msg("Launch"))
        self.assertTrue(transport.disconnecting)
        self.assertIn("unknown command 'Launch'", [e.get("reason") for e in events])

    def test_quit_from_server(self) -> None:
        """Quit from the server closes; nothing is sent after."""
        proto, transport, parser = self.connect("camera")
        self.received(transport, parser)
        proto.dataReceived(msg("Quit"))
        self.assertTrue(transport.disconnecting)
