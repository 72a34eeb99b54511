# -*- test-case-name: tests.test_pymodaq_parser -*-
"""
Tests for L{twisted_lab.protocols.pymodaq.message}: message cutting fed one
byte at a time and all at once in both directions, linear cost for big
frames, the size limit and malformed streams.
"""
from __future__ import annotations

import numpy as np
from twisted.trial.unittest import SynchronousTestCase

from tests.test_pymodaq_codec import ACTUATOR, DTE, PATH, XML
from twisted_lab.data import Export, Signal
from twisted_lab.errors import ProtocolError
from twisted_lab.protocols.pymodaq.codec import join
from twisted_lab.protocols.pymodaq.message import (TO_CLIENT, TO_SERVER, Message,
                                                  MessageParser, MessageTooLarge,
                                                  encode_message)

TS = 1700000000.0


def cmd(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(4, "big") + raw


#: A client → server stream made of spec vectors (handshake, replies, updates).
TO_SERVER_STREAM = (cmd("GRABBER") + cmd("Infos") + XML + cmd("Done") + DTE
                    + cmd("Info_xml") + PATH + XML + cmd("Info") + cmd("a") + cmd("b")
                    + cmd("move_done") + ACTUATOR + cmd("position_is") + ACTUATOR + cmd("Quit"))
#: A server → client stream.
TO_CLIENT_STREAM = (cmd("Send Data 2D") + cmd("move_abs") + ACTUATOR + cmd("move_rel")
                    + ACTUATOR + cmd("move_home") + cmd("get_actuator_value")
                    + cmd("check_position") + cmd("stop_motion") + cmd("set_info") + PATH + XML)


class StreamTests(SynchronousTestCase):
    """The same messages come out however the bytes are split."""

    def feed(self, grammar: dict, data: bytes, step: int) -> list[Message]:
        parser = MessageParser(grammar)
        out: list[Message] = []
        for i in range(0, len(data), step):
            out.extend(parser.feed(data[i:i + step]))
        self.assertEqual(parser.buffered, 0)
        return out

    def test_to_server_all_at_once_and_byte_by_byte(self) -> None:
        """Client → server messages: one chunk and one byte at a time agree."""
        whole = self.feed(TO_SERVER, TO_SERVER_STREAM, len(TO_SERVER_STREAM))
        self.assertEqual([m.command for m in whole],
                         ["GRABBER", "Infos", "Done", "Info_xml", "Info", "move_done",
                          "position_is", "Quit"])
        self.assertEqual(whole[2].args[0].name, "tcp")
        self.assertEqual(whole[3].args[0], ["detector_settings", "exposure"])
        self.assertEqual(whole[5].args[0].value(), 1.5)
        self.assertEqual(repr(self.feed(TO_SERVER, TO_SERVER_STREAM, 1)), repr(whole))

    def test_to_client_all_at_once_and_byte_by_byte(self) -> None:
        """Server → client messages: one chunk and one byte at a time agree."""
        whole = self.feed(TO_CLIENT, TO_CLIENT_STREAM, len(TO_CLIENT_STREAM))
        self.assertEqual([m.command for m in whole],
                         ["Send Data 2D", "move_abs", "move_rel", "move_home",
                          "get_actuator_value", "check_position", "stop_motion", "set_info"])
        self.assertEqual(repr(self.feed(TO_CLIENT, TO_CLIENT_STREAM, 1)), repr(whole))
        self.assertEqual(repr(self.feed(TO_CLIENT, TO_CLIENT_STREAM, 7)), repr(whole))

    def test_encode_message_matches_vectors(self) -> None:
        """encode_message produces the spec bytes for each command form."""
        position = Signal.scalar("x", 1.5, units="mm", kind="DataActuator", timestamp=TS)
        self.assertEqual(join(encode_message("move_done", position)), cmd("move_done") + ACTUATOR)
        self.assertEqual(join(encode_message("set_info", ["detector_settings", "exposure"],
                                             XML[4:].decode())),
                         cmd("set_info") + PATH + XML)
        export = MessageParser(TO_SERVER).feed(cmd("Done") + DTE)[0].args[0]
        self.assertEqual(join(encode_message("Done", export)), cmd("Done") + DTE)

    def test_re_encoded_streams_are_identical(self) -> None:
        """Every message decoded from the streams re-encodes to the same bytes."""
        for grammar, stream in ((TO_SERVER, TO_SERVER_STREAM), (TO_CLIENT, TO_CLIENT_STREAM)):
            messages = MessageParser(grammar).feed(stream)
            again = b"".join(join(encode_message(m.command, *m.args)) for m in messages)
            self.assertEqual(again, stream)

    def test_legacy_stream(self) -> None:
        """Legacy: a list of arrays after Done, scalars as positions."""
        out = encode_message("Done", Export("e", [Signal("a", [np.arange(3.0)])]), wire="legacy")
        out += encode_message("move_done", 2.5, wire="legacy")
        out += encode_message("x_axis", np.arange(2.0), "x", "mm", wire="legacy")
        messages = MessageParser(TO_SERVER, "legacy").feed(join(out))
        np.testing.assert_array_equal(messages[0].args[0][0].data[0], np.arange(3.0))
        self.assertEqual(messages[1].args[0].value(), 2.5)
        self.assertEqual(messages[2].args[1:], ("x", "mm"))


class LargeFrameTests(SynchronousTestCase):
    """Big arrays cost linear work and one copy."""

    def test_32_mib_in_64_kib_chunks(self) -> None:
        """
        A 32 MiB image fed in 64 KiB chunks is re-read only a few times (not
        once per chunk) and is collected outside the byte buffer.
        """
        image = np.random.default_rng(1).random((2048, 2048))
        data = join(encode_message("Done", Export("cam", [Signal("cam", [image])])))
        data += cmd("Quit")
        parser = MessageParser(TO_SERVER)
        out: list[Message] = []
        largest_buffer = 0
        for i in range(0, len(data), 65536):
            out.extend(parser.feed(data[i:i + 65536]))
            largest_buffer = max(largest_buffer, len(parser._buf))
        self.assertEqual([m.command for m in out], ["Done", "Quit"])
        np.testing.assert_array_equal(out[0].args[0][0].data[0], image)
        self.assertLessEqual(parser.attempts, 4)
        self.assertLess(largest_buffer, 2 * 65536)

    def test_receive_into_array(self) -> None:
        """
        While a big array is collected, fill_view exposes its memory, so the
        transport can receive into it directly (one copy from the kernel).
        """
        image = np.arange(2 ** 17, dtype="<f8")
        data = join(encode_message("Done", Export("cam", [Signal("cam", [image])])))
        parser = MessageParser(TO_SERVER)
        self.assertIsNone(parser.fill_view())
        self.assertEqual(parser.feed(data[:1000]), [])
        out = []
        pos = 1000
        while (view := parser.fill_view()) is not None:
            n = min(len(view), 50000)
            view[:n] = data[pos:pos + n]
            pos += n
            out.extend(parser.filled(n))
        out.extend(parser.feed(data[pos:]))
        np.testing.assert_array_equal(out[0].args[0][0].data[0], image)

    def test_many_small_arrays_byte_by_byte(self) -> None:
        """Small arrays are parsed from the buffer, with a bounded number of attempts."""
        export = Export("e", [Signal(f"s{i}", [np.arange(10.0)]) for i in range(3)])
        data = join(encode_message("Done", export))
        parser = MessageParser(TO_SERVER)
        out = [m for i in range(0, len(data), 1) for m in parser.feed(data[i:i + 1])]
        self.assertEqual(len(out[0].args[0]), 3)
        self.assertLess(parser.attempts, 200)


class LinearWorkTests(SynchronousTestCase):
    """Parsing work is linear in the bytes received, however they are split."""

    def test_many_tiny_elements_in_small_chunks(self) -> None:
        """
        A message holding a 200 000-element list of scalars, fed in 1 KiB
        chunks, makes the parser examine about as many bytes as when it is
        fed all at once (a parser that re-read the message from its start on
        each chunk would examine about 2800 times more), is read from its
        start once, and decodes to the same message.
        """
        signal = Signal("s", [np.zeros(1)], extra={"values": [0.5] * 200_000})
        data = join(encode_message("Done", Export("e", [signal])))
        whole = MessageParser(TO_SERVER)
        [at_once] = whole.feed(data)
        chunked = MessageParser(TO_SERVER)
        out: list[Message] = []
        for i in range(0, len(data), 1024):
            out.extend(chunked.feed(data[i:i + 1024]))
        self.assertEqual(repr(out), repr([at_once]))
        self.assertEqual(len(out[0].args[0][0].extra["values"]), 200_000)
        self.assertGreaterEqual(whole.examined, len(data) - 20)
        self.assertLess(chunked.examined, 1.1 * whole.examined)
        self.assertEqual(chunked.attempts, 1)
        self.assertLess(chunked.steps, 2 * (len(data) // 1024 + 1))
        self.assertEqual(chunked.buffered, 0)

    def test_resumed_reads_byte_by_byte(self) -> None:
        """
        Fed one byte at a time, a message is started over only while its
        8-byte command arrives, and the payload bytes examined stay within a
        small factor of its size.
        """
        signal = Signal("s", [np.arange(3.0)], extra={"v": [1, "a", [2.0, [b"x"]]] * 50})
        data = join(encode_message("Done", Export("e", [signal, signal])))
        parser = MessageParser(TO_SERVER)
        out = [m for i in range(len(data)) for m in parser.feed(data[i:i + 1])]
        self.assertEqual(repr(out), repr(MessageParser(TO_SERVER).feed(data)))
        self.assertLessEqual(parser.attempts, 8)
        self.assertLess(parser.examined, 3 * len(data))

    def test_nesting_limit(self) -> None:
        """
        Lists nested deeper than MAX_DEPTH are refused with a ProtocolError
        (not a RecursionError), all at once and byte by byte.
        """
        nested: list = [1.0]
        for _ in range(200):
            nested = [nested]
        data = join(encode_message("Done", Export("e", [Signal("s", [np.zeros(1)],
                                                               extra={"n": nested})])))
        with self.assertRaises(ProtocolError) as caught:
            MessageParser(TO_SERVER).feed(data)
        self.assertIn("nested more than", str(caught.exception))
        parser = MessageParser(TO_SERVER)
        with self.assertRaises(ProtocolError):
            for i in range(len(data)):
                parser.feed(data[i:i + 1])

    def test_size_limit_while_resuming(self) -> None:
        """
        A message growing past the limit element by element is refused once
        it does, while its bytes arrive in small chunks.
        """
        signal = Signal("s", [np.zeros(1)], extra={"values": [0.5] * 2000})
        data = join(encode_message("Done", Export("e", [signal])))
        parser = MessageParser(TO_SERVER, max_size=len(data) - 1)
        with self.assertRaises(MessageTooLarge):
            for i in range(0, len(data), 100):
                parser.feed(data[i:i + 100])
        exact = MessageParser(TO_SERVER, max_size=len(data))
        out = [m for i in range(0, len(data), 100) for m in exact.feed(data[i:i + 100])]
        self.assertEqual(len(out), 1)


class BadStreamTests(SynchronousTestCase):
    """Malformed streams raise a specific L{ProtocolError}."""

    def test_size_limit(self) -> None:
        """A declared length beyond the limit fails at once, before the data arrive."""
        parser = MessageParser(TO_SERVER, max_size=1000)
        header = cmd("Infos") + (5000).to_bytes(4, "big")
        with self.assertRaises(MessageTooLarge) as caught:
            parser.feed(header)
        self.assertIn("maximum of 1000 bytes", str(caught.exception))

    def test_size_limit_big_array(self) -> None:
        """An array bigger than the limit fails when its header arrives."""
        data = join(encode_message("Done", Export("e", [Signal("s", [np.zeros(10000)])])))
        parser = MessageParser(TO_SERVER, max_size=50000)
        self.assertRaises(MessageTooLarge, parser.feed, data[:300])

    def test_unknown_command(self) -> None:
        """An unknown command cannot be skipped (its payload is unknown)."""
        self.assertRaises(ProtocolError, MessageParser(TO_SERVER).feed, cmd("Bogus"))
        self.assertRaises(ProtocolError, MessageParser(TO_CLIENT).feed, cmd("Done"))

    def test_command_too_long(self) -> None:
        """A huge first string is not a command."""
        with self.assertRaises(ProtocolError) as caught:
            MessageParser(TO_SERVER).feed((10 ** 6).to_bytes(4, "big"))
        self.assertIn("where a command was expected", str(caught.exception))

    def test_x_axis_refused_in_4x(self) -> None:
        """x_axis is refused in 4.x, as PyMoDAQ 4.4 drops such a client."""
        self.assertRaises(ProtocolError, MessageParser(TO_SERVER).feed, cmd("x_axis"))
