# -*- test-case-name: tests.test_plesty_budget -*-
"""
What a PLESTY client can make the server hold in ZeroMQ: a per-client byte
budget on large replies (L{twisted_lab.flow.PeerSendBudget}) for a client
that never reads, room for a client that pipelines, and an error reply (with
the request's C{rid}) to an over-size request.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import zmq
from twisted.internet import reactor
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.polling import until
from twisted_lab.data import Export, Signal
from twisted_lab.protocols.plesty.export import PlestyServerService
from twisted_lab.protocols.plesty.handler import RID_WINDOW, rid_near_ends
from twisted_lab.protocols.plesty.message import decode
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeActuator, FakeDetector


class _Server:
    """A PLESTY server on loopback and a ZeroMQ context for its clients."""

    def start(self, case: TestCase, device: Any, **kwargs: Any) -> PlestyServerService:
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        case.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        registry = DeviceRegistry(reactor)
        registry.register(device)
        service = PlestyServerService(registry, device.name, "tcp://127.0.0.1:*", reactor,
                                      **kwargs)
        service.startService()
        case.addCleanup(service.stopService)
        self.context = zmq.Context()
        case.addCleanup(self.context.destroy, 0)
        return service

    def client(self, address: str, **options: Any) -> zmq.Socket[Any]:
        sock = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        for option, value in options.items():
            sock.setsockopt(getattr(zmq, option), value)
        sock.connect(address)
        return sock

    def logged(self, text: str) -> list[dict[str, Any]]:
        return [e for e in self.events if text in e.get("log_format", "")]


def _replies(sock: zmq.Socket[Any], into: list[Any]) -> int:
    """Read what is there (without blocking) into C{into}; the count."""
    count = 0
    while sock.poll(0):
        into.append(sock.recv_multipart())
        count += 1
    return count


class NeverReadingClientTests(TestCase):
    """A client that asks for large replies and never reads them."""

    async def test_budget_bounds_and_answers_errors(self) -> None:
        """Large replies waiting for a client stay within the byte budget; past it the
        client is logged and gets short error replies (with their C{rid}) instead
        of more data, while another client is answered."""
        server = _Server()
        image = np.ones((1024, 1024), dtype=np.uint8)
        service = server.start(self, FakeDetector("cam", Export("cam", [Signal("cam", [image])])))
        assert service.connection is not None
        budget = service.connection.send_budget
        budget.limit = 4 << 20
        slow = server.client(service.address, RCVHWM=1, RCVBUF=65536)
        requests = 40
        for rid in range(requests):
            slow.send(json.dumps({"type": "call", "func": "grab", "binary": True,
                                  "rid": rid}).encode())
        peak = 0

        def refused() -> bool:
            nonlocal peak
            peak = max([peak] + [budget.waiting(p) for p in budget.peers()])
            return bool(server.logged("does not read its replies"))

        await until(refused, 60, "the client that does not read was reported")
        self.assertLessEqual(peak, budget.limit)
        other = server.client(service.address)
        other.send(json.dumps({"type": "ping", "rid": "other"}).encode())
        got: list[Any] = []
        await until(lambda: _replies(other, got), 30, "another client answered")
        self.assertEqual(json.loads(got[0][-1])["result"], "pong")
        # now the slow client reads: every request was answered, with data or an error
        replies: list[Any] = []
        await until(lambda: _replies(slow, replies) >= 0 and len(replies) >= requests, 60,
                    "every reply to the slow client")
        data = [r for r in replies if len(r) > 1]
        errors = [json.loads(r[0]) for r in replies if len(r) == 1]
        self.assertTrue(data and errors)
        self.assertEqual({e["type"] for e in errors}, {"BufferError"})
        # one line each time it went past the budget (replies still being encoded
        # when it starts reading may take it past once more), never one per reply
        self.assertLessEqual(len(server.logged("does not read its replies")), len(errors))
        rids = [decode(r).get("rid") for r in replies]
        self.assertEqual(sorted(rids), list(range(requests)))


class PipeliningClientTests(TestCase):
    """Clients that send many requests before reading any reply."""

    async def test_no_reply_lost(self) -> None:
        """20 clients each send 50 requests, then read: all 1,000 replies arrive (the
        send high-water mark of 4 used to drop some)."""
        server = _Server()
        service = server.start(self, FakeActuator("stage"))
        clients = [server.client(service.address) for _ in range(20)]
        for sock in clients:
            for rid in range(50):
                sock.send(json.dumps({"type": "describe" if rid % 2 else "ping",
                                      "rid": rid}).encode())
        got: list[list[Any]] = [[] for _ in clients]

        def all_in() -> bool:
            for sock, into in zip(clients, got):
                _replies(sock, into)
            return all(len(into) >= 50 for into in got)

        await until(all_in, 60, "every reply to every pipelining client")
        for into in got:
            replies = [json.loads(r[-1]) for r in into]
            self.assertEqual([r["rid"] for r in replies], list(range(50)))
            self.assertEqual({r["status"] for r in replies}, {"ok"})


class OversizeRequestTests(TestCase):
    """Requests past C{max_message_size}."""

    async def test_error_reply_with_rid(self) -> None:
        """An over-size request gets a C{ValueError} reply carrying its C{rid} when the
        rid is near its start or end; one past ZeroMQ's MAXMSGSIZE (2 x
        max_message_size + 64 KiB) is cut by ZeroMQ (no reply, the connection is
        re-made) and the next request is answered."""
        server = _Server()
        service = server.start(self, FakeActuator("stage"), max_message_size=1000)
        sock = server.client(service.address)
        pad = "x" * 3000
        sock.send(('{"rid": 7, "type": "ping", "pad": "%s"}' % pad).encode())
        sock.send(('{"type": "ping", "pad": "%s", "rid": "end"}' % pad).encode())
        sock.send(('{"type": "ping", "pad": "%s", "rid": 8, "pad2": "%s"}'
                   % (pad + "x" * RID_WINDOW, pad + "x" * RID_WINDOW)).encode())
        got: list[Any] = []
        await until(lambda: _replies(sock, got) >= 0 and len(got) >= 3, 30, "three replies")
        replies = [json.loads(r[-1]) for r in got]
        self.assertEqual([r["type"] for r in replies], ["ValueError"] * 3)
        self.assertIn("exceeds the limit of 1000 bytes", replies[0]["error"])
        self.assertEqual([r.get("rid") for r in replies], [7, "end", None])
        # past MAXMSGSIZE: ZeroMQ drops the connection before the message is read
        sock.send(('{"rid": 9, "pad": "%s"}' % ("x" * (200 << 10))).encode())
        more: list[Any] = []
        for _ in range(100):  # the DEALER reconnects by itself; ask until answered
            sock.send(json.dumps({"type": "ping", "rid": 10}).encode())
            try:
                await until(lambda: _replies(sock, more), 0.5)
            except AssertionError:
                continue
            break
        rids = [json.loads(r[-1]).get("rid") for r in more]
        self.assertNotIn(9, rids)
        self.assertIn(10, rids)


class RidNearEndsTests(SynchronousTestCase):
    """L{rid_near_ends} reads a C{rid} near either end, and nothing else."""

    def test_values(self) -> None:
        """Numbers, strings, booleans and null are read, at the start or the end."""
        pad = b"x" * (3 * RID_WINDOW)
        for text, value in [(b"12", 12), (b"-1.5", -1.5), (b'"a\\"b"', 'a"b'),
                            (b"true", True), (b"null", None)]:
            self.assertEqual(rid_near_ends(b'{"rid": ' + text + b', "p": "' + pad + b'"}'),
                             (True, value))
            self.assertEqual(rid_near_ends(b'{"p": "' + pad + b'", "rid":' + text + b"}"),
                             (True, value))

    def test_middle_or_missing(self) -> None:
        """A rid only in the middle of a long body, or none, is not found."""
        pad = b"x" * (2 * RID_WINDOW)
        self.assertEqual(rid_near_ends(b'{"a": "' + pad + b'", "rid": 3, "b": "' + pad
                                       + b'"}'), (False, None))
        self.assertEqual(rid_near_ends(b"garbage" * 1000), (False, None))
        self.assertEqual(rid_near_ends(b'{"rid": [1, 2]}'), (False, None))
