# -*- test-case-name: tests.test_plesty_client -*-
"""
A PLESTY client: a DEALER socket sending one JSON frame per request, as
plesty-lib's own client does (spec §1, §6).

One request is outstanding at a time; the others wait in order.  Each has a
deadline computed as PLESTY's client does it.  After a timeout the socket is
closed and rebuilt (with a new random identity unless a stable C{client_id}
was given) and the C{connect} handshake is sent again first, so a late reply
to the timed-out request can never answer the next one.  Requests carry an
C{rid} (echoed by twisted_lab servers; replies with another C{rid} are
dropped) except C{connect}, where a PLESTY server would store it as metadata;
after a rebuild, the first reply must look like a C{connect} reply.
"""
from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import zmq
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger

from twisted_lab import errors
from twisted_lab.errors import DeviceOffline, DeviceTimeout, DriverError, LabError, LeaseConflict
from twisted_lab.protocols.plesty.message import decode, encode
from twisted_lab.protocols.zmqutil import ZmqConnection, open_connection
from twisted_lab.waiting import PendingCalls

__all__ = ["PlestyClient", "RemoteError", "RemoteTimeout", "ResourceRefused", "remote_error"]


class RemoteError(DriverError):
    """
    The server answered with an error whose type has no twisted_lab meaning.

    @ivar type: the remote exception class name.
    """

    code = "DriverError"

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}", type=kind)
        self.type = kind


class RemoteTimeout(DeviceTimeout):
    """The server reported C{TimeoutError}, or did not answer in time."""


class ResourceRefused(LeaseConflict):
    """C{connect} was refused: another client holds a requested resource."""

    def __init__(self, message: str) -> None:
        LabError.__init__(self, message)
        self.resource = ""
        self.holder = ""


def remote_error(reply: dict[str, Any]) -> LabError:
    """
    The local exception for an error reply: the twisted_lab error of the same
    class name when there is one (a twisted_lab server), else L{RemoteError}.
    """
    kind = str(reply.get("type") or "Error")
    message = str(reply.get("error") or "")
    if kind == "TimeoutError":
        return RemoteTimeout(message or "Operation timed out")
    if kind == "ResourceAllocationError":
        return ResourceRefused(message)
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, LabError) and kind in errors.__all__:
        error = cls.__new__(cls)
        LabError.__init__(error, message)
        return error
    return RemoteError(kind, message)


def _looks_like_connect(reply: dict[str, Any]) -> bool:
    result = reply.get("result")
    return (isinstance(result, dict) and "client_id" in result) or \
        reply.get("type") == "ResourceAllocationError"


@dataclass(eq=False)
class _Request:
    payload: dict[str, Any]
    deferred: Deferred[Any]
    handshake: bool = False
    rid: int | None = None


class PlestyClient:
    """
    Talks to one PLESTY server (plesty-lib's, or ours).

    @param reactor: the reactor (for the socket and deadlines).
    @param address: the server's ZMQ address.
    @param client_id: a stable identity (locks survive a rebuild); a random
        one per socket when C{None}.
    @param timeout: seconds to wait for a reply to a request without its own
        C{timeout} (PLESTY's default is 5).
    @param resources: resources to reserve at C{connect}.
    @param connect_kwargs: metadata sent with C{connect}.
    @param request_ids: send C{rid} (ignored by PLESTY servers).
    @param binary: ask for arrays in binary frames (ignored by PLESTY servers).
    """

    log = Logger()

    def __init__(self, reactor: Any, address: str, client_id: str | None = None,
                 timeout: float = 5.0, resources: Any = None,
                 connect_kwargs: dict[str, Any] | None = None, request_ids: bool = True,
                 binary: bool = True) -> None:
        self.reactor = reactor
        self.address = address
        self.client_id = client_id
        self.timeout = timeout
        self.resources = resources if resources is not None else []
        self.connect_kwargs = dict(connect_kwargs or {})
        self.request_ids = request_ids
        self.binary = binary
        self.connected = False
        self.closed = False
        self.connection_info: dict[str, Any] | None = None
        #: Seconds each operation may take, from the server's C{describe}.
        self.budgets: dict[str, float] = {}
        self.last_heard: float | None = None
        self._rid = 0
        self._queue: deque[_Request] = deque()
        self._current: _Request | None = None
        #: the request in flight, awaiting its reply (with its deadline)
        self._inflight: PendingCalls[_Request] = PendingCalls(reactor)
        self._connection: ZmqConnection | None = None
        #: which socket is current (a reply on an older one is dropped)
        self._generation = 0
        self.identity = ""
        self._open()

    # -- socket ------------------------------------------------------------------------

    def _open(self) -> None:
        self.identity = self.client_id or f"twisted_lab-{uuid.uuid4().hex}"
        self._generation += 1
        generation = self._generation
        # replies as uncopied frames: array results are views on them
        self._connection = open_connection(
            self.reactor, zmq.DEALER, lambda frames: self._received(generation, frames),
            connect=self.address, linger=0, options={zmq.IDENTITY: self.identity.encode()},
            copy=False, name=f"PlestyClient({self.address})")

    def _rebuild(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._open()
        self.log.info("rebuilt the socket to {address} (identity {identity})",
                      address=self.address, identity=self.identity)

    # -- requests ----------------------------------------------------------------------

    def request(self, payload: dict[str, Any]) -> Deferred[Any]:
        """
        Send one request (after those already waiting).

        @param payload: the request object; its C{timeout} (seconds) is the
            server's budget and sets the deadline.
        @return: a L{Deferred} firing with the C{result}, or failing with
            L{remote_error}'s exception, L{RemoteTimeout} when no reply came
            in time, or L{DeviceOffline} once closed.
        """
        if self.closed:
            return fail(DeviceOffline(f"the PLESTY client of {self.address} is closed"))
        d: Deferred[Any] = Deferred()
        self._queue.append(_Request(dict(payload), d))
        self._pump()
        return d

    def _deadline(self, op_timeout: Any) -> float:
        if op_timeout is None:
            return self.timeout
        op = float(op_timeout)
        return max(self.timeout, op + max(1.0, op / 5))

    def _pump(self) -> None:
        while self._current is None and self._queue and not self.closed:
            request = self._queue.popleft()
            if request.deferred.called:
                continue
            payload = request.payload
            kind = payload.get("type")
            if self.request_ids and kind != "connect":
                self._rid += 1
                request.rid = self._rid
                payload["rid"] = request.rid
            if self.binary and kind in ("query", "call"):
                payload["binary"] = True
            self._current = request
            reply = self._inflight.add(request, self._deadline(payload.get("timeout")),
                                       self._late(kind))
            reply.addCallbacks(self._answered, self._unanswered, callbackArgs=(request,),
                               errbackArgs=(request,))
            assert self._connection is not None
            self._connection.send(encode(payload))

    def _late(self, kind: Any) -> Callable[[], Exception]:
        return lambda: RemoteTimeout(f"{self.address} did not answer a {kind} request in time")

    def _received(self, generation: int, frames: list[zmq.Frame]) -> None:
        request = self._current
        if generation != self._generation or request is None:
            self.log.warn("dropped an unexpected reply from {address}", address=self.address)
            return
        try:
            reply = decode(frames)
        except Exception as e:
            self.log.warn("dropped a malformed reply from {address}: {error}",
                          address=self.address, error=repr(e))
            return
        if "rid" in reply and reply["rid"] != request.rid:
            self.log.warn("dropped a stale reply (rid {got}, expected {want}) from {address}",
                          got=reply["rid"], want=request.rid, address=self.address)
            return
        if request.handshake and not _looks_like_connect(reply):
            self.log.warn("dropped a stale reply from {address} while reconnecting",
                          address=self.address)
            return
        self._current = None
        self.last_heard = self.reactor.seconds()
        self._inflight.resolve(request, reply)

    def _answered(self, reply: dict[str, Any], request: _Request) -> None:
        if request.handshake:
            self._handshake_done(reply)
        if not request.deferred.called:
            if reply.get("status") == "ok":
                request.deferred.callback(reply.get("result"))
            else:
                request.deferred.errback(remote_error(reply))
        self._pump()

    def _unanswered(self, failure: Any, request: _Request) -> None:
        if request is not self._current:  # failed with the others (fail_pending)
            if not request.deferred.called:
                request.deferred.errback(failure)
            return
        # its deadline passed
        self._current = None
        self.log.warn("no reply from {address} to a {type} request in time; rebuilding the "
                      "socket", address=self.address, type=request.payload.get("type"))
        self._rebuild()
        if self.connected and not self.closed:
            handshake: Deferred[Any] = Deferred()
            handshake.addErrback(lambda f: self.log.warn(
                "reconnecting to {address} failed: {error}", address=self.address,
                error=f.getErrorMessage()))
            self._queue.appendleft(_Request(self._connect_payload(), handshake, True))
        if not request.deferred.called:
            request.deferred.errback(failure)
        self._pump()

    def fail_pending(self, error: Exception) -> None:
        """Fail the request in flight and every waiting one with C{error}."""
        queued = list(self._queue)
        self._current = None
        self._queue.clear()
        self._inflight.fail_all(error)
        for request in queued:
            if not request.deferred.called:
                request.deferred.errback(error)

    # -- PLESTY operations -----------------------------------------------------------

    def _connect_payload(self) -> dict[str, Any]:
        return {"type": "connect", "resources": self.resources, **self.connect_kwargs}

    def _handshake_done(self, reply: dict[str, Any]) -> None:
        if reply.get("status") == "ok":
            self.connected = True
            self.connection_info = reply.get("result")
        else:
            self.connected = False
            self.log.warn("{address} refused our reconnection: {error}", address=self.address,
                          error=reply.get("error"))

    def connect(self) -> Deferred[dict[str, Any]]:
        """
        The C{connect} handshake (reserves C{resources}).

        @return: fires with the server's C{connect} result; fails with
            L{ResourceRefused} when a resource is held by another client.
        """
        d: Deferred[Any] = Deferred()
        self._queue.append(_Request(self._connect_payload(), d, True))
        self._pump()
        return d

    def disconnect(self, timeout: float = 30.0) -> Deferred[Any]:
        """Release this client's locks on the server."""
        self.connected = False
        return self.request({"type": "disconnect", "timeout": timeout})

    def query(self, param: str, timeout: float | None = None) -> Deferred[Any]:
        """Read a parameter."""
        return self.request({"type": "query", "param": param, "timeout": timeout})

    def write(self, param: str, value: Any, timeout: float | None = None) -> Deferred[Any]:
        """Write a parameter."""
        return self.request({"type": "write", "param": param, "value": value,
                             "timeout": timeout})

    def call(self, func: str, *args: Any, timeout: float | None = None,
             **kwargs: Any) -> Deferred[Any]:
        """
        Run an operation.  Without a C{timeout}, an operation whose budget
        the last L{describe} published is given that budget (as plesty-lib's
        client does).
        """
        if timeout is None:
            timeout = self.budgets.get(func)
        return self.request({"type": "call", "func": func, "args": list(args),
                             "kwargs": kwargs, "timeout": timeout})

    def describe(self) -> Deferred[dict[str, Any]]:
        """The server's C{describe} result; its C{budgets} are kept in L{budgets}."""
        return self.request({"type": "describe"}).addCallback(self._keep_budgets)

    def _keep_budgets(self, described: Any) -> Any:
        budgets = described.get("budgets") if isinstance(described, dict) else None
        if isinstance(budgets, dict):
            self.budgets = {str(k): float(v) for k, v in budgets.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0}
        return described

    def help(self) -> Deferred[Any]:
        """The server's C{help} result."""
        return self.request({"type": "help"})

    def identity_string(self) -> Deferred[Any]:
        """The device's identification string (C{call identity})."""
        return self.call("identity")

    def get_config_list(self) -> Deferred[Any]:
        """The parameter keys (C{call get_config_list}, which plesty-lib also answers)."""
        return self.call("get_config_list")

    def ping(self) -> Deferred[Any]:
        """
        A keep-alive (twisted_lab extension): fires with C{"pong"}, or fails
        with L{RemoteError} from a PLESTY server, which still proves it alive.
        """
        return self.request({"type": "ping"})

    def close(self, disconnect_timeout: float = 1.0) -> Deferred[None]:
        """
        Send C{disconnect} (waiting at most C{disconnect_timeout} seconds)
        when connected, then close the socket; waiting requests fail with
        L{DeviceOffline}.
        """
        if self.closed:
            return succeed(None)

        def finish(_: Any) -> None:
            self._close_now()

        if self.connected:
            self.timeout = min(self.timeout, disconnect_timeout)
            d = self.disconnect(timeout=disconnect_timeout / 2)
            return d.addBoth(finish)
        self._close_now()
        return succeed(None)

    def _close_now(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.fail_pending(DeviceOffline(f"the PLESTY client of {self.address} was closed"))
        if self._connection is not None:
            self._connection.close()
            self._connection = None
