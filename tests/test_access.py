# -*- test-case-name: tests.test_access -*-
"""
Tests for L{twisted_lab.access}: policies, the TCP allow-list wrapper, the
ZAP handler (real ZeroMQ sockets on loopback) and CURVE key files.
"""
from __future__ import annotations

import os
import shutil
from typing import Any

import zmq
import zmq.auth
from twisted.internet import reactor
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.threads import deferToThread
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_lab.access import (ACCESS_OPTIONS, AccessPolicy, AllowListFactory, CurveConfig,
                                Role, require, role_of_frame, zap_handler)
from twisted_lab.errors import AccessDenied, ConfigError
from twisted_lab.options import validate
from twisted_lab.protocols.zmqutil import ZmqConnection, open_connection


class PolicyTests(SynchronousTestCase):
    """Allow-lists and roles from config values."""

    def test_defaults_are_loopback_operate(self) -> None:
        """The default policy (and the options' defaults) allow loopback only, role
        operate."""
        for policy in (AccessPolicy(), AccessPolicy.build(**{
                k: v for k, v in validate(ACCESS_OPTIONS, {}).items()})):
            self.assertTrue(policy.allows("127.0.0.1"))
            self.assertTrue(policy.allows("127.5.6.7"))
            self.assertTrue(policy.allows("::1"))
            self.assertTrue(policy.allows("::ffff:127.0.0.1"))
            self.assertFalse(policy.allows("192.168.10.7"))
            self.assertFalse(policy.allows(""))
            self.assertFalse(policy.allows("not an address"))
            self.assertEqual(policy.role_for("127.0.0.1"), Role.OPERATE)

    def test_roles_longest_prefix(self) -> None:
        """C{roles} overrides C{role}; the most specific network wins."""
        policy = AccessPolicy.build(["127.0.0.1/32", "192.168.10.0/24"], "read",
                                    {"192.168.10.0/24": "operate", "192.168.10.7/32": "admin"})
        self.assertEqual(policy.role_for("127.0.0.1"), Role.READ)
        self.assertEqual(policy.role_for("192.168.10.8"), Role.OPERATE)
        self.assertEqual(policy.role_for("192.168.10.7"), Role.ADMIN)
        self.assertTrue(policy.allows("192.168.10.200"))
        self.assertFalse(policy.allows("192.168.11.1"))

    def test_bad_values(self) -> None:
        """Bad networks and roles are ConfigErrors naming the key."""
        e = self.assertRaises(ConfigError, AccessPolicy.build, ["192.168.10.7/24"], key="leco")
        self.assertIn("leco.allow[0]", str(e))
        e = self.assertRaises(ConfigError, AccessPolicy.build, ["lab-pc"], key="plesty")
        self.assertIn("plesty.allow[0]", str(e))
        e = self.assertRaises(ConfigError, AccessPolicy.build, role="root")
        self.assertIn("role", str(e))
        e = self.assertRaises(ConfigError, AccessPolicy.build, roles={"10.0.0.0/8": "god"},
                              key="leco")
        self.assertIn("leco.roles.10.0.0.0/8", str(e))
        self.assertRaises(ConfigError, validate, ACCESS_OPTIONS, {"role": "root"})

    def test_require(self) -> None:
        """require passes an equal or higher role and names both roles when refusing."""
        require(Role.ADMIN, Role.OPERATE, "x")
        require(Role.OPERATE, Role.OPERATE, "x")
        e = self.assertRaises(AccessDenied, require, Role.READ, Role.OPERATE, "set on stage")
        self.assertEqual((e.role, e.needed), ("read", "operate"))
        self.assertIn("set on stage needs the operate role", str(e))


class Recorder(Protocol):
    access_role: Role | None = None
    made = 0

    def connectionMade(self) -> None:
        Recorder.made += 1


class AllowListFactoryTests(SynchronousTestCase):
    """The TCP wrapper refuses in buildProtocol, before any protocol exists."""

    def setUp(self) -> None:
        self.inner = Factory.forProtocol(Recorder)
        self.built: list[Any] = []
        original = self.inner.buildProtocol

        def build(addr: Any) -> Any:
            proto = original(addr)
            self.built.append(proto)
            return proto

        self.inner.buildProtocol = build  # type: ignore[method-assign]
        self.factory = AllowListFactory(
            self.inner, AccessPolicy.build(["127.0.0.1/32", "fd00::/8"], "read",
                                           {"127.0.0.1/32": "admin"}), "test listener")
        self.logged: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)

    def test_refused(self) -> None:
        """A peer outside the allow-list gets no protocol (the inner factory is never
        asked) and the refusal is logged with its address."""
        self.assertIsNone(self.factory.buildProtocol(IPv4Address("TCP", "10.1.2.3", 5000)))
        self.assertIsNone(self.factory.buildProtocol(IPv6Address("TCP", "fe80::1", 5000)))
        self.assertEqual(self.built, [])
        self.assertEqual(self.factory.refused, 2)
        hosts = [e.get("host") for e in self.logged if "refused" in e.get("log_format", "")]
        self.assertEqual(hosts, ["10.1.2.3", "fe80::1"])

    def test_allowed_gets_role(self) -> None:
        """An allowed peer gets the inner factory's protocol, with its role."""
        proto = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
        self.assertIsInstance(proto, Recorder)
        self.assertEqual(proto.access_role, Role.ADMIN)  # type: ignore[union-attr]
        proto = self.factory.buildProtocol(IPv6Address("TCP", "fd00::5", 5000))
        self.assertEqual(proto.access_role, Role.READ)  # type: ignore[union-attr]

    def test_start_stop_forwarded(self) -> None:
        """doStart/doStop reach the wrapped factory."""
        self.factory.doStart()
        self.assertEqual(self.inner.numPorts, 1)
        self.factory.doStop()
        self.assertEqual(self.inner.numPorts, 0)


def _send_and_wait(address: str, frames: list[bytes], curve: tuple[bytes, bytes, bytes] | None
                   = None, wait: float = 1.5) -> list[bytes] | None:
    """Blocking: a DEALER sends one message and waits for a reply (C{None}: none)."""
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        socket.curve_serverkey, socket.curve_publickey, socket.curve_secretkey = curve
    socket.connect(address)
    try:
        socket.send_multipart(frames)
        if socket.poll(int(wait * 1000)):
            return socket.recv_multipart()
        return None
    finally:
        socket.close(0)
        context.term()


class ZapTests(TestCase):
    """The ZAP handler on real ZeroMQ sockets: refused peers never reach a handler."""

    timeout = 20

    def router(self, policy: AccessPolicy, curve: CurveConfig | None = None
               ) -> tuple[str, list[tuple[list[bytes], Role]]]:
        context = zmq.Context()
        zap = zap_handler(reactor, context)
        registration = zap.add("test router", policy, curve)
        received: list[tuple[list[bytes], Role]] = []

        def on_message(frames: list[bytes]) -> None:
            received.append((frames, role_of_frame(connection.current_frame, Role.READ)))
            connection.send([frames[0], b"pong"])

        connection: ZmqConnection = open_connection(
            reactor, zmq.ROUTER, on_message, bind="tcp://127.0.0.1:*", context=context,
            linger=0, options=registration.socket_options(), track_properties=True)

        def cleanup() -> None:
            connection.close()
            registration.close()
            context.term()

        self.addCleanup(cleanup)
        self.zap = zap
        assert connection.endpoint is not None
        return connection.endpoint, received

    async def test_refused_never_reaches_handler(self) -> None:
        """A peer outside the allow-list gets no reply and its message never arrives."""
        address, received = self.router(AccessPolicy.build(["10.0.0.0/8"]))
        self.assertIsNone(await deferToThread(_send_and_wait, address, [b"hello"]))
        self.assertEqual(received, [])
        self.assertGreaterEqual(self.zap.refused, 1)

    async def test_allowed_carries_role(self) -> None:
        """An allowed peer is answered; its messages carry the role as ZAP User-Id."""
        address, received = self.router(AccessPolicy.build(
            ["127.0.0.0/8"], "read", {"127.0.0.1/32": "admin"}))
        self.assertEqual(await deferToThread(_send_and_wait, address, [b"hello"]), [b"pong"])
        self.assertEqual([(f[1:], r) for f, r in received], [([b"hello"], Role.ADMIN)])

    async def test_ipc_counts_as_loopback(self) -> None:
        """An ipc:// peer (no IP address) is local: allowed by the loopback default,
        refused by an allow-list without loopback."""
        for allow, answered in ((["127.0.0.0/8"], True), (["10.0.0.0/8"], False)):
            context = zmq.Context()
            registration = zap_handler(reactor, context).add("ipc", AccessPolicy.build(allow))
            path = os.path.abspath(self.mktemp())
            answer: list[ZmqConnection] = []
            connection = open_connection(
                reactor, zmq.ROUTER, lambda f, a=answer: a[0].send([f[0], b"pong"]),
                bind=f"ipc://{path}", context=context, linger=0,
                options=registration.socket_options())
            answer.append(connection)
            try:
                reply = await deferToThread(_send_and_wait, f"ipc://{path}", [b"x"])
            finally:
                connection.close()
                registration.close()
                context.term()
            self.assertEqual(reply is not None, answered, allow)

    async def test_curve(self) -> None:
        """A CURVE domain: a client with the server key (and a listed key) is served;
        one without CURVE, or with an unlisted key, is refused."""
        keys = self.mktemp()
        os.makedirs(keys)
        _public_file, secret_file = zmq.auth.create_certificates(keys, "server")
        clients = os.path.join(keys, "clients")
        os.makedirs(clients)
        # the listed client's key pair; only its public key file goes in the directory
        listed_public_file, listed_secret_file = zmq.auth.create_certificates(keys, "c1")
        shutil.copy(listed_public_file, clients)
        config = CurveConfig.load(secret_file, clients)
        listed_public, listed_secret = zmq.auth.load_certificate(listed_secret_file)
        self.assertEqual(config.clients, frozenset([listed_public]))
        address, received = self.router(AccessPolicy(), config)
        listed = (config.public, listed_public, listed_secret)
        other_public, other_secret = zmq.curve_keypair()
        self.assertEqual(await deferToThread(_send_and_wait, address, [b"a"], listed),
                         [b"pong"])
        self.assertIsNone(await deferToThread(_send_and_wait, address, [b"b"]))
        self.assertIsNone(await deferToThread(
            _send_and_wait, address, [b"c"], (config.public, other_public, other_secret)))
        self.assertEqual([f[1:] for f, _ in received], [[b"a"]])

    def test_handler_reopens_at_once(self) -> None:
        """The last domain closing the handler frees its inproc endpoint at once: a new
        handler on the same context binds immediately (services restart in a row)."""
        context = zmq.Context()
        self.addCleanup(context.term)
        for _ in range(300):
            registration = zap_handler(reactor, context).add("x", AccessPolicy())
            registration.close()
        self.assertTrue(registration.handler.connection.closed)

    def test_curve_config_errors(self) -> None:
        """Missing files and public-only files are ConfigErrors naming the key."""
        e = self.assertRaises(ConfigError, CurveConfig.load, "/nonexistent.key_secret",
                              key="leco")
        self.assertIn("leco.curve_secret_key", str(e))
        keys = self.mktemp()
        os.makedirs(keys)
        public_file, secret_file = zmq.auth.create_certificates(keys, "server")
        e = self.assertRaises(ConfigError, CurveConfig.load, public_file)
        self.assertIn("no secret key", str(e))
        e = self.assertRaises(ConfigError, CurveConfig.load, secret_file, "/nonexistent-dir")
        self.assertIn("curve_clients", str(e))


class DefaultsTests(SynchronousTestCase):
    """The built-in lab's sections: loopback allow-lists, role operate."""

    def test_default_sections(self) -> None:
        """Every listener section of the default config allows loopback only; LECO and
        PLESTY clients are operate (no admin: no remote shut down)."""
        from twisted_lab.config import default_config
        sections = {p.name: p.options for p in default_config().protocols}
        for name in ("leco", "plesty", "pymodaq", "web"):
            policy = AccessPolicy.build(sections[name]["allow"],
                                        sections[name].get("role", "operate"),
                                        sections[name].get("roles"))
            self.assertTrue(policy.allows("127.0.0.1"), name)
            self.assertFalse(policy.allows("192.168.1.5"), name)
        for name in ("leco", "plesty"):
            self.assertEqual((sections[name]["role"], sections[name]["roles"]),
                             ("operate", {}))
            self.assertEqual(sections[name]["curve_secret_key"], "")
        self.assertEqual(sections["leco"]["link_allow"], [])
