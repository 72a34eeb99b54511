# -*- test-case-name: tests.test_leco_coordinator -*-
"""
A LECO Component: a DEALER signed in to a Coordinator.

It signs in (learning its namespace from the Coordinator's answer), sends
heartbeats, answers C{pong}, C{rpc.discover}, C{set_log_level} and
C{shut_down}, signs in again when the Coordinator forgot it (after a
restart), and signs out when stopped.  L{Component.ask} sends JSON-RPC
requests matched by conversation id, with deadlines;
L{Component.register_method} offers methods to other Components.
"""
from __future__ import annotations

import json
from collections import deque
from typing import Any, Callable, Sequence

import zmq
from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from twisted_lab.access import Role, require
from twisted_lab.bigjson import shared_pool
from twisted_lab.flow import PeerSendBudget
from twisted_lab.errors import DeviceOffline, DeviceTimeout, ProtocolError
from twisted_lab.protocols.leco.locallink import LocalHub, LocalLink
from twisted_lab.protocols.leco.message import (ADDITIONAL_FROM, COORDINATOR, JSON, MESSAGE_ID,
                                                VERSION_BYTE, Message, check_name,
                                                conversation_id, split_name)
from twisted_lab.protocols.leco.rpc import (DUPLICATE_NAME, NOT_SIGNED_IN, SERVER_ERROR,
                                            RPCServer, encode_error,
                                            encode_notification, encode_request,
                                            remote_error, set_log_level)
from twisted_lab.protocols.zmqutil import ZmqConnection, open_connection
from twisted_lab.ratelog import BadInputLog
from twisted_lab.waiting import Pending, PendingCalls, Waiters

__all__ = ["Component", "DEFAULT_COORDINATOR", "METHOD_ROLES"]

#: The role each method of our Components needs; a method not listed needs
#: C{operate} (set, move, lock, ...).  C{stop_motion} needs only C{read}:
#: anyone may stop a motion (as leases never refuse C{stop}).  C{call_action}
#: is checked by the actor: C{read} may call actions that change nothing.
METHOD_ROLES: dict[str, Role] = {
    **{name: Role.READ for name in (
        "pong", "rpc.discover", "get_parameters", "describe", "call_action",
        "set_remote_name",
        "get_settings", "get_actuator_value", "send_data_grab", "send_data_snap",
        "stop_grab", "stop_motion",
        # callbacks of the PyMoDAQ 5 actors our director drives (their reports,
        # routed only to the devices of the actors it was configured for)
        "set_move_done", "send_position", "set_data", "set_director_settings",
        "set_director_info", "set_units")},
    **{name: Role.ADMIN for name in ("shut_down", "set_log_level", "force_unlock")},
}

DEFAULT_COORDINATOR = "tcp://127.0.0.1:12300"
_JSON_TYPE = b"\x01"
#: Requests of one sender answered at once; its next ones wait their turn.
MAX_CONCURRENT = 8
#: Requests of one sender waiting at most; more are refused with an error.
MAX_QUEUED = 1000


class Component(Service):
    """
    A DEALER Component signed in to a LECO Coordinator.

    @param name: the Component name (printable ASCII, no dot).
    @param coordinator: the Coordinator's ZeroMQ address.
    @param reactor: the reactor.
    @param timeout: default deadline of L{ask}, in seconds.
    @param heartbeat_interval: send a heartbeat when nothing was sent for
        this long (pyleco: 10 s; the Coordinator pings after 15 s).
    @param role_of: the role of a caller by its full name (C{None} when
        unknown: then C{default_role}); see L{METHOD_ROLES}.
    @param default_role: the role of a caller C{role_of} does not know
        (C{operate}: C{shut_down} and C{force_unlock} are refused).
    @param hub: the L{LocalHub} of a Coordinator in this process
        (C{CoordinatorService.local_hub}): messages then go through memory
        instead of ZeroMQ; C{coordinator} is only used in log messages.

    @ivar component_name: the LECO name (C{name}, the service name, starts
        equal to it but a parent service may rename the service).
    @ivar namespace: the namespace learnt at sign-in, or C{None}.
    @ivar caller: during the synchronous part of a method call, the
        sender (full name) of the request being answered.
    """

    log = Logger()
    #: the service name (L{Service} allows C{None}; ours is set at construction)
    name: str

    def __init__(self, name: str, coordinator: str = DEFAULT_COORDINATOR, reactor: Any = None,
                 timeout: float = 5.0, heartbeat_interval: float = 10.0,
                 retry_interval: float = 2.0, hub: LocalHub | None = None,
                 role_of: Callable[[str], Role | None] | None = None,
                 default_role: Role = Role.OPERATE) -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor
            reactor = _reactor
        self.component_name = check_name(name)
        self.name = self.component_name
        self.coordinator = coordinator
        self.reactor = reactor
        self.timeout = timeout
        self.heartbeat_interval = heartbeat_interval
        self.retry_interval = retry_interval
        self.namespace: str | None = None
        self.caller: str | None = None
        self.server = RPCServer(lambda: self.full_name)
        self.server.guard = self._guard
        self.role_of = role_of
        self.default_role = default_role
        self._name_b = name.encode()
        self._sender = self._name_b
        self.hub = hub
        self._socket: ZmqConnection | LocalLink | None = None
        #: requests awaiting responses, by conversation id; the info of each
        #: is its resend (after signing in again), or None
        self._pending: PendingCalls[bytes] = PendingCalls(reactor)
        #: the requests being answered (a Deferred's id → its message)
        self._inflight: dict[int, Message] = {}
        #: per sender: requests in progress, and those waiting their turn
        self._busy: dict[bytes, int] = {}
        self._queued: dict[bytes, deque[Message]] = {}
        self.bad_input = BadInputLog(self.log, reactor)
        self._next_id = 0
        self._last_sent = 0.0
        #: large messages not yet written out to our Coordinator over ZeroMQ
        self.send_budget = PeerSendBudget(reactor, self._not_reading)
        self._signed_in = False
        self._signing_in: Deferred[Any] | None = None
        self._sign_in_waiters: Waiters[None] = Waiters()
        self._heartbeat: LoopingCall | None = None
        self._retry_call: Any = None
        self.register_method("pong", lambda params, frames: None, "Check that I am alive.")
        self.register_method("shut_down", self._rpc_shut_down, "Stop this Component.")
        self.register_method("set_log_level", self._rpc_set_log_level,
                             "Set the log level (DEBUG … CRITICAL).")

    # -- names ---------------------------------------------------------------------

    @property
    def full_name(self) -> str:
        """C{namespace.name} once signed in, else the bare name."""
        return (f"{self.namespace}.{self.component_name}" if self.namespace
                else self.component_name)

    @property
    def signed_in(self) -> bool:
        """C{True} while the Coordinator has accepted our sign-in."""
        return self._signed_in

    def when_signed_in(self) -> Deferred[None]:
        """A new L{Deferred} firing when (or at once if) signed in."""
        return self._sign_in_waiters.when_or_now(self._signed_in, None)

    # -- methods -------------------------------------------------------------------

    def register_method(self, name: str, fn: Callable[[Any, list[bytes]], Any],
                        doc: str | None = None) -> None:
        """
        Offer a JSON-RPC method.

        @param fn: C{fn(params, frames)} with C{params} a dict, a list or
            C{None} and C{frames} the request's additional binary frames
            (C{bytes}; frames of 64 KiB or more that came over ZeroMQ are
            uncopied C{zmq.Frame} buffers: use C{memoryview} or C{bytes()});
            returns a result, C{(result, [bytes…])} (binary frames sent
            back), or a L{Deferred} of either.  Raising a L{LabError} sends
            the matching LECO error.  L{caller} names the requester.
        """
        self.server.register(name, fn, doc)

    def caller_role(self) -> Role:
        """The role of the caller of the request being answered."""
        role = self.role_of(self.caller) if self.role_of is not None and self.caller else None
        return role if role is not None else self.default_role

    def _guard(self, method: str) -> None:
        needed = METHOD_ROLES.get(method, Role.OPERATE)
        role = self.caller_role()
        if role < needed:
            self.log.warn("{name} refused {method} from {caller} (role {role}, needs {needed})",
                          name=self.full_name, method=method, caller=self.caller,
                          role=role.label, needed=needed.label)
        require(role, needed, f"{method} on {self.full_name}")

    def _rpc_shut_down(self, params: Any, frames: list[bytes]) -> None:
        self.log.info("{name} asked to shut down by {caller}", name=self.full_name,
                      caller=self.caller)
        self.reactor.callLater(0, self.stopService)
        return None

    def log_namespace(self) -> str:
        """The log namespace C{set_log_level} sets (subclasses name their own)."""
        return "twisted_lab.protocols.leco"

    def _rpc_set_log_level(self, params: Any, frames: list[bytes]) -> None:
        namespace = self.log_namespace()
        set_log_level(params, namespace)
        self.log.info("{name}: log level of {namespace} set to {new_level} by {caller}",
                      name=self.full_name, namespace=namespace,
                      new_level=str(params)[:40], caller=self.caller)

    # -- service -------------------------------------------------------------------

    def startService(self) -> None:
        """Connect, sign in, start heartbeats."""
        Service.startService(self)
        if self.server.pool is None:
            self.server.pool = shared_pool(self.reactor)
        if self.hub is not None:
            self._socket = self.hub.connect(self._on_frames)
        else:
            # large additional payload frames (arrays) are received uncopied
            self._socket = open_connection(self.reactor, zmq.DEALER, self._on_frames,
                                           connect=self.coordinator, large_from=ADDITIONAL_FROM,
                                           name="LECO Component")
        self._heartbeat = LoopingCall(self._beat)
        self._heartbeat.clock = self.reactor
        self._heartbeat.start(min(self.heartbeat_interval / 2, 1.0), now=False)
        self._sign_in()

    def stopService(self) -> Deferred[None]:
        """Sign out (waiting at most 1 s for the answer), then close."""
        Service.stopService(self)
        self.bad_input.flush()
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None
        if self._socket is None:
            return succeed(None)
        self._refuse_inflight()
        if self._signed_in:
            d = self._request(b"COORDINATOR", "sign_out", None, (), 1.0, wait=False)
            d.addErrback(lambda f: None)
        else:
            d = succeed(None)

        def close(_: Any) -> None:
            self._signed_in = False
            self.namespace = None
            self._sender = self._name_b
            self._pending.fail_all(DeviceOffline(f"LECO component {self.component_name} stopped"))
            if self._socket is not None:
                self._socket.close()
                self._socket = None
            self._sign_in_waiters.fail(DeviceOffline(f"LECO component {self.component_name} stopped"))

        return d.addBoth(close)

    # -- sign in / heartbeats ------------------------------------------------------

    def _sign_in(self) -> None:
        if self._signing_in is not None or self._socket is None or not self.running:
            return
        self._signed_in = False
        self._sender = self._name_b
        d = self._request(b"COORDINATOR", "sign_in", None, (), self.retry_interval,
                          wait=False, retry=False, raw=True)
        self._signing_in = d

        def done(result: tuple[Any, Message]) -> None:
            self._signing_in = None
            obj, message = result
            ns, _ = split_name(message.sender)
            self.namespace = ns.decode("ascii", "replace") or None
            self._sender = (ns + b"." + self._name_b) if ns else self._name_b
            self._signed_in = True
            self.log.info("signed in as {full_name} at {coordinator}",
                          full_name=self.full_name, coordinator=self.coordinator)
            self._sign_in_waiters.fire(None)

        def failed(failure: Any) -> None:
            self._signing_in = None
            if not self.running:
                return
            error = failure.value
            if getattr(error, "rpc_code", None) == DUPLICATE_NAME:
                self.log.error("cannot sign in as {name} at {coordinator}: the name is taken; "
                               "retrying", name=self.component_name, coordinator=self.coordinator)
            else:
                self.log.debug("sign-in of {name} failed ({error}); retrying",
                               name=self.component_name, error=str(error))
            self._retry_call = self.reactor.callLater(self.retry_interval, self._sign_in)

        d.addCallbacks(done, failed)

    def _beat(self) -> None:
        if self._socket is None:
            return
        if self.reactor.seconds() - self._last_sent < self.heartbeat_interval:
            return
        if not self._signed_in:
            return
        self._send([VERSION_BYTE, COORDINATOR, self._sender,
                    conversation_id() + MESSAGE_ID + b"\x00"])

    def _send(self, frames: list[Any]) -> bool:
        if self._socket is None:
            return False
        self._last_sent = self.reactor.seconds()
        if isinstance(self._socket, ZmqConnection):
            return self._socket.send_within(frames, self.send_budget, b"coordinator")
        return self._socket.send(frames)

    def _not_reading(self, peer: bytes, reason: str) -> None:
        """Our Coordinator does not read what we send: large messages wait."""
        self.log.warn("LECO Component {name}: the Coordinator at {coordinator} does not "
                      "read; large messages are not sent until it does ({reason})",
                      name=self.component_name, coordinator=self.coordinator, reason=reason)

    # -- requests ------------------------------------------------------------------

    def ask(self, receiver: str, method: str, params: Any = None, frames: Sequence[bytes] = (),
            timeout: float | None = None) -> Deferred[tuple[Any, list[bytes]]]:
        """
        Send a JSON-RPC request and wait for its response.

        @param receiver: a name (own node) or full name.
        @param params: a dict (by name), a list (by position) or C{None}.
        @param frames: additional binary frames to send.
        @param timeout: seconds (L{timeout} when C{None}), counted from now,
            including waiting for the sign-in.
        @return: a L{Deferred} firing with C{(result, binary frames)}; it
            fails with L{DeviceTimeout} past the deadline and with a
            L{twisted_lab.protocols.leco.rpc.RemoteError} (also an instance of
            the matching L{twisted_lab.errors} class) on an error response.
        """
        return self._request(receiver.encode(), method, params, frames,
                             self.timeout if timeout is None else timeout)

    def notify(self, receiver: str, method: str, params: Any = None,
               frames: Sequence[bytes] = ()) -> bool:
        """
        Send a JSON-RPC notification (no response expected).

        @return: C{False} if it could not be queued (not signed in, closed).
        """
        if not self._signed_in:
            return False
        return self._send([VERSION_BYTE, receiver.encode(), self._sender,
                           conversation_id() + MESSAGE_ID + _JSON_TYPE,
                           encode_notification(method, params), *frames])

    def _request(self, receiver: bytes, method: str, params: Any, frames: Sequence[bytes],
                 timeout: float, wait: bool = True, retry: bool = True, raw: bool = False
                 ) -> Deferred[Any]:
        cid = conversation_id()
        if self._socket is None:
            return fail(DeviceOffline(f"LECO component {self.component_name} is not running"))
        self._next_id += 1
        payload = encode_request(self._next_id, method, params)

        def expired() -> Exception:
            return DeviceTimeout(f"no LECO answer from {receiver.decode(errors='replace')} to "
                                 f"{method} within {timeout} s")

        def send() -> None:
            if cid in self._pending:
                self._send([VERSION_BYTE, receiver, self._sender,
                            cid + MESSAGE_ID + _JSON_TYPE, payload, *frames])

        def resend() -> None:
            # the Coordinator forgot us: sign in again, then send once more
            self._sign_in()
            waiter = self.when_signed_in()
            waiter.addCallbacks(lambda _: send(), lambda f: None)

        d = self._pending.add(cid, timeout, expired, info=resend if retry else None)
        if not raw:
            d.addCallback(self._unwrap, receiver)
        if wait and not self._signed_in:
            waiter = self.when_signed_in()
            waiter.addCallbacks(lambda _: send(), lambda f: None)
        else:
            send()
        return d

    @staticmethod
    def _unwrap(result: tuple[Any, Message], receiver: bytes) -> tuple[Any, list[bytes]]:
        obj, message = result
        return obj.get("result"), message.payload[1:]

    # -- incoming --------------------------------------------------------------------

    def _on_frames(self, frames: list[bytes]) -> None:
        try:
            message = Message.from_frames(frames)
        except ProtocolError as e:
            self.bad_input.warn(("malformed", bytes(frames[2]) if len(frames) > 2 else b""),
                                "{name} dropped a malformed LECO message: {error}",
                                name=self.component_name, error=str(e))
            return
        if not message.payload:
            return  # a heartbeat: nothing to do
        pending = self._pending.get(message.conversation_id)
        if pending is not None:
            self._resolve(message, pending)
            return
        if message.message_type != JSON:
            self.bad_input.warn(message.sender,
                                "{name} dropped a message of type {type} from {sender!r}",
                                name=self.component_name, type=message.message_type,
                                sender=message.sender)
            return
        payload = message.payload[0]
        if b'"method"' not in payload:
            self._stray_response(message)
            return
        if self._busy.get(message.sender, 0) >= MAX_CONCURRENT:
            self._queue(message)
            return
        self._handle_request(message)

    def _queue(self, message: Message) -> None:
        """A sender with L{MAX_CONCURRENT} requests in progress: its next ones wait."""
        queue = self._queued.get(message.sender)
        if queue is None:
            queue = self._queued[message.sender] = deque()
        if len(queue) < MAX_QUEUED:
            queue.append(message)
            return
        self._refuse(message, f"{message.sender!r} has {MAX_QUEUED} requests waiting")
        self.bad_input.warn(message.sender, "{name}: refused a request from {sender!r}: "
                            "{count} requests waiting", name=self.component_name,
                            sender=message.sender, count=MAX_QUEUED)

    def _refuse(self, message: Message, why: str) -> None:
        """Answer a request with a server error without running it."""
        try:
            request = json.loads(message.payload[0])
        except ValueError:
            return
        if isinstance(request, dict) and request.get("id") is not None:
            self._reply((encode_error(request["id"], SERVER_ERROR, why), []), message)

    def _handle_request(self, message: Message) -> None:
        sender = message.sender.decode("ascii", "replace")
        self.caller = sender
        try:
            out = self.server.handle(message.payload[0], message.payload[1:], sender)
        finally:
            self.caller = None
        if isinstance(out, Deferred):
            key = id(out)
            self._inflight[key] = message
            self._busy[message.sender] = self._busy.get(message.sender, 0) + 1
            out.addBoth(self._answered, key, message.sender)
            out.addCallback(self._reply, message)
            out.addErrback(lambda f: self.log.failure("answering {sender} failed", f,
                                                      sender=sender))
        else:
            self._reply(out, message)

    def _answered(self, result: Any, key: int, sender: bytes) -> Any:
        self._inflight.pop(key, None)
        busy = self._busy.get(sender, 0) - 1
        if busy > 0:
            self._busy[sender] = busy
        else:
            self._busy.pop(sender, None)
        queue = self._queued.get(sender)
        if queue:
            message = queue.popleft()
            if not queue:
                del self._queued[sender]
            # on a later turn: a chain of queued requests answered at once
            # never recurses
            self.reactor.callLater(0, self._handle_request, message)
        return result

    def _refuse_inflight(self) -> None:
        """At stop: an error response to every request still being answered."""
        inflight, self._inflight = self._inflight, {}
        waiting = [m for queue in self._queued.values() for m in queue]
        self._queued = {}
        for message in [*inflight.values(), *waiting]:
            try:
                request = json.loads(message.payload[0])
            except ValueError:
                continue
            if not isinstance(request, dict) or request.get("id") is None:
                continue  # a notification (or a batch): no response expected
            self._reply((encode_error(request["id"], SERVER_ERROR,
                                      f"{self.component_name} is shutting down"), []), message)
            # the late answer finds the socket closed and is dropped
        if inflight or waiting:
            self.log.info("{name}: answered {count} requests in progress with an error "
                          "(shutting down)", name=self.component_name,
                          count=len(inflight) + len(waiting))

    def _reply(self, out: tuple[bytes | None, list[bytes]], message: Message) -> None:
        response, binary = out
        if response is None:
            return
        self._send([VERSION_BYTE, message.sender, self._sender,
                    message.conversation_id + MESSAGE_ID + _JSON_TYPE, response, *binary])

    def _resolve(self, message: Message, pending: Pending[Any]) -> None:
        try:
            obj = json.loads(message.payload[0])
        except (ValueError, UnicodeDecodeError, RecursionError):
            obj = None
        if not isinstance(obj, dict) or not ("result" in obj or "error" in obj):
            self.log.warn("{name} got an invalid response {payload!r} from {sender!r}",
                          name=self.component_name, payload=message.payload[0][:200],
                          sender=message.sender)
            if isinstance(obj, dict) and "method" in obj:
                return  # a request that reused our conversation id: ignore
            obj = {"error": {"code": -32000, "message": "Invalid response from server",
                             "data": repr(message.payload[0][:200])}}
        error = obj.get("error")
        if error is not None and isinstance(error, dict) \
                and error.get("code") == NOT_SIGNED_IN and pending.info is not None:
            retry, pending.info = pending.info, None
            self.log.info("{name}: the Coordinator forgot us; signing in again",
                          name=self.component_name)
            self._signed_in = False
            retry()
            return
        if error is not None:
            self._pending.reject(message.conversation_id,
                                 remote_error(error, message.sender.decode("ascii", "replace")))
        else:
            self._pending.resolve(message.conversation_id, (obj, message))

    def _stray_response(self, message: Message) -> None:
        try:
            obj = json.loads(message.payload[0])
        except (ValueError, UnicodeDecodeError, RecursionError):
            self.log.warn("{name} dropped unparsable payload from {sender!r}",
                          name=self.component_name, sender=message.sender)
            return
        error = obj.get("error") if isinstance(obj, dict) else None
        if isinstance(error, dict) and error.get("code") == NOT_SIGNED_IN:
            self.log.info("{name}: the Coordinator does not know us; signing in again",
                          name=self.component_name)
            self._signed_in = False
            self._sign_in()
            return
        self.log.debug("{name} ignored a response without a pending request: {payload!r}",
                       name=self.component_name, payload=message.payload[0][:200])
