# -*- test-case-name: tests.test_plesty_message -*-
"""
Tests for L{twisted_lab.protocols.plesty.message}: bodies, binary arrays,
resource requests.
"""
from __future__ import annotations

import numpy as np
from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.data import Axis, Export, Signal
from twisted_lab.protocols.plesty.message import (SerializationError, client_name, decode,
                                                  encode, error, normalize_resources, ok,
                                                  parse_request)


class BodyTests(SynchronousTestCase):
    """Request and reply bodies."""

    def test_reply_shapes(self) -> None:
        """ok and error replies have PLESTY's keys."""
        self.assertEqual(encode(ok(1.5)), [b'{"status": "ok", "result": 1.5}'])
        self.assertEqual(error("KeyError", "'param'"),
                         {"status": "error", "error": "'param'", "type": "KeyError"})

    def test_parse_request(self) -> None:
        """A JSON object parses; anything else raises."""
        self.assertEqual(parse_request(b'{"type": "describe"}'), {"type": "describe"})
        self.assertRaises(UnicodeDecodeError, parse_request, b"\xff")
        self.assertRaises(ValueError, parse_request, b"{")
        self.assertRaises(ValueError, parse_request, b"[]")

    def test_client_name(self) -> None:
        """Identities are UTF-8 names, else hex."""
        self.assertEqual(client_name(b"client-1"), "client-1")
        self.assertEqual(client_name(b"\x00k\x8b"), "006b8b")

    def test_numpy_scalars_and_lists(self) -> None:
        """numpy scalars become numbers; arrays lists when not binary."""
        frames = encode(ok({"a": np.float64(2.5), "b": np.arange(3)}))
        self.assertEqual(decode(frames)["result"], {"a": 2.5, "b": [0, 1, 2]})

    def test_binary_arrays_round_trip(self) -> None:
        """Binary arrays go in frames of their own, not copied, and come back."""
        array = np.arange(12.0).reshape(3, 4)
        frames = encode(ok([array, array.T]), binary=True)
        self.assertEqual(len(frames), 3)
        self.assertIs(frames[1], array)
        result = decode(frames)["result"]
        np.testing.assert_array_equal(result[0], array)
        np.testing.assert_array_equal(result[1], array.T)

    def test_bad_array_reference(self) -> None:
        """A reference to a missing frame is an error."""
        self.assertRaises(ValueError, decode, [b'{"r": {"__array__": 3, "dtype": "<f8", '
                                               b'"shape": [1]}}'])

    def test_export(self) -> None:
        """Exports, signals and axes survive the trip."""
        export = Export("cam", [Signal("cam", [np.ones((2, 3))], units="V",
                                       axes=[Axis("x", "mm", np.arange(3.0), 1)])])
        back = decode(encode(ok(export), binary=True))["result"]
        self.assertEqual(back, export)

    def test_unserializable(self) -> None:
        """An object without a JSON form raises SerializationError naming its type."""
        with self.assertRaises(SerializationError) as caught:
            encode(ok(object()))
        self.assertIn("object", str(caught.exception))


class ResourceTests(SynchronousTestCase):
    """PLESTY resource requests, flattened."""

    def test_forms(self) -> None:
        """A string, a list, a nested tree with null subtrees."""
        self.assertEqual(normalize_resources(None), [])
        self.assertEqual(normalize_resources([]), [])
        self.assertEqual(normalize_resources("axis/x"), ["axis/x"])
        self.assertEqual(normalize_resources(["a", "b", "a"]), ["a", "b"])
        self.assertEqual(normalize_resources({"Dev1": {"port0": ["line0", "line1"],
                                                       "port1": None}}),
                         ["Dev1/port0/line0", "Dev1/port0/line1", "Dev1/port1"])

    def test_invalid(self) -> None:
        """Numbers, empty names and empty path parts are refused."""
        for bad in (3, [3], "", "a//b", {"a": 3}):
            self.assertRaises(ValueError, normalize_resources, bad)
