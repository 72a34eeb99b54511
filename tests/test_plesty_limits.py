# -*- test-case-name: tests.test_plesty_limits -*-
"""
What PLESTY clients can make the lab remember is bounded and given back:
C{connect} metadata has a size limit (an error reply past it), the client
identities kept are capped, and a quiet client without a lock is forgotten.
"""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.protocols.plesty.handler import MAX_METADATA
from twisted_lab.protocols.plesty.message import client_name
from tests.test_plesty_handler import HandlerTestsMixin


class MetadataTests(HandlerTestsMixin, SynchronousTestCase):
    """C{connect} metadata: bounded, with an error reply."""

    def setUp(self) -> None:
        self.make()

    def test_oversize_metadata_refused(self) -> None:
        """Metadata past L{MAX_METADATA} gets an error reply and is not kept."""
        reply = self.ask({"type": "connect", "note": "x" * (MAX_METADATA + 1)})
        self.assertEqual((reply["status"], reply["type"]), ("error", "ValueError"))
        self.assertIn("exceeds the limit", reply["error"])
        self.assertEqual(self.handler.clients, {})

    def test_small_metadata_kept(self) -> None:
        """Metadata under the limit is kept and echoed."""
        reply = self.ask({"type": "connect", "note": "x" * 1000})
        self.assertEqual(reply["status"], "ok")
        self.assertEqual(len(self.handler.clients), 1)


class IdentityTests(HandlerTestsMixin, SynchronousTestCase):
    """Client identities: capped, expired, locks kept."""

    def setUp(self) -> None:
        self.make(max_clients=10, client_ttl=100.0)

    def test_flood_of_identities_bounded(self) -> None:
        """
        2,000 identities that connect and vanish leave at most
        C{max_clients} remembered, the most recent ones.
        """
        for i in range(2000):
            self.assertEqual(self.ask({"type": "connect", "meta": i},
                                      identity=b"id%d" % i)["status"], "ok")
        self.assertEqual(len(self.handler.clients), 10)
        self.assertEqual(list(self.handler.clients),
                         [client_name(b"id%d" % i) for i in range(1990, 2000)])

    def test_quiet_clients_forgotten(self) -> None:
        """A client quiet for C{client_ttl} is forgotten; one that keeps asking is not."""
        self.ask({"type": "connect"}, identity=b"quiet")
        self.ask({"type": "connect"}, identity=b"busy")
        for _ in range(4):
            self.clock.advance(40)
            self.ask({"type": "ping"}, identity=b"busy")
        self.assertEqual(len(self.handler.clients), 1)
        self.clock.advance(200)
        self.assertEqual(self.handler.clients, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lock_holders_kept(self) -> None:
        """
        Clients holding a lock are neither evicted nor expired; with every
        place taken by lock holders, a new client gets an error reply.
        """
        self.handler.lease_ttl = None
        for i in range(10):
            reply = self.ask({"type": "connect", "resources": [f"r{i}"]}, identity=b"h%d" % i)
            self.assertEqual(reply["status"], "ok")
        reply = self.ask({"type": "connect"}, identity=b"new")
        self.assertEqual((reply["status"], reply["type"]), ("error", "ResourceAllocationError"))
        self.assertIn("max_clients", reply["error"])
        self.clock.advance(1000)
        self.assertEqual(len(self.handler.clients), 10)

    def tearDown(self) -> None:
        self.handler.release_all()
