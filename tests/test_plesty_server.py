# -*- test-case-name: tests.test_plesty_server -*-
"""
Tests for L{twisted_lab.protocols.plesty.export} over real loopback sockets:
raw pyzmq REQ and DEALER clients (run in threads) against our ROUTER server.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import zmq
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from twisted_lab.protocols.plesty.message import decode
from twisted_lab.protocols.plesty.export import PlestyServerService
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeDevice


def exchange(address: str, kind: int, messages: list[list[bytes]], identity: bytes | None = None,
             wait: float = 5.0, expect: int | None = None) -> list[list[bytes]]:
    """
    Blocking (run in a thread): send each message on a fresh socket of type
    C{kind}, collect replies until C{expect} arrived or C{wait} passes.
    """
    context = zmq.Context()
    socket = context.socket(kind)
    socket.setsockopt(zmq.LINGER, 0)
    if identity is not None:
        socket.setsockopt(zmq.IDENTITY, identity)
    socket.connect(address)
    replies: list[list[bytes]] = []
    try:
        for message in messages:
            socket.send_multipart(message)
            if kind == zmq.REQ:
                if socket.poll(int(wait * 1000)):
                    replies.append(socket.recv_multipart())
                else:
                    break
        if kind != zmq.REQ:
            want = len(messages) if expect is None else expect
            while len(replies) < want and socket.poll(int(wait * 1000)):
                replies.append(socket.recv_multipart())
    finally:
        socket.close(0)
        context.term()
    return replies


def body(request: dict[str, Any]) -> bytes:
    return json.dumps(request).encode()


class ServerLoopbackTests(TestCase):
    """The server answers real REQ and DEALER sockets, and survives bad input."""

    def setUp(self) -> None:
        self.registry = DeviceRegistry(reactor)
        self.device = FakeDevice("meter", {"wavelength": 532.0},
                                 actions={"spectrum": lambda: np.arange(1024.0)})
        self.registry.register(self.device)
        self.service = PlestyServerService(self.registry, "meter", "tcp://127.0.0.1:*", reactor,
                                           max_message_size=4096)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.address = self.service.address

    def run_client(self, *args: Any, **kwargs: Any) -> Any:
        return deferToThread(exchange, self.address, *args, **kwargs)

    def test_binds_loopback_ephemeral(self) -> None:
        """The service binds the configured loopback address with a chosen port."""
        self.assertTrue(self.address.startswith("tcp://127.0.0.1:"))
        self.assertNotEqual(self.address, "tcp://127.0.0.1:*")

    async def test_dealer(self) -> None:
        """A raw DEALER gets one-frame replies (PLESTY-native envelope)."""
        replies = await self.run_client(zmq.DEALER, [
            [body({"type": "query", "param": "wavelength"})],
            [body({"type": "write", "param": "wavelength", "value": 600.0})],
            [body({"type": "query", "param": "wavelength"})]])
        self.assertEqual([json.loads(r[0])["result"] for r in replies], [532.0, True, 600.0])
        self.assertEqual([len(r) for r in replies], [1, 1, 1])

    async def test_req(self) -> None:
        """A raw REQ socket gets answers (the reply keeps the empty delimiter)."""
        replies = await self.run_client(zmq.REQ, [
            [body({"type": "query", "param": "wavelength"})],
            [body({"type": "call", "func": "identity"})]])
        self.assertEqual([json.loads(r[0])["result"] for r in replies],
                         [532.0, "twisted_lab,device,meter,0.1.0"])

    async def test_binary_array(self) -> None:
        """An array asked for in binary arrives as a second frame."""
        replies = await self.run_client(zmq.DEALER, [
            [body({"type": "call", "func": "spectrum", "binary": True})]])
        self.assertEqual(len(replies[0]), 2)
        np.testing.assert_array_equal(decode(replies[0])["result"], np.arange(1024.0))

    async def _survives(self, bad: list[list[bytes]], replies_expected: int,
                        kind: int = zmq.DEALER) -> list[list[bytes]]:
        replies = await self.run_client(kind, bad, wait=0.5 if replies_expected == 0 else 5.0,
                                        expect=max(replies_expected, 1) if bad else 0)
        self.assertEqual(len(replies), replies_expected)
        good = await self.run_client(zmq.REQ, [[body({"type": "query",
                                                      "param": "wavelength"})]])
        self.assertEqual(json.loads(good[0][0])["result"], 532.0)
        return replies  # type: ignore[no-any-return]

    async def test_multi_frame_dropped(self) -> None:
        """A DEALER sending 3 frames (4 at the ROUTER) is dropped; others keep working."""
        await self._survives([[b"a", b"b", b"c"]], 0)

    async def test_req_two_frames_dropped(self) -> None:
        """A REQ sending two frames (4 at the ROUTER) is dropped; others keep working."""
        await self._survives([[b"{}", b"{}"]], 0, zmq.REQ)

    async def test_empty_body(self) -> None:
        """An empty one-frame message is an error reply (invalid JSON)."""
        replies = await self._survives([[b""]], 1)
        self.assertEqual(json.loads(replies[0][0])["type"], "JSONDecodeError")

    async def test_invalid_utf8(self) -> None:
        """Invalid UTF-8 (which kills plesty-lib's server) is an error reply here."""
        replies = await self._survives([[b"\xff\xfe"]], 1)
        self.assertEqual(json.loads(replies[0][0])["type"], "UnicodeDecodeError")

    async def test_invalid_json_and_not_object(self) -> None:
        """Invalid JSON and non-object JSON are error replies."""
        replies = await self._survives([[b"{"], [b"[1]"], [b"3"]], 3)
        self.assertEqual([json.loads(r[0])["type"] for r in replies],
                         ["JSONDecodeError", "ValueError", "ValueError"])

    async def test_unknown_type_missing_keys(self) -> None:
        """Unknown type, missing param and missing func are error replies."""
        replies = await self._survives([[body({"type": "x"})], [body({"type": "query"})],
                                        [body({"type": "call"})]], 3)
        self.assertEqual([json.loads(r[0])["type"] for r in replies],
                         ["ValueError", "KeyError", "KeyError"])

    async def test_private_and_unknown_call(self) -> None:
        """Calls of private and unknown names are refused over the wire."""
        replies = await self._survives([[body({"type": "call", "func": "__init__"})],
                                        [body({"type": "call", "func": "nope"})]], 2)
        self.assertEqual([json.loads(r[0])["type"] for r in replies],
                         ["AttributeError", "AttributeError"])

    async def test_huge_message(self) -> None:
        """A message over the limit is refused with an error reply."""
        replies = await self._survives([[b" " * 5000]], 1)
        self.assertIn("exceeds the limit", json.loads(replies[0][0])["error"])

    async def test_far_too_huge_message(self) -> None:
        """A message far over the limit is dropped by ZMQ itself; others keep working."""
        await self._survives([[b" " * 200000]], 0)

    async def test_vanished_client(self) -> None:
        """A reply to a client that is gone is logged, and the server goes on."""
        await self.run_client(zmq.DEALER, [[body({"type": "describe"})]], wait=0.0, expect=0)
        await self._survives([], 0)
