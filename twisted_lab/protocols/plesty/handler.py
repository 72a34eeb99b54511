# -*- test-case-name: tests.test_plesty_handler -*-
"""
The PLESTY request handler for one exported registry device: frames in,
frames out, no sockets.

It answers both envelopes a ROUTER sees: C{[identity, body]} from a DEALER
(PLESTY's own client) and C{[identity, b"", body]} from a REQ socket, and
replies in the shape it received (spec §1).  Any other frame count is
logged and dropped.

Request types: C{connect}, C{disconnect}, C{query}, C{write}, C{call},
C{describe}, C{help} and C{get_config_list}; beyond PLESTY (not in
C{strict} mode) C{ping}, an echoed C{rid}, lease time-to-live renewed by
every request, and binary array frames (L{twisted_lab.protocols.plesty.message}).

Locks are the registry's leases, owned by C{Owner("plesty", client_id)}:
PLESTY resource C{"axis/x"} of device C{stage} is lease C{"stage/axis/x"},
and C{"stage"} (the device's own name) is the whole device.  Every write and
mutating call goes through L{DeviceRegistry.guarded} with the client's owner.
"""
from __future__ import annotations

import itertools
import re
import json
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

import twisted_lab
from twisted_lab.access import Role, require
from twisted_lab.bigjson import BIG, shared_pool, weight
from twisted_lab.description import Description
from twisted_lab.errors import DeviceBusy, LabError, LeaseConflict
from twisted_lab.leases import Lease, Owner
from twisted_lab.protocols.plesty.message import (SerializationError, client_name, encode,
                                                  error, normalize_resources, ok, parse_request)
from twisted_lab.ratelog import BadInputLog
from twisted_lab.registry import DeviceRegistry

__all__ = ["PlestyHandler", "DEFAULT_MAX_MESSAGE_SIZE", "plesty_doc"]

#: The largest request body answered (bigger ones get an error reply).
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
#: Largest C{connect} metadata kept per client (bytes of its JSON).
MAX_METADATA = 64 * 1024
#: Client identities remembered at once; a new one past it takes the place of
#: the least recently seen client that holds no lock.
MAX_CLIENTS = 1024
#: Seconds a client that sends nothing (and holds no lock) is remembered.
CLIENT_TTL = 600.0

#: Operations every exported device offers besides its own actions.
BUILTIN_METHODS = ("get_config_list", "identity", "query", "write")

_DTYPES = {"float": "float", "int": "int", "bool": "bool", "str": "str", "list": "list",
           "dict": "dict", "array": "ndarray", "any": "any"}


class _BudgetExceeded(Exception):
    """The request's own C{timeout} ran out (reported as PLESTY's C{TimeoutError})."""


@dataclass
class _Client:
    """What the handler knows about one client identity."""

    resources: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    lease: Lease | None = None
    #: when it last sent a request (clock seconds)
    seen: float = 0.0


def plesty_doc(description: Description) -> dict[str, Any]:
    """
    A device description in the shape of plesty-lib's C{doc_model().to_dict()}.
    """
    parameters = [
        {"name": p.name, "dtype": _DTYPES.get(p.type, "any"), "unit": p.units or None,
         "default": p.default, "value": None, "read_only": p.readonly, "write_only": False,
         "min_value": p.minimum, "max_value": p.maximum,
         "options": list(p.choices) if p.choices is not None else None,
         "description": p.doc}
        for p in description.parameters.values()
    ]
    functions = [
        {"name": a.name, "source": "twisted_lab", "description": a.doc,
         "iparams": [{"name": arg.name, "dtype": _DTYPES.get(arg.type, "any"), "unit": arg.units,
                      "default": None if arg.required else arg.default,
                      "required": arg.required, "options": None, "range": None,
                      "shape": None, "item_dtype": None, "description": ""}
                     for arg in a.arguments],
         "oparams": [],
         "kind": {"kind": "write" if a.mutating else "read"}}
        for name, a in description.actions.items() if not name.startswith("_")
    ]
    standard = [
        {"name": "identity", "source": "standard", "description": "Identification string.",
         "iparams": [], "oparams": [], "kind": {"kind": "read"}},
        {"name": "get_config_list", "source": "standard",
         "description": "The parameter keys.", "iparams": [], "oparams": [],
         "kind": {"kind": "read"}},
    ]
    return {"parameters": {"default": parameters}, "functions": functions,
            "standard_methods": standard}


#: Bytes read at each end of an over-size request to find its C{rid}.
RID_WINDOW = 4096
_RID = re.compile(rb'"rid"\s*:\s*(-?[0-9][0-9.eE+-]{0,30}|"(?:[^"\\]|\\.){0,256}"|true|false|null)'
                  rb'\s*[,}]')


def rid_near_ends(body: bytes) -> tuple[bool, Any]:
    """
    The C{rid} of an over-size request, looked for in its first and last
    L{RID_WINDOW} bytes only (a C{"rid": value} member with a number, string,
    boolean or null value): the body is never parsed in full.

    @return: C{(True, rid)}, or C{(False, None)} when none is found there.
    """
    for part in (body[:RID_WINDOW], body[-RID_WINDOW:]):
        match = _RID.search(part)
        if match is not None:
            try:
                return True, json.loads(match.group(1))
            except ValueError:
                continue
    return False, None


class PlestyHandler:
    """
    Answers PLESTY requests for one registry device.

    @param registry: where the device is looked up, at each request.
    @param device_name: the exported device.
    @param clock: for request timeouts (the reactor, or a C{Clock}).
    @param strict: behave exactly as plesty-lib 0.6 (no ping, no lease
        expiry, no request ids, no binary frames).
    @param lease_ttl: seconds a client's lock lives without a request (not
        in strict mode); C{None} for never.
    @param max_message_size: the largest request body answered.
    @param max_clients: client identities remembered at once.
    @param client_ttl: seconds a quiet client without a lock is remembered.
    """

    log = Logger()

    def __init__(self, registry: DeviceRegistry, device_name: str, clock: IReactorTime,
                 strict: bool = False, lease_ttl: float | None = 60.0,
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
                 max_clients: int = MAX_CLIENTS, client_ttl: float = CLIENT_TTL) -> None:
        self.registry = registry
        self.device_name = device_name
        self.clock = clock
        self.strict = strict
        self.lease_ttl = None if strict else lease_ttl
        self.max_message_size = max_message_size
        #: the clients that sent C{connect}, least recently seen first
        self.clients: dict[str, _Client] = {}
        self.max_clients = max_clients
        self.client_ttl = client_ttl
        self._sweeper: IDelayedCall | None = None
        self._overruns: list[Deferred[Any]] = []
        self.bad_input = BadInputLog(self.log, clock)

    # -- entry point -----------------------------------------------------------------

    async def handle(self, frames: list[bytes], role: Role = Role.OPERATE
                     ) -> list[Any] | None:
        """
        Answer one message as received by a ROUTER socket.

        @param frames: C{[identity, body]} or C{[identity, b"", body]}.
        @param role: the client's role: C{read} may connect without
            resources, describe, query and call actions that change nothing;
            C{operate} may also write, call any action and reserve resources.
        @return: the reply frames in the same envelope, or C{None} when the
            message is dropped (a wrong frame count; logged).
        """
        if len(frames) == 2:
            envelope, body = [frames[0]], frames[1]
        elif len(frames) == 3 and frames[1] == b"":
            envelope, body = [frames[0], b""], frames[2]
        else:
            self.log.warn("{device}: dropped a {count}-frame message (PLESTY messages have an "
                          "identity and one body frame, or an empty delimiter between them)",
                          device=self.device_name, count=len(frames))
            return None
        client = client_name(envelope[0])
        reply, binary = await self._answer(client, body, role)
        try:
            if not binary and weight(reply.get("result")) >= BIG:
                # a large JSON reply: written on the encoder pool, off the reactor
                out = await shared_pool(self.clock).run(encode, reply, binary)
            else:
                out = encode(reply, binary)
        except SerializationError as e:
            self.log.error("{device}: reply to {client} not serializable: {reason}",
                           device=self.device_name, client=client, reason=str(e))
            out = encode(self._with_rid(error("SerializationError", str(e)), reply))
        return envelope + out

    def _with_rid(self, new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        if "rid" in old:
            new["rid"] = old["rid"]
        return new

    async def _answer(self, client: str, body: bytes, role: Role = Role.OPERATE
                      ) -> tuple[dict[str, Any], bool]:
        if len(body) > self.max_message_size:
            self.bad_input.warn(client, "{device}: refused a {size}-byte request from {client}",
                                device=self.device_name, size=len(body), client=client)
            reply = error("ValueError", f"request of {len(body)} bytes exceeds the limit of "
                          f"{self.max_message_size} bytes")
            found, rid = rid_near_ends(body)
            if found and not self.strict:
                reply["rid"] = rid
            return reply, False
        try:
            request = parse_request(body)
        except Exception as e:
            self.bad_input.warn(client, "{device}: bad request from {client}: {error}",
                                device=self.device_name, client=client, error=repr(e)[:200])
            return error(type(e).__name__, str(e)), False
        binary = not self.strict and request.get("binary") is True
        try:
            reply = await self._dispatch(client, request, role)
        except _BudgetExceeded:
            reply = error("TimeoutError", "Operation timed out")
        except LabError as e:
            self.log.info("{device}: {kind} for {client}: {error}", device=self.device_name,
                          kind=type(e).__name__, client=client, error=str(e))
            reply = error(type(e).__name__, str(e))
        except Exception as e:
            self.log.warn("{device}: {type} request from {client} failed: {error}",
                          device=self.device_name, type=str(request.get("type"))[:40],
                          client=client, error=repr(e))
            reply = error(type(e).__name__, str(e))
        if not self.strict and "rid" in request:
            reply["rid"] = request["rid"]
        return reply, binary

    # -- dispatch --------------------------------------------------------------------

    def _require(self, client: str, role: Role, needed: Role, what: str) -> None:
        if role < needed:
            self.log.warn("{device}: refused {what} to {client} (role {role}, needs {needed})",
                          device=self.device_name, what=what, client=client, role=role.label,
                          needed=needed.label)
        require(role, needed, f"{what} on {self.device_name}")

    async def _dispatch(self, client: str, request: dict[str, Any], role: Role = Role.OPERATE
                        ) -> dict[str, Any]:
        kind = request.get("type")
        if kind == "connect" and request.get("resources"):
            self._require(client, role, Role.OPERATE, "reserving resources")
        elif kind == "write":
            self._require(client, role, Role.OPERATE, "write")
        timeout = _timeout(request.get("timeout"))
        self._seen(client)
        if not self.strict:
            self._renew(client)
        if kind == "connect":
            return self._connect(client, request)
        if kind == "disconnect":
            return self._disconnect(client)
        if kind == "ping" and not self.strict:
            return ok("pong")
        device = self.registry.lookup(self.device_name)
        description: Description = await device.describe()
        if kind == "describe":
            return ok(self._describe(description))
        if kind == "help":
            return ok({"help": _summary(description)})
        if kind == "get_config_list":
            return ok(list(description.parameters))
        if kind not in ("query", "write", "call"):
            raise ValueError(f"Unknown request type: {kind}")
        self._check_resources(client, request.get("resources"))
        if kind == "query":
            return ok(await self._query(device, request["param"], timeout))
        if kind == "write":
            return ok(await self._write(client, request["param"], request["value"], timeout))
        func = request["func"]
        if role < Role.OPERATE:
            action = description.actions.get(func) if isinstance(func, str) else None
            reads = func in ("query", "get_config_list") or (
                func == "identity" and action is None) or (
                action is not None and not action.mutating)
            if not reads:
                self._require(client, role, Role.OPERATE, f"call of {str(func)[:80]!r}")
        args = request.get("args", [])
        kwargs = request.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ValueError("'args' must be a list and 'kwargs' an object")
        if "resources" in kwargs:
            kwargs = dict(kwargs)
            self._check_resources(client, kwargs.pop("resources"))
        return ok(await self._call(client, device, description, func, args, kwargs, timeout))

    def _describe(self, description: Description) -> dict[str, Any]:
        methods = _methods(description)
        result: dict[str, Any] = {"methods": methods, "budgets": _budgets(description, methods),
                                  "doc": plesty_doc(description)}
        if not self.strict:
            result["twisted_lab"] = description.as_dict()
        return result

    async def _query(self, device: Any, param: Any, timeout: float | None) -> Any:
        if not isinstance(param, str):
            raise ValueError(f"'param' must be a string, got {type(param).__name__}")
        self._check_busy(device)
        return await self._bounded(device.get(param), timeout)

    async def _write(self, client: str, param: Any, value: Any, timeout: float | None) -> bool:
        if not isinstance(param, str):
            raise ValueError(f"'param' must be a string, got {type(param).__name__}")
        guarded = await self.registry.guarded(self.device_name, Owner("plesty", client))
        self._check_busy(guarded.device)
        await self._bounded(guarded.set(param, value), timeout)
        return True

    async def _call(self, client: str, device: Any, description: Description, func: Any,
                    args: list[Any], kwargs: dict[str, Any], timeout: float | None) -> Any:
        methods = _methods(description)
        if not isinstance(func, str) or func.startswith("_") or func not in methods:
            self.log.warn("{device}: refused call of {func!r} from {client}",
                          device=self.device_name, func=str(func)[:80], client=client)
            raise AttributeError(f"device {self.device_name!r} has no operation {func!r}; "
                                 f"it offers: {', '.join(methods)}")
        if func == "get_config_list":
            return list(description.parameters)
        if func == "query":
            (param,) = _bind(func, args, kwargs, ("param",))
            return await self._query(device, param, timeout)
        if func == "write":
            param, value = _bind(func, args, kwargs, ("param", "value"))
            return await self._write(client, param, value, timeout)
        if func == "identity" and func not in description.actions:
            return (f"twisted_lab,{description.kind},{self.device_name},"
                    f"{twisted_lab.__version__}")
        guarded = await self.registry.guarded(self.device_name, Owner("plesty", client))
        self._check_busy(device)
        return await self._bounded(guarded.call(func, *args, **kwargs), timeout)

    # -- locks -----------------------------------------------------------------------

    def _lab_resource(self, resource: str) -> str:
        if resource == self.device_name:
            return resource
        return f"{self.device_name}/{resource}"

    def _seen(self, client: str) -> None:
        """A request from C{client}: it is now the most recently seen."""
        state = self.clients.pop(client, None)
        if state is not None:
            state.seen = self.clock.seconds()
            self.clients[client] = state

    def _holds_lock(self, state: _Client) -> bool:
        return state.lease is not None and state.lease in self.registry.leases.leases()

    def _forget(self, client: str) -> None:
        state = self.clients.pop(client)
        if state.lease is not None:
            self.registry.release(state.lease)

    def _make_room(self) -> bool:
        """Forget the least recently seen client without a lock, if any."""
        for client, state in self.clients.items():
            if not self._holds_lock(state):
                self._forget(client)
                return True
        return False

    def _sweep(self) -> None:
        """Forget the clients quiet for C{client_ttl} that hold no lock."""
        self._sweeper = None
        deadline = self.clock.seconds() - self.client_ttl
        for client, state in list(self.clients.items()):
            if state.seen > deadline:
                break
            if self._holds_lock(state):
                continue
            self._forget(client)
            self.log.info("{device}: forgot {client}, quiet for {ttl} s",
                          device=self.device_name, client=client, ttl=self.client_ttl)
        self._arm()

    def _arm(self) -> None:
        if self._sweeper is None and self.clients:
            oldest = min(state.seen for state in itertools.islice(self.clients.values(), 64))
            delay = max(oldest + self.client_ttl - self.clock.seconds(), 1.0)
            self._sweeper = self.clock.callLater(delay, self._sweep)

    def _connect(self, client: str, request: dict[str, Any]) -> dict[str, Any]:
        hidden = {"type", "resources", "timeout"} | (set() if self.strict else {"rid"})
        metadata = {k: v for k, v in request.items() if k not in hidden}
        size = len(json.dumps(metadata, default=repr))
        if size > MAX_METADATA:
            self.bad_input.warn(client, "{device}: refused {size} bytes of connect metadata "
                                "from {client}", device=self.device_name, size=size,
                                client=client)
            return error("ValueError", f"connect metadata of {size} bytes exceeds the limit "
                         f"of {MAX_METADATA} bytes",
                         result={"client_id": client, "resources": [], "metadata": {}})
        if client not in self.clients and len(self.clients) >= self.max_clients:
            if not self._make_room():
                self.bad_input.warn(("full", self.device_name),
                                    "{device}: refused {client}: {count} clients hold locks",
                                    device=self.device_name, client=client,
                                    count=len(self.clients))
                return error("ResourceAllocationError",
                             f"{len(self.clients)} clients are connected (max_clients)",
                             result={"client_id": client, "resources": [], "metadata": {}})
        resources = normalize_resources(request.get("resources", []))
        owner = Owner("plesty", client)
        wanted = [self._lab_resource(r) for r in resources]
        try:
            self.registry.leases.check(owner, wanted)
        except LeaseConflict as e:
            self.log.warn("{device}: refused {resources} to {client}: {resource} is held by "
                          "{holder}", device=self.device_name, resources=resources,
                          client=client, resource=e.resource, holder=e.holder)
            return error("ResourceAllocationError",
                         f"Requested resources are not available: {e.resource!r} is held by "
                         f"{e.holder}",
                         result={"client_id": client, "resources": [], "metadata": metadata})
        state = self.clients.get(client)
        if state is not None and state.lease is not None:
            self.registry.release(state.lease)
        lease = self.registry.acquire(owner, wanted, self.lease_ttl) if wanted else None
        self.clients.pop(client, None)
        self.clients[client] = _Client(resources, metadata, lease, self.clock.seconds())
        self._arm()
        self.log.info("{device}: {client} connected holding {resources}",
                      device=self.device_name, client=client, resources=resources)
        return ok({"client_id": client, "resources": resources, "metadata": metadata})

    def _disconnect(self, client: str) -> dict[str, Any]:
        state = self.clients.pop(client, None)
        if state is not None and state.lease is not None:
            self.registry.release(state.lease)
        self.log.info("{device}: {client} disconnected", device=self.device_name, client=client)
        return ok({"client_id": client})

    def _granted(self, client: str) -> list[str]:
        state = self.clients.get(client)
        if state is None:
            return []
        if state.lease is not None and state.lease not in self.registry.leases.leases():
            state.lease, state.resources = None, []
        return state.resources

    def _renew(self, client: str) -> None:
        state = self.clients.get(client)
        if state is not None and state.lease is not None:
            try:
                self.registry.renew(state.lease)
            except LabError:
                self.log.warn("{device}: the lock of {client} on {resources} had expired",
                              device=self.device_name, client=client,
                              resources=state.resources)
                state.lease, state.resources = None, []

    def _check_resources(self, client: str, requested: Any) -> list[str]:
        granted = self._granted(client)
        if requested is None:
            return granted
        wanted = normalize_resources(requested)
        missing = [r for r in wanted if r not in granted]
        if missing:
            raise ValueError(f"resources {missing} were not granted to {client}")
        return wanted

    def shutdown_reply(self, frames: list[bytes]) -> list[Any] | None:
        """
        The reply to a request the server stops before answering: a
        C{ConnectionAbortedError}, in the request's envelope (with its C{rid}).

        @return: C{None} for a message that would have been dropped anyway.
        """
        return self.error_reply(frames, "ConnectionAbortedError",
                                f"the server of {self.device_name!r} is shutting down")

    def error_reply(self, frames: list[bytes], kind: str, message: str) -> list[Any] | None:
        """
        An error reply to the request C{frames}, in its envelope, with its
        C{rid} where one can be read (see L{request_id}).

        @return: C{None} for a message that would have been dropped anyway.
        """
        if len(frames) == 2:
            envelope, body = [frames[0]], frames[1]
        elif len(frames) == 3 and frames[1] == b"":
            envelope, body = [frames[0], b""], frames[2]
        else:
            return None
        reply = error(kind, message)
        if not self.strict:
            found, rid = self.request_id(body)
            if found:
                reply["rid"] = rid
        return envelope + encode(reply)

    def request_id(self, body: bytes) -> tuple[bool, Any]:
        """
        The C{rid} of a request, parsed in full up to L{max_message_size};
        beyond it, read only at the start and end of the body (a top-level
        C{"rid"} member with a scalar value), so that the cost stays bounded.

        @return: C{(True, rid)}, or C{(False, None)} when none can be read.
        """
        if len(body) <= self.max_message_size:
            try:
                request = parse_request(body)
            except Exception:
                return False, None
            return ("rid" in request), request.get("rid")
        return rid_near_ends(body)

    def drop_client(self, client: str) -> None:
        """Forget a client's session and release its lock (it does not read)."""
        state = self.clients.pop(client, None)
        if state is not None and state.lease is not None:
            self.registry.release(state.lease)

    def release_all(self) -> None:
        """Release every client's lock (the server is stopping)."""
        if self._sweeper is not None and self._sweeper.active():
            self._sweeper.cancel()
        self._sweeper = None
        self.bad_input.flush()
        for state in self.clients.values():
            if state.lease is not None:
                self.registry.release(state.lease)
        self.clients.clear()

    # -- timeouts and busy -----------------------------------------------------------

    def _check_busy(self, device: Any) -> None:
        if self._overruns or getattr(device, "busy", False):
            raise DeviceBusy(f"device {self.device_name!r} is still busy with an earlier call "
                             "that overran its timeout")

    async def _bounded(self, d: Deferred[Any], timeout: float | None) -> Any:
        if timeout is None:
            return await d
        result: Deferred[Any] = Deferred()

        def expire() -> None:
            self._overruns.append(d)
            self.log.warn("{device}: a call overran its {timeout} s timeout; the device stays "
                          "busy until it returns", device=self.device_name, timeout=timeout)

            def returned(outcome: Any) -> None:
                self._overruns.remove(d)
                self.log.info("{device}: the overrunning call returned", device=self.device_name)

            d.addBoth(returned)
            result.errback(_BudgetExceeded())

        timer = self.clock.callLater(timeout, expire)

        def finished(outcome: Any) -> None:
            if timer.active():
                timer.cancel()
                if isinstance(outcome, Failure):
                    result.errback(outcome)
                else:
                    result.callback(outcome)

        d.addBoth(finished)
        return await result


def _methods(description: Description) -> list[str]:
    names = set(BUILTIN_METHODS) | set(description.actions)
    return sorted(n for n in names if not n.startswith("_"))


def _budgets(description: Description, methods: list[str]) -> dict[str, float]:
    """
    PLESTY's C{budgets}: the seconds each advertised operation may take, for
    the actions whose device bounds them by a deadline (plesty-lib >= 0.4
    clients wait that long, plus a grace, for a call without its own
    C{timeout}).
    """
    return {name: float(action.budget) for name, action in description.actions.items()
            if action.budget is not None and name in methods}


def _timeout(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"timeout must be a number of seconds or null, got {value!r}")
    if not value > 0:
        raise ValueError("timeout must be > 0 seconds")
    return float(value)


def _bind(func: str, args: list[Any], kwargs: dict[str, Any], names: tuple[str, ...]) -> list[Any]:
    values = list(args) + [kwargs[n] for n in names[len(args):] if n in kwargs]
    if len(values) != len(names) or len(args) > len(names):
        raise ValueError(f"{func}() takes {', '.join(names)}")
    return values


def _summary(description: Description) -> str:
    lines = [f"{description.name} ({description.kind}): {description.doc}".rstrip(": ")]
    lines.append("parameters:")
    for p in description.parameters.values():
        flags = " (read-only)" if p.readonly else ""
        units = f" [{p.units}]" if p.units else ""
        lines.append(f"  {p.name}: {p.type}{units}{flags} {p.doc}".rstrip())
    lines.append("operations:")
    for a in description.actions.values():
        args = ", ".join(arg.name for arg in a.arguments)
        lines.append(f"  {a.name}({args}) {a.doc}".rstrip())
    for name in BUILTIN_METHODS:
        lines.append(f"  {name}")
    return "\n".join(lines)

