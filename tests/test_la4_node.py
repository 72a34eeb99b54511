# -*- test-case-name: tests.test_la4_node -*-
"""
Tests for L{twisted_lab.protocols.la4.node}: the simulated node, driven by
a fake clock, with its outgoing connections recorded.
"""
from __future__ import annotations

import json
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.protocols.la4.message import (Heartbeat, Message, MessageEvent,
                                               OutputEvent, UnitInfo, decode)
from twisted_lab.protocols.la4.node import REJECTED_PREFIX, BoardState, SimulatedNode

from tests.test_la4_message import DOC_COMMAND, DOC_HEARTBEAT

COORD = {"id": "c0ffee00", "name": "coord", "ip": "10.9.9.9", "port": 6000, "version": "1",
         "coordinator": True}


class RecordingNode(SimulatedNode):
    """A node whose outgoing messages are recorded instead of sent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("port", 5000)
        super().__init__(*args, **kwargs)
        self.sent: list[tuple[str, int, Message]] = []
        self.fail_sends = 0

    def _send(self, host: str, port: int, data: bytes, timeout: float = 2.0) -> Deferred[None]:
        if self.fail_sends:
            self.fail_sends -= 1
            return fail(ConnectionRefusedError())
        self.sent.append((host, port, decode(data)))
        return succeed(None)

    def take(self) -> list[tuple[str, int, Message]]:
        sent, self.sent = self.sent, []
        return sent


def feed(node: SimulatedNode, data: bytes, host: str = "127.0.0.1") -> StringTransport:
    """Deliver raw bytes to the node's listener as one connection."""
    proto = node.factory.buildProtocol(IPv4Address("TCP", host, 40000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", host, 40000))
    proto.makeConnection(transport)
    proto.dataReceived(data)
    proto.connectionLost()
    return transport


def doc(**fields: Any) -> bytes:
    obj = dict(COORD)
    obj.update(fields)
    return json.dumps(obj).encode()


class NodeTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.node = RecordingNode(self.reactor, node_id="0dd0dd00")
        self.node.startService()
        self.addCleanup(self.node.stopService)

    def kinds(self, sent: list[tuple[str, int, Message]]) -> list[str]:
        return [m.type_ or "heartbeat" for _h, _p, m in sent]


class HeartbeatTests(NodeTestCase):
    """Peers, heartbeats and the unit-info event."""

    def test_listens_on_loopback(self) -> None:
        """By default the node listens on 127.0.0.1:5000."""
        port, _factory, _backlog, interface = self.reactor.tcpServers[0]
        self.assertEqual((port, interface), (5000, "127.0.0.1"))

    def test_answers_coordinator_heartbeat(self) -> None:
        """A coordinator's first heartbeat is answered with our heartbeat and the
        unit info, sent to the observed address and the advertised port."""
        feed(self.node, doc(), host="127.0.0.5")
        sent = self.node.take()
        self.assertEqual([(h, p) for h, p, _ in sent], [("127.0.0.5", 6000)] * 2)
        heartbeat, info = sent[0][2], sent[1][2]
        self.assertIsInstance(heartbeat, Heartbeat)
        self.assertEqual((heartbeat.id, heartbeat.coordinator, heartbeat.port),
                         ("0dd0dd00", False, 5000))
        self.assertIsInstance(info, UnitInfo)
        assert isinstance(info, UnitInfo)
        self.assertEqual(info.fields["heads"], 4)

    def test_unit_info_once(self) -> None:
        """The unit info goes to a coordinator once; later heartbeats get none."""
        feed(self.node, doc())
        feed(self.node, doc())
        self.assertEqual(self.kinds(self.node.take()), ["heartbeat", "unit_info"])

    def test_no_unit_info_for_nodes(self) -> None:
        """A peer that is not a coordinator gets a heartbeat but no unit info."""
        feed(self.node, doc(coordinator=False))
        self.assertEqual(self.kinds(self.node.take()), ["heartbeat"])

    def test_periodic_heartbeats_and_forgetting(self) -> None:
        """Known peers get a heartbeat every 3 s; after 15 s of silence they are
        forgotten, and a later heartbeat from them is answered again."""
        feed(self.node, doc())
        self.node.take()
        self.reactor.advance(3)
        self.assertEqual(self.kinds(self.node.take()), ["heartbeat"])
        self.reactor.pump([3] * 4)
        self.assertEqual(len(self.node.take()), 4)
        self.reactor.advance(3)  # 18 s of silence
        self.assertEqual(self.node.take(), [])
        self.assertEqual(self.node.peers, {})
        feed(self.node, doc())
        self.assertEqual(self.kinds(self.node.take()), ["heartbeat", "unit_info"])

    def test_configured_coordinator(self) -> None:
        """A configured coordinator is heartbeated from the start."""
        node = RecordingNode(self.reactor, coordinator=("127.0.0.1", 7000))
        node.startService()
        self.addCleanup(node.stopService)
        self.assertEqual([(h, p) for h, p, _ in node.take()], [("127.0.0.1", 7000)])
        self.reactor.advance(3)
        self.assertEqual(len(node.take()), 1)

    def test_scan_until_coordinator(self) -> None:
        """With a scan range, the node announces itself to each host every 5 s
        until a coordinator speaks, and scans again when it goes silent."""
        node = RecordingNode(self.reactor, scan="127.0.0.0/30", scan_port=15000)
        node.startService()
        self.addCleanup(node.stopService)
        self.assertEqual(sorted((h, p) for h, p, _ in node.take()),
                         [("127.0.0.1", 15000), ("127.0.0.2", 15000)])
        self.reactor.advance(5)
        self.assertEqual(len(node.take()), 2)
        feed(node, doc(port=15000))
        node.take()
        self.reactor.advance(5)
        self.assertEqual([(h, p) for h, p, _ in node.take()], [("127.0.0.1", 15000)])
        self.reactor.advance(16)
        self.assertIn(("127.0.0.2", 15000), [(h, p) for h, p, _ in node.take()])

    def test_scan_range_capped(self) -> None:
        """A scan range larger than a /24 is refused."""
        self.assertRaises(ValueError, SimulatedNode, self.reactor, scan="10.0.0.0/16")


class CommandTests(NodeTestCase):
    """Allowed commands change the board; their events go back to the requester."""

    def test_documented_command(self) -> None:
        """The documented C{cmd} payload, byte for byte, runs the sequence and is
        answered with its output and then the boardio messages."""
        feed(self.node, DOC_COMMAND, host="127.0.0.9")
        sent = self.node.take()
        self.assertEqual({(h, p) for h, p, _ in sent}, {("127.0.0.9", 5000)})
        self.assertEqual(self.kinds(sent), ["heartbeat", "unit_info", "output", "message",
                                            "message", "message"])
        output = sent[2][2]
        assert isinstance(output, OutputEvent)
        self.assertEqual(output.output, 'BOARDIO_CLI: Sent: "uSeq" to FIFO file\n'
                                        'BOARDIO_CLI: Sent: "runSeq" to FIFO file\n')
        self.assertEqual([m.message for _h, _p, m in sent[3:]  # type: ignore[attr-defined]
                          ], ["BOARDIO_READY", "BOARDIO_READY", "Sequence complete"])
        self.assertEqual((self.node.board.model_light, self.node.board.fans), (100, True))

    def test_documented_heartbeat(self) -> None:
        """The documented heartbeat payload, byte for byte, is accepted."""
        feed(self.node, DOC_HEARTBEAT)
        self.assertEqual(list(self.node.handled), [("heartbeat", True)])
        self.assertEqual(self.kinds(self.node.take()), ["heartbeat", "unit_info"])

    def test_every_register(self) -> None:
        """Every register of the table is applied to the board."""
        rows = "\\n".join(["MODEL_LIGHT,40", "LED_FAN,1", "DIGITAL_POLARIZER,1",
                           "ALL_4_NIKON,50", "ALL_4_CANON,50,100", "OLAT_4_NIKON,20,0",
                           "OLAT_4_CANON,20,1"])
        feed(self.node, doc(type_="cmd", command=f'echo "{rows}" > ~/la4_sequence.csv && '
                                                 "boardiocli uSeq && boardiocli runSeq"))
        board = self.node.board
        self.assertEqual((board.model_light, board.fans, board.polarizer, board.shots,
                          board.last_fired), (40, True, True, 10, "OLAT_4_CANON,20,1"))

    def test_errors_of_boardio(self) -> None:
        """Running with nothing loaded, or loading an empty standalone file, gives
        C{BOARDIO_ERROR} and changes nothing."""
        feed(self.node, doc(type_="cmd", command="boardiocli runSeq"))
        feed(self.node, doc(type_="cmd", command='echo "" > ~/la4_sequence_standalone.csv'
                                                 " && boardiocli uSeqStandalone"))
        messages = [m.message for _h, _p, m in self.node.take()
                    if isinstance(m, MessageEvent)]
        self.assertEqual(messages, ["BOARDIO_ERROR", "BOARDIO_ERROR"])
        self.assertEqual(self.node.board.runs, 0)

    def test_standalone(self) -> None:
        """Storing a standalone sequence loads it without running it."""
        feed(self.node, doc(type_="cmd", command='echo "LED_FAN,1\\nMODEL_LIGHT,9" > '
                            "/home/rigsters/la4_sequence_standalone.csv && "
                            "boardiocli uSeqStandalone"))
        self.assertEqual(self.node.board.snapshot()["standalone"],
                         ["LED_FAN,1", "MODEL_LIGHT,9"])
        self.assertEqual(self.node.board.model_light, 0)

    def test_commands_one_at_a_time(self) -> None:
        """With a command duration, commands run in arrival order, one at a time."""
        node = RecordingNode(self.reactor, command_delay=1.0)
        node.startService()
        self.addCleanup(node.stopService)
        for power in (10, 20):
            feed(node, doc(type_="cmd", command=f'echo "MODEL_LIGHT,{power}" > '
                           "~/la4_sequence.csv && boardiocli uSeq && boardiocli runSeq"))
        node.take()
        self.reactor.advance(1)
        self.assertEqual(node.board.model_light, 10)
        self.reactor.advance(1)
        self.assertEqual(node.board.model_light, 20)

    def test_rate_limit_delays(self) -> None:
        """Past the per-host rate, events wait their turn instead of being lost."""
        node = RecordingNode(self.reactor, events_per_second=2)
        node.startService()
        self.addCleanup(node.stopService)
        feed(node, DOC_COMMAND)  # 6 events
        self.assertEqual(len(node.take()), 2)
        self.reactor.advance(0.5)
        self.assertEqual(len(node.take()), 1)
        self.reactor.pump([0.5] * 3)
        self.assertEqual(len(node.take()), 3)

    def test_retry_once(self) -> None:
        """A failed delivery is retried once, then dropped with a log line."""
        self.node.fail_sends = 1
        feed(self.node, doc(coordinator=False))
        self.assertEqual(len(self.node.take()), 1)
        self.node.fail_sends = 2
        feed(self.node, doc(coordinator=False, type_="cmd", command="boardiocli uSeq"))
        self.assertEqual(self.kinds(self.node.take()), ["message"])

    def test_callback_ports(self) -> None:
        """Events go only to allowed callback ports."""
        node = RecordingNode(self.reactor, callback_ports=[6000])
        node.startService()
        self.addCleanup(node.stopService)
        feed(node, DOC_COMMAND)  # asks for port 5000
        self.assertEqual(node.take(), [])
        self.assertEqual(node.board.model_light, 100)
        feed(node, doc(type_="cmd", command="boardiocli runSeq"))
        self.assertEqual({p for _h, p, _m in node.take()}, {6000})


class BadInputTests(NodeTestCase):
    """Bad requests run nothing, are answered or dropped, and leave others alone."""

    def assertNothingRan(self) -> None:
        self.assertEqual(self.node.board, BoardState())

    def error_outputs(self) -> list[str]:
        return [m.output for _h, _p, m in self.node.take() if isinstance(m, OutputEvent)]

    def test_non_json(self) -> None:
        """Non-JSON is a logged drop: nothing sent back, nothing run."""
        feed(self.node, b"rm -rf /")
        feed(self.node, b'{"port": 6000, rm -rf /}')
        self.assertEqual(self.node.take(), [])
        self.assertEqual(list(self.node.handled), [("invalid", False)] * 2)
        self.assertNothingRan()

    def test_not_an_object(self) -> None:
        """JSON that is not an object is a logged drop."""
        feed(self.node, b'["rm -rf /"]')
        self.assertEqual(self.node.take(), [])
        self.assertNothingRan()

    def test_missing_base_fields(self) -> None:
        """A missing base field is answered with an error output when the port is known."""
        obj = json.loads(doc(type_="cmd", command="boardiocli runSeq"))
        del obj["version"]
        feed(self.node, json.dumps(obj).encode())
        outputs = self.error_outputs()
        self.assertEqual(len(outputs), 1)
        self.assertTrue(outputs[0].startswith(REJECTED_PREFIX))
        self.assertIn("'version' is missing", outputs[0])
        self.assertNothingRan()

    def test_wrong_field_types(self) -> None:
        """Wrong field types are answered with an error output (or dropped without a port)."""
        feed(self.node, doc(coordinator="yes"))
        feed(self.node, doc(type_="cmd", command=["boardiocli", "runSeq"]))
        feed(self.node, doc(port="6000"))
        outputs = self.error_outputs()
        self.assertEqual(len(outputs), 2)
        self.assertIn("'coordinator' must be", outputs[0])
        self.assertIn("'command' must be a string", outputs[1])
        self.assertNothingRan()

    def test_unknown_type(self) -> None:
        """An unknown C{type_} is answered with an error output."""
        feed(self.node, doc(type_="shell", command="id"))
        outputs = self.error_outputs()
        self.assertEqual(len(outputs), 1)
        self.assertIn("unknown request type_ 'shell'", outputs[0])
        self.assertNothingRan()

    def test_disallowed_commands(self) -> None:
        """Shell syntax and other commands are refused with an error output each."""
        bad = ["rm -rf /", "boardiocli uSeq; reboot", "boardiocli `id`",
               "boardiocli $(id)", 'echo "MODEL_LIGHT,1" > /etc/profile',
               "boardiocli runSeq > /tmp/x", 'echo "$(reboot)" > ~/la4_sequence.csv']
        for command in bad:
            feed(self.node, doc(type_="cmd", command=command))
        outputs = self.error_outputs()
        self.assertEqual(len(outputs), len(bad))
        for output in outputs:
            self.assertTrue(output.startswith(REJECTED_PREFIX + "command refused"))
        self.assertEqual(list(self.node.handled), [("cmd", False)] * len(bad))
        self.assertNothingRan()

    def test_oversized(self) -> None:
        """An oversized message is dropped and its connection closed."""
        transport = feed(self.node, doc(type_="cmd", command="x" * 70000))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.node.take(), [])
        self.assertNothingRan()

    def test_slow_sender_does_not_block_others(self) -> None:
        """A connection that never closes is dropped after 5 s; meanwhile another
        peer's command runs normally."""
        proto = self.node.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        slow = StringTransport()
        proto.makeConnection(slow)
        proto.dataReceived(doc(type_="cmd", command="boardiocli runSeq")[:30])
        feed(self.node, DOC_COMMAND, host="127.0.0.2")
        self.assertEqual(self.node.board.model_light, 100)
        self.reactor.advance(5.1)
        self.assertTrue(slow.disconnecting)
        self.assertEqual(self.node.handled[-1], ("invalid", False))

    def test_events_only_to_observed_address(self) -> None:
        """The payload's C{ip} is ignored: events go to the observed address."""
        feed(self.node, doc(ip="8.8.8.8", type_="cmd", command="boardiocli runSeq"),
             host="127.0.0.3")
        self.assertEqual({h for h, _p, _m in self.node.take()}, {"127.0.0.3"})

    def test_no_subprocess(self) -> None:
        """The LA4 package never imports subprocess or calls os.system."""
        import pathlib

        import twisted_lab.protocols.la4 as package

        for path in pathlib.Path(package.__file__).parent.glob("*.py"):
            text = path.read_text()
            for forbidden in ("subprocess", "os.system", "os.popen", "shell=True", "spawnProcess"):
                self.assertNotIn(forbidden, text, f"{path.name} mentions {forbidden}")
