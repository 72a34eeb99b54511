# -*- test-case-name: tests.test_web_api -*-
"""
The HTTP API: JSON over HTTP, and C{.npy} downloads for arrays.

    GET    /api/session                          who am I, may I write
    GET    /api/devices                          the device list
    GET    /api/devices/NAME                     one device: summary + description
    GET    /api/devices/NAME/parameters          every parameter's value
    GET    /api/devices/NAME/parameters/P        {"value": ...}
    PUT    /api/devices/NAME/parameters/P        body {"value": ...}
    POST   /api/devices/NAME/actions/A           body {"args": [...], "kwargs": {...}}
    GET    /api/devices/NAME/data                one grab, as JSON
    GET    /api/devices/NAME/data.npy            one grab's array (?signal=0&channel=0)
    GET    /api/leases                           every lease in the lab
    POST   /api/leases                           body {"resources": [...], "ttl": s}
    DELETE /api/leases/ID                        release a lease this session took
    GET    /api/wires                            each protocol's listeners and peers
    GET    /api/log                              ?level=info&component=plesty&limit=200

Errors are JSON C{{"error": code, "message": text, ...}} with a status:
404 unknown device/parameter/action/route, 400 bad JSON or request, 422
invalid value, 403 read-only (parameter or console), 401 missing/wrong token,
409 lease conflict (C{"holder"} names it), 413 body too large, 415 a
write whose body is not C{application/json}, 503 device
offline or busy, 504 device timeout, 502 driver or peer error.

Every write goes through L{DeviceRegistry.guarded} with the session's owner
C{("web", session id)}; the session id is the C{X-Lab-Session} header or
the C{lab_session} cookie (set on first contact).
"""
from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from twisted_lab import errors
from twisted_lab.interfaces import IDetector
from twisted_lab.data import Export
from twisted_lab.protocols.web.codec import dumps, npy_bytes, to_json
from twisted_lab.protocols.web.context import WebContext, device_summary, new_session_id
from twisted_lab.protocols.web.logbuffer import LEVELS

__all__ = ["ApiResource", "HTTPError", "status_of"]

_log = Logger()

#: Session ids are up to 64 letters, digits, C{-} and C{_}; anything else is replaced.
SESSION_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


class HTTPError(Exception):
    """
    An error answered with a status and a JSON body.

    @ivar status: the HTTP status code.
    @ivar code: a stable error code for the body.
    @ivar details: extra fields of the body.
    """

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


_STATUS: list[tuple[type[errors.LabError], int]] = [
    (errors.UnknownDevice, 404), (errors.UnknownParameter, 404), (errors.UnknownAction, 404),
    (errors.InvalidValue, 422), (errors.ReadOnly, 403), (errors.LeaseConflict, 409),
    (errors.DeviceBusy, 503), (errors.DeviceOffline, 503), (errors.DeviceTimeout, 504),
    (errors.DriverError, 502), (errors.ProtocolError, 502),
]


def status_of(error: errors.LabError) -> int:
    """The HTTP status for a lab error (400 for any other L{LabError})."""
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 400


def _session(request: Request) -> str:
    given = request.getHeader("x-lab-session") or (request.getCookie(b"lab_session") or b"").decode(
        "ascii", "replace")
    if given and len(given) <= 64 and set(given) <= SESSION_CHARS:
        return given
    sid = new_session_id()
    request.addCookie(b"lab_session", sid.encode(), path=b"/", httpOnly=True, sameSite="strict")
    return sid


def _bearer(request: Request) -> str | None:
    value = request.getHeader("authorization") or ""
    if value.lower().startswith("bearer "):
        return value[7:].strip()
    return None


class ApiResource(Resource):
    """
    Everything under C{/api/}, routed by method and path (see the module
    docstring).

    @param context: the shared state of the C{[web]} section.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, context: WebContext) -> None:
        super().__init__()
        self.context = context

    # -- plumbing --------------------------------------------------------------

    def render(self, request: Request) -> Any:
        """Route one request; the answer is written when its Deferred fires."""
        finished = [False]
        request.notifyFinish().addBoth(lambda _: finished.__setitem__(0, True))
        d = Deferred.fromCoroutine(self._route(request))

        def done(result: tuple[int, str, bytes]) -> None:
            status, ctype, body = result
            if finished[0]:
                return
            request.setResponseCode(status)
            request.setHeader(b"content-type", ctype.encode())
            request.setHeader(b"cache-control", b"no-store")
            request.write(body)
            request.finish()

        d.addCallback(done)
        d.addErrback(lambda f: self.log.failure("answering {method} {path} failed", f,
                                                method=request.method, path=request.path))
        return NOT_DONE_YET

    async def _route(self, request: Request) -> tuple[int, str, bytes]:
        method = (request.method or b"GET").decode("ascii", "replace")
        path = [p.decode("utf-8", "replace") for p in request.postpath or [] if p]
        try:
            if getattr(request, "body_too_large", False):
                raise HTTPError(413, "BodyTooLarge",
                                f"request body over the limit of {self.context.max_body} bytes",
                                limit=self.context.max_body)
            session = _session(request)
            status, value = await self._dispatch(method, path, request, session)
            if isinstance(value, bytes):
                return status, "application/octet-stream", value
            return status, "application/json", dumps(value)
        except HTTPError as e:
            self.log.warn("{method} {path}: {status} {reason}", method=method,
                          path="/".join(path), status=e.status, reason=e.message)
            return e.status, "application/json", dumps(
                dict(e.details, error=e.code, message=e.message))
        except errors.LabError as e:
            status = status_of(e)
            self.log.warn("{method} {path}: {status} {reason}", method=method,
                          path="/".join(path), status=status, reason=str(e))
            return status, "application/json", dumps(
                dict(e.details, error=e.code, message=str(e)))
        except CancelledError:
            raise
        except Exception:
            self.log.failure("{method} {path} failed", Failure(), method=method,
                             path="/".join(path))
            return 500, "application/json", dumps({"error": "InternalError",
                                                   "message": "internal error (see the lab log)"})

    def _body(self, request: Request) -> Any:
        assert request.content is not None
        ctype = (request.getHeader("content-type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            # also what keeps another web site's plain form from writing here
            raise HTTPError(415, "UnsupportedMediaType",
                            "send the body as JSON with 'Content-Type: application/json'")
        raw = request.content.read(self.context.max_body + 1)
        if len(raw) > self.context.max_body:
            raise HTTPError(413, "BodyTooLarge",
                            f"request body over the limit of {self.context.max_body} bytes",
                            limit=self.context.max_body)
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise HTTPError(400, "BadJSON", f"the body is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise HTTPError(400, "BadRequest", "the body must be a JSON object")
        return body

    def _may_write(self, request: Request) -> None:
        if self.context.read_only:
            raise HTTPError(403, "ReadOnlyConsole", "this console is read-only ([web] read_only)")
        if not self.context.token_ok(_bearer(request)):
            raise HTTPError(401, "TokenRequired", "writes need 'Authorization: Bearer <token>' "
                            "with the token of [web] token_file")

    # -- routes ----------------------------------------------------------------

    async def _dispatch(self, method: str, path: list[str], request: Request,
                        session: str) -> tuple[int, Any]:
        if not path:
            raise HTTPError(404, "NotFound", "see /api/devices")
        head, rest = path[0], path[1:]
        handler = self._routes().get((method, head, len(rest)))
        if handler is None:
            known = any(h == head and n == len(rest) for (_m, h, n) in self._routes())
            if known:
                raise HTTPError(405, "MethodNotAllowed", f"{method} is not allowed here")
            raise HTTPError(404, "NotFound", f"no such API route: /api/{'/'.join(path)}")
        return await handler(request, session, *rest)

    def _routes(self) -> dict[tuple[str, str, int], Callable[..., Awaitable[tuple[int, Any]]]]:
        return {
            ("GET", "session", 0): self.get_session,
            ("GET", "devices", 0): self.list_devices,
            ("GET", "devices", 1): self.describe_device,
            ("GET", "devices", 2): self.device_sub,
            ("GET", "devices", 3): self.get_parameter,
            ("PUT", "devices", 3): self.set_parameter,
            ("POST", "devices", 3): self.call_action,
            ("GET", "leases", 0): self.list_leases,
            ("POST", "leases", 0): self.take_lease,
            ("DELETE", "leases", 1): self.release_lease,
            ("GET", "wires", 0): self.get_wires,
            ("GET", "log", 0): self.get_log,
        }

    async def get_session(self, request: Request, session: str) -> tuple[int, Any]:
        """Who the caller is as a lease owner, and whether it may write."""
        return 200, {"session": session, "owner": str(self.context.owner(session)),
                     "read_only": self.context.read_only,
                     "token_required": self.context.token is not None,
                     "token_ok": self.context.token is not None
                     and self.context.token_ok(_bearer(request))}

    async def list_devices(self, request: Request, session: str) -> tuple[int, Any]:
        """Every device: kind, origin, online, lease holders."""
        registry = self.context.registry
        return 200, {"devices": [device_summary(registry, n) for n in registry.names()]}

    async def describe_device(self, request: Request, session: str, name: str) -> tuple[int, Any]:
        """A device's summary and description."""
        registry = self.context.registry
        device = await registry.get(name)
        description = await device.describe()
        out = device_summary(registry, name)
        out.update({
            "doc": description.doc,
            "parameters": [p.as_dict() for p in description.parameters.values()],
            "actions": [a.as_dict() for a in description.actions.values()],
        })
        return 200, out

    async def device_sub(self, request: Request, session: str, name: str,
                         what: str) -> tuple[int, Any]:
        """C{parameters} (every value), C{data} (one grab) or C{data.npy}."""
        device = await self.context.registry.get(name)
        if what == "parameters":
            description = await device.describe()
            values: dict[str, Any] = {}
            for pname in description.parameters:
                try:
                    values[pname] = await device.get(pname)
                except errors.LabError as e:
                    values[pname] = {"error": e.code, "message": str(e)}
            return 200, {"device": name, "values": values}
        if what in ("data", "data.npy"):
            if not IDetector.providedBy(device):
                raise HTTPError(404, "NotADetector", f"{name!r} is not a detector: it has no data")
            export = await device.grab()
            if what == "data":
                return 200, to_json(export)
            return 200, self._npy(request, name, export)
        raise HTTPError(404, "NotFound", f"no such API route: /api/devices/{name}/{what}")

    def _npy(self, request: Request, name: str, export: Export) -> bytes:
        try:
            index = int((request.args.get(b"signal") or [b"0"])[0])
            channel = int((request.args.get(b"channel") or [b"0"])[0])
            signal = export.signals[index]
            array = signal.data[channel]
        except (ValueError, IndexError):
            raise HTTPError(404, "NoSuchSignal", f"{name!r} gave {len(export.signals)} signals; "
                            "ask ?signal=<i>&channel=<j> within them") from None
        request.setHeader(b"content-disposition",
                          f'attachment; filename="{name}.npy"'.encode())
        return npy_bytes(array)

    async def get_parameter(self, request: Request, session: str, name: str, kind: str,
                            item: str) -> tuple[int, Any]:
        """C{GET devices/NAME/parameters/P}: one value."""
        if kind != "parameters":
            raise HTTPError(404, "NotFound", f"no such API route: /api/devices/{name}/{kind}/{item}")
        device = await self.context.registry.get(name)
        return 200, {"device": name, "parameter": item, "value": await device.get(item)}

    async def set_parameter(self, request: Request, session: str, name: str, kind: str,
                            item: str) -> tuple[int, Any]:
        """C{PUT devices/NAME/parameters/P} with C{{"value": v}}."""
        if kind != "parameters":
            raise HTTPError(404, "NotFound", f"no such API route: /api/devices/{name}/{kind}/{item}")
        body = self._body(request)
        self._may_write(request)
        if "value" not in body:
            raise HTTPError(400, "BadRequest", 'the body must be {"value": ...}')
        device = await self.context.registry.guarded(name, self.context.owner(session))
        value = await device.set(item, body["value"])
        return 200, {"device": name, "parameter": item, "value": value}

    async def call_action(self, request: Request, session: str, name: str, kind: str,
                          item: str) -> tuple[int, Any]:
        """C{POST devices/NAME/actions/A} with C{{"args": [...], "kwargs": {...}}}."""
        if kind != "actions":
            raise HTTPError(404, "NotFound", f"no such API route: /api/devices/{name}/{kind}/{item}")
        body = self._body(request)
        args, kwargs = body.get("args", []), body.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise HTTPError(400, "BadRequest", '"args" must be a list and "kwargs" an object')
        device = await self.context.registry.guarded(name, self.context.owner(session))
        description = await device.describe()
        spec = description.actions.get(item)
        if spec is None or spec.mutating:
            self._may_write(request)
        result = await device.call(item, *args, **kwargs)
        return 200, {"device": name, "action": item, "result": result}

    async def list_leases(self, request: Request, session: str) -> tuple[int, Any]:
        """Every lease in the lab, whoever took it."""
        mine = {id(lease): key for key, lease in self.context.leases.items()}
        return 200, {"leases": [
            {"id": mine.get(id(lease)), "owner": str(lease.owner),
             "protocol": lease.owner.protocol, "peer": lease.owner.peer,
             "resources": sorted(lease.resources), "ttl": lease.ttl, "expires": lease.expires}
            for lease in self.context.registry.leases.leases()]}

    async def take_lease(self, request: Request, session: str) -> tuple[int, Any]:
        """C{POST leases} with C{{"resources": [...], "ttl": seconds or null}}."""
        body = self._body(request)
        self._may_write(request)
        resources, ttl = body.get("resources"), body.get("ttl")
        if (not isinstance(resources, list) or not resources
                or not all(isinstance(r, str) for r in resources)):
            raise HTTPError(400, "BadRequest", '"resources" must be a non-empty list of names')
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))):
            raise HTTPError(400, "BadRequest", '"ttl" must be a number of seconds or null')
        for resource in resources:
            self.context.registry.lookup(resource.split("/")[0])
        lease = self.context.registry.acquire(self.context.owner(session), resources, ttl)
        key = new_session_id()
        self.context.leases[key] = lease
        return 201, {"id": key, "owner": str(lease.owner), "resources": sorted(lease.resources),
                     "ttl": lease.ttl}

    async def release_lease(self, request: Request, session: str, key: str) -> tuple[int, Any]:
        """C{DELETE leases/ID}: only the session that took it may."""
        self._may_write(request)
        lease = self.context.leases.get(key)
        if lease is None or lease not in self.context.registry.leases.leases():
            self.context.leases.pop(key, None)
            raise HTTPError(404, "UnknownLease", f"no lease {key!r} taken through this console")
        if lease.owner != self.context.owner(session):
            raise HTTPError(403, "NotYourLease", f"lease {key!r} belongs to {lease.owner}")
        self.context.registry.release(lease)
        del self.context.leases[key]
        return 200, {"released": key}

    async def get_wires(self, request: Request, session: str) -> tuple[int, Any]:
        """Each protocol's listeners and peers, and the leases."""
        return 200, {"protocols": self.context.wires(),
                     "leases": (await self.list_leases(request, session))[1]["leases"]}

    async def get_log(self, request: Request, session: str) -> tuple[int, Any]:
        """The recent log events, filtered by C{level}, C{component}, C{after}, C{limit}."""
        def arg(name: str, default: str) -> str:
            return str((request.args.get(name.encode()) or [default.encode()])[0].decode(
                "utf-8", "replace"))

        level = arg("level", "debug")
        if level not in LEVELS:
            raise HTTPError(400, "BadRequest", f"level must be one of {', '.join(LEVELS)}")
        try:
            limit = max(0, min(int(arg("limit", "200")), 5000))
            after = int(arg("after", "0"))
        except ValueError:
            raise HTTPError(400, "BadRequest", "limit and after must be integers") from None
        return 200, {"events": self.context.log_ring.recent(level, arg("component", ""), limit,
                                                            after)}
