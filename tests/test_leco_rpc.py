# -*- test-case-name: tests.test_leco_rpc -*-
"""
Tests of the JSON-RPC layer: encodings, dispatch, errors, batches.
"""
from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from twisted_lab import errors
from twisted_lab.protocols.leco.rpc import (RPCServer, encode_notification, encode_request,
                                            remote_error)


class ServerTests(SynchronousTestCase):
    """RPCServer answers every payload, good or bad, with a response or nothing."""

    def setUp(self) -> None:
        self.server = RPCServer(lambda: "N1.me")
        self.server.register("add", lambda p, f: p["a"] + p["b"], "Add.")
        self.server.register("blob", lambda p, f: ({"got": [len(x) for x in f]}, [b"\x01"]))
        self.server.register("bad", self.bad)
        self.later: Deferred[Any] = Deferred()
        self.server.register("later", lambda p, f: self.later)

    def bad(self, params: Any, frames: list[bytes]) -> None:
        raise errors.UnknownParameter("stage", "nope")

    def answer(self, payload: bytes, frames: list[bytes] | None = None) -> Any:
        out = self.server.handle(payload, frames or [])
        self.assertNotIsInstance(out, Deferred)
        response, binary = out
        return (json.loads(response) if response is not None else None), binary

    def test_result(self) -> None:
        """A by-name request gets its result with the same id."""
        self.assertEqual(self.answer(encode_request(7, "add", {"a": 2, "b": 3})),
                         ({"id": 7, "result": 5, "jsonrpc": "2.0"}, []))

    def test_binary(self) -> None:
        """Additional frames reach the method; (result, frames) sends frames back."""
        self.assertEqual(self.answer(encode_request(1, "blob"), [b"abc"]),
                         ({"id": 1, "result": {"got": [3]}, "jsonrpc": "2.0"}, [b"\x01"]))

    def test_notification(self) -> None:
        """A request without id is executed and not answered."""
        self.assertEqual(self.answer(encode_notification("add", {"a": 1, "b": 1})), (None, []))

    def test_unknown_method(self) -> None:
        """-32601 with the method name as data."""
        response, _ = self.answer(encode_request(1, "nope"))
        self.assertEqual(response["error"]["code"], -32601)
        self.assertEqual(response["error"]["data"], "nope")

    def test_invalid_json(self) -> None:
        """-32700 with id null for unparsable JSON and for invalid UTF-8."""
        for payload in (b"{not json", b'{"id":1,"method":"\xff\xfe"}'):
            response, _ = self.answer(payload)
            self.assertEqual((response["id"], response["error"]["code"]), (None, -32700))

    def test_invalid_request(self) -> None:
        """-32600 for JSON that is not a request."""
        response, _ = self.answer(b'{"id":3,"jsonrpc":"1.0","method":"add"}')
        self.assertEqual((response["id"], response["error"]["code"]), (3, -32600))

    def test_wrong_params(self) -> None:
        """A method raising TypeError/KeyError/InvalidValue gives an error, not a crash."""
        response, _ = self.answer(encode_request(1, "add", {"a": 1}))
        self.assertEqual(response["error"]["code"], -32603)
        self.assertEqual(response["error"]["data"], "KeyError: 'b'")
        response, _ = self.answer(b'{"id":1,"method":"add","params":5,"jsonrpc":"2.0"}')
        self.assertEqual(response["error"]["code"], -32602)

    def test_lab_error(self) -> None:
        """A LabError maps to -32603 with data "<code>: <message>"."""
        response, _ = self.answer(encode_request(1, "bad"))
        self.assertEqual(response["error"]["code"], -32603)
        self.assertTrue(response["error"]["data"].startswith("UnknownParameter: "))

    def test_deferred(self) -> None:
        """A method returning a Deferred is answered when it fires."""
        out = self.server.handle(encode_request(9, "later"), [])
        self.assertIsInstance(out, Deferred)
        self.later.callback(42)
        response, _ = self.successResultOf(out)
        self.assertEqual(json.loads(response), {"id": 9, "result": 42, "jsonrpc": "2.0"})

    def test_batch(self) -> None:
        """A batch gets an array of responses without the notifications'."""
        batch = b"[" + encode_request(1, "add", {"a": 1, "b": 2}) + b"," + \
            encode_notification("add", {"a": 1, "b": 1}) + b"," + encode_request(2, "nope") + b"]"
        response, _ = self.answer(batch)
        self.assertEqual([r.get("id") for r in response], [1, 2])
        self.assertEqual(response[0]["result"], 3)
        self.assertEqual(response[1]["error"]["code"], -32601)

    def test_notification_batch(self) -> None:
        """A batch of notifications only gets no response at all."""
        self.assertEqual(self.answer(b"[" + encode_notification("add", {"a": 1, "b": 1}) + b"]"),
                         (None, []))

    def test_discover(self) -> None:
        """rpc.discover lists the methods (not itself) with the full name as title."""
        response, _ = self.answer(encode_request(1, "rpc.discover"))
        result = response["result"]
        self.assertEqual(result["info"]["title"], "N1.me")
        names = [m["name"] for m in result["methods"]]
        self.assertIn("add", names)
        self.assertNotIn("rpc.discover", names)


class RemoteErrorTests(SynchronousTestCase):
    """Received error objects become twisted_lab errors."""

    def test_lab_code_in_data(self) -> None:
        """Our actors' data prefix selects the lab error class."""
        e = remote_error({"code": -32603, "message": "Internal error",
                          "data": "UnknownParameter: no"})
        self.assertIsInstance(e, errors.UnknownParameter)
        self.assertEqual(e.rpc_code, -32603)

    def test_routing_errors(self) -> None:
        """-32093 and -32092 are DeviceOffline; -32601 UnknownAction."""
        self.assertIsInstance(remote_error({"code": -32093, "message": "x"}), errors.DeviceOffline)
        self.assertIsInstance(remote_error({"code": -32092, "message": "x"}), errors.DeviceOffline)
        self.assertIsInstance(remote_error({"code": -32601, "message": "x"}), errors.UnknownAction)

    def test_malformed(self) -> None:
        """A non-dict error member is still a LabError."""
        self.assertIsInstance(remote_error("boom"), errors.LabError)


class SetLogLevelTests(SynchronousTestCase):
    """LECO's set_log_level, shared by Components and the Coordinator."""

    def test_levels(self) -> None:
        """A valid level (by name or position) sets the twisted_lab stdlib logger; any
        other value is refused with InvalidValue listing the levels."""
        import logging

        from twisted_lab.errors import InvalidValue
        from twisted_lab.protocols.leco.rpc import set_log_level

        logger = logging.getLogger("twisted_lab")
        self.addCleanup(logger.setLevel, logger.level)
        set_log_level({"level": "WARNING"})
        self.assertEqual(logger.level, logging.WARNING)
        set_log_level(["DEBUG"])
        self.assertEqual(logger.level, logging.DEBUG)
        e = self.assertRaises(InvalidValue, set_log_level, {"level": "LOUD"})
        self.assertIn("DEBUG, INFO, WARNING, ERROR, CRITICAL", str(e))
