# -*- test-case-name: tests.test_la4_e2e -*-
"""
End-to-end LA4 tests over real loopback sockets (ephemeral ports): our
coordinator drives our simulated node, and plain sockets speak the spec's
documented payloads to the node.  Timing (heartbeats, silence, deadlines) is
driven by injected L{Clock}s, never by sleeping.
"""
from __future__ import annotations

import json
import socket
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from twisted_lab.protocols.la4.imports import LA4CoordinatorService, NodeConfig
from twisted_lab.protocols.la4.message import Message
from twisted_lab.protocols.la4.node import REJECTED_PREFIX, BoardState, SimulatedNode
from twisted_lab.registry import DeviceRegistry

from tests.test_la4_message import DOC_COMMAND, DOC_HEARTBEAT
from tests.polling import until

SEQ_OUTPUT = ('BOARDIO_CLI: Sent: "uSeq" to FIFO file\n'
              'BOARDIO_CLI: Sent: "runSeq" to FIFO file\n')


class LoopbackTestCase(TestCase):
    """A simulated node and a coordinator on 127.0.0.1 ephemeral ports."""

    async def start_node(self, port: int = 0, **kwargs: Any) -> SimulatedNode:
        node = SimulatedNode(reactor, self.node_clock, port=port, **kwargs)
        node.startService()
        self.addCleanup(node.stopService)
        await node.when_listening()
        return node

    async def start_pair(self) -> None:
        self.node_clock = Clock()
        self.clock = Clock()
        self.node = await self.start_node()
        self.registry = DeviceRegistry(self.clock)
        self.service = LA4CoordinatorService(
            self.registry, reactor, [NodeConfig("la4", "127.0.0.1", self.node.port)],
            "tcp:0:interface=127.0.0.1", self.clock)
        self.received: list[Message] = []
        original = self.service.message_received

        def counting(message: Message, host: str) -> None:
            self.received.append(message)
            original(message, host)

        self.service.message_received = counting  # type: ignore[method-assign]
        self.service.startService()
        self.addCleanup(self.service.stopService)
        await self.service.when_listening()
        self.device = self.registry.lookup("la4")
        await until(lambda: self.device.online)


class CoordinatorNodeTests(LoopbackTestCase):
    """Our coordinator drives our simulated node."""

    async def test_every_documented_form(self) -> None:
        """Each action's result is the output event the node sent for it, and the
        board ends in the commanded state."""
        await self.start_pair()
        device, board = self.device, self.node.board
        self.assertEqual(await device.call("set_model_light", 70), SEQ_OUTPUT)
        self.assertEqual(board.model_light, 70)
        await device.call("fire_all", 90)
        self.assertEqual(board.last_fired, "ALL_4_NIKON,90")
        await device.call("fire_all", 90, "canon", 30)
        self.assertEqual(board.last_fired, "ALL_4_CANON,90,30")
        await device.call("olat", 20, True)
        self.assertEqual(board.last_fired, "OLAT_4_NIKON,20,1")
        await device.call("olat", 20, False, "canon")
        self.assertEqual((board.last_fired, board.shots), ("OLAT_4_CANON,20,0", 10))
        await device.call("set_fans", True)
        await device.call("set_polarizer", True)
        self.assertEqual((board.fans, board.polarizer), (True, True))
        await device.call("run_sequence", ["MODEL_LIGHT,100", ["LED_FAN", 0]])
        self.assertEqual((board.model_light, board.fans), (100, False))
        self.assertEqual(await device.call("upload_sequence", ["MODEL_LIGHT,5"]),
                         'BOARDIO_CLI: Sent: "uSeq" to FIFO file\n')
        self.assertEqual(board.model_light, 100)
        self.assertEqual(await device.call("start_sequence"),
                         'BOARDIO_CLI: Sent: "runSeq" to FIFO file\n')
        self.assertEqual(board.model_light, 5)
        await device.call("store_standalone", ["LED_FAN,1"])
        self.assertEqual(board.snapshot()["standalone"], ["LED_FAN,1"])
        self.assertEqual(await device.set("polarizer", False), False)
        self.assertFalse(board.polarizer)
        self.assertEqual(await device.get("model_light"), 5)
        await until(lambda: device._values["last_message"] == "BOARDIO_READY")
        self.assertEqual((await device.get("unit_info"))["heads"], 4)

    async def test_concurrent_calls(self) -> None:
        """Concurrent calls on one node are queued and each gets its own output."""
        await self.start_pair()
        results = await gatherResults([self.device.call("set_model_light", p)
                                       for p in (1, 2, 3, 4, 5)])
        self.assertEqual(results, [SEQ_OUTPUT] * 5)
        self.assertEqual((self.node.board.model_light, self.node.board.runs), (5, 5))

    async def test_heartbeats_silence_restart(self) -> None:
        """Heartbeats keep the node online; silence takes it offline; a node
        restarted on the same port brings the same device back online."""
        await self.start_pair()
        for _ in range(10):  # 30 s of heartbeats both ways
            count = len(self.received)
            self.node_clock.advance(3)
            await until(lambda n=count: len(self.received) > n)
            self.clock.advance(3)
        self.assertTrue(self.device.online)
        old_id = self.device._values["node_id"]
        port = self.node.port
        await self.node.stopService()
        self.clock.advance(15.1)
        self.assertFalse(self.device.online)
        node = await self.start_node(port=port)
        self.clock.advance(5)  # our next heartbeat reaches the new node
        await until(lambda: self.device.online)
        self.assertIs(self.registry.lookup("la4"), self.device)
        self.assertEqual(self.device._values["node_id"], node.id)
        self.assertNotEqual(node.id, old_id)
        self.assertEqual(await self.device.call("set_fans", True), SEQ_OUTPUT)

    async def test_bad_peers_do_not_disturb(self) -> None:
        """A slow sender and a garbage sender on the node's port do not stop the
        coordinator's commands; the slow one is dropped at its deadline."""
        await self.start_pair()
        slow = socket.create_connection(("127.0.0.1", self.node.port))
        self.addCleanup(slow.close)
        slow.sendall(b'{"id": "slow"')
        garbage = socket.create_connection(("127.0.0.1", self.node.port))
        garbage.sendall(b"\x00\xff rm -rf /")
        garbage.close()
        self.assertEqual(await self.device.call("set_model_light", 9), SEQ_OUTPUT)
        self.node_clock.advance(5.1)
        await until(lambda: self.node.handled.count(("invalid", False)) == 2)
        await until(lambda: self.node.factory.connections == 0)


class WireTests(TestCase):
    """Plain sockets send the documented payloads to the node and read its events."""

    def setUp(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(5)
        self.addCleanup(self.listener.close)
        self.port = self.listener.getsockname()[1]

    async def start_node(self, **kwargs: Any) -> SimulatedNode:
        self.clock = Clock()
        node = SimulatedNode(reactor, self.clock, port=0, **kwargs)
        node.startService()
        self.addCleanup(node.stopService)
        await node.when_listening()
        return node

    def send(self, node: SimulatedNode, data: bytes) -> None:
        """Connect, send one document, half-close and close: like a pycom peer."""
        with socket.create_connection(("127.0.0.1", node.port)) as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            self.assertEqual(sock.recv(10), b"")  # nothing is ever answered in-band

    def read_events(self, count: int) -> list[dict[str, Any]]:
        """Accept C{count} event connections, each read until the node closes."""
        events = []
        for _ in range(count):
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(5)
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
            events.append(json.loads(data))
        return events

    def ours(self, documented: bytes) -> bytes:
        """The documented bytes with only the callback port changed to our listener."""
        self.assertEqual(documented.count(b'"port": 5000'), 1)
        return documented.replace(b'"port": 5000', b'"port": %d' % self.port)

    async def test_documented_heartbeat(self) -> None:
        """The documented heartbeat is answered with the node's heartbeat and its
        unit info, on new connections to our listener."""
        node = await self.start_node()
        events = deferToThread(self.read_events, 2)
        await deferToThread(self.send, node, self.ours(DOC_HEARTBEAT))
        heartbeat, info = await events
        self.assertEqual(heartbeat, {"id": node.id, "name": "rigsters-controller",
                                     "ip": "127.0.0.1", "port": node.port,
                                     "version": "0.14.0", "coordinator": False})
        self.assertEqual((info["type_"], info["heads"]), ("unit_info", 4))

    async def test_documented_command(self) -> None:
        """The documented command runs: its output event and the boardio messages
        come back on new connections, and the board shows its rows."""
        node = await self.start_node()
        events = deferToThread(self.read_events, 6)
        await deferToThread(self.send, node, self.ours(DOC_COMMAND))
        got = await events
        self.assertEqual([e.get("type_") for e in got],
                         [None, "unit_info", "output", "message", "message", "message"])
        self.assertEqual(got[2]["output"], SEQ_OUTPUT)
        self.assertEqual([e["message"] for e in got[3:]],
                         ["BOARDIO_READY", "BOARDIO_READY", "Sequence complete"])
        self.assertTrue(all(e["coordinator"] is False and e["id"] == node.id for e in got))
        self.assertEqual((node.board.model_light, node.board.fans), (100, True))

    async def test_documented_bytes_unchanged(self) -> None:
        """The documented command, byte for byte (port 5000 included), is accepted;
        with callbacks limited to other ports, nothing is sent to port 5000."""
        node = await self.start_node(callback_ports=[self.port])
        await deferToThread(self.send, node, DOC_COMMAND)
        await until(lambda: ("cmd", True) in node.handled)
        self.assertEqual(node.board.model_light, 100)

    async def test_disallowed_command_on_the_wire(self) -> None:
        """A shell command is answered with an error output; nothing runs."""
        node = await self.start_node()
        payload = json.loads(self.ours(DOC_COMMAND))
        payload["command"] = "rm -rf / ; echo `id` $(id) > /etc/passwd"
        events = deferToThread(self.read_events, 3)
        await deferToThread(self.send, node, json.dumps(payload).encode())
        got = await events
        self.assertEqual(got[2]["type_"], "output")
        self.assertTrue(got[2]["output"].startswith(REJECTED_PREFIX + "command refused"))
        self.assertEqual(node.board, BoardState())

    async def test_oversized_and_slow_on_the_wire(self) -> None:
        """An oversized message and a never-closing sender are dropped; a
        documented command sent meanwhile still runs."""
        node = await self.start_node()
        slow = socket.create_connection(("127.0.0.1", node.port))
        self.addCleanup(slow.close)
        slow.sendall(self.ours(DOC_COMMAND)[:50])

        def oversized() -> None:
            with socket.create_connection(("127.0.0.1", node.port)) as sock:
                try:
                    sock.sendall(b'{"x": "' + b"a" * 200000)
                except OSError:
                    pass  # the node closed on us: expected

        await deferToThread(oversized)
        events = deferToThread(self.read_events, 6)
        await deferToThread(self.send, node, self.ours(DOC_COMMAND))
        self.assertEqual(len(await events), 6)
        self.clock.advance(5.1)
        await until(lambda: node.handled.count(("invalid", False)) == 2)
        self.assertEqual(node.board.runs, 1)
