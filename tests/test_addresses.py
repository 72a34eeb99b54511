# -*- test-case-name: tests.test_addresses -*-
"""
L{twisted_lab.addresses}: the ZeroMQ address parser agrees with libzmq, and
endpoint strings go through Twisted's own parsers.
"""
from __future__ import annotations

import zmq
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.addresses import (
    Address,
    check_client_endpoint,
    parse_server_endpoint,
    parse_zmq_address,
)

#: addresses to bind: only loopback, port * (a free one) so binding never clashes
BIND_CASES = ["tcp://127.0.0.1:*", "tcp://127.0.0.1", "127.0.0.1:5555", "tcp://:*",
              "tcp://127.0.0.1:abc", "udpx://127.0.0.1:*",
              "tcp://", "5555", "tcp://[::1]:*", "tcp://localhost:*", "inproc://lab-check"]

#: ports libzmq takes modulo 65536 (it binds another port than written): refused on purpose
WRAPPING = ("tcp://127.0.0.1:70000", "tcp://127.0.0.1:-1")


def libzmq_binds(address: str) -> str | None:
    context = zmq.Context.instance()
    socket = context.socket(zmq.ROUTER)
    socket.setsockopt(zmq.LINGER, 0)
    if address.startswith("tcp://[::1]"):
        socket.setsockopt(zmq.IPV6, 1)
    try:
        socket.bind(address)
        endpoint = socket.getsockopt(zmq.LAST_ENDPOINT)
    except zmq.ZMQError:
        return None
    finally:
        socket.close(0)
    return endpoint.decode() if isinstance(endpoint, bytes) else str(endpoint)


def ours(address: str) -> bool:
    try:
        parse_zmq_address(address)
    except ValueError:
        return False
    return True


class ZmqAddressTests(SynchronousTestCase):
    """parse_zmq_address."""

    def test_agrees_with_libzmq(self) -> None:
        """Every case is accepted by our parser exactly when libzmq binds it."""
        self.assertEqual({a: ours(a) for a in BIND_CASES},
                         {a: libzmq_binds(a) is not None for a in BIND_CASES})

    def test_refuses_wrapping_ports(self) -> None:
        """A port above 65535 or below 0 is refused: libzmq would take it modulo
        65536 and listen on another port than the one written."""
        for address in WRAPPING:
            self.assertFalse(ours(address), address)

    def test_fields(self) -> None:
        """Host and port are read; * is port 0 when binding."""
        self.assertEqual(parse_zmq_address("tcp://127.0.0.1:5555"),
                         Address("tcp://127.0.0.1:5555", "127.0.0.1", 5555))
        self.assertEqual(parse_zmq_address("tcp://*:*").port, 0)
        self.assertIsNone(parse_zmq_address("ipc:///tmp/lab").port)

    def test_connect_rules(self) -> None:
        """Connecting needs a host and a port."""
        self.assertRaises(ValueError, parse_zmq_address, "tcp://*:5555", bind=False)
        self.assertRaises(ValueError, parse_zmq_address, "tcp://127.0.0.1:*", bind=False)

    @settings(max_examples=50, deadline=None)
    @given(st.text(max_size=30))
    def test_never_crashes(self, text: str) -> None:
        """Any text gives an Address or a ValueError."""
        try:
            parse_zmq_address(text)
        except ValueError:
            pass


class EndpointTests(SynchronousTestCase):
    """Twisted endpoint strings."""

    def test_server(self) -> None:
        """Port and interface of a tcp endpoint; no interface is every interface."""
        self.assertEqual(parse_server_endpoint("tcp:6341:interface=127.0.0.1"),
                         Address("tcp:6341:interface=127.0.0.1", "127.0.0.1", 6341))
        self.assertEqual(parse_server_endpoint("tcp:port=6341").host, "")
        self.assertIsNone(parse_server_endpoint("unix:/tmp/lab.sock").port)

    def test_refused(self) -> None:
        """Twisted's parser refuses a bare port, an unknown type, a bad port."""
        for bad in ("19341", "tcpp:6341", "tcp:abc"):
            self.assertRaises(ValueError, parse_server_endpoint, bad)

    def test_bare_port_where_allowed(self) -> None:
        """[la4] callback accepts a bare port, meaning the given host."""
        self.assertEqual(parse_server_endpoint("5001", bare_port_host="127.0.0.1"),
                         Address("5001", "127.0.0.1", 5001))

    def test_client(self) -> None:
        """Client endpoints by Twisted's client parser."""
        check_client_endpoint("tcp:host=127.0.0.1:port=6341")
        self.assertRaises(ValueError, check_client_endpoint, "127.0.0.1:6341")

    def test_overlap(self) -> None:
        """Same port on a common interface overlaps; port 0 never does."""
        a = Address("a", "127.0.0.1", 5000)
        self.assertTrue(a.overlaps(Address("b", "", 5000)))
        self.assertTrue(a.overlaps(Address("b", "localhost", 5000)))
        self.assertFalse(a.overlaps(Address("b", "127.0.0.2", 5000)))
        self.assertFalse(Address("a", "", 0).overlaps(Address("b", "", 0)))
