# -*- test-case-name: tests.test_bigjson -*-
"""
Tests of L{twisted_lab.bigjson}: large arrays written as JSON in slices, the
encoder pool, and their use by the LECO and PLESTY encoders.
"""
from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_lab import bigjson
from twisted_lab.bigjson import ArrayWriter, EncoderPool, array_json, shared_pool, weight
from twisted_lab.data import Axis, Export, Signal
from twisted_lab.protocols.leco.export import join_arrays, split_arrays, to_json
from twisted_lab.protocols.leco.rpc import INTERNAL_ERROR, RPCServer, dumps, encode_request
from twisted_lab.protocols.plesty.message import decode as plesty_decode
from twisted_lab.protocols.plesty.message import encode as plesty_encode


def _std(array: np.ndarray[Any, Any]) -> Any:
    return json.loads(json.dumps(array.tolist()))


def _export(shape: tuple[int, int] = (300, 200), dtype: str = "uint16") -> Export:
    rng = np.random.default_rng(1)
    image = (rng.random(shape) * 60000).astype(dtype)
    axes = [Axis("y", "px", np.arange(shape[0], dtype=float), 0),
            Axis("x", "px", np.arange(shape[1], dtype=float), 1)]
    return Export("camera", [Signal("camera", [image], labels=["image"], units="counts",
                                    axes=axes, kind="DataFromPlugins")])


class ArrayJSONTests(SynchronousTestCase):
    """L{array_json} writes the values C{json.dumps(array.tolist())} writes."""

    def setUp(self) -> None:
        self.patch(bigjson, "SLICE_ELEMENTS", 7)  # many slices, even for small arrays

    def test_dtypes_and_shapes(self) -> None:
        """Every orjson dtype, 1 to 3 dimensions, empty arrays: equal values."""
        rng = np.random.default_rng(0)
        for dtype in ("float64", "float32", "int64", "int8", "uint16", "uint64", "bool"):
            for shape in ((0,), (13,), (5, 9), (3, 4, 5), (1, 0)):
                array = (rng.random(shape) * 100).astype(dtype)
                text = array_json(array)
                self.assertEqual(json.loads(text), _std(array), (dtype, shape))

    def test_non_finite_kept(self) -> None:
        """NaN and infinities are written as the standard library writes them."""
        array = np.array([[1.5, np.nan], [np.inf, -np.inf], [2.0, 3.0]])
        text = array_json(array)
        self.assertIn(b"NaN", text)
        self.assertIn(b"-Infinity", text)
        self.assertEqual(repr(json.loads(text)), repr(array.tolist()))

    def test_views_and_byte_order(self) -> None:
        """Non-contiguous views and big-endian arrays give their values."""
        base = np.arange(120, dtype=">f8").reshape(10, 12)
        for array in (base, base[::2, ::3], base.T):
            self.assertEqual(json.loads(array_json(array)), _std(array))

    def test_other_dtypes(self) -> None:
        """Types orjson does not write (complex excluded) go through tolist()."""
        array = np.arange(10, dtype=np.float16)
        self.assertEqual(json.loads(array_json(array)), _std(array))

    @settings(max_examples=60, deadline=None)
    @given(hnp.arrays(st.sampled_from([np.float64, np.int32, np.uint8]),
                      hnp.array_shapes(min_dims=1, max_dims=3, max_side=9),
                      elements=None))
    def test_fuzz(self, array: np.ndarray[Any, Any]) -> None:
        """Random arrays: the same values as the standard library."""
        self.assertEqual(repr(json.loads(array_json(array))), repr(_std(array)))


class WriterTests(SynchronousTestCase):
    """L{ArrayWriter} and the LECO and PLESTY encoders built on it."""

    def test_placeholders_replaced(self) -> None:
        """Large arrays anywhere in a document come out as their values."""
        big = np.arange(5000, dtype=np.int32).reshape(50, 100)
        value = {"a": big, "b": [1, "text", {"c": big * 2}], "small": np.arange(3)}
        writer = ArrayWriter()
        text = json.dumps(value, default=lambda v: writer.array(v)).encode()
        self.assertIn(b"@tl-array:", text)
        out = json.loads(writer.finish(text))
        self.assertEqual(out, {"a": big.tolist(), "b": [1, "text", {"c": (big * 2).tolist()}],
                               "small": [0, 1, 2]})

    def test_missing_placeholder(self) -> None:
        """A document without the placeholder it should hold is an error."""
        writer = ArrayWriter()
        writer.array(np.zeros(5000))
        self.assertRaises(ValueError, writer.finish, b"{}")

    def test_leco_dumps(self) -> None:
        """LECO C{dumps} of a large export: the values of the old C{tolist} path."""
        export = _export()
        fast = json.loads(dumps(to_json(export, keep_arrays=True)))
        old = json.loads(json.dumps(to_json(export)))
        self.assertEqual(fast, old)

    def test_json_equals_binary_leco(self) -> None:
        """A JSON client of LECO gets the values the binary path gives."""
        export = _export(dtype="float64")
        value = to_json(export, keep_arrays=True)
        header, frames = split_arrays(value)
        self.assertEqual(len(frames), 3)  # image and two axes
        wire = json.loads(dumps(header))
        binary = join_arrays(wire, [bytes(f) for f in frames])
        from_json = json.loads(dumps(value))
        image = binary["signals"][0]["data"][0]
        self.assertIsInstance(image, np.ndarray)
        self.assertEqual(image.tolist(), from_json["signals"][0]["data"][0])
        self.assertEqual(binary["signals"][0]["axes"][1]["data"].tolist(),
                         from_json["signals"][0]["axes"][1]["data"])

    def test_json_equals_binary_plesty(self) -> None:
        """A JSON client of PLESTY gets the values the binary path gives."""
        export = _export()
        reply = {"status": "ok", "result": export}
        as_json = json.loads(plesty_encode(reply, False)[0])
        as_binary = plesty_decode(plesty_encode(reply, True))
        image = as_binary["result"].signals[0].data[0]
        self.assertEqual(as_json["result"]["signals"][0]["data"][0], image.tolist())

    def test_weight(self) -> None:
        """Arrays count their elements, containers their items, exports their data."""
        self.assertEqual(weight(np.zeros((10, 10))), 100)
        self.assertLess(weight({"position": 1.5}), 10)
        self.assertGreaterEqual(weight(_export((512, 512))), bigjson.BIG)
        self.assertGreaterEqual(weight([[0.0] * 1000] * 1000), bigjson.BIG)


class PoolTests(TestCase):
    """The encoder pool runs work off the reactor thread, and errors reach only their caller."""

    def setUp(self) -> None:
        self.pool = EncoderPool(reactor, threads=2)
        self.pool.startService()
        self.addCleanup(self.pool.stopService)

    async def _off_thread(self) -> None:
        thread = await self.pool.run(lambda: threading.current_thread())
        self.assertIsNot(thread, threading.current_thread())

    def test_off_thread(self) -> Deferred[None]:
        """C{run} calls its function on another thread and fires on the reactor's."""
        return ensureDeferred(self._off_thread())

    def test_shared(self) -> None:
        """One shared pool per reactor, running."""
        self.assertIs(shared_pool(reactor), shared_pool(reactor))
        self.assertIsNotNone(shared_pool(reactor).pool)

    async def _errors(self) -> None:
        server = RPCServer()
        server.pool = self.pool
        big = np.zeros(bigjson.BIG)
        server.register("bad", lambda p, f: {"image": big, "oops": object()})
        server.register("good", lambda p, f: {"image": big})
        server.register("small", lambda p, f: 1)
        bad = server.handle(encode_request(1, "bad"), [])
        good = server.handle(encode_request(2, "good"), [])
        small = server.handle(encode_request(3, "small"), [])
        self.assertIsInstance(bad, Deferred)
        self.assertIsInstance(good, Deferred)
        self.assertNotIsInstance(small, Deferred)  # the fast path
        bad_payload, _ = await bad
        good_payload, _ = await good
        error = json.loads(bad_payload)
        self.assertEqual(error["id"], 1)
        self.assertEqual(error["error"]["code"], INTERNAL_ERROR)
        self.assertIn("not JSON serializable", error["error"]["data"])
        self.assertEqual(json.loads(good_payload)["result"]["image"], big.tolist())
        self.assertEqual(json.loads(small[0])["result"], 1)
        self.flushLoggedErrors()

    def test_worker_error_to_its_caller(self) -> Deferred[None]:
        """An encoding error in the worker becomes a clear error response to that
        request only; the others are answered."""
        return ensureDeferred(self._errors())


class SerializallBufferTests(SynchronousTestCase):
    """C{serializall.encode_buffer} gives the bytes of C{encode}."""

    def test_same_bytes(self) -> None:
        """Small and large exports: the same frame as C{encode}."""
        from twisted_lab.protocols.leco import serializall
        for shape in ((3, 4), (600, 700)):
            export = _export(shape, "float64")
            frame = serializall.encode_buffer(export)
            self.assertEqual(bytes(frame), serializall.encode(export))
        self.assertIsInstance(frame, np.ndarray)  # the large one: numpy-filled
