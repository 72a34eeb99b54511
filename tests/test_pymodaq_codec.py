# -*- test-case-name: tests.test_pymodaq_codec -*-
"""
Tests for L{twisted_lab.protocols.pymodaq.codec}: the spec's test vectors
(produced by pymodaq 4.4.11's own Serializer) decode and re-encode byte-exact,
and every wire version round-trips the data model.
"""
from __future__ import annotations

import numpy as np
from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.data import Axis, Export, Signal
from twisted_lab.errors import InvalidValue, ProtocolError
from twisted_lab.formats.pymodaq.objects import ParameterWithPath
from twisted_lab.protocols.pymodaq.codec import (VERSIONS, Encoder, Reader, decode, encode, join,
                                                 parse_dtype)

COMMAND = bytes.fromhex(
    "0000000c53656e642044617461203244"
)
FLOAT = bytes.fromhex(
    "000000033c663800000008000000000000f83f"
)
INT = bytes.fromhex(
    "000000033c6938000000080300000000000000"
)
ARRAY = bytes.fromhex(
    "000000033c6638000000300000000200000002000000030000000000000000000000000000f03f000000000000004000"
    "0000000000084000000000000010400000000000001440"
)
LIST_ARRAYS = bytes.fromhex(
    "00000002000000056172726179000000033c6638000000100000000100000002000000000000f03f0000000000000040"
    "000000056172726179000000033c69340000001000000002000000020000000201000000020000000300000004000000"
)
PATH = bytes.fromhex(
    "0000000200000006737472696e67000000116465746563746f725f73657474696e677300000006737472696e67000000"
    "086578706f73757265"
)
AXIS = bytes.fromhex(
    "0000000441786973000000057861786973000000016d000000033c663800000010000000010000000200000000000000"
    "00000000000000f03f000000033c6938000000080000000000000000000000033c6938000000080000000000000000"
)
ACTUATOR = bytes.fromhex(
    "0000000c446174614163747561746f72000000033c66380000000800000040fc54d9410000000178000000026d6d0000"
    "00037261770000000644617461304400000007756e69666f726d00000001000000056172726179000000033c66380000"
    "00080000000100000001000000000000f83f0000000100000006737472696e6700000004434830300000000000000000"
    "000000000000000000000000"
)
DTE = bytes.fromhex(
    "0000000c44617461546f4578706f7274000000033c66380000000800000040fc54d94100000003746370000000010000"
    "00036477610000000f4461746146726f6d506c7567696e73000000033c66380000000800000040fc54d941000000046d"
    "6f636b00000000000000037261770000000644617461314400000007756e69666f726d00000001000000056172726179"
    "000000033c6638000000100000000100000002000000000000f03f00000000000000400000000100000006737472696e"
    "670000000443483030000000037463700000000000000000000000000000000200000006737472696e6700000007646f"
    "5f706c6f7400000006737472696e6700000007646f5f7361766500000004626f6f6c000000037c623100000001010000"
    "0004626f6f6c000000037c62310000000101"
)
XML = bytes.fromhex(
    "0000005d3c6578706f7375726520747970653d22666c6f617422207469746c653d226578706f73757265222076697369"
    "626c653d2231222072656d6f7661626c653d22302220726561646f6e6c793d2230223e302e313c2f6578706f73757265"
    "3e"
)

TS = 1700000000.0


class VectorTests(SynchronousTestCase):
    """Each spec vector decodes to the expected value and re-encodes byte-exact."""

    def roundtrip(self, method: str, vector: bytes) -> object:
        value = decode(method, vector)
        self.assertEqual(encode(method, value), vector)
        return value

    def test_command_string(self) -> None:
        """A command is a length-prefixed string."""
        self.assertEqual(self.roundtrip("string", COMMAND), "Send Data 2D")

    def test_float_scalar(self) -> None:
        """A Python float is C{<f8}; it decodes back to a float."""
        value = self.roundtrip("scalar", FLOAT)
        self.assertEqual((value, type(value)), (1.5, float))
        self.assertEqual(encode("scalar", 1.5), FLOAT)

    def test_int_scalar(self) -> None:
        """A Python int is C{<i8}; it decodes back to an int."""
        value = self.roundtrip("scalar", INT)
        self.assertEqual((value, type(value)), (3, int))

    def test_array(self) -> None:
        """nbytes comes before the shape; the data are C-order."""
        value = self.roundtrip("ndarray", ARRAY)
        np.testing.assert_array_equal(value, np.arange(6.0).reshape(2, 3))
        self.assertEqual(encode("ndarray", np.arange(6.0).reshape(2, 3)), ARRAY)

    def test_array_fortran_order_sent_in_c_order(self) -> None:
        """A Fortran-ordered array is sent in C order, like PyMoDAQ does."""
        array = np.asfortranarray(np.arange(6.0).reshape(2, 3))
        self.assertEqual(encode("ndarray", array), ARRAY)

    def test_list_of_arrays(self) -> None:
        """A list of tagged arrays (also the legacy Done payload)."""
        value = self.roundtrip("list", LIST_ARRAYS)
        self.assertEqual(value[1].dtype, np.dtype("<i4"))
        np.testing.assert_array_equal(value[1], [[1, 2], [3, 4]])

    def test_path(self) -> None:
        """A settings path is a list of tagged strings."""
        self.assertEqual(self.roundtrip("list", PATH), ["detector_settings", "exposure"])

    def test_axis(self) -> None:
        """An Axis maps to L{Axis}."""
        self.assertEqual(self.roundtrip("axis", AXIS), Axis("xaxis", "m", np.array([0.0, 1.0]), 0))

    def test_data_actuator(self) -> None:
        """A DataActuator maps to a L{Signal} of kind C{DataActuator}."""
        expected = Signal.scalar("x", 1.5, units="mm", kind="DataActuator", timestamp=TS)
        self.assertEqual(self.roundtrip("signal", ACTUATOR), expected)
        self.assertEqual(encode("signal", expected), ACTUATOR)

    def test_data_to_export(self) -> None:
        """A DataToExport with a DataFromPlugins (with bool extras) maps to an L{Export}."""
        export = self.roundtrip("export", DTE)
        expected = Export("tcp", [Signal("mock", [np.array([1.0, 2.0])], origin="tcp",
                                         kind="DataFromPlugins", timestamp=TS,
                                         extra={"do_plot": True, "do_save": True})],
                          timestamp=TS)
        self.assertEqual(export, expected)
        self.assertIs(export[0].extra["do_plot"], True)
        self.assertEqual(encode("export", expected), DTE)

    def test_xml_string(self) -> None:
        """Settings XML is a plain string primitive."""
        self.assertTrue(self.roundtrip("string", XML).startswith("<exposure"))

    def test_reader_one_byte_short(self) -> None:
        """Every vector, cut short by any amount, asks for exactly the missing bytes."""
        for method, vector in [("export", DTE), ("signal", ACTUATOR), ("axis", AXIS)]:
            for cut in range(len(vector)):
                reader = Reader(vector[:cut])
                with self.assertRaises(Exception) as caught:
                    getattr(reader, method)()
                self.assertGreater(getattr(caught.exception, "need", 0), cut)


class VersionTests(SynchronousTestCase):
    """The DataWithAxes field set follows the wire version (spec §9)."""

    def signal(self) -> Signal:
        return Signal("s", [np.arange(3.0)], units="V", timestamp=TS, kind="DataRaw",
                      axes=[Axis("x", "m", np.arange(3.0))], errors=[np.ones(3)],
                      extra={"flag": True, "n": 2})

    def test_round_trip_every_version(self) -> None:
        """Each 4.x version round-trips the fields it carries."""
        for name in ("4.4", "4.3", "4.2", "4.1.3", "4.1"):
            wire = VERSIONS[name]
            data = encode("signal", self.signal(), name)
            back = decode("signal", data, name)
            self.assertEqual(back.units, "V" if wire.units else "")
            self.assertEqual(len(back.errors), 1 if wire.errors else 0)
            self.assertEqual(back.extra, {"flag": True, "n": 2} if wire.extra else {})
            self.assertEqual(back.axes, self.signal().axes)

    def test_field_sets_differ(self) -> None:
        """Dropping a field makes the message shorter, never compatible by accident."""
        sizes = [len(encode("signal", self.signal(), n)) for n in ("4.4", "4.2", "4.1.3", "4.1")]
        self.assertEqual(sizes, sorted(sizes, reverse=True))
        self.assertEqual(len(set(sizes)), 4)

    def test_bool_tag(self) -> None:
        """4.4 tags bools C{bool}; older versions tag them C{scalar}."""
        self.assertIn(b"bool", encode("list", [True], "4.4"))
        self.assertNotIn(b"bool", encode("list", [True], "4.2"))
        self.assertIs(decode("list", encode("list", [True], "4.2"))[0], np.True_)

    def test_legacy_position_and_grab(self) -> None:
        """Legacy positions are C{<f8} scalars; grabs are lists of arrays."""
        out: list = []
        Encoder("legacy").position(out, 1.5)
        self.assertEqual(join(out), FLOAT)
        out = []
        Encoder("legacy").grab_reply(out, Export("e", [Signal("a", [np.array([1.0, 2.0]),
                                                                    np.array([3.0, 4.0])])]))
        back = Reader(join(out), wire="legacy").grab_reply()
        self.assertEqual(len(back), 2)
        self.assertEqual(Reader(FLOAT, wire="legacy").position().value(), 1.5)

    def test_every_element_type(self) -> None:
        """Every list element type round-trips through a list."""
        items = ["a", b"b", 1, 2.5, 1 + 2j, True, np.uint16(7), np.arange(4, dtype=">i2"),
                 ["nested", 1], Axis("x", "m", [1.0]), self.signal(),
                 Export("e", [self.signal()], timestamp=TS),
                 ParameterWithPath(["a", "b"], b"<a/>")]
        back = decode("list", encode("list", items))
        self.assertEqual(back[:3], items[:3])
        self.assertEqual(back[7].dtype, np.dtype(">i2"))
        self.assertEqual(back[10], self.signal())
        self.assertEqual(back[12], items[12])
        self.assertEqual(encode("list", back), encode("list", items))

    def test_zero_d_array(self) -> None:
        """A 0-d array comes back 1-D, as in PyMoDAQ 4.x."""
        self.assertEqual(decode("ndarray", encode("ndarray", np.float64(3.0) * np.ones(()))).shape,
                         (1,))

    def test_big_array_not_copied(self) -> None:
        """The encoder hands out a view of the array's own memory."""
        array = np.zeros((512, 512))
        out: list = []
        Encoder().ndarray(out, array)
        self.assertIsInstance(out[-1], memoryview)
        self.assertTrue(np.shares_memory(np.asarray(out[-1]), array))


class PositionFastPathTests(SynchronousTestCase):
    """The one-channel 0D fast paths give what the general code gives."""

    def test_actuator_bytes_match_signal(self) -> None:
        """Encoder.actuator encodes as a Signal.scalar DataActuator does, in every 4.x version."""
        for name, wire in VERSIONS.items():
            if wire.legacy:
                continue
            signal = Signal.scalar("dev", -2.5, units="mm", kind="DataActuator", timestamp=7.0)
            self.assertEqual(Encoder(wire).actuator(-2.5, "dev", "mm", timestamp=7.0),
                             encode("signal", signal, wire), name)

    def test_fast_encode_matches_general(self) -> None:
        """
        A 0D signal takes the cached-template encoding; its bytes equal those
        of the same signal given a second (unused) channel removed, i.e. the
        general field-by-field layout, checked by decoding field by field.
        """
        signal = Signal("p", [np.array([3.25])], labels=["x"], units="um",
                        kind="DataFromPlugins", timestamp=1.5, origin="o")
        for wire in VERSIONS.values():
            if wire.legacy:
                continue
            data = encode("signal", signal, wire)
            reader = Reader(data, wire=wire)
            self.assertEqual(reader.string(), "DataFromPlugins")
            self.assertEqual(reader.scalar(), 1.5)
            self.assertEqual(reader.string(), "p")
            if wire.units:
                self.assertEqual(reader.string(), "um")
            self.assertEqual([reader.string() for _ in range(3)], ["raw", "Data0D", "uniform"])
            self.assertEqual(reader.u32(), 1)
            self.assertEqual(reader.element().tolist(), [3.25])
            self.assertEqual(reader.list(), ["x"])
            self.assertEqual(reader.string(), "o")
            self.assertEqual(reader.list(), [])
            self.assertEqual(reader.list(), [])
            if wire.errors:
                self.assertEqual(reader.list(), [])
            if wire.extra:
                self.assertEqual(reader.list(), [])
            self.assertTrue(reader.at_end())

    def test_cached_layout(self) -> None:
        """
        A reader decoding several positions of one device (the cached layout)
        returns each one's own value and timestamp, and other layouts still
        decode in full.
        """
        enc = Encoder()
        two = Signal("p", [np.array([1.0]), np.array([2.0])], kind="DataActuator")
        data = (enc.actuator(1.0, "dev", "mm", timestamp=1.0)
                + enc.actuator(float("nan"), "dev", "mm", timestamp=2.0)
                + encode("signal", two) + enc.actuator(3.0, "dev", "m", timestamp=3.0)
                + ACTUATOR)
        reader = Reader(data)
        got = [reader.signal() for _ in range(5)]
        self.assertTrue(reader.at_end())
        self.assertEqual([(s.value(), s.timestamp, s.units) for s in got[:1]],
                         [(1.0, 1.0, "mm")])
        self.assertTrue(np.isnan(got[1].value()))
        self.assertEqual(got[1].timestamp, 2.0)
        self.assertEqual(got[2], two)
        self.assertEqual((got[3].value(), got[3].units), (3.0, "m"))
        self.assertEqual(got[4], decode("signal", ACTUATOR))
        self.assertEqual(got[0], decode("signal", enc.actuator(1.0, "dev", "mm", timestamp=1.0)))
        self.assertIsNot(got[0].labels, got[1].labels)


class BadInputTests(SynchronousTestCase):
    """Malformed primitives fail with a specific L{ProtocolError}."""

    def test_bad_dtype(self) -> None:
        """A dtype string numpy cannot parse is named in the error."""
        with self.assertRaises(ProtocolError) as caught:
            parse_dtype("<q99")
        self.assertIn("'<q99'", str(caught.exception))

    def test_object_dtype_refused(self) -> None:
        """Object and structured dtypes are refused (no pickles, no fields)."""
        for text in ("|O", "O", "V8"):
            self.assertRaises(ProtocolError, parse_dtype, text)

    def test_shape_mismatch(self) -> None:
        """A shape that does not match nbytes is refused before the data are read."""
        bad = bytearray(ARRAY)
        bad[22] = 4  # shape (2, 4): 64 bytes, message says 48
        with self.assertRaises(ProtocolError) as caught:
            Reader(bytes(bad[:23])).ndarray()
        self.assertIn("shape (2, 4)", str(caught.exception))

    def test_unknown_tag(self) -> None:
        """An unknown list element type is refused (PyMoDAQ would desynchronise)."""
        data = b"\x00\x00\x00\x01" + encode("string", "blob")
        self.assertRaises(ProtocolError, decode, "list", data)

    def test_unknown_class(self) -> None:
        """A DataWithAxes of an unknown class is refused."""
        self.assertRaises(ProtocolError, decode, "signal", encode("string", "Evil"))

    def test_bad_utf8(self) -> None:
        """Strings must be UTF-8."""
        self.assertRaises(ProtocolError, decode, "string", b"\x00\x00\x00\x01\xff")

    def test_unencodable(self) -> None:
        """Values the protocol cannot carry raise L{InvalidValue}."""
        self.assertRaises(InvalidValue, encode, "list", [object()])
        self.assertRaises(InvalidValue, encode, "scalar", 1 << 70)
        self.assertRaises(InvalidValue, encode, "ndarray", np.array([None]))
