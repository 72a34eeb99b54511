# -*- test-case-name: tests.test_la4_message -*-
"""
Tests for L{twisted_lab.protocols.la4.message}: typed messages and the JSON codec.
"""
from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.errors import ProtocolError
from twisted_lab.protocols.la4.message import (Command, Heartbeat, MessageEvent, OutputEvent,
                                               UnitInfo, UnknownMessage, decode, new_id)

#: The spec's documented examples (§3.2, §3.3), byte for byte.
DOC_HEARTBEAT = (b'{"id": "7756f193", "name": "twisted_lab coordinator", "ip": "192.168.0.100",\n'
                 b' "port": 5000, "version": "0.1.0", "coordinator": true}')
DOC_COMMAND = (b'{"id": "7756f193", "name": "twisted_lab coordinator", "ip": "192.168.0.100", '
               b'"port": 5000,\n "version": "0.1.0", "coordinator": true, "type_": "cmd",\n '
               b'"command": "echo \\"MODEL_LIGHT,100\\\\nLED_FAN,1\\" > '
               b'/home/rigsters/la4_sequence.csv && boardiocli uSeq && boardiocli runSeq"}')
DOC_OUTPUT = (b'{"id": "81639cd4", "name": "rigsters-controller", "ip": "192.168.0.22", '
              b'"port": 5000,\n "version": "0.14.0", "coordinator": false, "type_": "output",\n '
              b'"output": "BOARDIO_CLI: Sent: \\"uSeq\\" to FIFO file\\nBOARDIO_CLI: Sent: '
              b'\\"runSeq\\" to FIFO file\\n"}')
DOC_COMMAND_TEXT = ('echo "MODEL_LIGHT,100\\nLED_FAN,1" > /home/rigsters/la4_sequence.csv'
                    ' && boardiocli uSeq && boardiocli runSeq')

BASE = {"id": "7756f193", "name": "n", "ip": "127.0.0.1", "port": 5000, "version": "0.1.0",
        "coordinator": True}


def _doc(**fields: object) -> bytes:
    obj = dict(BASE)
    obj.update(fields)
    return json.dumps(obj).encode()


class DocumentedExampleTests(SynchronousTestCase):
    """The spec's example payloads decode to the right typed messages."""

    def test_heartbeat(self) -> None:
        """The documented coordinator heartbeat is a L{Heartbeat} with its six fields."""
        message = decode(DOC_HEARTBEAT)
        self.assertEqual(message, Heartbeat(id="7756f193", name="twisted_lab coordinator",
                                            ip="192.168.0.100", port=5000, version="0.1.0",
                                            coordinator=True))
        self.assertIsNone(message.type_)

    def test_command(self) -> None:
        """The documented C{cmd} decodes with its command line intact."""
        message = decode(DOC_COMMAND)
        self.assertIsInstance(message, Command)
        assert isinstance(message, Command)
        self.assertEqual(message.command, DOC_COMMAND_TEXT)

    def test_output(self) -> None:
        """The documented C{output} event decodes with the node's identity and text."""
        message = decode(DOC_OUTPUT)
        self.assertEqual(message, OutputEvent(
            id="81639cd4", name="rigsters-controller", ip="192.168.0.22", port=5000,
            version="0.14.0", coordinator=False,
            output='BOARDIO_CLI: Sent: "uSeq" to FIFO file\nBOARDIO_CLI: Sent: "runSeq" '
                   'to FIFO file\n'))

    def test_round_trip(self) -> None:
        """Every kind encodes to JSON that decodes back to an equal message."""
        base = dict(BASE)
        for message in [Heartbeat(**base), Command(command="boardiocli runSeq", **base),
                        OutputEvent(output="x\n", **base), MessageEvent(message="BOARDIO_READY",
                                                                        **base),
                        UnitInfo(fields={"model": "LA4", "heads": 4}, **base),
                        UnknownMessage(kind="status", fields={"a": 1}, **base)]:
            self.assertEqual(decode(message.encode()), message)

    def test_encoding_field_order(self) -> None:
        """The encoding puts the base fields first, then C{type_}, then the rest."""
        data = Command(command="boardiocli uSeq", **BASE).encode()
        self.assertEqual(list(json.loads(data)), ["id", "name", "ip", "port", "version",
                                                  "coordinator", "type_", "command"])

    def test_heartbeat_has_no_type(self) -> None:
        """A heartbeat is encoded without C{type_}."""
        self.assertNotIn("type_", json.loads(Heartbeat(**BASE).encode()))

    def test_new_id(self) -> None:
        """Ids are 8 lowercase hex characters, different each time."""
        a, b = new_id(), new_id()
        self.assertRegex(a, "^[0-9a-f]{8}$")
        self.assertNotEqual(a, b)


class BadMessageTests(SynchronousTestCase):
    """L{decode} refuses malformed documents with a L{ProtocolError}."""

    def assertRejected(self, data: bytes, fragment: str) -> ProtocolError:
        with self.assertRaises(ProtocolError) as caught:
            decode(data)
        self.assertIn(fragment, caught.exception.message)
        return caught.exception

    def test_not_utf8(self) -> None:
        """Bytes that are not UTF-8 are refused."""
        self.assertRejected(b'{"id": "\xff"}', "not UTF-8")

    def test_not_json(self) -> None:
        """Text that is not JSON is refused."""
        self.assertRejected(b"hello", "not JSON")

    def test_nan(self) -> None:
        """C{NaN} (accepted by Python's json, not by JSON) is refused."""
        self.assertRejected(_doc(port=float("nan")), "not JSON")

    def test_not_an_object(self) -> None:
        """A JSON array, string or number is refused."""
        for data in (b"[1, 2]", b'"x"', b"42", b"null"):
            self.assertRejected(data, "must be a JSON object")

    def test_missing_base_fields(self) -> None:
        """Each missing base field is named."""
        for key in BASE:
            obj = dict(BASE)
            del obj[key]
            self.assertRejected(json.dumps(obj).encode(), f"'{key}' is missing")

    def test_wrong_field_types(self) -> None:
        """Base fields of the wrong type are named; the port is kept when valid."""
        for key, value in [("id", 5), ("name", None), ("ip", []), ("version", 1.5),
                           ("coordinator", "true"), ("coordinator", 1)]:
            error = self.assertRejected(_doc(**{key: value}), f"'{key}' must be")
            self.assertEqual(error.details.get("port"), 5000)
        for port in ("5000", True, 0, 70000, 1.5):
            error = self.assertRejected(_doc(port=port), "'port' must be")
            self.assertIsNone(error.details.get("port"))

    def test_type_not_string(self) -> None:
        """A C{type_} that is not a string is refused."""
        self.assertRejected(_doc(type_=3), "'type_' must be a string")

    def test_command_fields(self) -> None:
        """A C{cmd} without a string C{command}, or with a too long one, is refused."""
        self.assertRejected(_doc(type_="cmd"), "'command' is missing")
        self.assertRejected(_doc(type_="cmd", command=["ls"]), "'command' must be a string")
        self.assertRejected(_doc(type_="cmd", command="x" * 9000), "longer than")

    def test_event_fields(self) -> None:
        """C{output} and C{message} events need their string field."""
        self.assertRejected(_doc(type_="output"), "'output' is missing")
        self.assertRejected(_doc(type_="message", message=1), "'message' must be a string")

    def test_long_field(self) -> None:
        """A base string field over 256 characters is refused."""
        self.assertRejected(_doc(name="n" * 257), "longer than 256")

    def test_unknown_type(self) -> None:
        """An unknown C{type_} decodes to L{UnknownMessage}; the caller decides."""
        message = decode(_doc(type_="status", extra=1))
        self.assertEqual(message, UnknownMessage(kind="status", fields={"extra": 1}, **BASE))
