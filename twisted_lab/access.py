# -*- test-case-name: tests.test_access -*-
"""
Who may do what: allow-lists of client networks and roles, shared by every
protocol plugin.

Every listener (a TCP endpoint or a ZeroMQ bind) has an L{AccessPolicy}:

  - C{allow}: the client networks that may connect at all (default: the
    loopback networks only).  A TCP client outside them is refused in
    C{buildProtocol} (L{AllowListFactory}), before any protocol code runs;
    a ZeroMQ peer is refused during the ZMTP handshake by a ZAP handler
    (L{ZapHandler}), before any message reaches a handler.
  - C{role}: the role of an allowed client (default C{operate}), and
    C{roles}: a table of network to role for exceptions
    (C{{"192.168.10.7/32" = "admin"}}; the longest matching prefix wins).

The roles are ordered: C{read} (describe, get, subscribe) < C{operate}
(also set, call, move, lock) < C{admin} (also shut down, force-unlock,
change links).  Each protocol decides which of its requests needs which
role; L{require} raises L{AccessDenied} when the client's role is lower.

For ZeroMQ the ZAP handler passes the role it decided as the connection's
ZAP I{User-Id}; every message then carries it as a frame property
(C{frame.get("User-Id")}), read by L{role_of_frame}.  Optional CURVE
encryption/authentication uses key files in the format of pyzmq's
C{zmq.auth} (C{zmq.auth.create_certificates}): L{CurveConfig}.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Iterable, Mapping, Union

import zmq
import zmq.utils.z85
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol, ServerFactory
from twisted.logger import Logger

from twisted_lab.errors import AccessDenied, ConfigError
from twisted_lab.options import Option

__all__ = ["Role", "AccessPolicy", "AllowListFactory", "ZapHandler", "ZapRegistration",
           "CurveConfig", "ACCESS_OPTIONS", "CURVE_OPTIONS", "LOOPBACK", "require",
           "parse_networks", "parse_role", "role_of_frame", "zap_handler", "policy_from",
           "curve_from"]

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

#: The default allow-list: this machine only.
LOOPBACK = ("127.0.0.0/8", "::1/128")


class Role(IntEnum):
    """A client's role; a higher role may do everything a lower one may."""

    READ = 1
    OPERATE = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        """The name used in configs and on the wire (C{"read"}, ...)."""
        return self.name.lower()


_ROLE_NAMES = {r.label: r for r in Role}

#: The options every listener section accepts (merged into its schema).
ACCESS_OPTIONS: dict[str, Option] = {
    "allow": Option(list, list(LOOPBACK),
                    "client networks that may connect (CIDR, e.g. 192.168.10.0/24); others are "
                    "refused before any handler runs", items={"*": Option(str)}),
    "role": Option(str, "operate", "role of an allowed client: read (describe/get/subscribe), "
                   "operate (also set/call/move/lock) or admin (also shut down, force-unlock, "
                   "change links)", choices=tuple(_ROLE_NAMES)),
    "roles": Option(dict, {}, "per-network roles overriding role, e.g. "
                    "{\"192.168.10.7/32\" = \"admin\"} (longest prefix wins)",
                    items={"*": Option(str, choices=tuple(_ROLE_NAMES))}, free_keys=True),
}

#: Options of the optional ZeroMQ CURVE encryption and authentication.
CURVE_OPTIONS: dict[str, Option] = {
    "curve_secret_key": Option(str, "", "ZeroMQ CURVE: the server's secret key file "
                               "(zmq.auth format, '*.key_secret'); empty: no CURVE"),
    "curve_clients": Option(str, "", "ZeroMQ CURVE: a directory of allowed clients' public key "
                            "files ('*.key'); empty: any client that knows the server key"),
}


def parse_role(value: str, key: str = "role", file: str | None = None) -> Role:
    """
    A role by its name.

    @raise ConfigError: not C{read}, C{operate} or C{admin}.
    """
    role = _ROLE_NAMES.get(value)
    if role is None:
        raise ConfigError(f"must be one of read, operate, admin; got {value!r}", file, key)
    return role


def parse_networks(values: Iterable[str], key: str = "allow", file: str | None = None
                   ) -> tuple[Network, ...]:
    """
    Networks from CIDR strings (a bare address is a one-host network).

    @raise ConfigError: naming the entry that is not an address or network
        (host bits set are an error too: C{192.168.10.7/24} is ambiguous).
    """
    out = []
    for i, value in enumerate(values):
        try:
            out.append(ipaddress.ip_network(value, strict=True))
        except ValueError as e:
            raise ConfigError(f"not an IP network: {e}", file, f"{key}[{i}]") from None
    return tuple(out)


def _address(host: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not host:
        return None
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class AccessPolicy:
    """
    The allow-list and roles of one listener.

    @ivar allow: the client networks that may connect.
    @ivar role: the role of an allowed client not in C{roles}.
    @ivar roles: C{(network, role)} exceptions, longest prefix first.
    """

    allow: tuple[Network, ...] = field(
        default_factory=lambda: parse_networks(LOOPBACK))
    role: Role = Role.OPERATE
    roles: tuple[tuple[Network, Role], ...] = ()

    @classmethod
    def build(cls, allow: Iterable[str] = LOOPBACK, role: str = "operate",
              roles: Mapping[str, str] | None = None, key: str = "",
              file: str | None = None) -> AccessPolicy:
        """
        A policy from config values (CIDR strings and role names).

        @param key: the config section, for error messages.
        @raise ConfigError: a bad network or role.
        """
        prefix = f"{key}." if key else ""
        exceptions = []
        for network, name in (roles or {}).items():
            (net,) = parse_networks([network], f"{prefix}roles", file)
            exceptions.append((net, parse_role(name, f"{prefix}roles.{network}", file)))
        exceptions.sort(key=lambda item: -item[0].prefixlen)
        return cls(parse_networks(allow, f"{prefix}allow", file),
                   parse_role(role, f"{prefix}role", file), tuple(exceptions))

    def allows(self, host: str | None) -> bool:
        """C{True} when a client at C{host} (an IP address) may connect."""
        address = _address(host)
        if address is None:
            return False
        return any(address in network for network in self.allow)

    def role_for(self, host: str | None) -> Role:
        """The role of a client at C{host} (the most specific C{roles} entry, else C{role})."""
        address = _address(host)
        if address is not None:
            for network, role in self.roles:
                if address in network:
                    return role
        return self.role


def policy_from(section: Mapping[str, Any], key: str = "") -> AccessPolicy:
    """The L{AccessPolicy} of a validated section holding L{ACCESS_OPTIONS}."""
    return AccessPolicy.build(section.get("allow", LOOPBACK), section.get("role", "operate"),
                              section.get("roles") or {}, key)


def require(role: Role, needed: Role, what: str) -> None:
    """
    Check that C{role} may do C{what}.

    @raise AccessDenied: naming the request, the role it needs and the
        client's role.
    """
    if role < needed:
        raise AccessDenied(f"{what} needs the {needed.label} role; this client has "
                           f"{role.label}", role=role.label, needed=needed.label)


# -- TCP -------------------------------------------------------------------------------


class AllowListFactory(ServerFactory):
    """
    Wraps a server factory: a client outside the policy's C{allow} networks
    is refused in C{buildProtocol} (the connection is closed before any
    protocol exists), and logged.  Allowed connections get the wrapped
    factory's own protocol, with its role set as C{access_role} when the
    protocol accepts attributes.

    @ivar refused: how many connections were refused.
    """

    log = Logger()

    def __init__(self, wrapped: Factory[Any] | Any, policy: AccessPolicy, name: str = "") -> None:
        self.wrapped = wrapped
        self.policy = policy
        self.name = name or type(wrapped).__name__
        self.refused = 0

    def logPrefix(self) -> str:
        return self.name

    def doStart(self) -> None:
        """Start the wrapped factory."""
        self.wrapped.doStart()

    def doStop(self) -> None:
        """Stop the wrapped factory."""
        self.wrapped.doStop()

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        """The wrapped factory's protocol, or C{None} (refused) for a disallowed peer."""
        host = getattr(addr, "host", None)
        if not self.policy.allows(host):
            self.refused += 1
            self.log.warn("{listener}: refused a connection from {host}: not in the allow-list",
                          listener=self.name, host=host)
            return None
        proto: Protocol | None = self.wrapped.buildProtocol(addr)
        if proto is not None:
            try:
                proto.access_role = self.policy.role_for(host)  # type: ignore[attr-defined]
            except AttributeError:
                pass
        return proto


# -- ZeroMQ --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurveConfig:
    """
    A ZeroMQ CURVE server key pair and, optionally, the allowed client keys.

    @ivar public: the server's public key (Z85).
    @ivar secret: the server's secret key (Z85).
    @ivar clients: the allowed clients' public keys (Z85), or C{None} for any
        client that knows the server's public key.
    """

    public: bytes
    secret: bytes
    clients: frozenset[bytes] | None = None

    @classmethod
    def load(cls, secret_file: str, clients_dir: str = "", key: str = "") -> CurveConfig:
        """
        Read a C{zmq.auth} secret key file and an optional directory of
        client public key files.

        @raise ConfigError: CURVE unavailable, a missing or unreadable file.
        """
        import zmq.auth

        prefix = f"{key}." if key else ""
        if not zmq.has("curve"):
            raise ConfigError("this libzmq has no CURVE support", None,
                              f"{prefix}curve_secret_key")
        try:
            public, secret = zmq.auth.load_certificate(secret_file)
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read the key file {secret_file!r}: {e}", None,
                              f"{prefix}curve_secret_key") from None
        if secret is None:
            raise ConfigError(f"{secret_file!r} holds no secret key (use the "
                              f"'.key_secret' file)", None, f"{prefix}curve_secret_key")
        clients: frozenset[bytes] | None = None
        if clients_dir:
            if not os.path.isdir(clients_dir):
                raise ConfigError(f"{clients_dir!r} is not a directory", None,
                                  f"{prefix}curve_clients")
            try:
                clients = frozenset(zmq.auth.load_certificates(clients_dir))
            except (OSError, ValueError) as e:
                raise ConfigError(f"cannot read the key files in {clients_dir!r}: {e}", None,
                                  f"{prefix}curve_clients") from None
        return cls(public, secret, clients)

    def socket_options(self) -> dict[int, Any]:
        """The options that make a socket a CURVE server with this key pair."""
        return {zmq.CURVE_SERVER: 1, zmq.CURVE_SECRETKEY: self.secret,
                zmq.CURVE_PUBLICKEY: self.public}


def curve_from(section: Mapping[str, Any], key: str = "") -> CurveConfig | None:
    """The L{CurveConfig} of a validated section holding L{CURVE_OPTIONS}, or C{None}."""
    if not section.get("curve_secret_key"):
        return None
    return CurveConfig.load(section["curve_secret_key"], section.get("curve_clients", ""), key)


def role_of_frame(frame: Any, default: Role) -> Role:
    """
    The role a ZAP handler gave the connection a frame arrived on (its
    I{User-Id} property), or C{default} when it has none.
    """
    try:
        user = frame.get("User-Id")
    except (zmq.ZMQError, AttributeError, TypeError):
        return default
    return _ROLE_NAMES.get(user, default) if isinstance(user, str) else default


class _Domain:
    __slots__ = ("policy", "curve", "name")

    def __init__(self, name: str, policy: AccessPolicy, curve: CurveConfig | None) -> None:
        self.name, self.policy, self.curve = name, policy, curve


class ZapRegistration:
    """One socket's ZAP domain on a L{ZapHandler}; L{close} before closing the context."""

    def __init__(self, handler: ZapHandler, domain: bytes) -> None:
        self.handler = handler
        self.domain = domain
        self.closed = False

    def socket_options(self) -> dict[int, Any]:
        """The options to set before binding: the ZAP domain and any CURVE server keys."""
        entry = self.handler.domains[self.domain]
        options: dict[int, Any] = {zmq.ZAP_DOMAIN: self.domain}
        if entry.curve is not None:
            options.update(entry.curve.socket_options())
        return options

    def close(self) -> None:
        """Forget the domain; the handler closes its socket with the last one (idempotent)."""
        if not self.closed:
            self.closed = True
            self.handler.remove(self.domain)


class ZapHandler:
    """
    A ZeroMQ Authentication Protocol (ZAP, RFC 27) handler on the reactor:
    a REP socket bound at C{inproc://zeromq.zap.01} in one context, read by
    L{twisted_lab.protocols.zmqutil.ZmqConnection}, answering each handshake
    of a socket whose C{ZAP_DOMAIN} it knows.  (pyzmq's C{zmq.auth}
    authenticators need a thread or asyncio; this one runs where the
    sockets' handlers run, so the policy is read without locks.)

    A peer is accepted when its address is in the domain's allow-list and,
    for a CURVE domain with a client list, its public key is listed; the
    reply's User-Id is the role it gets.  Refusals are logged; the peer is
    disconnected by libzmq before any message is delivered.

    @ivar domains: domain to policy.
    @ivar refused: how many handshakes were refused.
    """

    log = Logger()
    ENDPOINT = "inproc://zeromq.zap.01"

    def __init__(self, reactor: Any, context: zmq.Context[Any]) -> None:
        from twisted_lab.protocols.zmqutil import open_connection

        self.reactor = reactor
        self.context = context
        self.domains: dict[bytes, _Domain] = {}
        self.refused = 0
        self.accepted = 0
        self._serial = 0
        self.connection = open_connection(reactor, zmq.REP, self._on_request,
                                          bind=self.ENDPOINT, context=context, linger=0,
                                          name="ZapHandler")

    def add(self, name: str, policy: AccessPolicy, curve: CurveConfig | None = None
            ) -> ZapRegistration:
        """
        A new domain for one bound socket (set its L{ZapRegistration.socket_options}
        before binding).

        @param name: for log lines (C{"leco coordinator"}).
        """
        self._serial += 1
        domain = f"twisted_lab/{self._serial}/{name}".encode()[:200]
        self.domains[domain] = _Domain(name, policy, curve)
        return ZapRegistration(self, domain)

    def remove(self, domain: bytes) -> None:
        """Forget a domain; close the ZAP socket once none is left."""
        self.domains.pop(domain, None)
        if not self.domains:
            self.close()

    def close(self) -> None:
        """Close the ZAP socket (handshakes on its context then fail)."""
        if not self.connection.closed:
            # unbind first: a closed socket releases an inproc endpoint only
            # later (libzmq's reaper), and the next handler must bind it at once
            try:
                self.connection.socket.unbind(self.ENDPOINT)
            except zmq.ZMQError:
                pass
            self.connection.close()
        if _handlers.get(id(self.context)) is self:
            del _handlers[id(self.context)]

    def _on_request(self, frames: list[bytes]) -> None:
        if len(frames) < 6:
            # REP must answer every request; a malformed one gets a 500
            self.connection.send([b"1.0", frames[1] if len(frames) > 1 else b"", b"500",
                                  b"malformed ZAP request", b"", b""])
            return
        version, request_id, domain, address, _identity, mechanism = frames[:6]
        credentials = frames[6:]
        status, text, role = self._decide(domain, address.decode("ascii", "replace"),
                                          mechanism, credentials)
        self.connection.send([version, request_id, status, text, role, b""])

    def _decide(self, domain: bytes, address: str, mechanism: bytes,
                credentials: list[bytes]) -> tuple[bytes, bytes, bytes]:
        if not address or (address.startswith("localhost") and _address(address) is None):
            # ipc:// peers ("localhost:<pid>:<uid>:<gid>") and inproc:// peers have
            # no IP address: they are on this machine, so they count as loopback
            address = "127.0.0.1"
        entry = self.domains.get(domain)
        if entry is None:
            self.refused += 1
            self.log.warn("ZAP: refused {address}: unknown domain {domain!r}",
                          address=address, domain=domain)
            return b"400", b"unknown domain", b""
        if not entry.policy.allows(address):
            self.refused += 1
            self.log.warn("{listener}: refused a ZeroMQ peer at {address}: not in the "
                          "allow-list", listener=entry.name, address=address)
            return b"400", b"address not allowed", b""
        if entry.curve is not None:
            if mechanism != b"CURVE" or not credentials:
                self.refused += 1
                self.log.warn("{listener}: refused {address}: CURVE required, got {mechanism}",
                              listener=entry.name, address=address,
                              mechanism=mechanism.decode("ascii", "replace"))
                return b"400", b"CURVE required", b""
            if entry.curve.clients is not None:
                key = zmq.utils.z85.encode(credentials[0])
                if key not in entry.curve.clients:
                    self.refused += 1
                    self.log.warn("{listener}: refused {address}: unknown CURVE client key",
                                  listener=entry.name, address=address)
                    return b"400", b"unknown client key", b""
        self.accepted += 1
        return b"200", b"OK", entry.policy.role_for(address).label.encode()


_handlers: dict[int, ZapHandler] = {}


def zap_handler(reactor: Any, context: zmq.Context[Any]) -> ZapHandler:
    """The L{ZapHandler} of a context, made (and bound) on first use."""
    handler = _handlers.get(id(context))
    if handler is None or handler.connection.closed or handler.context is not context:
        handler = ZapHandler(reactor, context)
        _handlers[id(context)] = handler
    return handler
