# -*- test-case-name: tests.test_pymodaq_server -*-
"""
Tests for the server role (L{twisted_lab.protocols.pymodaq.imports} and
L{twisted_lab.protocols.pymodaq.remote}) over L{StringTransport}: clients
become devices, registry calls become commands with deadlines, and each kind
of bad input closes only its own connection with a logged reason.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_lab.data import Export, Signal
from twisted_lab.errors import DeviceOffline, DeviceTimeout
from twisted_lab.interfaces import IActuator, IDetector
from twisted_lab.protocols.pymodaq.codec import join
from twisted_lab.protocols.pymodaq.message import TO_CLIENT, MessageParser, encode_message
from twisted_lab.protocols.pymodaq.imports import INFOS_GRACE, PyMoDAQServerFactory
from twisted_lab.registry import DeviceRegistry

GRABBER_XML = ('<settings type="group" title="settings" visible="1" removable="0" readonly="0">'
               '<title type="str" title="t" visible="1" removable="0" readonly="0">cam</title>'
               '<exposure type="float" title="exposure" visible="1" removable="0" readonly="0">'
               '0.1</exposure><camera type="group" title="camera" visible="1" removable="0" '
               'readonly="0"><gain type="int" title="gain" visible="1" removable="0" '
               'readonly="0">2</gain></camera></settings>')
ACTUATOR_XML = ('<settings type="group" title="settings" visible="1" removable="0" readonly="0">'
                '<units type="str" title="Units:" visible="1" removable="0" readonly="0">mm'
                '</units></settings>')


def msg(command: str, *args: Any) -> bytes:
    return join(encode_message(command, *args))


def position(value: float) -> Signal:
    return Signal.scalar("x", value, units="mm", kind="DataActuator")


class Client:
    """One fake PyMoDAQ client on a StringTransport."""

    def __init__(self, factory: PyMoDAQServerFactory, port: int) -> None:
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", port))
        self.proto = factory.buildProtocol(self.transport.getPeer())
        self.proto.makeConnection(self.transport)
        self.parser = MessageParser(TO_CLIENT)

    def send(self, data: bytes, one_byte: bool = False) -> None:
        if one_byte:
            for i in range(len(data)):
                self.proto.dataReceived(data[i:i + 1])
        else:
            self.proto.dataReceived(data)

    def received(self) -> list:
        out = self.parser.feed(self.transport.value())
        self.transport.clear()
        return out

    def close(self) -> None:
        from twisted.internet.error import ConnectionDone
        from twisted.python.failure import Failure
        self.proto.connectionLost(Failure(ConnectionDone()))


class ServerTests(SynchronousTestCase):
    """Clients of both types at once, each a device."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.registry = DeviceRegistry(self.clock)
        self.factory = PyMoDAQServerFactory(self.registry, self.clock, call_timeout=5)

    def grabber(self, one_byte: bool = False) -> Client:
        client = Client(self.factory, 5001)
        client.send(msg("GRABBER") + msg("Infos", GRABBER_XML), one_byte)
        return client

    def actuator(self, port: int = 5002) -> Client:
        client = Client(self.factory, port)
        client.send(msg("ACTUATOR") + msg("Infos", ACTUATOR_XML))
        return client

    def test_grabber_becomes_detector(self) -> None:
        """A GRABBER's Infos (fed byte by byte) gives a named detector with its settings."""
        self.grabber(one_byte=True)
        device = self.successResultOf(self.registry.get("cam_127_0_0_1"))
        self.assertTrue(verifyObject(IDetector, device))
        description = self.successResultOf(device.describe())
        self.assertEqual(list(description.parameters), ["title", "exposure", "camera.gain"])
        self.assertEqual(self.successResultOf(device.get("camera.gain")), 2)
        self.assertTrue(device.online)

    def test_grab_round_trip(self) -> None:
        """grab sends Send Data 2D and fires with the Done payload."""
        client = self.grabber()
        device = self.successResultOf(self.registry.get("cam_127_0_0_1"))
        d = device.grab()
        self.assertEqual(client.received()[0].command, "Send Data 2D")
        self.assertNoResult(d)
        export = Export("peer", [Signal("img", [np.ones((3, 4))], kind="DataFromPlugins")])
        client.send(msg("Done", export), one_byte=True)
        self.assertEqual(self.successResultOf(d), export)

    def test_actuator_moves(self) -> None:
        """Moves and position queries become commands answered in order."""
        client = self.actuator()
        stage = self.successResultOf(self.registry.get("pymodaq_actuator_127_0_0_1"))
        self.assertTrue(verifyObject(IActuator, stage))
        self.assertEqual(stage.units, "mm")
        d1 = stage.move_abs(1.5)
        d2 = stage.position()
        sent = client.received()
        self.assertEqual([m.command for m in sent], ["move_abs", "get_actuator_value"])
        self.assertEqual((sent[0].args[0].value(), sent[0].args[0].units), (1.5, "mm"))
        client.send(msg("move_done", position(1.5)) + msg("position_is", position(1.5)))
        self.assertEqual((self.successResultOf(d1), self.successResultOf(d2)), (1.5, 1.5))
        stage.stop()
        self.assertEqual(client.received()[0].command, "stop_motion")

    def test_set_parameter_sends_set_info(self) -> None:
        """Setting a mirrored parameter sends set_info with its path and XML."""
        client = self.grabber()
        device = self.successResultOf(self.registry.get("cam_127_0_0_1"))
        self.successResultOf(device.set("camera.gain", 5))
        (sent,) = client.received()
        self.assertEqual((sent.command, sent.args[0]), ("set_info", ["camera", "gain"]))
        self.assertIn(">5</gain>", sent.args[1])

    def test_info_xml_and_info(self) -> None:
        """Info_xml updates a setting (root name dropped); Info adds info.<name>."""
        client = self.grabber()
        device = self.successResultOf(self.registry.get("cam_127_0_0_1"))
        events: list = []
        device.subscribe(events.append)
        xml = '<exposure type="float" title="e" visible="1" removable="0" readonly="0">2.5</exposure>'
        client.send(msg("Info_xml", ["settings", "exposure"], xml) + msg("Info", "temp", "20 C"))
        self.assertEqual(self.successResultOf(device.get("exposure")), 2.5)
        self.assertEqual(self.successResultOf(device.get("info.temp")), "20 C")
        self.assertEqual([(e.parameter, e.value) for e in events if e.kind == "changed"],
                         [("exposure", 2.5), ("info.temp", "20 C")])

    def test_client_without_infos(self) -> None:
        """A custom client that never sends Infos is registered after a grace period."""
        client = Client(self.factory, 5003)
        client.send(msg("ACTUATOR"))
        self.assertEqual(self.registry.names(), [])
        self.clock.advance(INFOS_GRACE)
        self.assertEqual(self.registry.names(), ["pymodaq_actuator_127_0_0_1"])

    def test_many_clients_unique_names(self) -> None:
        """Two clients with the same identity get distinct names; both work."""
        a, b = self.actuator(5002), self.actuator(5004)
        self.assertEqual(sorted(self.registry.names()),
                         ["pymodaq_actuator_127_0_0_1", "pymodaq_actuator_127_0_0_1_2"])
        second = self.successResultOf(self.registry.get("pymodaq_actuator_127_0_0_1_2"))
        d = second.position()
        self.assertEqual(a.received(), [])
        b.received()
        b.send(msg("position_is", position(3.0)))
        self.assertEqual(self.successResultOf(d), 3.0)

    def test_naming_rules(self) -> None:
        """An import rule names a matching client."""
        self.factory.rules = [{"name": "other", "type": "GRABBER"},
                              {"name": "xstage", "type": "ACTUATOR", "host": "127.0.0.1",
                               "contains": "mm"}]
        self.actuator()
        self.assertEqual(self.registry.names(), ["xstage"])

    def test_disconnect_offline_then_back(self) -> None:
        """
        A disconnect fails pending calls with DeviceOffline and takes the
        device offline; a reconnecting client gets the same device back.
        """
        client = self.actuator()
        stage = self.successResultOf(self.registry.get("pymodaq_actuator_127_0_0_1"))
        d = stage.move_abs(1.0)
        client.close()
        self.failureResultOf(d, DeviceOffline)
        self.assertFalse(stage.online)
        self.failureResultOf(stage.position(), DeviceOffline)
        again = self.actuator(5009)
        self.assertTrue(stage.online)
        self.assertIs(self.successResultOf(self.registry.get("pymodaq_actuator_127_0_0_1")),
                      stage)
        d = stage.position()
        again.received()
        again.send(msg("position_is", position(0.5)))
        self.assertEqual(self.successResultOf(d), 0.5)

    def test_quit(self) -> None:
        """Quit closes the connection."""
        client = self.actuator()
        client.send(msg("Quit"))
        self.assertTrue(client.transport.disconnecting)


class BadInputTests(SynchronousTestCase):
    """
    Each bad input is logged with a specific reason and closes only its own
    connection (or fails only its own call); the other client keeps working.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.registry = DeviceRegistry(self.clock)
        self.factory = PyMoDAQServerFactory(self.registry, self.clock, call_timeout=5,
                                            max_size=1 << 20)
        self.good = Client(self.factory, 6000)
        self.good.send(msg("ACTUATOR") + msg("Infos", ACTUATOR_XML))
        self.stage = self.successResultOf(self.registry.get("pymodaq_actuator_127_0_0_1"))

    def assert_closed_with(self, data: bytes, reason: str, setup: bytes = b"") -> Client:
        bad = Client(self.factory, 6001)
        bad.send(setup)
        with capturedLogs() as events:
            bad.send(data)
        self.assertTrue(bad.transport.disconnecting)
        texts = [e.get("reason", "") for e in events]
        self.assertTrue(any(reason in t for t in texts), f"{reason!r} not in {texts}")
        self.assert_good_works()
        return bad

    def assert_good_works(self) -> None:
        self.assertFalse(self.good.transport.disconnecting)
        d = self.stage.position()
        self.good.received()
        self.good.send(msg("position_is", position(1.0)))
        self.assertEqual(self.successResultOf(d), 1.0)

    def done_header(self, dtype: str, nbytes: int, shape: tuple[int, ...]) -> bytes:
        from twisted_lab.protocols.pymodaq.codec import Encoder
        out: list = []
        enc = Encoder()
        enc.string(out, "Done")
        enc.string(out, "DataToExport")
        enc.scalar(out, 0.0)
        enc.string(out, "e")
        out.append((1).to_bytes(4, "big"))
        enc.string(out, "dwa")
        for text in ("DataFromPlugins",):
            enc.string(out, text)
        enc.scalar(out, 0.0)
        for text in ("img", "", "raw", "Data2D", "uniform"):
            enc.string(out, text)
        out.append((1).to_bytes(4, "big"))
        enc.string(out, "array")
        enc.string(out, dtype)
        out.append(nbytes.to_bytes(4, "big") + len(shape).to_bytes(4, "big"))
        out.extend(n.to_bytes(4, "big") for n in shape)
        return join(out)

    def test_unknown_client_type(self) -> None:
        """An unknown client type is refused."""
        self.assert_closed_with(msg("FOO"), "'FOO' is not a valid client type")

    def test_unknown_command(self) -> None:
        """An unknown command closes the connection (its payload is unknown)."""
        self.assert_closed_with(msg("Bogus"), "unknown command 'Bogus'", msg("GRABBER"))

    def test_bad_dtype(self) -> None:
        """A dtype string numpy cannot parse."""
        self.assert_closed_with(self.done_header("<x9", 8, (1,)),
                                "dtype '<x9' is not a numpy dtype", msg("GRABBER"))

    def test_length_beyond_limit(self) -> None:
        """A length beyond the configured maximum."""
        self.assert_closed_with(self.done_header("<f8", 8 << 20, (1 << 20,)),
                                "exceeds the maximum of 1048576 bytes", msg("GRABBER"))

    def test_shape_mismatch(self) -> None:
        """A shape that does not match the byte count."""
        self.assert_closed_with(self.done_header("<f8", 100, (3, 4)),
                                "needs 96 bytes, header says 100", msg("GRABBER"))

    def test_closed_mid_array(self) -> None:
        """A peer closing mid-array: its device goes offline, its grab fails, no crash."""
        bad = Client(self.factory, 6001)
        bad.send(msg("GRABBER") + msg("Infos", GRABBER_XML))
        camera = self.successResultOf(self.registry.get("cam_127_0_0_1"))
        d = camera.grab()
        with capturedLogs() as events:
            bad.send(self.done_header("<f8", 96, (3, 4)) + b"\x00" * 50)
            bad.close()
        self.failureResultOf(d, DeviceOffline)
        self.assertFalse(camera.online)
        self.assertTrue(any("went away" in e.get("log_format", "") for e in events))
        self.assert_good_works()

    def test_peer_never_answers(self) -> None:
        """
        A peer that never answers fails only that call with DeviceTimeout;
        its late reply is not taken for the next call's.
        """
        d = self.stage.move_abs(2.0)
        self.good.received()
        self.clock.advance(4.9)
        self.assertNoResult(d)
        self.clock.advance(0.2)
        failure = self.failureResultOf(d, DeviceTimeout)
        self.assertIn("did not answer move_abs within 5", str(failure.value))
        d2 = self.stage.move_abs(3.0)
        self.good.send(msg("move_done", position(2.0)))
        self.assertNoResult(d2)
        self.good.send(msg("move_done", position(3.0)))
        self.assertEqual(self.successResultOf(d2), 3.0)
        self.assert_good_works()

    def test_staggered_deadlines(self) -> None:
        """
        Each call has its own deadline (one timer per device serves them
        all): a later call times out later than an earlier one, and a
        cancelled call keeps its place so its late reply is not taken for
        the next call's.
        """
        d1 = self.stage.position()
        self.clock.advance(2.0)
        d2 = self.stage.position()
        self.clock.advance(3.1)
        self.failureResultOf(d1, DeviceTimeout)
        self.assertNoResult(d2)
        self.clock.advance(2.0)
        self.failureResultOf(d2, DeviceTimeout)
        d3 = self.stage.position()
        d3.cancel()
        self.failureResultOf(d3)
        d4 = self.stage.position()
        for late in (1.0, 2.0, 3.0):  # the late replies of d1, d2 and d3
            self.good.send(msg("position_is", position(late)))
        self.assertNoResult(d4)
        self.good.send(msg("position_is", position(4.0)))
        self.assertEqual(self.successResultOf(d4), 4.0)
        self.clock.advance(10)
        self.assert_good_works()

    def test_garbage_xml(self) -> None:
        """Infos that is not XML closes that connection with the parse error."""
        self.assert_closed_with(msg("GRABBER") + msg("Infos", "<not xml"),
                                "settings XML does not parse")
