# -*- test-case-name: tests.test_la4_coordinator -*-
"""
Tests for L{twisted_lab.protocols.la4.imports}, with a fake clock and
recorded outgoing connections.
"""
from __future__ import annotations

import json
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_lab.errors import (DeviceOffline, DeviceTimeout, InvalidValue, LeaseConflict,
                                UnknownAction)
from twisted_lab.events import DATA, OFFLINE, ONLINE, LabEvent
from twisted_lab.interfaces import IDevice
from twisted_lab.leases import Owner
from twisted_lab.protocols.la4.imports import (LA4CoordinatorService, LA4NodeDevice,
                                                   NodeConfig, callback_endpoint)
from twisted_lab.protocols.la4.message import Command, Heartbeat, Message, decode
from twisted_lab.registry import DeviceRegistry

from tests.test_la4_message import DOC_COMMAND_TEXT, DOC_OUTPUT

NODE = {"id": "81639cd4", "name": "rigsters-controller", "ip": "127.0.0.1", "port": 5000,
        "version": "0.14.0", "coordinator": False}
SEQ = " > /home/rigsters/la4_sequence.csv && boardiocli uSeq && boardiocli runSeq"


class RecordingCoordinator(LA4CoordinatorService):
    """A coordinator whose outgoing messages are recorded instead of sent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[tuple[str, int, Message]] = []
        self.refuse = False

    def _send(self, host: str, port: int, data: bytes) -> Deferred[None]:
        if self.refuse:
            return fail(ConnectionRefusedError("refused"))
        self.sent.append((host, port, decode(data)))
        return succeed(None)

    def commands(self) -> list[str]:
        out = [m.command for _h, _p, m in self.sent if isinstance(m, Command)]
        self.sent = []
        return out


def event(host: str = "127.0.0.1", **fields: Any) -> bytes:
    obj = dict(NODE)
    obj.update(fields)
    return json.dumps(obj).encode()


class CoordinatorTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.registry = DeviceRegistry(self.reactor)
        self.service = RecordingCoordinator(
            self.registry, self.reactor,
            [NodeConfig("la4", "127.0.0.1", 5000), NodeConfig("other", "localhost", 5001)],
            "tcp:5002:interface=127.0.0.1")
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.device: LA4NodeDevice = self.registry.lookup("la4")
        self.events: list[LabEvent] = []
        self.registry.subscribe(self.events.append)

    def feed(self, data: bytes, host: str = "127.0.0.1") -> None:
        proto = self.service.factory.buildProtocol(IPv4Address("TCP", host, 40000))
        proto.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", host, 40000)))
        proto.dataReceived(data)
        proto.connectionLost()

    def online(self) -> None:
        self.feed(event())
        self.service.sent = []


class LivenessTests(CoordinatorTestCase):
    """Heartbeats out, silence in."""

    def test_listens_on_loopback(self) -> None:
        """The callback listener binds the configured loopback endpoint."""
        port, _factory, _backlog, interface = self.reactor.tcpServers[0]
        self.assertEqual((port, interface), (5002, "127.0.0.1"))

    def test_callback_endpoint(self) -> None:
        """A bare port means 127.0.0.1; an endpoint string is kept."""
        self.assertEqual(callback_endpoint(5000), "tcp:5000:interface=127.0.0.1")
        self.assertEqual(callback_endpoint("tcp:1:interface=::1"), "tcp:1:interface=::1")

    def test_device(self) -> None:
        """Each node is a registered L{IDevice}, offline until it speaks."""
        self.assertEqual(self.registry.names(), ["la4", "other"])
        verifyObject(IDevice, self.device)
        self.assertFalse(self.device.online)
        self.failureResultOf(self.device.call("set_fans", True), DeviceOffline)

    def test_heartbeat_every_5s(self) -> None:
        """Every node gets a coordinator heartbeat at once and every 5 s."""
        sent = self.service.sent
        self.assertEqual([(h, p) for h, p, _ in sent], [("127.0.0.1", 5000),
                                                       ("127.0.0.1", 5001)])
        beat = sent[0][2]
        self.assertIsInstance(beat, Heartbeat)
        self.assertEqual((beat.coordinator, beat.port, beat.type_), (True, 5002, None))
        self.service.sent = []
        self.reactor.advance(4.9)
        self.assertEqual(self.service.sent, [])
        self.reactor.advance(0.1)
        self.assertEqual(len(self.service.sent), 2)

    def test_heartbeat_failure_logged(self) -> None:
        """A node that refuses connections does not break the heartbeat loop."""
        self.service.refuse = True
        self.reactor.advance(5)
        self.reactor.advance(5)
        self.assertTrue(self.service._heartbeat.running)

    def test_online_offline_online(self) -> None:
        """A node that speaks is online; after 15 s of silence it is offline; when
        it speaks again the same object is back online."""
        self.feed(event())
        self.assertTrue(self.device.online)
        self.assertEqual(self.device._values["node_id"], "81639cd4")
        self.reactor.advance(14.9)
        self.feed(event())  # speaking restarts the watchdog
        self.reactor.advance(14.9)
        self.assertTrue(self.device.online)
        self.reactor.advance(0.2)
        self.assertFalse(self.device.online)
        self.feed(event())
        self.assertIs(self.registry.lookup("la4"), self.device)
        self.assertTrue(self.device.online)
        kinds = [e.kind for e in self.events if e.device == "la4" and e.kind in (ONLINE,
                                                                               OFFLINE)]
        self.assertEqual(kinds, [ONLINE, OFFLINE, ONLINE])

    def test_routing(self) -> None:
        """Events go to the node at the observed address and payload port; other
        senders are ignored."""
        self.feed(event(port=5001))
        other = self.registry.lookup("other")
        self.assertTrue(other.online)
        self.assertFalse(self.device.online)
        self.feed(event(), host="10.1.2.3")
        self.assertFalse(self.device.online)

    def test_documented_output_event(self) -> None:
        """The documented output event, byte for byte, reaches the device (after a
        heartbeat of that node id)."""
        self.feed(event())
        self.service.send_command(self.device, "echo")  # nothing in flight: ignored
        self.device.run_line(None, "echo")
        self.feed(DOC_OUTPUT)
        self.assertTrue(self.device.online)
        self.assertIn("runSeq", self.device._values["last_output"])

    def test_unit_info_and_messages(self) -> None:
        """Unit info and message events update read-only parameters; unknown kinds
        become data events."""
        self.feed(event())
        self.feed(event(type_="unit_info", model="LA4", heads=4))
        self.feed(event(type_="message", message="BOARDIO_READY"))
        self.feed(event(type_="status", temperature=31))
        self.assertEqual(self.successResultOf(self.device.get("unit_info")),
                         {"model": "LA4", "heads": 4})
        self.assertEqual(self.successResultOf(self.device.get("last_message")),
                         "BOARDIO_READY")
        data = [e for e in self.events if e.kind == DATA]
        self.assertEqual((data[0].parameter, data[0].value), ("status", {"temperature": 31}))

    def test_bad_callbacks_ignored(self) -> None:
        """Malformed documents on the callback port change nothing."""
        for data in (b"not json", b"[]", b'{"port": 5000}', event(coordinator="no")):
            self.feed(data)
        self.assertFalse(self.device.online)

    def test_stop(self) -> None:
        """Stopping takes the devices offline and out of the registry."""
        self.online()
        self.service.stopService()
        self.assertFalse(self.device.online)
        self.assertEqual(self.registry.names(), [])

    def test_message_after_stop_ignored(self) -> None:
        """
        A node's document still being read when the service stops is
        dropped: the device stays offline and no silence watchdog is left
        behind on the reactor.
        """
        self.online()
        address = IPv4Address("TCP", "127.0.0.1", 40000)
        proto = self.service.factory.buildProtocol(address)
        proto.makeConnection(StringTransport(peerAddress=address))
        self.service.stopService()
        proto.dataReceived(event())
        proto.connectionLost()
        self.assertFalse(self.device.online)
        watchdogs = [c for c in self.reactor.getDelayedCalls()
                     if getattr(c.func, "__name__", "") == "_silent"]
        self.assertEqual(watchdogs, [])


class ActionTests(CoordinatorTestCase):
    """Actions render the documented commands; results are the output events."""

    def output(self, text: str = "ok\n") -> None:
        self.feed(event(type_="output", output=text))

    def test_actions_render_documented_forms(self) -> None:
        """Each action sends its fixed-template command line."""
        self.online()
        cases = [
            (("set_model_light", 100), 'echo "MODEL_LIGHT,100"' + SEQ),
            (("fire_all", 60), 'echo "ALL_4_NIKON,60"' + SEQ),
            (("fire_all", 60, "canon", 100), 'echo "ALL_4_CANON,60,100"' + SEQ),
            (("olat", 5, True), 'echo "OLAT_4_NIKON,5,1"' + SEQ),
            (("olat", 5, False, "canon"), 'echo "OLAT_4_CANON,5,0"' + SEQ),
            (("set_fans", True), 'echo "LED_FAN,1"' + SEQ),
            (("set_polarizer", False), 'echo "DIGITAL_POLARIZER,0"' + SEQ),
            (("run_sequence", ["MODEL_LIGHT,100", ["LED_FAN", 1]]), DOC_COMMAND_TEXT),
            (("upload_sequence", ["LED_FAN,0"]),
             'echo "LED_FAN,0" > /home/rigsters/la4_sequence.csv && boardiocli uSeq'),
            (("start_sequence",), "boardiocli runSeq"),
            (("store_standalone", ["LED_FAN,1"]),
             'echo "LED_FAN,1" > /home/rigsters/la4_sequence_standalone.csv'
             ' && boardiocli uSeqStandalone'),
        ]
        for args, text in cases:
            d = self.device.call(*args)
            self.assertEqual(self.service.commands(), [text])
            self.assertNoResult(d)
            self.output(f"out {args[0]}")
            self.assertEqual(self.successResultOf(d), f"out {args[0]}")

    def test_command_message_identity(self) -> None:
        """A command carries our coordinator identity and callback port."""
        self.online()
        d = self.device.call("start_sequence")
        d.addErrback(lambda f: f.trap(DeviceOffline))  # fails when the service stops
        message = self.service.sent[0][2]
        self.assertEqual((message.coordinator, message.port, message.id),
                         (True, 5002, self.service.id))

    def test_commanded_state(self) -> None:
        """Parameters follow the commands once their output arrived, and setting
        a parameter sends its command."""
        self.online()
        d = self.device.set("model_light", 42)
        self.assertEqual(self.service.commands(), ['echo "MODEL_LIGHT,42"' + SEQ])
        self.output()
        self.assertEqual(self.successResultOf(d), 42)
        self.device.call("run_sequence", ["LED_FAN,1", "DIGITAL_POLARIZER,1"])
        self.output()
        self.assertEqual([self.successResultOf(self.device.get(n))
                          for n in ("model_light", "fans", "polarizer")], [42, True, True])
        self.failureResultOf(self.device.set("model_light", 101), InvalidValue)

    def test_invalid_values_never_sent(self) -> None:
        """Out-of-range or ill-typed arguments fail before anything is sent."""
        self.online()
        for args in [("set_model_light", 101), ("set_model_light", "1; reboot"),
                     ("fire_all", 50, "canon"), ("run_sequence", ["MODEL_LIGHT,1; reboot"]),
                     ("run_sequence", [["rm", "-rf", "/"]]), ("set_fans", 1)]:
            self.failureResultOf(self.device.call(*args), InvalidValue)
        self.assertEqual(self.service.commands(), [])

    def test_queued_one_at_a_time(self) -> None:
        """Concurrent calls run one at a time, each completed by the next output."""
        self.online()
        first = self.device.call("set_model_light", 1)
        second = self.device.call("set_model_light", 2)
        self.assertEqual(len(self.service.commands()), 1)
        self.output("one")
        self.assertEqual(self.successResultOf(first), "one")
        self.assertEqual(self.service.commands(), ['echo "MODEL_LIGHT,2"' + SEQ])
        self.output("two")
        self.assertEqual(self.successResultOf(second), "two")

    def test_cancel_queued(self) -> None:
        """A queued call can be cancelled; it is then never sent."""
        self.online()
        self.device.call("set_model_light", 1)
        second = self.device.call("set_model_light", 2)
        second.cancel()
        self.failureResultOf(second, CancelledError)
        self.service.commands()
        self.output()
        self.assertEqual(self.service.commands(), [])

    def test_timeout(self) -> None:
        """No output within the deadline fails the call with L{DeviceTimeout};
        the next queued call then runs."""
        self.online()
        first = self.device.call("start_sequence")
        second = self.device.call("start_sequence")
        self.service.commands()
        self.reactor.advance(14)
        self.feed(event())  # keep it online
        self.reactor.advance(14)
        self.feed(event())
        self.assertNoResult(first)
        self.reactor.advance(2.1)
        self.failureResultOf(first, DeviceTimeout)
        self.assertEqual(self.service.commands(), ["boardiocli runSeq"])
        self.assertNoResult(second)
        second.addErrback(lambda f: f.trap(DeviceOffline))  # fails when the service stops

    def test_offline_fails_pending(self) -> None:
        """Going offline fails the running and the queued calls."""
        self.online()
        first = self.device.call("start_sequence")
        second = self.device.call("start_sequence")
        self.reactor.advance(15.1)
        self.failureResultOf(first, DeviceOffline)
        self.failureResultOf(second, DeviceOffline)

    def test_undeliverable(self) -> None:
        """A command the node does not accept a connection for fails at once."""
        self.online()
        self.service.refuse = True
        self.failureResultOf(self.device.call("start_sequence"), DeviceOffline)

    def test_unsolicited_output(self) -> None:
        """An output with nothing in flight is ignored (and logged): C{last_output} stays."""
        self.online()
        self.output("stray")
        self.assertEqual(self.successResultOf(self.device.get("last_output")), "")
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_raw_cmd_only_when_enabled(self) -> None:
        """The raw C{cmd} action exists only with C{allow_raw_cmd}."""
        self.online()
        self.failureResultOf(self.device.call("cmd", "ls"), UnknownAction)
        self.assertNotIn("cmd", self.device.description.actions)
        device = LA4NodeDevice("raw", "127.0.0.1", 5000, self.service.send_command,
                               self.reactor, allow_raw_cmd=True)
        device.seen(Heartbeat(**NODE))
        d = device.call("cmd", "uptime")
        self.assertEqual(self.service.commands(), ["uptime"])
        device.output_received("up 1 day")
        self.assertEqual(self.successResultOf(d), "up 1 day")
        device.went_offline()

    def test_leases_hold(self) -> None:
        """Through the registry, another owner's lease blocks a mutating action."""
        self.online()
        self.registry.acquire(Owner("plesty", "a"), ["la4"])
        guarded = self.successResultOf(self.registry.guarded("la4", Owner("la4", "b")))
        self.failureResultOf(guarded.call("set_fans", True), LeaseConflict)


class ForgeryTests(CoordinatorTestCase):
    """Events are accepted only from configured nodes and matched to their command."""

    def output(self, text: str) -> None:
        self.feed(event(type_="output", output=text))

    def test_listener_refuses_unconfigured_hosts(self) -> None:
        """The callback listener's allow-list holds the configured nodes' addresses: a
        connection from elsewhere gets no protocol (refused before any byte is read)."""
        factory = self.service.listener_factory
        self.assertIsNone(factory.buildProtocol(IPv4Address("TCP", "10.9.9.9", 4000)))
        self.assertEqual(factory.refused, 1)
        self.assertIsNotNone(factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4000)))

    def test_forged_output_refused(self) -> None:
        """An output claiming another node id does not complete the call in flight nor
        change node_id, node_version or unit_info; it is logged."""
        from twisted.logger import globalLogPublisher
        logged: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        self.online()
        d = self.device.call("start_sequence")
        self.feed(event(id="forged01", version="6.6.6", type_="output", output="forged"))
        self.feed(event(id="forged01", version="6.6.6", type_="unit_info", model="X"))
        self.assertNoResult(d)
        self.assertEqual(self.device._values["node_id"], NODE["id"])
        self.assertEqual(self.device._values["node_version"], NODE["version"])
        self.assertEqual(self.device._values["unit_info"], {})
        self.assertTrue(any("refused a" in str(e.get("log_format", "")) for e in logged))
        self.output("real\n")
        self.assertEqual(self.successResultOf(d), "real\n")

    def test_wrong_port_not_routed(self) -> None:
        """An event naming a port no node at that address has is ignored."""
        self.online()
        d = self.device.call("start_sequence")
        self.feed(event(port=6000, type_="output", output="forged"))
        self.assertNoResult(d)
        self.output("ok")
        self.assertEqual(self.successResultOf(d), "ok")

    def test_output_before_delivery_ignored(self) -> None:
        """An output arriving before the command reached the node does not answer it."""
        self.online()
        pending: Deferred[None] = Deferred()
        self.service._send = lambda host, port, data: pending  # type: ignore[method-assign]
        d = self.device.call("start_sequence")
        self.output("early")
        self.assertNoResult(d)
        pending.callback(None)
        self.output("ok")
        self.assertEqual(self.successResultOf(d), "ok")
