# -*- test-case-name: tests.test_leco_message -*-
"""
Byte-level tests of LECO frames, headers and names against the vectors
captured from real pyleco 0.6.0.post1 (spec §15).
"""
from __future__ import annotations

import time

from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.errors import ProtocolError
from twisted_lab.protocols.leco.message import (DataMessage, Message, check_name,
                                                conversation_id, full_name, header,
                                                split_name, uuid7_time_ms)
from twisted_lab.protocols.leco.rpc import (DUPLICATE_NAME, NODE_UNKNOWN, NOT_SIGNED_IN,
                                            RECEIVER_UNKNOWN, encode_error, encode_request,
                                            encode_result)

H = bytes.fromhex


class VectorTests(SynchronousTestCase):
    """Every captured control vector decodes and re-encodes byte-exact."""

    def check(self, frames: list[bytes]) -> Message:
        message = Message.from_frames(frames)
        self.assertEqual(message.to_frames(), frames)
        return message

    def test_sign_in_request(self) -> None:
        """15.1: the sign_in request decodes to its fields and our encoder makes the same bytes."""
        frames = [H("00"), H("434f4f5244494e41544f52"), H("6469726563746f7231"),
                  H("01a1ffe446f5703ebba755c282d6be75" "000000" "01"),
                  H("7b226964223a312c226d6574686f64223a227369676e5f696e222c226a736f6e727063"
                    "223a22322e30227d")]
        message = self.check(frames)
        self.assertEqual((message.receiver, message.sender, message.message_type),
                         (b"COORDINATOR", b"director1", 1))
        self.assertEqual(message.conversation_id, H("01a1ffe446f5703ebba755c282d6be75"))
        self.assertEqual(encode_request(1, "sign_in"), frames[4])
        built = Message(b"COORDINATOR", b"director1", message.conversation_id, 1,
                        [encode_request(1, "sign_in")])
        self.assertEqual(built.to_frames(), frames)

    def test_sign_in_response(self) -> None:
        """15.1: the Coordinator's answer; the namespace comes from the sender frame."""
        frames = [H("00"), H("6469726563746f7231"), H("4e312e434f4f5244494e41544f52"),
                  H("01a1ffe446f5703ebba755c282d6be75" "000000" "01"),
                  H("7b226964223a312c22726573756c74223a6e756c6c2c226a736f6e727063223a22322e"
                    "30227d")]
        message = self.check(frames)
        self.assertEqual(split_name(message.sender), (b"N1", b"COORDINATOR"))
        self.assertEqual(encode_result(1, None), frames[4])

    def test_rpc_call_and_result(self) -> None:
        """15.2: request add(a=2, b=3) and its result 5, byte-exact both ways."""
        request = [H("00"), b"actor1", H("4e312e6469726563746f7231"),
                   H("01a1ffe44ae279bca73a5501782b03f8" "000000" "01"),
                   H("7b226964223a322c226d6574686f64223a22616464222c22706172616d73223a7b2261"
                     "223a322c2262223a337d2c226a736f6e727063223a22322e30227d")]
        response = [H("00"), H("4e312e6469726563746f7231"), H("4e312e6163746f7231"),
                    H("01a1ffe44ae279bca73a5501782b03f8" "000000" "01"),
                    H("7b226964223a322c22726573756c74223a352c226a736f6e727063223a22322e3022"
                      "7d")]
        self.check(request)
        self.check(response)
        self.assertEqual(encode_request(2, "add", {"a": 2, "b": 3}), request[4])
        self.assertEqual(encode_result(2, 5), response[4])

    def test_binary_frames(self) -> None:
        """15.3: additional payload frames are kept in order after the JSON."""
        cid = H("01a1ffe44e6a7da2883348e17150d1d6")
        req = [H("00"), b"actor1", b"N1.director1", cid + H("00000001"),
               b'{"id":4,"method":"blob","params":{"note":"x"},"jsonrpc":"2.0"}', H("010203")]
        res = [H("00"), b"N1.director1", b"N1.actor1", cid + H("00000001"),
               b'{"id":4,"result":{"got":[3]},"jsonrpc":"2.0"}', H("deadbeef")]
        self.assertEqual(self.check(req).payload[1:], [H("010203")])
        self.assertEqual(self.check(res).payload[1:], [H("deadbeef")])
        self.assertEqual(encode_request(4, "blob", {"note": "x"}), req[4])
        self.assertEqual(encode_result(4, {"got": [3]}), res[4])

    def test_heartbeat(self) -> None:
        """15.4: a heartbeat is 4 frames with type 0 and no payload."""
        frames = [H("00"), H("434f4f5244494e41544f52"), H("4e312e6469726563746f7231"),
                  H("01a1ffe4502d78468abf15cefe3b50c5" "000000" "00")]
        message = self.check(frames)
        self.assertEqual((message.message_type, message.payload), (0, []))

    def test_coordinator_errors(self) -> None:
        """15.4: the four Coordinator error payloads are reproduced byte-exact."""
        self.assertEqual(encode_error(None, RECEIVER_UNKNOWN, None, "ghost"),
                         b'{"id":null,"error":{"code":-32093,"message":"Receiver is not in '
                         b'addresses list.","data":"ghost"},"jsonrpc":"2.0"}')
        self.assertEqual(encode_error(None, NODE_UNKNOWN, None, "N9"),
                         b'{"id":null,"error":{"code":-32092,"message":"Node is not known.",'
                         b'"data":"N9"},"jsonrpc":"2.0"}')
        self.assertEqual(encode_error(None, NOT_SIGNED_IN),
                         b'{"id":null,"error":{"code":-32090,"message":"You did not sign in!"}'
                         b',"jsonrpc":"2.0"}')
        self.assertEqual(encode_error(None, DUPLICATE_NAME),
                         b'{"id":null,"error":{"code":-32091,"message":"The name is already '
                         b'taken."},"jsonrpc":"2.0"}')

    def test_data_messages(self) -> None:
        """15.5: data messages (17-byte header) decode and re-encode byte-exact."""
        one = [H("4e312e6163746f7231"), H("01a1ffe47f677482bc46b5b1a6443bcb01"),
               H("7b22766f6c74616765223a312e32357d")]
        two = [H("4e312e6163746f7231"), H("01a1ffe47f6877beb8f7d1901685ab69" "00"), H("0001"),
               H("6d6f7265")]
        m1, m2 = DataMessage.from_frames(one), DataMessage.from_frames(two)
        self.assertEqual((m1.topic, m1.message_type, m1.payload),
                         (b"N1.actor1", 1, [b'{"voltage":1.25}']))
        self.assertEqual((m2.message_type, m2.payload), (0, [b"\x00\x01", b"more"]))
        self.assertEqual(m1.to_frames(), one)
        self.assertEqual(m2.to_frames(), two)
        self.assertEqual(DataMessage(b"N1.actor1", [b'{"voltage":1.25}'], 1,
                                     H("01a1ffe47f677482bc46b5b1a6443bcb")).to_frames(), one)


class HeaderTests(SynchronousTestCase):
    """Conversation ids are UUIDv7 and headers are 20 bytes."""

    def test_uuid7(self) -> None:
        """Version nibble 7, variant 0b10, the current time in ms in the first 48 bits."""
        now = time.time()
        cid = conversation_id(now)
        self.assertEqual(len(cid), 16)
        self.assertEqual(cid[6] >> 4, 7)
        self.assertEqual(cid[8] >> 6, 0b10)
        self.assertEqual(uuid7_time_ms(cid), int(now * 1000))

    def test_unique(self) -> None:
        """Ten thousand ids in the same millisecond are all different."""
        ids = {conversation_id(1.0) for _ in range(10000)}
        self.assertEqual(len(ids), 10000)

    def test_header(self) -> None:
        """A header is cid + 3 zero bytes + the type byte."""
        cid = bytes(range(16))
        self.assertEqual(header(cid), cid + b"\x00\x00\x00\x01")
        self.assertEqual(header(cid, 0), cid + b"\x00\x00\x00\x00")


class MalformedTests(SynchronousTestCase):
    """Malformed frames raise ProtocolError with a reason, never anything else."""

    good = [b"\x00", b"COORDINATOR", b"x", bytes(20)]

    def test_too_few_frames(self) -> None:
        """Three frames are refused."""
        self.assertRaises(ProtocolError, Message.from_frames, self.good[:3])

    def test_bad_version(self) -> None:
        """Version 1 is refused."""
        self.assertRaises(ProtocolError, Message.from_frames, [b"\x01"] + self.good[1:])

    def test_short_header(self) -> None:
        """A 19-byte header is refused."""
        self.assertRaises(ProtocolError, Message.from_frames, self.good[:3] + [bytes(19)])

    def test_empty_sender(self) -> None:
        """An empty sender frame is refused."""
        self.assertRaises(ProtocolError, Message.from_frames,
                          [b"\x00", b"COORDINATOR", b"", bytes(20)])

    def test_data_short_header(self) -> None:
        """A data header that is not 17 bytes is refused."""
        self.assertRaises(ProtocolError, DataMessage.from_frames, [b"t", bytes(20)])


class NameTests(SynchronousTestCase):
    """Names split at the last dot; names are checked."""

    def test_split(self) -> None:
        """As pyleco: C{a.b.c} is namespace C{a.b}, name C{c}; no dot, no namespace."""
        self.assertEqual(split_name(b"N1.actor1"), (b"N1", b"actor1"))
        self.assertEqual(split_name(b"actor1"), (b"", b"actor1"))
        self.assertEqual(split_name(b"a.b.c"), (b"a.b", b"c"))

    def test_full_name(self) -> None:
        """full_name joins with a dot, or keeps a bare name."""
        self.assertEqual(full_name("N1", "x"), b"N1.x")
        self.assertEqual(full_name("", "x"), b"x")

    def test_check(self) -> None:
        """Dots, empty names and non-ASCII are refused."""
        self.assertEqual(check_name("stage"), "stage")
        for bad in ("", "a.b", "caf\u00e9", "tab\t"):
            self.assertRaises(ProtocolError, check_name, bad)
