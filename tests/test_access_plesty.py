# -*- test-case-name: tests.test_access_plesty -*-
"""
Who may do what over PLESTY: the server's allow-list (ZAP), roles and
CURVE, with raw pyzmq clients on loopback.
"""
from __future__ import annotations

import json
import os
from typing import Any

import zmq
import zmq.auth
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.test_plesty_server import body, exchange
from twisted_lab.access import AccessPolicy, CurveConfig
from twisted_lab.protocols.plesty.export import PlestyServerService
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeActuator


def curve_exchange(address: str, server_public: bytes, message: list[bytes],
                   wait: float = 2.0) -> list[bytes] | None:
    """Blocking: one request on a CURVE DEALER with a fresh client key pair."""
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    public, secret = zmq.curve_keypair()
    socket.curve_serverkey, socket.curve_publickey, socket.curve_secretkey = (
        server_public, public, secret)
    socket.connect(address)
    try:
        socket.send_multipart(message)
        return socket.recv_multipart() if socket.poll(int(wait * 1000)) else None
    finally:
        socket.close(0)
        context.term()


class PlestyAccessTests(TestCase):
    """Allow-list, roles and CURVE on a PLESTY server."""

    timeout = 30

    def serve(self, policy: AccessPolicy | None = None, curve: CurveConfig | None = None
              ) -> tuple[PlestyServerService, FakeActuator, DeviceRegistry]:
        registry = DeviceRegistry(reactor)
        stage = FakeActuator("stage")
        registry.register(stage)
        service = PlestyServerService(registry, "stage", "tcp://127.0.0.1:*", reactor,
                                      policy=policy, curve=curve)
        service.startService()
        self.addCleanup(service.stopService)
        return service, stage, registry

    async def ask(self, service: PlestyServerService, *requests: dict[str, Any]
                  ) -> list[dict[str, Any]]:
        replies = await deferToThread(exchange, service.address, zmq.DEALER,
                                      [[body(r)] for r in requests], identity=b"c1", wait=2.0)
        return [json.loads(r[-1]) for r in replies]

    async def test_refused_before_any_handler(self) -> None:
        """A client outside the allow-list gets nothing; the handler never saw it."""
        service, stage, registry = self.serve(AccessPolicy.build(["10.0.0.0/8"]))
        replies = await self.ask(service, {"type": "connect", "resources": ["stage"]},
                                 {"type": "call", "func": "move_abs", "args": [5.0]})
        self.assertEqual(replies, [])
        self.assertEqual(service.connection.requests, {})  # type: ignore[union-attr]
        self.assertEqual(service.handler.clients, {})
        self.assertEqual((stage.current, registry.leases.leases()), (0.0, []))

    async def test_read(self) -> None:
        """A read client may describe, list and call non-mutating actions; it may not
        write, call a move or reserve resources."""
        service, stage, registry = self.serve(AccessPolicy.build(role="read"))
        # (at most a few requests in flight: the server queues only a few replies
        # for a client that does not read)
        replies = await self.ask(
            service, {"type": "describe"}, {"type": "get_config_list"},
            {"type": "call", "func": "position"})
        replies += await self.ask(
            service, {"type": "write", "param": "position", "value": 1.0},
            {"type": "call", "func": "move_abs", "args": [5.0]},
            {"type": "connect", "resources": ["stage"]})
        self.assertEqual([r["status"] for r in replies], ["ok", "ok", "ok", "error", "error",
                                                         "error"])
        for refused in replies[3:]:
            self.assertEqual(refused["type"], "AccessDenied")
            self.assertIn("needs the operate role", refused["error"])
        self.assertEqual((stage.current, registry.leases.leases()), (0.0, []))

    async def test_operate(self) -> None:
        """An operate client (the default role) may reserve, move and write."""
        service, stage, registry = self.serve()
        replies = await self.ask(service, {"type": "connect", "resources": ["stage"]},
                                 {"type": "call", "func": "move_abs", "args": [5.0]})
        self.assertEqual([r["status"] for r in replies], ["ok", "ok"])
        self.assertEqual(stage.current, 5.0)

    async def test_curve(self) -> None:
        """With CURVE, a client knowing the server key is answered; a plain one is
        refused and leaves no trace in the handler."""
        keys = self.mktemp()
        os.makedirs(keys)
        _public, secret = zmq.auth.create_certificates(keys, "plesty")
        curve = CurveConfig.load(secret)
        service, _, _ = self.serve(curve=curve)
        reply = await deferToThread(curve_exchange, service.address, curve.public,
                                    [body({"type": "ping"})])
        self.assertIsNotNone(reply)
        self.assertEqual(json.loads(reply[-1])["status"], "ok")  # type: ignore[index]
        self.assertEqual(await self.ask(service, {"type": "connect", "resources": ["stage"]}),
                         [])
        self.assertEqual(service.handler.clients, {})
