# -*- test-case-name: tests.test_fuzz -*-
"""
Property-based fuzzing (hypothesis) of every wire codec and every pure
request handler: whatever arrives, the codec either decodes it or raises
its one documented error, a handler answers with an error reply instead of
raising, and the same stream cut anywhere decodes to the same messages.

The example counts are bounded (C{TWISTED_LAB_FUZZ_EXAMPLES}, default 150
per property) so CI stays fast; a long run sets it higher.
"""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.test_pymodaq_parser import TO_CLIENT_STREAM, TO_SERVER_STREAM
from twisted_lab.data import Axis, Export, Signal
from twisted_lab.errors import ProtocolError
from twisted_lab.protocols.la4 import message as la4
from twisted_lab.protocols.leco import serializall
from twisted_lab.protocols.leco.message import DataMessage, Message
from twisted_lab.protocols.leco.rpc import RPCServer
from twisted_lab.protocols.plesty.handler import PlestyHandler
from twisted_lab.protocols.plesty.message import decode as plesty_decode
from twisted_lab.protocols.plesty.message import parse_request
from twisted_lab.protocols.pymodaq.message import TO_CLIENT, TO_SERVER, MessageParser
from twisted_lab.protocols.pymodaq.imports import PyMoDAQServerFactory
from twisted_lab.formats.pymodaq.settings import parse_parameter, parse_settings
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeDevice

EXAMPLES = int(os.environ.get("TWISTED_LAB_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: Nesting far deeper than Python's recursion limit, in every syntax we parse.
DEEP = 100_000


def _cuts(data: bytes, points: list[int]) -> list[bytes]:
    """C{data} cut at the given offsets (taken modulo its length, sorted)."""
    if not data:
        return [data]
    offsets = sorted({p % len(data) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in zip(offsets, offsets[1:])]


def _feed(grammar: dict[str, Any], chunks: list[bytes]) -> tuple[str, ProtocolError | None]:
    """Feed chunks to a fresh parser; the messages (as repr) and the error it ends with."""
    parser = MessageParser(grammar, max_size=1 << 20)
    out: list[Any] = []
    error: ProtocolError | None = None
    for chunk in chunks:
        try:
            out.extend(parser.feed(chunk))
        except ProtocolError as e:
            error = e
            break
    return repr(out), error or parser.error


class PyMoDAQParserFuzzTests(SynchronousTestCase):
    """The PyMoDAQ pull parser on arbitrary and on cut-up valid streams."""

    @FUZZ
    @given(st.binary(max_size=512), st.lists(st.integers(min_value=0), max_size=8))
    def test_arbitrary_bytes(self, data: bytes, points: list[int]) -> None:
        """
        Arbitrary bytes give messages or a L{ProtocolError}, never another
        exception, and the outcome does not depend on how they are cut
        (up to the first error).
        """
        for grammar in (TO_SERVER, TO_CLIENT):
            whole, whole_error = _feed(grammar, [data])
            cut, cut_error = _feed(grammar, _cuts(data, points))
            self.assertEqual(whole_error is None, cut_error is None)
            if whole_error is None:
                self.assertEqual(whole, cut)

    @FUZZ
    @given(st.lists(st.integers(min_value=0), max_size=20))
    def test_valid_streams_cut_anywhere(self, points: list[int]) -> None:
        """The spec-vector streams decode to the same messages however they are cut."""
        for grammar, stream in ((TO_SERVER, TO_SERVER_STREAM), (TO_CLIENT, TO_CLIENT_STREAM)):
            whole, error = _feed(grammar, [stream])
            self.assertIsNone(error)
            self.assertEqual(_feed(grammar, _cuts(stream, points)), (whole, None))

    @FUZZ
    @given(st.integers(min_value=0, max_value=len(TO_SERVER_STREAM) - 1), st.binary(min_size=1, max_size=8))
    def test_corrupted_valid_stream(self, at: int, junk: bytes) -> None:
        """A valid stream with bytes overwritten anywhere still only gives messages or a ProtocolError."""
        data = TO_SERVER_STREAM[:at] + junk + TO_SERVER_STREAM[at + len(junk):]
        _feed(TO_SERVER, [data])
        _feed(TO_SERVER, [data[i:i + 1] for i in range(len(data))])


class SettingsXMLFuzzTests(SynchronousTestCase):
    """PyMoDAQ settings XML read from peers."""

    @FUZZ
    @given(st.text(max_size=300))
    def test_arbitrary_text(self, text: str) -> None:
        """Any text parses to settings or raises L{ProtocolError}."""
        for parse in (parse_settings, parse_parameter):
            try:
                parse(text)
            except ProtocolError:
                pass

    @FUZZ
    @given(st.recursive(st.sampled_from(["int", "float", "bool", "str", "list", "group"]),
                        lambda kids: st.lists(kids, max_size=3), max_leaves=20),
           st.text(alphabet="0123456789.-eTrueFals[], '", max_size=12))
    def test_generated_trees(self, shape: Any, value: str) -> None:
        """Trees of every PyMoDAQ type with odd values parse or raise L{ProtocolError}."""
        counter = iter(range(10_000))

        def build(node: Any) -> str:
            tag = f"p{next(counter)}"
            if isinstance(node, list):
                return f'<{tag} type="group">{"".join(build(n) for n in node)}</{tag}>'
            return f'<{tag} type="{node}" limits="[{value}]">{value}</{tag}>'

        xml = f'<settings type="group">{build(shape)}</settings>'
        try:
            parse_settings(xml)
        except ProtocolError:
            pass

    def test_deep_nesting(self) -> None:
        """A settings tree nested far past the recursion limit is a ProtocolError, not a RecursionError."""
        xml = '<a type="group">' * DEEP + '</a>' * DEEP
        self.assertRaises(ProtocolError, parse_settings, xml)
        self.assertRaises(ProtocolError, parse_parameter, xml)


def _values() -> st.SearchStrategy[Any]:
    scalars = (st.none() | st.booleans() | st.integers(min_value=-2**62, max_value=2**62)
               | st.floats(allow_nan=False) | st.text(max_size=20) | st.binary(max_size=20))
    arrays = st.tuples(st.sampled_from(["float64", "int32", "uint16", "bool"]),
                       st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=3)
                       ).map(lambda t: (np.arange(int(np.prod(t[1]))) % 2).astype(t[0]).reshape(t[1]))
    return st.recursive(scalars | arrays,
                        lambda kids: st.lists(kids, max_size=4)
                        | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                        max_leaves=15)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return (isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
                and bool(np.array_equal(a, b)))
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_equal, a, b))
    if isinstance(a, dict):
        return (isinstance(b, dict) and list(a) == list(b)
                and all(_equal(a[k], b[k]) for k in a))
    return type(a) is type(b) and a == b


class SerializallFuzzTests(SynchronousTestCase):
    """PyMoDAQ 5's binary serialisation (LECO PyMoDAQ 5 frames)."""

    @FUZZ
    @given(_values())
    def test_round_trip(self, value: Any) -> None:
        """Every plain value round-trips through encode/decode unchanged."""
        self.assertTrue(_equal(serializall.decode(serializall.encode(value)), value))

    @FUZZ
    @given(st.binary(max_size=400))
    def test_arbitrary_bytes(self, data: bytes) -> None:
        """Arbitrary bytes decode or raise L{ProtocolError}."""
        try:
            serializall.decode(data)
        except ProtocolError:
            pass

    @FUZZ
    @given(_values(), st.data())
    def test_truncated_and_corrupted(self, value: Any, data: st.DataObject) -> None:
        """A valid frame cut short or with one byte changed decodes or raises L{ProtocolError}."""
        frame = serializall.encode(value)
        cut = data.draw(st.integers(min_value=0, max_value=len(frame)))
        flip = data.draw(st.integers(min_value=0, max_value=max(len(frame) - 1, 0)))
        corrupted = bytearray(frame)
        if corrupted:
            corrupted[flip] ^= data.draw(st.integers(min_value=1, max_value=255))
        for candidate in (frame[:cut], bytes(corrupted)):
            try:
                serializall.decode(candidate)
            except ProtocolError:
                pass

    def test_list_of_empty_strings(self) -> None:
        """
        Regression (found by this fuzzer): a list of empty strings decodes;
        the size check before a list assumed no object is shorter than 12
        bytes, but an empty str takes 11.
        """
        self.assertEqual(serializall.decode(serializall.encode(["", ""])), ["", ""])

    def test_signal_and_export_round_trip(self) -> None:
        """A Signal with axes inside an Export survives the fuzz-sized path too."""
        signal = Signal("img", [np.arange(6.0).reshape(2, 3)], units="V",
                        axes=[Axis("x", "mm", np.arange(3.0), 1)])
        back = serializall.decode(serializall.encode(Export("cam", [signal])))
        self.assertEqual(back.signals[0].units, "V")
        self.assertTrue(np.array_equal(back.signals[0].data[0], signal.data[0]))


class PyMoDAQServerFuzzTests(SynchronousTestCase):
    """The PyMoDAQ server protocol on a string transport."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.factory = PyMoDAQServerFactory(DeviceRegistry(self.clock), self.clock, call_timeout=5)

    def connect(self) -> tuple[Any, StringTransport]:
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5001))
        proto = self.factory.buildProtocol(transport.getPeer())
        proto.makeConnection(transport)
        return proto, transport

    def test_deep_settings_tree(self) -> None:
        """
        An C{Infos} tree nested past the recursion limit is refused as a
        protocol error (logged, connection closed), not a critical traceback.
        """
        proto, transport = self.connect()
        xml = ('<a type="group">' * DEEP + '</a>' * DEEP).encode()
        with capturedLogs() as events:
            proto.dataReceived(_msg("GRABBER") + _msg("Infos") + _msg(xml))
        self.assertFalse([e for e in events if e["log_level"] == LogLevel.critical])
        self.assertTrue(transport.disconnecting)

    @FUZZ
    @given(st.binary(max_size=300), st.lists(st.integers(min_value=0), max_size=6))
    def test_arbitrary_bytes_after_handshake(self, data: bytes, points: list[int]) -> None:
        """Arbitrary bytes after a valid handshake never log a critical error."""
        proto, transport = self.connect()
        with capturedLogs() as events:
            proto.dataReceived(_msg("ACTUATOR"))
            for chunk in _cuts(data, points):
                proto.dataReceived(chunk)
            proto.connectionLost(Failure(ConnectionDone()))
        self.assertFalse([e for e in events if e["log_level"] == LogLevel.critical])


def _msg(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return len(raw).to_bytes(4, "big") + raw


class LECOFuzzTests(SynchronousTestCase):
    """LECO frames and JSON-RPC payloads."""

    @FUZZ
    @given(st.lists(st.binary(max_size=40), max_size=7))
    def test_control_frames(self, frames: list[bytes]) -> None:
        """Arbitrary frames give a control message or a L{ProtocolError}."""
        try:
            message = Message.from_frames(frames)
        except ProtocolError:
            return
        self.assertEqual(Message.from_frames(message.to_frames()), message)

    @FUZZ
    @given(st.lists(st.binary(max_size=40), max_size=5))
    def test_data_frames(self, frames: list[bytes]) -> None:
        """Arbitrary frames give a data message or a L{ProtocolError}."""
        try:
            DataMessage.from_frames(frames)
        except ProtocolError:
            pass

    def rpc(self) -> RPCServer:
        server = RPCServer(lambda: "lab.fuzz")
        server.register("echo", lambda params, frames: params)
        return server

    def check_reply(self, out: Any) -> None:
        if isinstance(out, Deferred):
            out = self.successResultOf(out)
        payload, _frames = out
        if payload is not None:
            reply = json.loads(payload)
            items = reply if isinstance(reply, list) else [reply]
            for item in items:
                self.assertEqual(item["jsonrpc"], "2.0")
                self.assertTrue(("result" in item) != ("error" in item))

    @FUZZ
    @given(st.binary(max_size=300))
    def test_rpc_arbitrary_payload(self, payload: bytes) -> None:
        """Any payload gets a JSON-RPC response (or none for a notification); nothing raises."""
        with capturedLogs() as events:
            self.check_reply(self.rpc().handle(payload, [], "fuzz"))
        self.assertFalse([e for e in events if e["log_level"] == LogLevel.critical])

    @FUZZ
    @given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                        | st.text(max_size=10),
                        lambda kids: st.lists(kids, max_size=3)
                        | st.dictionaries(st.sampled_from(["jsonrpc", "id", "method", "params", "x"]),
                                          kids, max_size=5), max_leaves=12))
    def test_rpc_arbitrary_json(self, obj: Any) -> None:
        """Any JSON value, including odd requests and batches, gets a well-formed answer."""
        self.check_reply(self.rpc().handle(json.dumps(obj).encode(), [], "fuzz"))

    def test_rpc_deep_nesting(self) -> None:
        """JSON nested past the recursion limit gets a parse error reply, not a RecursionError."""
        payload, _ = self.rpc().handle(b"[" * DEEP + b"]" * DEEP, [], "fuzz")  # type: ignore[misc]
        assert payload is not None
        self.assertEqual(json.loads(payload)["error"]["code"], -32700)


class PlestyFuzzTests(SynchronousTestCase):
    """The PLESTY request handler (frames in, frames out)."""

    def setUp(self) -> None:
        self.clock = Clock()
        registry = DeviceRegistry(self.clock)
        registry.register(FakeDevice("meter", {"wavelength": 532.0},
                                     actions={"measure": lambda samples=10: samples * 1e-3}))
        self.handler = PlestyHandler(registry, "meter", self.clock)

    def answer(self, frames: list[bytes]) -> list[Any] | None:
        with capturedLogs() as events:
            out = self.successResultOf(Deferred.fromCoroutine(self.handler.handle(frames)))
        self.assertFalse([e for e in events if e["log_level"] == LogLevel.critical])
        return out

    def still_serves(self) -> None:
        out = self.answer([b"id", b'{"type": "query", "param": "wavelength"}'])
        assert out is not None
        self.assertEqual(plesty_decode(out[1:]), {"status": "ok", "result": 532.0})

    @FUZZ
    @given(st.binary(max_size=300))
    def test_arbitrary_body(self, body: bytes) -> None:
        """Any request body gets an ok or error reply, and the server still serves."""
        out = self.answer([b"id", body])
        assert out is not None
        self.assertIn(plesty_decode(out[1:])["status"], ("ok", "error"))
        self.still_serves()

    @FUZZ
    @given(st.dictionaries(st.sampled_from(["type", "param", "value", "function", "args", "kwargs",
                                            "resources", "ttl", "binary"]),
                           st.none() | st.booleans() | st.integers() | st.text(max_size=12)
                           | st.lists(st.integers(), max_size=3)
                           | st.sampled_from(["query", "write", "call", "describe", "lock",
                                              "unlock", "wavelength", "measure"]),
                           max_size=6))
    def test_arbitrary_requests(self, request: dict[str, Any]) -> None:
        """Requests with any mix of fields and values get an ok or error reply."""
        out = self.answer([b"id", json.dumps(request).encode()])
        assert out is not None
        self.assertIn(plesty_decode(out[1:])["status"], ("ok", "error"))
        self.still_serves()

    @FUZZ
    @given(st.lists(st.binary(max_size=30), max_size=5))
    def test_arbitrary_envelopes(self, frames: list[bytes]) -> None:
        """Any frame count is answered or dropped, never raises."""
        self.answer(frames)
        self.still_serves()

    def test_deep_nesting(self) -> None:
        """A body nested past the recursion limit gets an error reply."""
        out = self.answer([b"id", b'{"type": "query", "param": ' + b"[" * DEEP + b"]" * DEEP + b"}"])
        assert out is not None
        self.assertEqual(plesty_decode(out[1:])["status"], "error")

    @FUZZ
    @given(st.binary(max_size=200))
    def test_parse_request(self, body: bytes) -> None:
        """parse_request raises only its documented errors."""
        try:
            parse_request(body)
        except (UnicodeDecodeError, ValueError):
            pass


class LA4FuzzTests(SynchronousTestCase):
    """LA4 pycom JSON documents."""

    @FUZZ
    @given(st.binary(max_size=300))
    def test_arbitrary_bytes(self, data: bytes) -> None:
        """Arbitrary bytes decode to a message or raise L{ProtocolError}."""
        try:
            la4.decode(data)
        except ProtocolError:
            pass

    @FUZZ
    @given(st.dictionaries(st.sampled_from(["id", "name", "ip", "port", "version", "coordinator",
                                            "type_", "command", "output", "message"]),
                           st.none() | st.booleans() | st.integers() | st.text(max_size=10)
                           | st.sampled_from(["cmd", "output", "message", "unit_info"]),
                           max_size=10))
    def test_arbitrary_objects(self, obj: dict[str, Any]) -> None:
        """Objects with any mix of fields decode, and re-encode to the same message, or raise."""
        try:
            message = la4.decode(json.dumps(obj).encode())
        except ProtocolError:
            return
        self.assertEqual(la4.decode(message.encode()), message)

    def test_deep_nesting(self) -> None:
        """A document nested past the recursion limit is a L{ProtocolError}."""
        self.assertRaises(ProtocolError, la4.decode, b"[" * DEEP + b"]" * DEEP)
