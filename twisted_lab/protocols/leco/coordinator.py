# -*- test-case-name: tests.test_leco_coordinator -*-
"""
A LECO Coordinator: the ROUTER of one node, with federation.

Follows pyleco 0.6.0.post1's algorithm (spec §7): authenticate each
message by sender name and ROUTER identity, route by receiver name or full
name, answer routing failures with LECO error responses (C{id null}),
offer the Coordinator's own JSON-RPC methods, ping silent Components and
forget them later, and link to other Coordinators (ours or pyleco's) with
one DEALER per remote node.

Forwarded messages are never rewritten: the frames received go out as they
came, with any number of binary payload frames.
"""
from __future__ import annotations

import ipaddress
import json
import socket
from typing import Any, Callable, Sequence

import zmq
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from zope.interface import implementer

from twisted_lab.access import (AccessPolicy, CurveConfig, Role, ZapRegistration,
                                parse_networks, require, role_of_frame, zap_handler)
from twisted_lab.errors import InvalidValue
from twisted_lab.interfaces import IWireReport
from twisted_lab.flow import PeerSendBudget
from twisted_lab.protocols.leco.message import (HEADER_LENGTH, MESSAGE_ID, VERSION_BYTE,
                                                check_name, conversation_id, split_name)
from twisted_lab.protocols.leco.rpc import (DUPLICATE_NAME, INVALID_REQUEST, NOT_SIGNED_IN,
                                            RECEIVER_UNKNOWN,
                                            RPCServer, dumps, encode_error, encode_request,
                                            set_log_level)
from twisted_lab.protocols.leco.locallink import LocalHub
from twisted_lab.protocols.leco.routing import (LOCAL, MALFORMED, NODE, OWN, REFUSED, Local,
                                                route)
from twisted_lab.protocols.zmqutil import (ZmqConnection, end_context, open_connection,
                                           service_context)
from twisted_lab.ratelog import BadInputLog

__all__ = ["CoordinatorService", "zmq_address", "node_address", "advertised_address",
           "ANOTHER_COORDINATOR"]

_JSON = b"\x01"
#: Seconds after re-linking to a restarted node during which its next
#: sign-in under a new identity is taken as its answer to our re-link.
RELINK_GRACE = 2.0
_COORDINATOR = b"COORDINATOR"

#: The role each of the Coordinator's methods needs (others: C{read}).
#: C{add_nodes} from a signed-in Coordinator is federation and needs none.
METHOD_ROLES: dict[str, Role] = {
    "shut_down": Role.ADMIN,
    "set_log_level": Role.ADMIN,
    "add_nodes": Role.ADMIN,
    "remove_expired_addresses": Role.ADMIN,
}

#: What pyleco answers a second Coordinator signing in under a known node's name.
ANOTHER_COORDINATOR = "Another Coordinator is known!"
#: Names one connection (ROUTER identity) may sign in at once; a LECO
#: Component signs in one, so a connection signing in thousands (a flood)
#: is refused past this instead of making every expiry pass long.
MAX_NAMES_PER_CONNECTION = 8
#: Expired Components named one by one in the log; more get one summary line.
EXPIRED_NAMED = 5

#: Bind hosts meaning "every interface": never an address another machine can use.
_ALL_INTERFACES = frozenset({"0.0.0.0", "*", "::", "[::]", ""})


def _as_bytes(frame: Any) -> bytes:
    """
    A payload frame as C{bytes}: the ROUTER receives payloads of 64 KiB or
    more as C{zmq.Frame}s, never copied when routed to another process (an
    80 MiB frame that is malformed, or not signed in, costs no copy either).
    """
    return frame if isinstance(frame, bytes) else frame.bytes


def zmq_address(address: str, default_port: int = 12300) -> str:
    """
    C{"host:port"} (a directory entry; no port means 12300) or a ZeroMQ
    address, as a ZeroMQ address C{tcp://host:port}.
    """
    if "://" in address:
        return address
    if ":" not in address:
        address = f"{address}:{default_port}"
    return f"tcp://{address}"


def advertised_address(endpoint: str, advertise: str | None = None,
                       hostname: Callable[[], str] = socket.gethostname) -> str:
    """
    The C{host:port} other Coordinators should use to reach a Coordinator
    bound at C{endpoint}.

    @param endpoint: the bound ZeroMQ endpoint (C{tcp://127.0.0.1:12300},
        C{tcp://0.0.0.0:12300}, C{tcp://[::]:12300}).
    @param advertise: C{host} or C{host:port} to advertise instead (the port
        defaults to the bound one); empty or C{None} for the default.
    @param hostname: gives the host name (C{socket.gethostname}, as pyleco).
    @return: C{advertise} when given; else the bound host when it is a
        specific address; else (bound to every interface) the host name,
        never C{0.0.0.0}.
    """
    bound = node_address(endpoint)
    host, port = bound.rsplit(":", 1)
    if advertise:
        if advertise.startswith("[") and "]" in advertise:  # [v6] or [v6]:port
            head, _, tail = advertise.partition("]")
            return f"{head}]{tail}" if tail.startswith(":") else f"{head}]:{port}"
        if advertise.count(":") == 1:
            return advertise
        return f"{advertise}:{port}"
    if host in _ALL_INTERFACES:
        return f"{hostname()}:{port}"
    return bound


def node_address(address: str) -> str:
    """A ZeroMQ or C{host:port} address in directory form C{host:port}."""
    if "://" in address:
        address = address.split("://", 1)[1]
    if ":" not in address:
        address += ":12300"
    return address


class _NodeLink:
    """Our DEALER to another Coordinator, and what we know of that node."""

    def __init__(self, address: str, namespace: bytes, socket: ZmqConnection, now: float) -> None:
        self.address = address          # host:port
        self.namespace = namespace      # b"" while signing in
        self.socket = socket
        self.heartbeat = now            # of the receiving side (their DEALER)
        self.identities: set[bytes] = set()


@implementer(IWireReport)
class CoordinatorService(Service):
    """
    A LECO Coordinator bound to a ZeroMQ address.

    @param namespace: the node's namespace.
    @param address: where to bind the ROUTER (C{tcp://127.0.0.1:12300}; port
        C{*} for an ephemeral port).
    @param reactor: the reactor.
    @param coordinators: addresses (C{host:port} or ZeroMQ) of other
        Coordinators to federate with.
    @param cleaning_interval: seconds between expiry passes.
    @param expiration_time: silence after which a Component is pinged; it
        is forgotten after three times that.
    @param advertised: the C{host} or C{host:port} other Coordinators should
        use for us (default: the bound address when it is a specific one,
        the host name when bound to every interface; see
        L{advertised_address}).
    @param hostname: gives the host name (tests replace it).
    @param policy: who may connect over ZeroMQ and with which role
        (default: loopback clients, C{operate}); in-process Components are
        C{admin}.
    @param curve: CURVE server keys (ZeroMQ clients must then use CURVE).
    @param link_allow: networks of Coordinators we may link to when asked
        by C{add_nodes}, besides C{coordinators} and the asking node itself.

    A second Coordinator signing in under the namespace of a node whose
    Coordinator is still connected is refused, as pyleco refuses it
    (L{ANOTHER_COORDINATOR}); once the first one's connection is gone (it
    restarted) the newcomer replaces it.  The Coordinators of C{coordinators}
    are signed in to again whenever their link is lost.

    @ivar endpoint: the bound ZeroMQ endpoint, once started.
    @ivar port: the bound port, once started.
    @ivar local_hub: Components of this process pass it as their C{hub} to
        skip ZeroMQ (L{twisted_lab.protocols.leco.locallink}); it lives as
        long as this object, across restarts.
    """

    log = Logger()

    def __init__(self, namespace: str = "lab", address: str = "tcp://127.0.0.1:12300",
                 reactor: Any = None, coordinators: Sequence[str] = (),
                 cleaning_interval: float = 5.0, expiration_time: float = 15.0,
                 advertised: str | None = None,
                 hostname: Callable[[], str] = socket.gethostname,
                 policy: AccessPolicy | None = None, curve: CurveConfig | None = None,
                 link_allow: Sequence[str] = ()) -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor
            reactor = _reactor
        self.namespace = check_name(namespace, "namespace")
        self.address = address
        self.reactor = reactor
        self.bad_input = BadInputLog(self.log, reactor)
        self.coordinators = list(coordinators)
        self.cleaning_interval = cleaning_interval
        self.expiration_time = expiration_time
        self.advertise = advertised or None
        self.hostname = hostname
        #: the C{host:port} we give other Coordinators, once started
        self.advertised: str | None = None
        self.policy = policy if policy is not None else AccessPolicy()
        self.curve = curve
        self.link_allow = parse_networks(link_allow, "leco.link_allow")
        self._zap: ZapRegistration | None = None
        self.endpoint: str | None = None
        self._configured_ns: dict[str, bytes] = {}      # configured address -> namespace
        self.port: int | None = None
        self._me = namespace.encode()
        self._full = self._me + b".COORDINATOR"
        self._local: dict[bytes, Local] = {}
        #: the large messages not yet written out, per ZeroMQ identity
        self.send_budget = PeerSendBudget(reactor, self._not_reading)
        self._nodes: dict[bytes, _NodeLink] = {}        # namespace -> link (signed in)
        self._waiting: dict[str, _NodeLink] = {}        # address -> link (signing in)
        # ROUTER identity -> [ns, heartbeat, role, peer address]
        self._node_ids: dict[bytes, list[Any]] = {}
        # namespace -> when we last re-linked to it because it restarted
        self._relinked_at: dict[bytes, float] = {}
        self._global: dict[bytes, list[str]] = {}
        self._router: ZmqConnection | None = None
        #: this service's own context, for its ROUTER, its ZAP handler and its
        #: links to other Coordinators (it binds: see zmqutil's policy)
        self._context: zmq.Context[Any] | None = None
        #: in-process Components connect here instead of over ZeroMQ
        self.local_hub = LocalHub(reactor, self._on_router)
        self._cleaner: LoopingCall | None = None
        #: the directory publication due at the end of this reactor turn
        self._directory_call: IDelayedCall | None = None
        self._next_id = 0
        # context of the request being handled by our own RPC methods
        self._ctx_identity = b""
        self._ctx_sender = b""
        self._ctx_cid = b""
        self._ctx_role = Role.ADMIN
        self._ctx_peer = ""
        self.server = RPCServer(lambda: self._full.decode())
        self.server.guard = self._guard
        for name, fn, doc in [
            ("pong", self._rpc_pong, "Respond in order to test the connection."),
            ("set_log_level", self._rpc_set_log_level, "Set the log level."),
            ("shut_down", self._rpc_shut_down, "Sign out from other Coordinators and stop."),
            ("sign_in", self._rpc_sign_in, "Sign in a Component."),
            ("sign_out", self._rpc_sign_out, "Sign out a Component."),
            ("coordinator_sign_in", self._rpc_coordinator_sign_in,
             "Sign in another Coordinator."),
            ("coordinator_sign_out", self._rpc_coordinator_sign_out,
             "Sign out another Coordinator."),
            ("add_nodes", self._rpc_add_nodes, "Connect to other Coordinators."),
            ("send_nodes", self._rpc_send_nodes, "The known nodes and their addresses."),
            ("record_components", self._rpc_record_components,
             "Record the Components of another node."),
            ("send_local_components", self._rpc_send_local_components,
             "The names of the local Components."),
            ("send_global_components", self._rpc_send_global_components,
             "The names of all Components by namespace."),
            ("remove_expired_addresses", self._rpc_remove_expired_addresses,
             "Run one expiry pass."),
        ]:
            self.server.register(name, fn, doc)

    # -- service ----------------------------------------------------------------------

    def wire_report(self) -> dict[str, Any]:
        """The bound endpoint, the signed-in Components and the linked Coordinators."""
        peers: list[dict[str, Any]] = [
            {"peer": (self._me + b"." + name).decode("utf-8", "replace"), "state": "signed in",
             "counters": {"silent_s": round(float(self.reactor.seconds()) - local.heartbeat, 1)}}
            for name, local in list(self._local.items())]
        peers += [{"peer": link.address, "state": "node " + link.namespace.decode(
                       "utf-8", "replace") if link.namespace else "signing in"}
                  for link in list(self._nodes.values()) + list(self._waiting.values())]
        return {"listeners": [self.endpoint] if self.endpoint else [], "peers": peers}

    def startService(self) -> None:
        """Bind the ROUTER, start expiry, connect to the configured Coordinators."""
        self._context = service_context()
        try:
            self._zap = zap_handler(self.reactor, self._context).add(
                "LECO Coordinator", self.policy, self.curve)
            # ROUTER_MANDATORY: a send to a vanished peer fails instead of
            # vanishing: that is how a Coordinator's second sign-in tells a
            # restart from an impostor
            self._router = open_connection(
                self.reactor, zmq.ROUTER, self._on_router_zmq, bind=self.address,
                context=self._context, large_from=5, track_properties=True,
                options={**self._zap.socket_options(), zmq.ROUTER_MANDATORY: 1},
                name="LECO Coordinator")
        except BaseException:
            self._close_sockets()  # nothing left on the reactor: the caller may retry
            raise
        assert self._router.endpoint is not None
        self.endpoint = self._router.endpoint
        self.port = int(self.endpoint.rsplit(":", 1)[1])
        self.local_hub.open = True
        self.advertised = advertised_address(self.endpoint, self.advertise, self.hostname)
        Service.startService(self)
        self.log.info("LECO Coordinator {namespace} listening on {endpoint}",
                      namespace=self.namespace, endpoint=self.endpoint)
        self._cleaner = LoopingCall(self.remove_expired, self.expiration_time)
        self._cleaner.clock = self.reactor
        self._cleaner.start(self.cleaning_interval, now=False)
        for address in self.coordinators:
            self.connect_node(address)

    def stopService(self) -> Deferred[None]:
        """Sign out from the other Coordinators, then close every socket."""
        Service.stopService(self)
        self.bad_input.flush()
        if self._cleaner is not None and self._cleaner.running:
            self._cleaner.stop()
        if self._directory_call is not None and self._directory_call.active():
            self._directory_call.cancel()
        self._directory_call = None
        links = list(self._nodes.values())
        for link in links:
            self._send_request(link, "coordinator_sign_out")
        d: Deferred[Any] = deferLater(self.reactor, 0.05 if links else 0, lambda: None)

        def close(_: Any) -> None:
            for link in list(self._nodes.values()) + list(self._waiting.values()):
                link.socket.close()
            self._nodes.clear()
            self._waiting.clear()
            self._node_ids.clear()
            self.local_hub.pump()  # sign-outs queued by Components stopping with us
            self.local_hub.open = False
            self._local.clear()
            self.send_budget.clear()
            self._close_sockets()

        return d.addCallback(close)

    def _close_sockets(self) -> None:
        end_context(self._context, self._router, self._zap)
        self._router, self._zap, self._context = None, None, None

    # -- directory views ----------------------------------------------------------------

    def local_names(self) -> list[str]:
        """The names of the Components signed in here."""
        return [n.decode("ascii", "replace") for n in self._local]

    def nodes(self) -> dict[str, str]:
        """Namespace to C{host:port} of every node known, ourselves included."""
        out = {self.namespace: self.advertised
               or advertised_address(self.address, self.advertise, self.hostname)}
        for ns, link in self._nodes.items():
            out[ns.decode("ascii", "replace")] = link.address
        return out

    def global_components(self) -> dict[str, list[str]]:
        """Namespace to Component names, ourselves included."""
        out = {ns.decode("ascii", "replace"): list(names) for ns, names in self._global.items()}
        out[self.namespace] = self.local_names()
        return out

    # -- routing --------------------------------------------------------------------------

    def role_of(self, sender: str) -> Role | None:
        """
        The role of a Component by its full name, as this Coordinator
        authenticated it: a local Component's connection's role (C{admin}
        for in-process ones), a remote node's Coordinator connection's role
        for that node's Components; C{None} when unknown.
        """
        ns, nm = split_name(sender.encode())
        if not ns or ns == self._me:
            entry = self._local.get(nm)
            return entry.role if entry is not None else None
        for node in self._node_ids.values():
            if node[0] == ns:
                role: Role = node[2]
                return role
        return None

    def _on_router(self, frames: list[bytes], role: Role = Role.ADMIN, peer: str = ""
                   ) -> None:
        """Route one message by L{routing.route}'s decision, which this carries out."""
        decision = route(frames, self.reactor.seconds(), self._me, self._local,
                         self._node_ids, self._nodes)
        action = decision.action
        if action == LOCAL:
            frames[0] = decision.target
            self._to_identity(frames)  # the hub gives in-process Components bytes
        elif action == NODE:
            decision.target.socket.send(frames[1:])
        elif action == OWN:
            if len(frames) > 5:
                self._handle_own(frames[0], frames, role, peer)
        elif action == MALFORMED:
            self._malformed(frames)
        elif action == REFUSED:
            sender = frames[3]
            identity = frames[0]
            if decision.code == DUPLICATE_NAME:
                self.bad_input.warn(identity, "{sender!r} used a name signed in by another "
                                    "connection", sender=sender)
            elif decision.target is not None:
                self.bad_input.warn(identity, "node {node!r} sent a message as {sender!r}; "
                                    "refused", node=decision.target, sender=sender)
            elif split_name(sender)[0] in (b"", self._me):
                self.bad_input.info(identity, "message from {sender!r}, which did not sign in",
                                    sender=sender)
            else:
                self.bad_input.info(identity, "message from {sender!r} of an unknown node",
                                    sender=sender)
            self._reply_identity(frames[0], sender, frames[4][:16],
                                 encode_error(None, decision.code))
        else:  # UNKNOWN
            if decision.code == RECEIVER_UNKNOWN:
                self.bad_input.info(frames[0], "{sender!r} addressed unknown {receiver!r}",
                                    sender=frames[3], receiver=frames[2])
            else:
                self.bad_input.info(frames[0], "{sender!r} addressed {receiver!r} of unknown "
                                    "node", sender=frames[3], receiver=frames[2])
            self._route_error(frames[3], frames[4][:16], decision.code, decision.data)

    def _on_router_zmq(self, frames: list[bytes]) -> None:
        # a message from ZeroMQ; what it sends to in-process links goes at once
        frame = self._router.current_frame if self._router is not None else None
        role = role_of_frame(frame, self.policy.role)
        try:
            peer = frame.get("Peer-Address") if frame is not None else ""
        except zmq.ZMQError:
            peer = ""
        self._on_router(frames, role, peer)
        if self.local_hub.pending:
            self.local_hub.pump()

    #: Bytes of large frames (64 KiB or more) that may wait for one ZeroMQ
    #: peer, and seconds the oldest may wait, before the peer is dropped
    #: (see L{twisted_lab.flow.PeerSendBudget}).
    @property
    def send_limit(self) -> int:
        return self.send_budget.limit

    @send_limit.setter
    def send_limit(self, limit: int) -> None:
        self.send_budget.limit = limit

    @property
    def send_deadline(self) -> float:
        return self.send_budget.deadline

    @send_deadline.setter
    def send_deadline(self, deadline: float) -> None:
        self.send_budget.deadline = deadline

    def _to_identity(self, frames: list[Any]) -> bool:
        """
        Send to a ROUTER identity: an in-process link or a ZeroMQ peer.

        @return: C{False} when it was not sent (the peer is gone, or its
            queue is full).
        """
        if LocalHub.is_link(frames[0]):
            return self.local_hub.to_link(frames)
        if self._router is not None:
            return self._router.send_within(frames, self.send_budget)
        return False

    def _not_reading(self, identity: bytes, reason: str) -> None:
        """
        A ZeroMQ peer went past its send budget: it does not read.  It is
        dropped (its names forgotten; nothing more is sent to it until what
        waits is written out, or ZeroMQ drops it when the peer leaves) with a
        log line.
        """
        names = [n for n, e in self._local.items() if e.identity == identity]
        for name in names:
            del self._local[name]
        self.log.warn("dropping LECO peer {names} (identity {identity}): it does not "
                      "read ({reason})",
                      names=", ".join(n.decode("ascii", "replace") for n in names) or "?",
                      identity=identity.hex(), reason=reason)
        if names:
            self._publish_directory()

    def _malformed(self, frames: list[bytes]) -> None:
        """Answer a malformed message if it names a sender, log it in any case."""
        identity = frames[0] if frames else b""
        reason = self._malformed_reason(frames)
        self.bad_input.warn(identity, "dropped malformed LECO message from identity "
                            "{identity}: {reason}", identity=identity.hex(), reason=reason)
        if len(frames) >= 5 and frames[3] and self._router is not None:
            head = frames[4]
            cid = head[:16] if len(head) >= 16 else conversation_id()
            self._reply_identity(identity, frames[3], cid, encode_error(
                None, INVALID_REQUEST, None, {"reason": reason, "data": None}))

    @staticmethod
    def _malformed_reason(frames: list[bytes]) -> str:
        if len(frames) < 5:
            return f"{max(len(frames) - 1, 0)} frames, at least 4 needed"
        if frames[1] != VERSION_BYTE:
            return f"unsupported version frame {bytes(frames[1][:8])!r}"
        if len(frames[4]) != HEADER_LENGTH:
            return f"header of {len(frames[4])} bytes, {HEADER_LENGTH} needed"
        return "empty sender frame"

    def _reply_identity(self, identity: bytes, receiver: bytes, cid: bytes, payload: bytes
                        ) -> None:
        if self._router is not None:
            self._to_identity([identity, VERSION_BYTE, receiver, self._full,
                               cid + MESSAGE_ID + _JSON, payload])

    def _route_error(self, receiver: bytes, cid: bytes, code: int, data: Any) -> None:
        self._deliver([VERSION_BYTE, receiver, self._full, cid + MESSAGE_ID + _JSON,
                       encode_error(None, code, None, data)])

    def _deliver(self, message: list[bytes]) -> None:
        """Route a message we originate (no identity) by its receiver frame."""
        receiver = message[1]
        r_ns, r_nm = split_name(receiver)
        if not r_ns or r_ns == self._me:
            target = self._local.get(r_nm)
            if target is not None and self._router is not None:
                self._to_identity([target.identity, *message])
            else:
                self.log.info("cannot deliver to {receiver!r}: not signed in",
                              receiver=receiver)
            return
        link = self._nodes.get(r_ns)
        if link is not None:
            link.socket.send(message)
        else:
            self.log.info("cannot deliver to {receiver!r}: unknown node", receiver=receiver)

    # -- own methods --------------------------------------------------------------------

    def _handle_own(self, identity: bytes, frames: list[bytes], role: Role = Role.ADMIN,
                    peer: str = "") -> None:
        head = frames[4]
        sender = frames[3]
        if head[19] != 1:
            self.bad_input.warn(sender, "ignored message of type {type} from {sender!r} to the "
                                "Coordinator", type=head[19], sender=sender)
            return
        payload = _as_bytes(frames[5])
        if b'"method"' not in payload:
            self._own_response(sender, payload)
            return
        self._ctx_identity, self._ctx_sender, self._ctx_cid = identity, sender, head[:16]
        self._ctx_role, self._ctx_peer = role, peer
        try:
            out = self.server.handle(payload, frames[6:], sender.decode("ascii", "replace"))
        finally:
            reply_sender = self._ctx_sender
            self._ctx_identity = self._ctx_sender = self._ctx_cid = b""
            self._ctx_role, self._ctx_peer = Role.ADMIN, ""
        if isinstance(out, Deferred):  # our methods are synchronous
            out.addErrback(lambda f: self.log.failure("Coordinator method failed", f))
            return
        response, _ = out
        if response is None:
            return
        s_ns, _ = split_name(reply_sender)
        reply = [VERSION_BYTE, reply_sender, self._full, head[:16] + MESSAGE_ID + _JSON,
                 response]
        if not s_ns or s_ns == self._me:
            if self._router is not None:
                self._to_identity([identity, *reply])
        else:
            self._deliver(reply)

    def _own_response(self, sender: bytes, payload: bytes) -> None:
        try:
            obj = json.loads(payload)
        except (ValueError, UnicodeDecodeError, RecursionError):
            self.bad_input.warn(sender, "invalid JSON from {sender!r} to the Coordinator",
                                sender=sender)
            return
        items = obj if isinstance(obj, list) else [obj]
        for item in items:
            if isinstance(item, dict) and "error" in item:
                self.log.error("error from {sender!r}: {error!r}", sender=sender,
                               error=item["error"])
            elif isinstance(item, dict) and item.get("result") is not None:
                self.log.info("unexpected result from {sender!r}: {result!r}", sender=sender,
                              result=item.get("result"))

    def _from_node(self) -> bytes | None:
        """The namespace of the signed-in Coordinator making the current request, or C{None}."""
        node = self._node_ids.get(self._ctx_identity)
        s_ns, s_nm = split_name(self._ctx_sender)
        if node is not None and node[0] == s_ns and s_nm == _COORDINATOR:
            ns: bytes = node[0]
            return ns
        return None

    def _guard(self, method: str) -> None:
        needed = METHOD_ROLES.get(method, Role.READ)
        if method == "add_nodes" and self._from_node() is not None:
            return  # federation: what may be dialled is checked per address
        if self._ctx_role < needed:
            self.log.warn("refused {method} from {sender!r} (role {role}, needs {needed})",
                          method=method, sender=self._ctx_sender, role=self._ctx_role.label,
                          needed=needed.label)
        require(self._ctx_role, needed, f"{method} on the Coordinator")

    def _may_link(self, namespace: str, address: str) -> bool:
        """May C{add_nodes} make us dial C{address}? (configured, allowed, or the asker)."""
        hostport = node_address(address)
        if hostport in {node_address(a) for a in self.coordinators}:
            return True
        host = hostport.rsplit(":", 1)[0].strip("[]")
        if host == "localhost":
            host = "127.0.0.1"
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        if any(ip in network for network in self.link_allow):
            return True
        asker = self._from_node()
        if asker is not None and namespace.encode() == asker and self._ctx_peer:
            try:
                return ip == ipaddress.ip_address(self._ctx_peer)
            except ValueError:
                return False
        return False

    def _rpc_pong(self, params: Any, frames: list[bytes]) -> None:
        return None

    def _rpc_set_log_level(self, params: Any, frames: list[bytes]) -> None:
        set_log_level(params, "twisted_lab.protocols.leco")
        self.log.info("LECO log level set to {new_level} by {sender!r}",
                      new_level=str(params)[:40], sender=self._ctx_sender)

    def _rpc_shut_down(self, params: Any, frames: list[bytes]) -> None:
        self.log.info("shut down requested by {sender!r}", sender=self._ctx_sender)
        self.reactor.callLater(0, self._shut_down)
        return None

    def _shut_down(self) -> None:
        if self.running:
            parent = self.parent
            if parent is not None:
                self.disownServiceParent()
            else:
                self.stopService()

    def _rpc_sign_in(self, params: Any, frames: list[bytes]) -> None:
        s_ns, s_nm = split_name(self._ctx_sender)
        if s_ns and s_ns != self._me:
            raise InvalidValue("sign in at the Coordinator of your own node")
        entry = self._local.get(s_nm)
        if entry is not None and entry.identity != self._ctx_identity:
            raise InvalidValue("the name is already taken")  # unreachable: auth step
        if entry is None:
            held = sum(1 for e in self._local.values() if e.identity == self._ctx_identity)
            if held >= MAX_NAMES_PER_CONNECTION:
                self.bad_input.warn(self._ctx_identity, "refused the sign-in of {name!r}: its "
                                    "connection signed in {count} names already",
                                    name=s_nm.decode("ascii", "replace"), count=held)
                raise InvalidValue(f"at most {MAX_NAMES_PER_CONNECTION} names may sign in over "
                                   "one connection")
        self._local[s_nm] = Local(self._ctx_identity, self.reactor.seconds(), self._ctx_role)
        if entry is None:
            self.log.info("Component {name} signed in", name=s_nm.decode("ascii", "replace"))
            self._publish_directory()
        return None

    def _rpc_sign_out(self, params: Any, frames: list[bytes]) -> None:
        _, s_nm = split_name(self._ctx_sender)
        entry = self._local.get(s_nm)
        if entry is None:
            return None
        if entry.identity != self._ctx_identity:
            raise InvalidValue("identities do not match")
        del self._local[s_nm]
        self.log.info("Component {name} signed out", name=s_nm.decode("ascii", "replace"))
        self._publish_directory()
        return None

    def _rpc_coordinator_sign_in(self, params: Any, frames: list[bytes]) -> None:
        s_ns, s_nm = split_name(self._ctx_sender)
        if s_nm != _COORDINATOR or not s_ns or s_ns == self._me:
            raise InvalidValue("only other Coordinators may use coordinator_sign_in")
        restarted = False
        for identity, node in list(self._node_ids.items()):
            if node[0] == s_ns and identity != self._ctx_identity:
                if self._reachable(identity, s_ns):
                    self.log.warn("refused a second Coordinator signing in as node {namespace}:"
                                  " its Coordinator is still connected",
                                  namespace=s_ns.decode("ascii", "replace"))
                    self._ctx_sender = _COORDINATOR  # answer the newcomer, not the node
                    raise ValueError(ANOTHER_COORDINATOR)
                del self._node_ids[identity]  # its connection is gone: it restarted
                restarted = True
        self._node_ids[self._ctx_identity] = [s_ns, self.reactor.seconds(), self._ctx_role,
                                             self._ctx_peer]
        now = self.reactor.seconds()
        if restarted and s_ns in self._nodes and \
                now - self._relinked_at.get(s_ns, float("-inf")) > RELINK_GRACE:
            # the new process does not know our link to it either.  Not again
            # within RELINK_GRACE: the node answers our re-link by re-linking
            # to us (a new identity here too), and re-linking once more would
            # start a ping-pong that never settles.
            self._relinked_at[s_ns] = now
            self.reactor.callLater(0, self._relink, s_ns)
        self.log.info("Coordinator of node {namespace} signed in",
                      namespace=s_ns.decode("ascii", "replace"))
        self._ctx_sender = _COORDINATOR  # reply to the bare name, via the ROUTER
        return None

    def _reachable(self, identity: bytes, namespace: bytes) -> bool:
        """
        Whether a ROUTER identity still has a connection: a ping to it is
        accepted (the ROUTER is C{ROUTER_MANDATORY}).
        """
        if self._router is None:
            return False
        return self._router.send([identity, VERSION_BYTE, namespace + b".COORDINATOR",
                                  self._full, conversation_id() + MESSAGE_ID + _JSON,
                                  encode_request(0, "pong")])

    def _relink(self, namespace: bytes) -> None:
        """Drop our link to a node and sign in there again (it restarted)."""
        if not self.running:
            return  # stopping: the link is closed with the others
        link = self._nodes.pop(namespace, None)
        if link is None:
            return
        link.socket.close()
        self.log.info("node {namespace} restarted; signing in there again",
                      namespace=namespace.decode("ascii", "replace"))
        self.connect_node(link.address)

    def _rpc_coordinator_sign_out(self, params: Any, frames: list[bytes]) -> None:
        s_ns, s_nm = split_name(self._ctx_sender)
        node = self._node_ids.get(self._ctx_identity)
        if node is None or node[0] != s_ns:
            raise InvalidValue("identities do not match: you are not that Coordinator")
        del self._node_ids[self._ctx_identity]
        link = self._nodes.pop(s_ns, None)
        if link is not None:
            self._send_request(link, "coordinator_sign_out", id=100, cid=self._ctx_cid)
            link.socket.close()  # the linger period still delivers the answer
        self.log.info("Coordinator of node {namespace} signed out",
                      namespace=s_ns.decode("ascii", "replace"))
        return None

    def _rpc_add_nodes(self, params: Any, frames: list[bytes]) -> None:
        nodes = params.get("nodes") if isinstance(params, dict) else \
            (params[0] if isinstance(params, list) and params else None)
        if not isinstance(nodes, dict):
            raise InvalidValue("add_nodes needs nodes: {namespace: 'host:port'}")
        for ns, address in nodes.items():
            if not (isinstance(ns, str) and isinstance(address, str)):
                continue
            if ns.encode() == self._me or ns.encode() in self._nodes:
                continue
            if not self._may_link(ns, address):
                self.log.warn("add_nodes from {sender!r}: not dialling {namespace} at "
                              "{address} (not configured, not in link_allow)",
                              sender=self._ctx_sender, namespace=ns, address=address)
                continue
            self.connect_node(address, ns)
        return None

    def _rpc_send_nodes(self, params: Any, frames: list[bytes]) -> dict[str, str]:
        return self.nodes()

    def _rpc_record_components(self, params: Any, frames: list[bytes]) -> None:
        components = params.get("components") if isinstance(params, dict) else \
            (params[0] if isinstance(params, list) and params else None)
        if not isinstance(components, list):
            raise InvalidValue("record_components needs components: [names]")
        s_ns, _ = split_name(self._ctx_sender)
        self._global[s_ns] = [str(c) for c in components]
        return None

    def _rpc_send_local_components(self, params: Any, frames: list[bytes]) -> list[str]:
        return self.local_names()

    def _rpc_send_global_components(self, params: Any, frames: list[bytes]
                                    ) -> dict[str, list[str]]:
        return self.global_components()

    def _rpc_remove_expired_addresses(self, params: Any, frames: list[bytes]) -> None:
        expiration = params.get("expiration_time") if isinstance(params, dict) else \
            (params[0] if isinstance(params, list) and params else None)
        if not isinstance(expiration, (int, float)) or isinstance(expiration, bool):
            raise InvalidValue("remove_expired_addresses needs expiration_time: seconds")
        self.remove_expired(float(expiration))
        return None

    # -- expiry ----------------------------------------------------------------------

    def remove_expired(self, expiration_time: float) -> None:
        """
        One expiry pass: ping what was silent longer than C{expiration_time},
        forget what was silent longer than three times that.
        """
        now = self.reactor.seconds()
        expired: list[str] = []
        unreachable: set[bytes] = set()  # one failed ping per connection and pass
        for name, entry in list(self._local.items()):
            silent = now - entry.heartbeat
            if silent > 3 * expiration_time:
                del self._local[name]
                expired.append(name.decode("ascii", "replace"))
            elif silent > expiration_time and self._router is not None \
                    and entry.identity not in unreachable:
                if not self._to_identity([entry.identity, VERSION_BYTE, self._me + b"." + name,
                                          self._full, conversation_id() + MESSAGE_ID + _JSON,
                                          encode_request(0, "pong")]):
                    unreachable.add(entry.identity)
        for identity, node in list(self._node_ids.items()):
            silent = now - node[1]
            ns = node[0]
            if silent > 3 * expiration_time:
                del self._node_ids[identity]
                link = self._nodes.pop(ns, None)
                if link is not None:
                    link.socket.close()
                self.log.info("node {namespace} is unresponsive; removed",
                              namespace=ns.decode("ascii", "replace"))
            elif silent > expiration_time:
                link = self._nodes.get(ns)
                if link is not None:
                    link.socket.send([VERSION_BYTE, ns + b".COORDINATOR", self._full,
                                      conversation_id() + MESSAGE_ID + _JSON,
                                      encode_request(0, "pong")])
        for address in self.coordinators:
            # a configured Coordinator is never given up: sign in again
            if self._configured_ns.get(address) not in self._nodes:
                self.connect_node(address)
        for address, link in list(self._waiting.items()):
            if now - link.heartbeat > 3 * expiration_time:
                del self._waiting[address]
                link.socket.close()
                self.log.info("no answer from a Coordinator at {address}; giving up",
                              address=address)
        if len(expired) <= EXPIRED_NAMED:
            for gone in expired:
                self.log.info("Component {name} expired", name=gone)
        else:
            self.log.info("{count} Components expired: {names}, ...", count=len(expired),
                          names=", ".join(expired[:EXPIRED_NAMED]))
        if expired:
            self._publish_directory()

    # -- federation --------------------------------------------------------------------

    def connect_node(self, address: str, namespace: str | None = None) -> bool:
        """
        Open a DEALER to another Coordinator and sign in there.

        @param address: C{host:port} or a ZeroMQ address.
        @param namespace: its namespace if known (it is learnt from the answer).
        @return: C{False} if it is ourselves, known, or already being signed in to.
        """
        hostport = node_address(address)
        if namespace is not None and (namespace.encode() == self._me
                                      or namespace.encode() in self._nodes):
            return False
        if hostport == self.advertised or hostport in self._waiting:
            return False
        if any(link.address == hostport for link in self._nodes.values()):
            return False
        link = _NodeLink(hostport, b"", None, self.reactor.seconds())  # type: ignore[arg-type]
        link.socket = open_connection(self.reactor, zmq.DEALER,
                                      lambda frames: self._on_dealer(link, frames),
                                      connect=zmq_address(hostport), context=self._context,
                                      name="LECO Coordinator link")
        self._waiting[hostport] = link
        self.log.info("signing in to the Coordinator at {address}", address=hostport)
        self._send_request(link, "coordinator_sign_in", receiver=_COORDINATOR)
        return True

    def _send_request(self, link: _NodeLink, method: str, params: Any = None,
                      receiver: bytes | None = None, id: int | None = None,
                      cid: bytes | None = None) -> None:
        if id is None:
            self._next_id += 1
            id = self._next_id
        link.socket.send([VERSION_BYTE, receiver or link.namespace + b".COORDINATOR",
                          self._full, (cid or conversation_id()) + MESSAGE_ID + _JSON,
                          encode_request(id, method, params)])

    def _on_dealer(self, link: _NodeLink, frames: list[bytes]) -> None:
        if len(frames) < 5 or frames[0] != VERSION_BYTE or len(frames[3]) != HEADER_LENGTH:
            self.log.warn("malformed message on the DEALER to {address}", address=link.address)
            return
        try:
            obj = json.loads(frames[4])
        except (ValueError, UnicodeDecodeError, RecursionError):
            self.log.warn("invalid JSON on the DEALER to {address}", address=link.address)
            return
        if link.address in self._waiting and self._waiting[link.address] is link:
            if isinstance(obj, dict) and "result" in obj and obj["result"] is None:
                self._finish_node_sign_in(link, frames[2])
            elif isinstance(obj, dict) and "error" in obj:
                self.log.error("signing in to the Coordinator at {address} failed: {error!r}",
                               address=link.address, error=obj["error"])
                del self._waiting[link.address]
                link.socket.close()
            return
        # answers to our requests (directory updates, pongs): nothing to do,
        # unless the node no longer knows us (it restarted)
        if isinstance(obj, dict) and isinstance(obj.get("error"), dict) \
                and obj["error"].get("code") == NOT_SIGNED_IN \
                and self._nodes.get(link.namespace) is link:
            self._relink(link.namespace)
            return
        if isinstance(obj, dict) and "error" in obj:
            self.log.info("node {namespace} answered with an error: {error!r}",
                          namespace=link.namespace, error=obj["error"])

    def _finish_node_sign_in(self, link: _NodeLink, sender: bytes) -> None:
        del self._waiting[link.address]
        ns, _ = split_name(sender)
        if not ns or ns == self._me or ns in self._nodes:
            self.log.warn("Coordinator at {address} is node {namespace!r}: already known",
                          address=link.address, namespace=ns)
            link.socket.close()
            return
        link.namespace = ns
        self._nodes[ns] = link
        for address in self.coordinators:
            if node_address(address) == link.address:
                self._configured_ns[address] = ns
        self.log.info("linked to node {namespace} at {address}",
                      namespace=ns.decode("ascii", "replace"), address=link.address)
        link.socket.send([VERSION_BYTE, ns + b".COORDINATOR", self._full,
                          conversation_id() + MESSAGE_ID + _JSON, dumps([
                              {"method": "add_nodes", "params": {"nodes": self.nodes()},
                               "jsonrpc": "2.0"},
                              {"method": "record_components",
                               "params": {"components": self.local_names()},
                               "jsonrpc": "2.0"}])])

    def _publish_directory(self) -> None:
        """
        Tell the other Coordinators our directory, once per reactor turn
        however many sign-ins and sign-outs the turn saw: a flood of sign-ins
        costs one directory message per turn, not one per sign-in each
        listing every name (quadratic in the flood).
        """
        if not self._nodes or self._directory_call is not None:
            return
        self._directory_call = self.reactor.callLater(0, self._send_directory)

    def _send_directory(self) -> None:
        self._directory_call = None
        if not self._nodes:
            return
        nodes = self.nodes()
        names = self.local_names()
        for ns, link in self._nodes.items():
            self._next_id += 2
            link.socket.send([VERSION_BYTE, ns + b".COORDINATOR", self._full,
                              conversation_id() + MESSAGE_ID + _JSON, dumps([
                                  {"id": self._next_id - 1, "method": "add_nodes",
                                   "params": {"nodes": nodes}, "jsonrpc": "2.0"},
                                  {"id": self._next_id, "method": "record_components",
                                   "params": {"components": names}, "jsonrpc": "2.0"}])])
