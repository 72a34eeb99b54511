# -*- test-case-name: tests.test_flow -*-
"""
Tests of L{twisted_lab.flow.SendBudget} and of slow readers on every
protocol: the server's queued bytes stay within their bound, and a peer
that does not read is dropped with a log line.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import zmq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_lab.flow import PeerSendBudget, SendBudget
from twisted_lab.protocols.pymodaq.transport import ChunkWriter, PyMoDAQConnection


class BudgetTests(SynchronousTestCase):
    """The budget reports a peer past its limit or its deadline, once."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.reasons: list[str] = []
        self.budget = SendBudget(self.clock, self.reasons.append, limit=100, deadline=5.0)

    def test_limit(self) -> None:
        """Going past the limit is refused and reported once."""
        self.assertTrue(self.budget.queued(60))
        self.assertFalse(self.budget.queued(60))
        self.assertFalse(self.budget.queued(60))
        self.assertEqual(len(self.reasons), 1)
        self.assertIn("limit 100", self.reasons[0])

    def test_deadline_restarts_on_progress(self) -> None:
        """The deadline counts from the last progress, and stops when all is taken."""
        self.budget.queued(50)
        self.clock.advance(4)
        self.budget.taken(10)
        self.clock.advance(4)
        self.assertEqual(self.reasons, [])
        self.budget.taken(40)
        self.clock.advance(60)
        self.assertEqual(self.reasons, [])
        self.budget.queued(10)
        self.clock.advance(5)
        self.assertEqual(len(self.reasons), 1)
        self.assertIn("took nothing for 5.0 s", self.reasons[0])

    def test_stop(self) -> None:
        """A stopped budget reports nothing."""
        self.budget.queued(50)
        self.budget.stop()
        self.clock.advance(60)
        self.assertEqual(self.reasons, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_chunk_writer_bounded(self) -> None:
        """A ChunkWriter whose transport never pulls queues at most its limit."""
        budget = SendBudget(self.clock, self.reasons.append, limit=5 << 20, deadline=5.0)
        transport = StringTransport()
        writer = ChunkWriter(transport, budget=budget)
        big = memoryview(np.zeros(2 << 20, dtype=np.uint8)).cast("B")
        for _ in range(10):
            writer.write([b"head", big])
        self.assertLessEqual(budget.waiting, 5 << 20)
        self.assertEqual(len(writer._queue), 4)  # two messages of two chunks
        self.assertEqual(len(self.reasons), 1)


class _Pusher(PyMoDAQConnection):
    """Writes big messages as fast as the writer accepts them."""

    send_limit = 16 << 20
    send_deadline = 1.0

    def connectionMade(self) -> None:
        super().connectionMade()
        self.factory.connections.append(self)  # type: ignore[attr-defined]
        self.frame = memoryview(np.ones(4 << 20, dtype=np.uint8)).cast("B")
        self.push()

    def push(self) -> None:
        if self.closing or self.writer is None:
            return
        self.writer.write([b"\x00\x00\x00\x04", self.frame])
        self.factory.peak = max(self.factory.peak,  # type: ignore[attr-defined]
                                self.writer.budget.waiting)  # type: ignore[union-attr]
        self.call = self.factory.reactor.callLater(0.01, self.push)  # type: ignore[attr-defined]

    def connectionLost(self, reason: Any = None) -> None:
        self.closing = True
        if self.call.active():
            self.call.cancel()
        self.factory.lost.callback(None)  # type: ignore[attr-defined]


class _Sleeper(Protocol):
    """A peer that never reads."""

    def connectionMade(self) -> None:
        self.transport.pauseProducing()  # type: ignore[union-attr]


class SlowReaderTests(TestCase):
    """Slow readers on real loopback connections."""

    def log_lines(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        return events

    async def _pymodaq(self) -> None:
        events = self.log_lines()
        factory = Factory.forProtocol(_Pusher)
        factory.reactor = reactor  # type: ignore[attr-defined]
        factory.connections = []  # type: ignore[attr-defined]
        factory.peak = 0  # type: ignore[attr-defined]
        factory.lost = Deferred()  # type: ignore[attr-defined]
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        client = await TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(
            Factory.forProtocol(_Sleeper))
        self.addCleanup(client.transport.loseConnection)
        started = reactor.seconds()
        await factory.lost  # type: ignore[attr-defined]
        self.assertLess(reactor.seconds() - started, 10)
        self.assertLessEqual(factory.peak, _Pusher.send_limit)  # type: ignore[attr-defined]
        dropped = [e for e in events if "dropping PyMoDAQ peer" in e.get("log_format", "")]
        self.assertEqual(len(dropped), 1)

    def test_pymodaq_peer_not_reading(self) -> Deferred[None]:
        """A PyMoDAQ peer that stops reading: the bytes waiting for it stay under the
        limit, and it is dropped, with a log line, once the limit or deadline is hit."""
        return Deferred.fromCoroutine(self._pymodaq())


class PlestySlowReaderTests(TestCase):
    """A PLESTY client that does not read."""

    async def _plesty(self) -> None:
        from twisted_lab.data import Export, Signal
        from twisted_lab.protocols.plesty.export import PlestyServerService
        from twisted_lab.registry import DeviceRegistry
        from twisted_lab.testing import FakeDetector

        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        registry = DeviceRegistry(reactor)
        image = np.ones((1024, 1024), dtype=np.uint8)
        registry.register(FakeDetector("cam", Export("cam", [Signal("cam", [image])])))
        service = PlestyServerService(registry, "cam", "tcp://127.0.0.1:*", reactor,
                                      send_hwm=2)
        service.startService()
        self.addCleanup(service.stopService)
        assert service.connection is not None
        accepted: list[int] = []
        send = service.connection.send

        def counting(frames: Any) -> bool:
            ok = send(frames)
            if ok and len(frames) > 2:
                accepted.append(1)
            return ok

        service.connection.send = counting  # type: ignore[method-assign]
        context = zmq.Context()
        self.addCleanup(context.destroy, 0)
        slow = context.socket(zmq.DEALER)
        slow.setsockopt(zmq.RCVHWM, 1)
        slow.setsockopt(zmq.RCVBUF, 65536)
        slow.connect(service.address)
        requests = 40
        for _ in range(requests):
            slow.send(json.dumps({"type": "call", "func": "grab", "binary": True}).encode())
        dropped: list[dict[str, Any]] = []
        for _ in range(200):
            await deferLater(reactor, 0.05, lambda: None)
            dropped = [e for e in events if "not delivered" in e.get("log_format", "")]
            if dropped:
                break
        self.assertTrue(dropped, "the client that does not read was never dropped")
        self.assertLess(len(accepted), requests)
        # another client is answered meanwhile
        other = context.socket(zmq.DEALER)
        other.connect(service.address)
        other.send(json.dumps({"type": "ping"}).encode())
        for _ in range(100):
            await deferLater(reactor, 0.02, lambda: None)
            if other.poll(0):
                break
        self.assertEqual(json.loads(other.recv())["result"], "pong")

    def test_plesty_client_not_reading(self) -> Deferred[None]:
        """A PLESTY client that never reads gets at most a few replies queued (the
        send high-water mark); then its replies are refused and it is dropped with a
        log line, while another client is answered."""
        return Deferred.fromCoroutine(self._plesty())


class LecoSlowReaderTests(TestCase):
    """A LECO peer of our Coordinator that does not read."""

    async def _leco(self) -> None:
        from tests.test_leco_coordinator import CoordinatorMixin, request

        mixin = CoordinatorMixin()
        mixin.addCleanup = self.addCleanup  # type: ignore[attr-defined]
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        coordinator = mixin.start_coordinator()
        coordinator.send_limit = 4 << 20
        a = await mixin.component("a", coordinator)
        blob = bytes(1 << 20)
        a.register_method("blob", lambda p, f: (None, [blob]))
        a.register_method("add", lambda p, f: p["x"] + p["y"])
        context = zmq.Context()
        self.addCleanup(context.destroy, 0)
        slow = context.socket(zmq.DEALER)
        slow.setsockopt(zmq.RCVHWM, 1)
        slow.setsockopt(zmq.RCVBUF, 65536)
        slow.connect(coordinator.endpoint)
        slow.send_multipart(request(b"COORDINATOR", b"slow", "sign_in"))
        for _ in range(100):
            await deferLater(reactor, 0.02, lambda: None)
            if slow.poll(0):
                break
        slow.recv_multipart()
        self.assertIn("slow", coordinator.local_names())
        for _ in range(60):
            slow.send_multipart(request(b"N1.a", b"N1.slow", "blob"))
        peak = 0
        dropped: list[dict[str, Any]] = []
        for _ in range(200):
            await deferLater(reactor, 0.05, lambda: None)
            for peer in coordinator.send_budget.peers():
                peak = max(peak, coordinator.send_budget.waiting(peer))
            dropped = [e for e in events if "dropping LECO peer" in e.get("log_format", "")]
            if dropped:
                break
        self.assertTrue(dropped, "the peer that does not read was never dropped")
        self.assertLessEqual(peak, coordinator.send_limit)
        self.assertNotIn("slow", coordinator.local_names())
        b = await mixin.component("b", coordinator)
        self.assertEqual(await b.ask("a", "add", {"x": 1, "y": 1}), (2, []))

    def test_leco_peer_not_reading(self) -> Deferred[None]:
        """Large messages waiting for a LECO peer that does not read stay within the
        Coordinator's limit; past it the peer is dropped (its name forgotten) with a
        log line, and other Components are served."""
        return Deferred.fromCoroutine(self._leco())


class _Tracker:
    """A stand-in for a C{zmq.MessageTracker}."""

    def __init__(self) -> None:
        self.done = False


class PeerSendBudgetTests(SynchronousTestCase):
    """L{PeerSendBudget}: per-peer bytes of tracked messages, a limit and a deadline."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.reports: list[tuple[bytes, str]] = []
        self.budget = PeerSendBudget(self.clock, lambda p, r: self.reports.append((p, r)),
                                     limit=100, deadline=10.0)

    def send(self, peer: bytes, size: int) -> _Tracker | None:
        if not self.budget.admit(peer, size):
            return None
        tracker = _Tracker()
        self.budget.sent(peer, tracker, size)
        return tracker

    def test_limit_per_peer(self) -> None:
        """Up to C{limit} bytes may wait for a peer; more is refused and reported once,
        and another peer is not affected."""
        first = [self.send(b"a", 40) for _ in range(2)]
        self.assertEqual(self.budget.waiting(b"a"), 80)
        self.assertIsNone(self.send(b"a", 40))
        self.assertIsNone(self.send(b"a", 40))
        self.assertEqual([p for p, _ in self.reports], [b"a"])
        self.assertIn("80 bytes waited", self.reports[0][1])
        self.assertTrue(self.budget.refused(b"a"))
        self.assertIsNotNone(self.send(b"b", 90))
        # written out: the peer may have more again, and a new overflow is reported again
        for tracker in first:
            assert tracker is not None
            tracker.done = True
        self.assertIsNotNone(self.send(b"a", 90))
        self.assertFalse(self.budget.refused(b"a"))
        self.assertIsNone(self.send(b"a", 20))
        self.assertEqual([p for p, _ in self.reports], [b"a", b"a"])

    def test_deadline(self) -> None:
        """A peer whose oldest message waited longer than C{deadline} is refused."""
        self.send(b"a", 1)
        self.clock.advance(9)
        self.assertIsNotNone(self.send(b"a", 1))
        self.clock.advance(2)
        self.assertIsNone(self.send(b"a", 1))
        self.assertIn("waited for 11.0 s", self.reports[0][1])

    def test_forgotten_when_done(self) -> None:
        """Peers whose messages were all written out are swept: nothing is kept for
        peers that came and went."""
        trackers = [self.send(b"p%d" % i, 10) for i in range(100)]
        self.assertEqual(len(self.budget.peers()), 100)
        for tracker in trackers:
            assert tracker is not None
            tracker.done = True
        for _ in range(PeerSendBudget.SWEEP_EVERY):
            self.budget.sent(b"small", None, 0)  # untracked sends still count
        self.assertEqual(self.budget.peers(), [])


class LecoComponentSlowCoordinatorTests(TestCase):
    """A LECO Component whose Coordinator stops reading."""

    async def test_component_budget(self) -> None:
        """Large messages a Component sends to a Coordinator that does not read stay
        within its byte budget; past it they are not sent, with one log line."""
        from tests.polling import until
        from twisted_lab.protocols.leco.component import Component
        from twisted_lab.protocols.leco.message import Message

        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        context = zmq.Context()
        self.addCleanup(context.destroy, 0)
        router = context.socket(zmq.ROUTER)
        router.setsockopt(zmq.RCVHWM, 1)
        router.setsockopt(zmq.RCVBUF, 65536)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        component = Component("c", f"tcp://127.0.0.1:{port}", reactor)
        component.send_budget.limit = 4 << 20
        component.startService()
        self.addCleanup(component.stopService)
        # a fake Coordinator answers the sign-in, then reads nothing more
        await until(lambda: router.poll(0), 30, "the sign-in")
        identity, *frames = router.recv_multipart()
        ask = Message.from_frames(frames)
        router.send_multipart([identity, *Message(
            ask.sender, b"N1.COORDINATOR", ask.conversation_id,
            payload=[json.dumps({"id": 1, "result": None, "jsonrpc": "2.0"}).encode()],
        ).to_frames()])
        await until(lambda: component.namespace == "N1", 30, "signed in")
        blob = bytes(1 << 20)
        sent = 0
        peak = 0
        for _ in range(60):
            sent += component.notify("N1.x", "blob", frames=[blob])
            peak = max(peak, component.send_budget.waiting(b"coordinator"))
            await deferLater(reactor, 0.01, lambda: None)
        self.assertLess(sent, 60)
        self.assertLessEqual(peak, component.send_budget.limit)
        lines = [e for e in events if "does not read" in e.get("log_format", "")]
        self.assertEqual(len(lines), 1)
