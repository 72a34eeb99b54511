# -*- test-case-name: tests.test_leco_rpc -*-
"""
JSON-RPC 2.0 as LECO uses it: compact encoding in pyleco's key order,
LECO's error codes, batches, and the mapping between L{twisted_lab.errors}
and JSON-RPC error objects.

L{RPCServer} dispatches requests to methods C{fn(params, frames)}; it never
raises: bad input becomes an error response (and a log line).
"""
from __future__ import annotations

import json
from typing import Any, Callable

import numpy as np
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from twisted_lab import errors
from twisted_lab.bigjson import ARRAY_MIN, BIG, ArrayWriter, EncoderPool, weight
from twisted_lab.errors import LabError

__all__ = [
    "PARSE_ERROR", "INVALID_REQUEST", "METHOD_NOT_FOUND", "INVALID_PARAMS", "INTERNAL_ERROR",
    "SERVER_ERROR", "NOT_SIGNED_IN", "DUPLICATE_NAME", "NODE_UNKNOWN", "RECEIVER_UNKNOWN",
    "RESOURCE_LOCKED", "MESSAGES", "RemoteError", "encode_request", "encode_notification",
    "encode_result", "encode_error", "error_object", "error_from_exception", "remote_error",
    "RPCServer", "Method", "dumps", "jsonable",
]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000
NOT_SIGNED_IN = -32090
DUPLICATE_NAME = -32091
NODE_UNKNOWN = -32092
RECEIVER_UNKNOWN = -32093
RESOURCE_LOCKED = -32050

#: The message texts pyleco uses for each code.
MESSAGES = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
    SERVER_ERROR: "Server error",
    NOT_SIGNED_IN: "You did not sign in!",
    DUPLICATE_NAME: "The name is already taken.",
    NODE_UNKNOWN: "Node is not known.",
    RECEIVER_UNKNOWN: "Receiver is not in addresses list.",
    RESOURCE_LOCKED: "Resource locked!",
}

_ABSENT: Any = object()
log = Logger()


class _BigArray(Exception):
    """An array too large for the fast path of L{dumps}."""


def jsonable(value: Any) -> Any:
    """
    The C{default} hook of our JSON encoder: numpy scalars and arrays,
    tuples, sets, bytes, and objects with C{as_dict()}.
    """
    if isinstance(value, np.ndarray) and value.size >= ARRAY_MIN:
        raise _BigArray()
    tolist = getattr(value, "tolist", None)
    if tolist is not None:
        return tolist()
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    as_dict = getattr(value, "as_dict", None)
    if as_dict is not None:
        return as_dict()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_encoder = json.JSONEncoder(separators=(",", ":"), default=jsonable, ensure_ascii=True)


def dumps(value: Any) -> bytes:
    """
    Compact JSON (pyleco's separators) as bytes.  Large numpy arrays are
    written by L{twisted_lab.bigjson.array_json} (fast, and in slices that
    let other threads run).
    """
    try:
        return _encoder.encode(value).encode()
    except _BigArray:
        pass
    writer = ArrayWriter()

    def default(item: Any) -> Any:
        if isinstance(item, np.ndarray):
            return writer.array(item)
        return jsonable(item)

    encoder = json.JSONEncoder(separators=(",", ":"), default=default, ensure_ascii=True)
    return writer.finish(encoder.encode(value).encode())


def encode_request(id: int | str, method: str, params: Any = None) -> bytes:
    """
    A request in pyleco's key order (C{id, method, params, jsonrpc});
    C{params} omitted when C{None} or empty.
    """
    obj: dict[str, Any] = {"id": id, "method": method}
    if params:
        obj["params"] = params
    obj["jsonrpc"] = "2.0"
    return dumps(obj)


def encode_notification(method: str, params: Any = None) -> bytes:
    """A request without id: the receiver sends no response."""
    obj: dict[str, Any] = {"method": method}
    if params:
        obj["params"] = params
    obj["jsonrpc"] = "2.0"
    return dumps(obj)


def encode_result(id: Any, result: Any) -> bytes:
    """A result response C{{"id":…,"result":…,"jsonrpc":"2.0"}}."""
    return dumps({"id": id, "result": result, "jsonrpc": "2.0"})


def error_object(code: int, message: str | None = None, data: Any = _ABSENT) -> dict[str, Any]:
    """The C{error} member; C{data} is omitted when not given."""
    obj: dict[str, Any] = {"code": code, "message": MESSAGES.get(code, "Server error")
                           if message is None else message}
    if data is not _ABSENT:
        obj["data"] = data
    return obj


def encode_error(id: Any, code: int, message: str | None = None, data: Any = _ABSENT) -> bytes:
    """An error response; C{id} is C{None} for errors of the Coordinator's router."""
    return dumps({"id": id, "error": error_object(code, message, data), "jsonrpc": "2.0"})


# -- errors ------------------------------------------------------------------------

class RemoteError(LabError):
    """
    A JSON-RPC error received from a peer.

    Instances are also instances of the L{twisted_lab.errors} class the
    error stands for (L{remote_error} picks it), so callers can catch
    C{UnknownParameter}, C{DeviceOffline}, ... whatever the wire said.

    @ivar rpc_code: the JSON-RPC error code.
    @ivar rpc_message: its message.
    @ivar rpc_data: its data, or C{None}.
    """

    code = "RemoteError"

    def __init__(self, rpc_code: int, rpc_message: str, rpc_data: Any = None,
                 peer: str = "") -> None:
        text = f"LECO error {rpc_code} ({rpc_message})"
        if rpc_data is not None:
            text += f": {rpc_data}"
        if peer:
            text += f" from {peer}"
        LabError.__init__(self, text, rpc_code=rpc_code, rpc_data=rpc_data, peer=peer)
        self.rpc_code = rpc_code
        self.rpc_message = rpc_message
        self.rpc_data = rpc_data
        self.peer = peer


_LAB_ERRORS: dict[str, type[LabError]] = {
    cls.code: cls for cls in (getattr(errors, n) for n in errors.__all__)
    if isinstance(cls, type) and issubclass(cls, LabError)
}
_REMOTE_CLASSES: dict[type[LabError], type[RemoteError]] = {}


def _remote_class(base: type[LabError]) -> type[RemoteError]:
    cls = _REMOTE_CLASSES.get(base)
    if cls is None:
        cls = type("Remote" + base.__name__, (RemoteError, base), {"code": base.code})
        _REMOTE_CLASSES[base] = cls
    return cls


_CODE_CLASSES: dict[int, type[LabError]] = {
    METHOD_NOT_FOUND: errors.UnknownAction,
    INVALID_PARAMS: errors.InvalidValue,
    RESOURCE_LOCKED: errors.LeaseConflict,
    NOT_SIGNED_IN: errors.ProtocolError,
    DUPLICATE_NAME: errors.ProtocolError,
    NODE_UNKNOWN: errors.DeviceOffline,
    RECEIVER_UNKNOWN: errors.DeviceOffline,
    PARSE_ERROR: errors.ProtocolError,
    INVALID_REQUEST: errors.ProtocolError,
    INTERNAL_ERROR: errors.DriverError,
}


def remote_error(error: Any, peer: str = "") -> RemoteError:
    """
    The exception for a received C{error} member.

    The class is chosen from the C{data} text when it starts with a
    twisted_lab error code (C{"UnknownParameter: …"}, what our actors send),
    otherwise from the JSON-RPC code.
    """
    if not isinstance(error, dict):
        error = {"code": SERVER_ERROR, "message": "malformed error", "data": error}
    code = error.get("code")
    message = str(error.get("message", ""))
    data = error.get("data")
    base: type[LabError] | None = None
    if isinstance(data, str):
        prefix = data.partition(":")[0]
        base = _LAB_ERRORS.get(prefix)
    if base is None:
        base = _CODE_CLASSES.get(code, errors.ProtocolError) if isinstance(code, int) \
            else errors.ProtocolError
    return _remote_class(base)(code if isinstance(code, int) else SERVER_ERROR, message,
                               data, peer)


def error_from_exception(exc: BaseException) -> dict[str, Any]:
    """
    The JSON-RPC error member for an exception raised by a method.

    A L{RemoteError} passes through unchanged; L{errors.InvalidValue} and
    C{TypeError} give -32602; L{errors.LeaseConflict} -32050;
    anything else -32603.  C{data} is
    C{"<code or exception type>: <text>"}, as pyleco does.
    """
    if isinstance(exc, RemoteError):
        return error_object(exc.rpc_code, exc.rpc_message,
                            _ABSENT if exc.rpc_data is None else exc.rpc_data)
    if isinstance(exc, LabError):
        kind = exc.code
        text = exc.message
    else:
        kind = type(exc).__name__
        text = str(exc)
    if isinstance(exc, (errors.InvalidValue, TypeError)):
        code = INVALID_PARAMS
    elif isinstance(exc, errors.LeaseConflict):
        code = RESOURCE_LOCKED
    else:
        code = INTERNAL_ERROR
    return error_object(code, None, f"{kind}: {text}")


# -- server --------------------------------------------------------------------------

#: A method: C{fn(params, frames)} returning a result, C{(result, frames)}, or a
#: Deferred of either.
Method = Callable[[Any, list[bytes]], Any]


class _Entry:
    __slots__ = ("fn", "doc")

    def __init__(self, fn: Method, doc: str) -> None:
        self.fn, self.doc = fn, doc


def _split_binary(value: Any) -> tuple[Any, list[bytes]]:
    if type(value) is tuple and len(value) == 2 and isinstance(value[1], list):
        return value[0], value[1]
    return value, []


class RPCServer:
    """
    JSON-RPC methods by name, and the dispatch of request payloads.

    @param title: called for the C{rpc.discover} title (the full name).
    @ivar pool: where responses of a large result (L{weight} at least
        L{twisted_lab.bigjson.BIG}) are encoded, off the reactor thread;
        C{None} to encode every response at once.
    """

    log = Logger()

    def __init__(self, title: Callable[[], str] = lambda: "") -> None:
        self.title = title
        self.pool: EncoderPool | None = None
        self.methods: dict[str, _Entry] = {}
        #: called with each method name before it runs (during the
        #: synchronous dispatch); raising L{errors.AccessDenied} refuses it
        self.guard: Callable[[str], None] | None = None
        self.register("rpc.discover", self._discover, "List the methods (OpenRPC).")

    def register(self, name: str, fn: Method, doc: str | None = None) -> None:
        """
        Offer C{fn} as method C{name} (replacing any earlier one).

        @param fn: C{fn(params, frames)}; C{params} is the JSON C{params}
            (a dict, a list or C{None}), C{frames} the request's additional
            binary frames.  It returns a result, C{(result, [bytes…])} to
            send binary frames back, or a L{Deferred} of either; raising a
            L{LabError} sends the matching JSON-RPC error.
        """
        if doc is None:
            doc = (getattr(fn, "__doc__", None) or "").strip().split("\n")[0]
        self.methods[name] = _Entry(fn, doc)

    def _discover(self, params: Any, frames: list[bytes]) -> dict[str, Any]:
        methods = [{"name": name, "summary": entry.doc, "description": entry.doc}
                   for name, entry in self.methods.items() if name != "rpc.discover"]
        return {"openrpc": "1.2.6", "info": {"title": self.title(), "version": "0.1.0"},
                "methods": methods}

    def handle(self, payload: bytes, frames: list[bytes], peer: str = ""
               ) -> tuple[bytes | None, list[bytes]] | Deferred[tuple[bytes | None, list[bytes]]]:
        """
        Answer one request payload (a request, a notification or a batch).

        @return: C{(response payload or None, binary frames)}, or a
            L{Deferred} of it when a method answers later.  Never raises.
        """
        try:
            obj = json.loads(payload)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            self.log.warn("unparsable JSON-RPC payload from {peer}: {error}", peer=peer,
                          error=str(e))
            return encode_error(None, PARSE_ERROR), []
        if isinstance(obj, list):
            return self._batch(obj, peer)
        out = self._one(obj, frames, peer)
        if isinstance(out, Deferred):
            return out.addCallback(self._finish_one, peer)
        return self._finish_one(out, peer)

    def _finish_one(self, out: tuple[dict[str, Any] | None, list[bytes]], peer: str = ""
                    ) -> tuple[bytes | None, list[bytes]] | Deferred[tuple[bytes | None,
                                                                           list[bytes]]]:
        response, binary = out
        if response is None:
            return None, []
        if self.pool is not None and weight(response.get("result")) >= BIG:
            d = self.pool.run(dumps, response)
            return d.addCallbacks(lambda payload: (payload, binary),
                                  self._unencodable, errbackArgs=(response, peer))
        try:
            return dumps(response), binary
        except (TypeError, ValueError) as e:
            return self._unencodable(e, response, peer)

    def _unencodable(self, error: Any, response: dict[str, Any], peer: str
                     ) -> tuple[bytes, list[bytes]]:
        exc = getattr(error, "value", error)
        self.log.error("result for {peer} not JSON serializable: {kind}: {error}", peer=peer,
                       kind=type(exc).__name__, error=str(exc))
        return encode_error(response.get("id"), INTERNAL_ERROR, None,
                            f"TypeError: result not JSON serializable: {exc}"), []

    def _batch(self, items: list[Any], peer: str
               ) -> tuple[bytes | None, list[bytes]] | Deferred[tuple[bytes | None, list[bytes]]]:
        if not items:
            return encode_error(None, INVALID_REQUEST, None,
                                {"reason": "empty batch", "data": []}), []
        outs = [self._one(item, [], peer) for item in items]
        if any(isinstance(o, Deferred) for o in outs):
            from twisted.internet.defer import gatherResults, succeed
            d = gatherResults([o if isinstance(o, Deferred) else succeed(o) for o in outs])
            return d.addCallback(self._finish_batch)
        return self._finish_batch(outs)

    def _finish_batch(self, outs: list[tuple[dict[str, Any] | None, list[bytes]]]
                      ) -> tuple[bytes | None, list[bytes]]:
        responses = [r for r, _ in outs if r is not None]
        if not responses:
            return None, []
        try:
            return dumps(responses), []
        except (TypeError, ValueError) as e:
            return encode_error(None, INTERNAL_ERROR, None, f"TypeError: {e}"), []

    def _one(self, obj: Any, frames: list[bytes], peer: str) -> Any:
        if not isinstance(obj, dict) or obj.get("jsonrpc") != "2.0" \
                or not isinstance(obj.get("method"), str):
            self.log.warn("invalid JSON-RPC request from {peer}: {request!r}", peer=peer,
                          request=obj)
            rid = obj.get("id") if isinstance(obj, dict) else None
            return {"id": rid, "error": error_object(
                INVALID_REQUEST, None, {"reason": "not a JSON-RPC 2.0 request", "data": obj}),
                "jsonrpc": "2.0"}, []
        notification = "id" not in obj
        rid = obj.get("id")
        method = obj["method"]
        params = obj.get("params")
        entry = self.methods.get(method)
        if entry is None:
            self.log.warn("{peer} called unknown method {method!r}", peer=peer, method=method)
            return (None if notification else
                    {"id": rid, "error": error_object(METHOD_NOT_FOUND, None, method),
                     "jsonrpc": "2.0"}), []
        if params is not None and not isinstance(params, (dict, list)):
            return (None if notification else
                    {"id": rid, "error": error_object(INVALID_PARAMS, None, obj),
                     "jsonrpc": "2.0"}), []
        try:
            if self.guard is not None:
                self.guard(method)
            result = entry.fn(params, frames)
        except BaseException as e:
            return self._failed(e, rid, notification, method, peer), []
        if isinstance(result, Deferred):
            def ok(value: Any) -> Any:
                value, binary = _split_binary(value)
                return (None if notification else
                        {"id": rid, "result": value, "jsonrpc": "2.0"}), binary

            def bad(failure: Any) -> Any:
                return self._failed(failure.value, rid, notification, method, peer), []

            return result.addCallbacks(ok, bad)
        if notification:
            return None, []
        value, binary = _split_binary(result)
        return {"id": rid, "result": value, "jsonrpc": "2.0"}, binary

    def _failed(self, exc: BaseException, rid: Any, notification: bool, method: str,
                peer: str) -> dict[str, Any] | None:
        if isinstance(exc, (LabError, TypeError)):
            self.log.info("{method} from {peer} failed: {error}", method=method, peer=peer,
                          error=str(exc))
        else:
            self.log.error("{method} from {peer} raised {kind}: {error}", method=method,
                           peer=peer, kind=type(exc).__name__, error=str(exc))
        if notification:
            return None
        return {"id": rid, "error": error_from_exception(exc), "jsonrpc": "2.0"}


#: The levels LECO's C{set_log_level} accepts.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def set_log_level(params: Any) -> None:
    """
    LECO's C{set_log_level(level)}, offered by every Component and the
    Coordinator: sets the level of the standard-library logger
    C{twisted_lab} (what an application sees when it routes Twisted's log
    through L{twisted.logger.STDLibLogObserver}).

    @param params: C{{"level": "INFO"}} or C{["INFO"]}.
    @raise InvalidValue: not one of L{LOG_LEVELS}.
    """
    import logging

    from twisted_lab.errors import InvalidValue

    level = params.get("level") if isinstance(params, dict) else \
        (params[0] if isinstance(params, list) and params else None)
    if level not in LOG_LEVELS:
        raise InvalidValue(f"level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    logging.getLogger("twisted_lab").setLevel(level)
