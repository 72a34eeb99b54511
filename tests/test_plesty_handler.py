# -*- test-case-name: tests.test_plesty_handler -*-
"""
Tests for L{twisted_lab.protocols.plesty.handler}: the pure half of the
PLESTY server (frames in, frames out), with a fake clock.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.devices.wrap import WrappedDevice
from twisted_lab.drivers import DriverRunner
from twisted_lab.errors import LeaseConflict
from twisted_lab.leases import Owner
from twisted_lab.protocols.plesty.handler import PlestyHandler
from twisted_lab.protocols.plesty.message import decode
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeActuator, FakeDevice

ID = b"client-A"


class _SlowDevice(FakeDevice):
    """A device whose reads wait for the test to finish them."""

    def __init__(self) -> None:
        super().__init__("slow", {"x": 1.0})
        self.pending: list[Deferred[Any]] = []

    def read_parameter(self, name: str) -> Any:
        d: Deferred[Any] = Deferred()
        self.pending.append(d)
        return d


class HandlerTestsMixin:
    def make(self, **kwargs: Any) -> None:
        self.clock = Clock()
        self.registry = DeviceRegistry(self.clock)
        self.device = FakeDevice("meter", {"wavelength": 532.0, "serial": "S1"},
                                 actions={"measure": lambda samples=10: samples * 1e-3,
                                          "spectrum": lambda: np.arange(4.0)},
                                 readonly=["serial"])
        self.registry.register(self.device)
        self.handler = PlestyHandler(self.registry, "meter", self.clock, **kwargs)

    def frames(self, frames: list[bytes]) -> list[Any] | None:
        d = Deferred.fromCoroutine(self.handler.handle(frames))
        return self.successResultOf(d)  # type: ignore[attr-defined, no-any-return]

    def ask(self, request: Any, identity: bytes = ID, raw: bool = False) -> dict[str, Any]:
        body = request if raw else json.dumps(request).encode()
        out = self.frames([identity, body])
        assert out is not None
        self.assertEqual(out[0], identity)  # type: ignore[attr-defined]
        return decode(out[1:])


class EnvelopeTests(HandlerTestsMixin, SynchronousTestCase):
    """The two envelopes a ROUTER sees, and the ones it drops."""

    def setUp(self) -> None:
        self.make()

    def test_dealer_shape(self) -> None:
        """A 2-frame (DEALER) request gets a 2-frame reply: identity, JSON body."""
        out = self.frames([ID, b'{"type": "query", "param": "wavelength"}'])
        self.assertEqual(out, [ID, b'{"status": "ok", "result": 532.0}'])

    def test_req_shape(self) -> None:
        """A 3-frame (REQ) request gets its empty delimiter back."""
        out = self.frames([ID, b"", b'{"type": "query", "param": "wavelength"}'])
        self.assertEqual(out, [ID, b"", b'{"status": "ok", "result": 532.0}'])

    def test_one_frame_dropped(self) -> None:
        """A 1-frame message (identity only) is dropped and logged."""
        with capturedLogs() as events:
            self.assertIsNone(self.frames([ID]))
        self.assertTrue(any("1-frame" in e["log_format"] or e.get("count") == 1
                            for e in events))

    def test_four_frames_dropped(self) -> None:
        """A 4-frame message is dropped and logged, and the next request is answered."""
        with capturedLogs() as events:
            self.assertIsNone(self.frames([ID, b"", b"{}", b"{}"]))
        self.assertEqual([e.get("count") for e in events], [4])
        self.assertEqual(self.ask({"type": "query", "param": "wavelength"})["result"], 532.0)

    def test_three_frames_without_delimiter_dropped(self) -> None:
        """Three frames whose middle one is not empty are no REQ envelope: dropped."""
        self.assertIsNone(self.frames([ID, b"x", b"{}"]))

    def test_binary_identity_named_in_hex(self) -> None:
        """A non-UTF-8 identity (a REQ socket's) is the client id in hex."""
        reply = self.ask({"type": "connect"}, identity=b"\x00\xff\x01")
        self.assertEqual(reply["result"]["client_id"], "00ff01")


class BadInputTests(HandlerTestsMixin, SynchronousTestCase):
    """Every kind of bad input gets a PLESTY-shaped error reply and a log line."""

    def setUp(self) -> None:
        self.make(max_message_size=1000)

    def assertError(self, reply: dict[str, Any], kind: str, text: str = "") -> None:
        self.assertEqual((reply["status"], reply["type"]), ("error", kind))
        self.assertIn(text, reply["error"])

    def test_invalid_utf8(self) -> None:
        """A body that is not UTF-8 is answered with UnicodeDecodeError (plesty-lib dies)."""
        with capturedLogs() as events:
            self.assertError(self.ask(b"\xff\xfe{", raw=True), "UnicodeDecodeError")
        self.assertEqual(len(events), 1)

    def test_invalid_json(self) -> None:
        """A body that is not JSON is answered with JSONDecodeError."""
        self.assertError(self.ask(b"{nope", raw=True), "JSONDecodeError")

    def test_not_an_object(self) -> None:
        """JSON that is not an object is answered with ValueError."""
        self.assertError(self.ask([1, 2]), "ValueError", "JSON object")

    def test_unknown_type(self) -> None:
        """An unknown request type is answered as plesty-lib does."""
        self.assertError(self.ask({"type": "dance"}), "ValueError",
                         "Unknown request type: dance")

    def test_missing_param(self) -> None:
        """A query without param: KeyError "'param'" as plesty-lib."""
        self.assertError(self.ask({"type": "query"}), "KeyError", "'param'")

    def test_missing_value(self) -> None:
        """A write without value: KeyError "'value'"."""
        self.assertError(self.ask({"type": "write", "param": "wavelength"}), "KeyError",
                         "'value'")

    def test_missing_func(self) -> None:
        """A call without func: KeyError "'func'"."""
        self.assertError(self.ask({"type": "call"}), "KeyError", "'func'")

    def test_private_call(self) -> None:
        """A call of a private name is refused, naming what is offered."""
        for name in ("_values", "__class__", "_check_online"):
            reply = self.ask({"type": "call", "func": name})
            self.assertError(reply, "AttributeError", "measure")
        self.assertEqual(self.device.calls, [])

    def test_unadvertised_call(self) -> None:
        """A call of a public but unadvertised attribute (set, describe) is refused."""
        for name in ("set", "describe", "subscribe", "write_parameter", "nothing"):
            self.assertError(self.ask({"type": "call", "func": name}), "AttributeError")

    def test_func_not_a_string(self) -> None:
        """A func that is not a string is refused."""
        self.assertError(self.ask({"type": "call", "func": ["measure"]}), "AttributeError")

    def test_bad_args(self) -> None:
        """Arguments of the wrong shape are refused."""
        self.assertError(self.ask({"type": "call", "func": "measure", "args": {"a": 1}}),
                         "ValueError")
        self.assertError(self.ask({"type": "call", "func": "measure", "args": [1, 2, 3]}),
                         "InvalidValue")

    def test_bad_timeout(self) -> None:
        """A timeout that is not a positive number is refused."""
        for timeout in (0, -1, "1", True):
            self.assertError(self.ask({"type": "query", "param": "wavelength",
                                       "timeout": timeout}), "ValueError")

    def test_huge_message(self) -> None:
        """A body over max_message_size is answered with an error, not parsed."""
        with capturedLogs() as events:
            reply = self.ask(b"{" + b" " * 2000 + b"}", raw=True)
        self.assertError(reply, "ValueError", "exceeds the limit of 1000 bytes")
        self.assertEqual(events[0]["size"], 2002)

    def test_deep_json(self) -> None:
        """Deeply nested JSON is answered with an error, never a crash."""
        self.make()
        reply = self.ask(b"[" * 100000 + b"]" * 100000, raw=True)
        self.assertEqual(reply["status"], "error")

    def test_unknown_parameter(self) -> None:
        """Device errors keep their class name (UnknownParameter) and message."""
        self.assertError(self.ask({"type": "query", "param": "nope"}), "UnknownParameter",
                         "'nope'")

    def test_read_only(self) -> None:
        """Writing a read-only parameter is answered with ReadOnly."""
        self.assertError(self.ask({"type": "write", "param": "serial", "value": "x"}),
                         "ReadOnly")

    def test_invalid_value(self) -> None:
        """A value of the wrong type is answered with InvalidValue."""
        self.assertError(self.ask({"type": "write", "param": "wavelength", "value": "red"}),
                         "InvalidValue")

    def test_device_not_registered(self) -> None:
        """A request for a device not (yet) in the registry: UnknownDevice."""
        self.registry.unregister("meter")
        self.assertError(self.ask({"type": "query", "param": "wavelength"}), "UnknownDevice")

    def test_serialization_error(self) -> None:
        """A result with no JSON form becomes SerializationError; the call still ran."""
        self.device._actions["weird"] = lambda: object()
        from twisted_lab.description import Action
        self.device._description.actions["weird"] = Action("weird")
        with capturedLogs():
            reply = self.ask({"type": "call", "func": "weird"})
        self.assertError(reply, "SerializationError", "object")


class OperationTests(HandlerTestsMixin, SynchronousTestCase):
    """The PLESTY request types."""

    def setUp(self) -> None:
        self.make()

    def test_query_write(self) -> None:
        """write answers true and changes what query answers."""
        self.assertEqual(self.ask({"type": "write", "param": "wavelength", "value": 600,
                                   "timeout": 3.0}), {"status": "ok", "result": True})
        self.assertEqual(self.ask({"type": "query", "param": "wavelength",
                                   "timeout": None})["result"], 600.0)

    def test_call_positional_and_keyword(self) -> None:
        """call passes args and kwargs to the device action."""
        self.assertEqual(self.ask({"type": "call", "func": "measure", "args": [5],
                                   "kwargs": {}})["result"], 0.005)
        self.assertEqual(self.ask({"type": "call", "func": "measure", "args": [],
                                   "kwargs": {"samples": 2}})["result"], 0.002)

    def test_identity(self) -> None:
        """identity answers a *IDN?-like string."""
        self.assertEqual(self.ask({"type": "call", "func": "identity"})["result"],
                         "twisted_lab,device,meter,0.1.0")

    def test_get_config_list(self) -> None:
        """get_config_list works as a request type and as a call."""
        self.assertEqual(self.ask({"type": "get_config_list"})["result"],
                         ["wavelength", "serial"])
        self.assertEqual(self.ask({"type": "call", "func": "get_config_list"})["result"],
                         ["wavelength", "serial"])

    def test_query_write_as_calls(self) -> None:
        """query and write are advertised, so they can be called too."""
        self.ask({"type": "call", "func": "write", "args": ["wavelength", 700.0]})
        self.assertEqual(self.ask({"type": "call", "func": "query",
                                   "kwargs": {"param": "wavelength"}})["result"], 700.0)

    def test_describe(self) -> None:
        """describe lists the advertised methods, budgets and a plesty-style doc."""
        result = self.ask({"type": "describe"})["result"]
        self.assertEqual(result["methods"],
                         ["get_config_list", "identity", "measure", "query", "spectrum",
                          "write"])
        self.assertEqual(result["budgets"], {})
        names = [p["name"] for p in result["doc"]["parameters"]["default"]]
        self.assertEqual(names, ["wavelength", "serial"])
        self.assertTrue(result["doc"]["parameters"]["default"][1]["read_only"])
        self.assertEqual(result["twisted_lab"]["name"], "meter")

    def test_describe_budgets(self) -> None:
        """
        describe publishes, per operation, the deadline of the device's
        driver: a threaded wrapped object's deadline for each of its methods.
        """
        class Meter:
            def measure(self, samples: int = 10) -> float:
                return samples * 1e-3

        self.registry.register(WrappedDevice("meter2", Meter(), runner=DriverRunner(
            self.clock, "meter2", deadline=7.5)))
        handler = PlestyHandler(self.registry, "meter2", self.clock)
        out = self.successResultOf(Deferred.fromCoroutine(handler.handle(
            [ID, json.dumps({"type": "describe"}).encode()])))
        assert out is not None
        result = decode(out[1:])["result"]
        self.assertEqual(result["budgets"], {"measure": 7.5})
        self.assertEqual(result["twisted_lab"]["actions"]["measure"]["budget"], 7.5)

    def test_help(self) -> None:
        """help answers a text summary."""
        text = self.ask({"type": "help"})["result"]["help"]
        self.assertIn("wavelength", text)
        self.assertIn("measure(samples)", text)

    def test_array_as_list(self) -> None:
        """Without the binary extension an array result is a JSON list."""
        self.assertEqual(self.ask({"type": "call", "func": "spectrum"})["result"],
                         [0.0, 1.0, 2.0, 3.0])

    def test_array_binary(self) -> None:
        """With "binary": true an array result travels in its own frame."""
        out = self.frames([ID, b'{"type": "call", "func": "spectrum", "binary": true}'])
        assert out is not None
        self.assertEqual(len(out), 3)
        np.testing.assert_array_equal(decode(out[1:])["result"], np.arange(4.0))

    def test_rid_echoed(self) -> None:
        """A request id is echoed in the reply, also on errors."""
        self.assertEqual(self.ask({"type": "query", "param": "wavelength", "rid": 7})["rid"], 7)
        self.assertEqual(self.ask({"type": "query", "param": "x", "rid": "a"})["rid"], "a")

    def test_ping(self) -> None:
        """ping answers pong."""
        self.assertEqual(self.ask({"type": "ping"})["result"], "pong")

    def test_actuator_moves_through_call(self) -> None:
        """An actuator's move_abs is a call, through the guarded device."""
        stage = FakeActuator("stage")
        self.registry.register(stage)
        handler = PlestyHandler(self.registry, "stage", self.clock)
        d = Deferred.fromCoroutine(handler.handle(
            [ID, b'{"type": "call", "func": "move_abs", "args": [2.5]}']))
        self.assertEqual(decode(self.successResultOf(d)[1:])["result"], 2.5)  # type: ignore
        self.assertEqual(stage.current, 2.5)


class StrictTests(HandlerTestsMixin, SynchronousTestCase):
    """strict mode behaves as plesty-lib 0.6."""

    def setUp(self) -> None:
        self.make(strict=True)

    def test_no_ping(self) -> None:
        """ping is an unknown request type."""
        self.assertEqual(self.ask({"type": "ping"})["type"], "ValueError")

    def test_no_rid(self) -> None:
        """rid is not echoed (and in connect it is metadata)."""
        self.assertNotIn("rid", self.ask({"type": "query", "param": "wavelength", "rid": 1}))
        result = self.ask({"type": "connect", "rid": 1})["result"]
        self.assertEqual(result["metadata"], {"rid": 1})

    def test_no_binary(self) -> None:
        """binary is ignored: arrays are lists."""
        self.assertEqual(self.ask({"type": "call", "func": "spectrum", "binary": True})[
            "result"], [0.0, 1.0, 2.0, 3.0])

    def test_locks_do_not_expire(self) -> None:
        """Without a ttl a lock outlives any silence."""
        self.ask({"type": "connect", "resources": ["wavelength"]})
        self.clock.advance(10000)
        self.assertEqual(self.ask({"type": "connect", "resources": "wavelength"},
                                  identity=b"B")["type"], "ResourceAllocationError")


class LockTests(HandlerTestsMixin, SynchronousTestCase):
    """connect/disconnect on the registry's leases."""

    def setUp(self) -> None:
        self.make(lease_ttl=30.0)

    def test_connect_reports_metadata(self) -> None:
        """connect answers client_id, resources and the other keys as metadata."""
        reply = self.ask({"type": "connect", "resources": ["axis/x"], "experiment": "run-42",
                          "timeout": 3})
        self.assertEqual(reply, {"status": "ok", "result": {
            "client_id": "client-A", "resources": ["axis/x"],
            "metadata": {"experiment": "run-42"}}})

    def test_nested_resources(self) -> None:
        """A nested resource request is flattened as plesty-lib does."""
        reply = self.ask({"type": "connect", "resources": {"axis": ["x", "y"], "z": None}})
        self.assertEqual(reply["result"]["resources"], ["axis/x", "axis/y", "z"])

    def test_bad_resources(self) -> None:
        """A resource request of the wrong shape is refused with ValueError."""
        self.assertEqual(self.ask({"type": "connect", "resources": [1]})["type"], "ValueError")

    def test_conflict_names_holder(self) -> None:
        """A second client asking for a held resource is refused, naming the holder."""
        self.ask({"type": "connect", "resources": ["wavelength"]})
        reply = self.ask({"type": "connect", "resources": ["wavelength", "other"], "m": 1},
                         identity=b"B")
        self.assertEqual(reply["type"], "ResourceAllocationError")
        self.assertIn("Requested resources are not available", reply["error"])
        self.assertIn("plesty:client-A", reply["error"])
        self.assertEqual(reply["result"], {"client_id": "B", "resources": [],
                                           "metadata": {"m": 1}})
        self.assertIsNone(self.registry.leases.holder("meter/other"))

    def test_whole_device(self) -> None:
        """The device's own name locks every sub-resource."""
        self.ask({"type": "connect", "resources": "meter"})
        self.assertEqual(self.ask({"type": "connect", "resources": "axis"}, identity=b"B")[
            "type"], "ResourceAllocationError")

    def test_reconnect_replaces(self) -> None:
        """The same client_id reconnecting replaces its own reservation."""
        self.ask({"type": "connect", "resources": ["a"]})
        self.ask({"type": "connect", "resources": ["b"]})
        self.assertIsNone(self.registry.leases.holder("meter/a"))
        self.assertEqual(self.registry.leases.holder("meter/b"), Owner("plesty", "client-A"))

    def test_failed_reconnect_keeps_old(self) -> None:
        """A refused reconnection leaves the previous reservation in place."""
        self.ask({"type": "connect", "resources": ["a"]})
        self.ask({"type": "connect", "resources": ["b"]}, identity=b"B")
        self.assertEqual(self.ask({"type": "connect", "resources": ["b"]})["type"],
                         "ResourceAllocationError")
        self.assertEqual(self.registry.leases.holder("meter/a"), Owner("plesty", "client-A"))

    def test_disconnect_releases(self) -> None:
        """disconnect releases, and another client may then take the resource."""
        self.ask({"type": "connect", "resources": ["wavelength"]})
        self.assertEqual(self.ask({"type": "disconnect", "timeout": 30.0}),
                         {"status": "ok", "result": {"client_id": "client-A"}})
        self.assertEqual(self.ask({"type": "connect", "resources": ["wavelength"]},
                                  identity=b"B")["status"], "ok")

    def test_lock_holds_against_other_clients_and_protocols(self) -> None:
        """A PLESTY lock refuses another PLESTY client's write and a LECO caller's set."""
        self.ask({"type": "connect", "resources": ["wavelength"]})
        reply = self.ask({"type": "write", "param": "wavelength", "value": 1.0},
                         identity=b"B")
        self.assertEqual(reply["type"], "LeaseConflict")
        guarded = self.successResultOf(self.registry.guarded("meter", Owner("leco", "x")))
        self.failureResultOf(guarded.set("wavelength", 2.0), LeaseConflict)
        self.assertEqual(self.ask({"type": "write", "param": "wavelength", "value": 3.0})[
            "result"], True)

    def test_other_protocol_lock_refuses_plesty(self) -> None:
        """A lease taken through another protocol refuses connect and writes."""
        self.registry.acquire(Owner("leco", "dir"), ["meter"])
        self.assertIn("leco:dir", self.ask({"type": "connect", "resources": "x"})["error"])
        self.assertEqual(self.ask({"type": "write", "param": "wavelength", "value": 1.0})[
            "type"], "LeaseConflict")

    def test_resources_subset(self) -> None:
        """A request's own resources must have been granted (ValueError otherwise)."""
        self.ask({"type": "connect", "resources": ["a"]})
        self.assertEqual(self.ask({"type": "query", "param": "wavelength",
                                   "resources": ["a"]})["status"], "ok")
        self.assertEqual(self.ask({"type": "query", "param": "wavelength",
                                   "resources": ["b"]})["type"], "ValueError")

    def test_lease_expires_without_requests(self) -> None:
        """A silent client's lock expires after lease_ttl."""
        self.ask({"type": "connect", "resources": ["a"]})
        self.clock.advance(31)
        self.assertEqual(self.ask({"type": "connect", "resources": ["a"]},
                                  identity=b"B")["status"], "ok")

    def test_any_request_renews(self) -> None:
        """ping (or any request) renews the lock."""
        self.ask({"type": "connect", "resources": ["a"]})
        for _ in range(4):
            self.clock.advance(20)
            self.ask({"type": "ping"})
        self.assertEqual(self.ask({"type": "connect", "resources": ["a"]},
                                  identity=b"B")["type"], "ResourceAllocationError")


class TimeoutTests(SynchronousTestCase):
    """A request's timeout bounds the device call; the device then stays busy."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.registry = DeviceRegistry(self.clock)
        self.device = _SlowDevice()
        self.registry.register(self.device)
        self.handler = PlestyHandler(self.registry, "slow", self.clock)

    def send(self, request: dict[str, Any]) -> Deferred[Any]:
        return Deferred.fromCoroutine(self.handler.handle([ID, json.dumps(request).encode()]))

    def reply(self, d: Deferred[Any]) -> dict[str, Any]:
        return decode(self.successResultOf(d)[1:])

    def test_timeout_then_busy_then_free(self) -> None:
        """TimeoutError after the budget; DeviceBusy until the driver returns; then normal."""
        d = self.send({"type": "query", "param": "x", "timeout": 2.0})
        self.clock.advance(1.9)
        self.assertNoResult(d)
        self.clock.advance(0.2)
        self.assertEqual(self.reply(d), {"status": "error", "error": "Operation timed out",
                                         "type": "TimeoutError"})
        busy = self.reply(self.send({"type": "query", "param": "x"}))
        self.assertEqual(busy["type"], "DeviceBusy")
        self.assertEqual(self.reply(self.send({"type": "describe"}))["status"], "ok")
        self.device.pending.pop(0).callback(5.0)
        self.assertEqual(self.device.pending, [])
        d = self.send({"type": "query", "param": "x", "timeout": 2.0})
        self.device.pending.pop(0).callback(6.0)
        self.assertEqual(self.reply(d)["result"], 6.0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_late_failure_is_consumed(self) -> None:
        """A timed-out call that later fails leaves no unhandled error."""
        d = self.send({"type": "query", "param": "x", "timeout": 1.0})
        self.clock.advance(1.5)
        self.reply(d)
        self.device.pending.pop(0).errback(RuntimeError("late"))
        self.assertEqual(self.reply(self.send({"type": "ping"}))["result"], "pong")
