# -*- test-case-name: tests.test_formats_pymodaq_data -*-
"""
Tests for L{twisted_lab.formats.pymodaq.data}: the C{DataWithAxes} layouts
of both wire forms and the one mapping between their fields and L{Signal}.
"""
from __future__ import annotations

import numpy as np
from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.data import Axis, Signal
from twisted_lab.errors import ProtocolError
from twisted_lab.formats.pymodaq.data import (SERIALIZALL_LAYOUT, signal_fields,
                                              signal_from_fields, tcp_layout)
from twisted_lab.protocols.leco import serializall
from twisted_lab.protocols.pymodaq.codec import VERSIONS, Encoder, Reader, join


def rich_signal() -> Signal:
    return Signal("s", [np.arange(6.0).reshape(2, 3), np.ones((2, 3))], labels=["a", "b"],
                   units="V", axes=[Axis("x", "mm", np.arange(3.0), 1)], timestamp=12.5,
                   origin="cam", kind="DataFromPlugins", errors=[np.zeros((2, 3))] * 2,
                   extra={"gain": 2})


class LayoutTests(SynchronousTestCase):
    def test_same_fields(self) -> None:
        """Both wire forms carry the same fields in other orders; 4.4 carries them all."""
        full = tcp_layout(True, True, True)
        self.assertEqual(sorted(full), sorted(SERIALIZALL_LAYOUT))
        self.assertNotEqual(full, SERIALIZALL_LAYOUT)
        self.assertEqual(set(dict(full)), set(signal_fields(rich_signal())))

    def test_releases(self) -> None:
        """Older PyMoDAQ 4 releases leave out units, errors and extra attributes."""
        self.assertNotIn("units", dict(tcp_layout(False, True, True)))
        self.assertNotIn("errors", dict(tcp_layout(True, False, True)))
        self.assertNotIn("extra", dict(tcp_layout(True, True, False)))


class MappingTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        """signal_from_fields(signal_fields(s)) is s."""
        signal = rich_signal()
        self.assertEqual(signal_from_fields(signal.kind, signal_fields(signal)), signal)

    def test_missing_fields_default(self) -> None:
        """Fields a release does not send take their defaults."""
        fields = signal_fields(rich_signal())
        for name in ("units", "errors", "extra"):
            del fields[name]
        signal = signal_from_fields("DataFromPlugins", fields)
        self.assertEqual((signal.units, signal.errors, signal.extra), ("", [], {}))

    def test_bad_fields(self) -> None:
        """A non-numeric timestamp or inconsistent channels are ProtocolErrors."""
        fields = signal_fields(rich_signal())
        self.assertRaises(ProtocolError, signal_from_fields, "DataFromPlugins",
                          {**fields, "timestamp": "noon"})
        self.assertRaises(ProtocolError, signal_from_fields, "DataFromPlugins",
                          {**fields, "data": [np.ones(3), np.ones(2)]})

    def test_both_codecs(self) -> None:
        """The PyMoDAQ 4 TCP codec and serializall both carry a rich signal whole."""
        signal = rich_signal()
        self.assertEqual(serializall.decode(serializall.encode(signal)), signal)
        for name, wire in VERSIONS.items():
            if wire.legacy:
                continue
            out: list = []
            Encoder(wire).signal(out, signal)
            back = Reader(join(out), wire=wire).signal()
            self.assertEqual(back.data[0].tolist(), signal.data[0].tolist(), name)
            self.assertEqual(back.units, signal.units if wire.units else "", name)
            self.assertEqual(back.extra, signal.extra if wire.extra else {}, name)
