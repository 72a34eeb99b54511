# -*- test-case-name: tests.test_leco_routing -*-
"""
Tests for L{twisted_lab.protocols.leco.routing}: the Coordinator's routing
decision, without sockets.
"""
from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.protocols.leco.message import HEADER_LENGTH, VERSION_BYTE
from twisted_lab.protocols.leco.routing import (LOCAL, MALFORMED, NODE, OWN, REFUSED, UNKNOWN,
                                                Local, route)
from twisted_lab.protocols.leco.rpc import (DUPLICATE_NAME, NODE_UNKNOWN, NOT_SIGNED_IN,
                                            RECEIVER_UNKNOWN)

HEADER = b"\0" * HEADER_LENGTH


def message(identity: bytes, receiver: bytes, sender: bytes, payload: bytes = b"{}") -> list:
    return [identity, VERSION_BYTE, receiver, sender, HEADER, payload]


class RouteTests(SynchronousTestCase):
    """Who may send, and where each message goes."""

    def setUp(self) -> None:
        self.local = {b"stage": Local(b"id-stage", 0.0), b"cam": Local(b"id-cam", 0.0)}
        self.node_ids: dict[bytes, list[Any]] = {b"id-N2": [b"N2", 0.0]}
        self.nodes = {b"N2": "link-N2"}

    def route(self, frames: list, now: float = 5.0) -> Any:
        return route(frames, now, b"lab", self.local, self.node_ids, self.nodes)

    def test_local_to_local(self) -> None:
        """A signed-in Component reaches another by name, short or full; its heartbeat is now."""
        for receiver in (b"cam", b"lab.cam"):
            decision = self.route(message(b"id-stage", receiver, b"stage"))
            self.assertEqual((decision.action, decision.target), (LOCAL, b"id-cam"))
        self.assertEqual(self.local[b"stage"].heartbeat, 5.0)
        self.assertEqual(self.local[b"cam"].heartbeat, 0.0)

    def test_to_other_node(self) -> None:
        """A receiver of another known node goes over that node's link."""
        decision = self.route(message(b"id-stage", b"N2.oven", b"lab.stage"))
        self.assertEqual((decision.action, decision.target), (NODE, "link-N2"))

    def test_from_other_node(self) -> None:
        """A message from a signed-in Coordinator's identity is routed; its heartbeat is now."""
        decision = self.route(message(b"id-N2", b"cam", b"N2.oven"), now=9.0)
        self.assertEqual((decision.action, decision.target), (LOCAL, b"id-cam"))
        self.assertEqual(self.node_ids[b"id-N2"][1], 9.0)

    def test_own(self) -> None:
        """COORDINATOR and lab.COORDINATOR are the Coordinator itself."""
        for receiver in (b"COORDINATOR", b"lab.COORDINATOR"):
            self.assertEqual(self.route(message(b"id-stage", receiver, b"stage")).action, OWN)

    def test_malformed(self) -> None:
        """Short messages, another version, a bad header or no sender are malformed."""
        good = message(b"id-stage", b"cam", b"stage")
        for bad in (good[:4], [good[0], b"\x02", *good[2:]], good[:4] + [b"x", b"{}"],
                    good[:3] + [b""] + good[4:]):
            self.assertEqual(self.route(bad).action, MALFORMED, bad)

    def test_refused(self) -> None:
        """
        A name used from another connection is a duplicate; an unsigned local
        sender or an unknown node is not signed in, unless it signs in.
        """
        decision = self.route(message(b"id-intruder", b"cam", b"stage"))
        self.assertEqual((decision.action, decision.code), (REFUSED, DUPLICATE_NAME))
        for frames in (message(b"id-x", b"cam", b"stranger"),
                       message(b"id-N3", b"cam", b"N3.oven"),
                       message(b"id-N3", b"COORDINATOR", b"N3.COORDINATOR", b'{"method": "x"}')):
            decision = self.route(frames)
            self.assertEqual((decision.action, decision.code), (REFUSED, NOT_SIGNED_IN), frames)
        self.assertEqual(self.route(message(b"id-x", b"COORDINATOR", b"stranger",
                                            b'{"method": "sign_in"}')).action, OWN)
        self.assertEqual(self.route(message(b"id-N3", b"COORDINATOR", b"N3.COORDINATOR",
                                            b'{"method": "coordinator_sign_in"}')).action, OWN)

    def test_node_sending_as_another(self) -> None:
        """A node's Coordinator connection sending as another node is refused, naming its own."""
        decision = self.route(message(b"id-N2", b"cam", b"N3.oven"))
        self.assertEqual((decision.action, decision.code, decision.target),
                         (REFUSED, NOT_SIGNED_IN, b"N2"))
        self.assertEqual(self.node_ids[b"id-N2"][1], 0.0)

    def test_unknown(self) -> None:
        """An unknown local receiver or node is an error naming it."""
        decision = self.route(message(b"id-stage", b"ghost", b"stage"))
        self.assertEqual((decision.action, decision.code, decision.data),
                         (UNKNOWN, RECEIVER_UNKNOWN, "ghost"))
        decision = self.route(message(b"id-stage", b"N9.oven", b"stage"))
        self.assertEqual((decision.action, decision.code, decision.data),
                         (UNKNOWN, NODE_UNKNOWN, "N9"))
