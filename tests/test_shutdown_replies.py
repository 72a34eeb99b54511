# -*- test-case-name: tests.test_shutdown_replies -*-
"""
Requests in progress when a ZeroMQ service stops get an error reply, not
silence: PLESTY (a C{ConnectionAbortedError} with the request's C{rid}) and
LECO actors (a JSON-RPC server error).  Real sockets on loopback.
"""
from __future__ import annotations

import json
from typing import Any

import zmq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.test_leco_coordinator import CoordinatorMixin
from twisted_lab.errors import LabError
from twisted_lab.protocols.leco.export import DeviceActor
from twisted_lab.protocols.plesty.message import decode
from twisted_lab.protocols.plesty.export import PlestyServerService
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeDevice


def _never() -> Deferred[Any]:
    return Deferred()


def _ask_and_wait(address: str, request: dict[str, Any]) -> list[bytes] | None:
    """Blocking: one DEALER request; its reply, or C{None} after 5 s."""
    context: zmq.Context[Any] = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(address)
    try:
        socket.send(json.dumps(request).encode())
        if socket.poll(5000):
            return socket.recv_multipart()
        return None
    finally:
        socket.close(0)
        context.term()


class PlestyShutdownTests(TestCase):
    """PLESTY: a request in progress at stop gets an error reply."""

    async def test_inflight_request_answered(self) -> None:
        """A call still running when the service stops is answered with an error."""
        registry = DeviceRegistry(reactor)
        registry.register(FakeDevice("slow", {"x": 1.0}, actions={"wait": _never}))
        service = PlestyServerService(registry, "slow", "tcp://127.0.0.1:*", reactor)
        service.startService()
        reply = deferToThread(_ask_and_wait, service.address,
                              {"type": "call", "func": "wait", "rid": 42})
        for _ in range(200):
            if service.connection is not None and service.connection.inflight:
                break
            await deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(len(service.connection.inflight), 1)  # type: ignore[union-attr]
        service.stopService()
        frames = await reply
        self.assertIsNotNone(frames)
        answer = decode(frames[-1:])  # type: ignore[index]
        self.assertEqual((answer["status"], answer["type"], answer["rid"]),
                         ("error", "ConnectionAbortedError", 42))
        self.assertIn("shutting down", answer["error"])


class LecoShutdownTests(CoordinatorMixin, TestCase):
    """LECO: a request an actor is still answering at stop gets an error response."""

    timeout = 20

    async def test_inflight_request_answered(self) -> None:
        """The caller's ask fails with the actor's 'shutting down' error, not a timeout."""
        coordinator = self.start_coordinator()
        registry = DeviceRegistry(reactor)
        registry.register(FakeDevice("slow", {"x": 1.0}, actions={"wait": _never}))
        actor = DeviceActor(registry, "slow", coordinator.endpoint, reactor)
        actor.startService()
        await actor.when_signed_in()
        client = await self.component("client", coordinator)
        asked = client.ask("slow", "call_action", {"action": "wait"}, timeout=10)
        for _ in range(200):
            if actor._inflight:
                break
            await deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(len(actor._inflight), 1)
        await actor.stopService()
        try:
            await asked
        except LabError as e:
            self.assertIn("shutting down", str(e))
        else:
            self.fail("the request did not fail")
