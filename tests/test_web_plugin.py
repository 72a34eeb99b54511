# -*- test-case-name: tests.test_web_plugin -*-
"""
The C{[web]} section, the log ring and the codec.
"""
from __future__ import annotations

import io
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.application.service import MultiService
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import Logger, LogLevel
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_lab.config import parse_config
from twisted_lab.errors import ConfigError
from twisted_lab.interfaces import IProtocolPlugin, IWireReport
from twisted_lab.options import validate
from twisted_lab.protocols.web.codec import dumps, npy_bytes, pack_frame, to_json
from twisted_lab.protocols.web.logbuffer import LogRing
from twisted_lab.protocols.web.plugin import DEFAULT_LISTEN, plugin, read_token
from twisted_lab.protocols.web.service import collect_wires
from twisted_lab.registry import DeviceRegistry

LAB = ["stage", "powermeter", "spectrometer", "camera", "la4"]


class PluginTests(SynchronousTestCase):
    """The [web] section."""

    def test_provides(self) -> None:
        """The module's plugin provides IProtocolPlugin, named web."""
        verifyObject(IProtocolPlugin, plugin)
        self.assertEqual(plugin.name, "web")

    def test_default_section(self) -> None:
        """The simulated lab's console listens on 127.0.0.1:8765, writable, no token."""
        section = validate(plugin.options, plugin.default_section(LAB))
        self.assertEqual(section["listen"], "tcp:8765:interface=127.0.0.1")
        self.assertEqual(DEFAULT_LISTEN, section["listen"])
        self.assertEqual((section["read_only"], section["token_file"]), (False, ""))

    def test_absent_is_off(self) -> None:
        """A config file without [web] runs no console."""
        config = parse_config({"plesty": {}})
        self.assertEqual([p.name for p in config.protocols], ["plesty"])

    def test_service_listens_on_loopback(self) -> None:
        """The service listens where configured (loopback by default), and provides IWireReport."""
        reactor = MemoryReactorClock()
        section = validate(plugin.options, plugin.default_section(LAB))
        service = plugin.make_service(DeviceRegistry(reactor), section, reactor)
        self.assertTrue(IWireReport.providedBy(service))
        service.startService()
        self.addCleanup(service.stopService)
        port, _factory, _backlog, interface = reactor.tcpServers[0]
        self.assertEqual((port, interface), (8765, "127.0.0.1"))

    def test_allow_list(self) -> None:
        """The listener refuses clients outside C{allow} before any HTTP is parsed
        (default: loopback only)."""
        from twisted.internet.address import IPv4Address
        reactor = MemoryReactorClock()
        for allow, remote_ok in (([], False), (["192.168.10.0/24"], True)):
            section = validate(plugin.options, {**plugin.default_section(LAB),
                                                **({"allow": allow} if allow else {})})
            service = plugin.make_service(DeviceRegistry(reactor), section, reactor)
            service.startService()
            self.addCleanup(service.stopService)
            factory = reactor.tcpServers[-1][1]
            remote = factory.buildProtocol(IPv4Address("TCP", "192.168.10.7", 40000))
            self.assertEqual(remote is not None, remote_ok)
            local = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
            self.assertEqual(local is not None, not allow)

    def test_bad_options(self) -> None:
        """Non-positive rates and sizes and a bad endpoint are config errors naming the key."""
        reactor = MemoryReactorClock()
        for key, value in (("max_fps", 0.0), ("max_body", 0), ("listen", "nonsense:1")):
            section = validate(plugin.options, {key: value})
            e = self.assertRaises(ConfigError, plugin.make_service,
                                  DeviceRegistry(reactor), section, reactor)
            self.assertIn(f"web.{key}", str(e))

    def test_token_file(self) -> None:
        """The token is the file's first line; a missing or short token is a config error."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("  long-enough-token \nsecond line\n")
        self.assertEqual(read_token(path), "long-enough-token")
        self.assertIsNone(read_token(""))
        self.assertRaises(ConfigError, read_token, path + ".missing")
        with open(path, "w") as f:
            f.write("short\n")
        self.assertRaises(ConfigError, read_token, path)

    def test_log_ring_installed_only_while_running(self) -> None:
        """The log ring sees events while the service runs, and none after it stops."""
        reactor = MemoryReactorClock()
        section = validate(plugin.options, {"listen": "tcp:0:interface=127.0.0.1"})
        service = plugin.make_service(DeviceRegistry(reactor), section, reactor)
        log = Logger(namespace="tests.ring")
        log.info("before")
        service.startService()
        log.info("during")
        service.stopService()
        log.info("after")
        texts = [e["text"] for e in service.context.log_ring.recent(component="tests.ring")]
        self.assertEqual(texts, ["during"])


class WiresTests(SynchronousTestCase):
    """collect_wires reads IWireReport providers under each section."""

    def test_sections_with_and_without_reporters(self) -> None:
        """Reporters are listed under their section; a section without one by its state."""
        from zope.interface import implementer

        @implementer(IWireReport)
        class Reporting(MultiService):
            def wire_report(self) -> dict[str, object]:
                return {"listeners": ["tcp://127.0.0.1:1"], "peers": []}

        class Broken(Reporting):
            def wire_report(self) -> dict[str, object]:
                raise RuntimeError("boom")

        top = MultiService()
        for name, kind in (("devices", MultiService), ("one", Reporting), ("two", MultiService),
                           ("three", Broken)):
            child = kind()
            child.setName(name)
            child.setServiceParent(top)
        got = collect_wires(top)
        self.assertEqual([(w["protocol"], w["listeners"]) for w in got],
                         [("one", ["tcp://127.0.0.1:1"]), ("two", []), ("three", [])])
        self.assertEqual(got[2]["error"], "boom")


class LogRingTests(SynchronousTestCase):
    """The bounded ring of log events."""

    def event(self, level: LogLevel, namespace: str, text: str) -> dict[str, object]:
        return {"log_level": level, "log_namespace": namespace, "log_format": text,
                "log_time": 1.0}

    def test_bounded(self) -> None:
        """Only the last C{size} events are kept."""
        ring = LogRing(3)
        for i in range(10):
            ring(self.event(LogLevel.info, "x", f"event {i}"))
        self.assertEqual([e["text"] for e in ring.recent()], ["event 7", "event 8", "event 9"])

    def test_filters(self) -> None:
        """recent() filters by lowest level, component substring, sequence and limit."""
        ring = LogRing()
        ring(self.event(LogLevel.debug, "a.plesty", "d"))
        ring(self.event(LogLevel.warn, "a.plesty", "w"))
        ring(self.event(LogLevel.error, "b.leco", "e"))
        self.assertEqual([e["text"] for e in ring.recent("warn")], ["w", "e"])
        self.assertEqual([e["text"] for e in ring.recent("debug", "PLESTY")], ["d", "w"])
        self.assertEqual([e["text"] for e in ring.recent(limit=1)], ["e"])
        self.assertEqual([e["text"] for e in ring.recent(after=2)], ["e"])
        self.assertRaises(ValueError, ring.recent, "loud")

    def test_never_raises(self) -> None:
        """A malformed event is recorded as best it can be, never raised."""
        ring = LogRing()
        ring({"log_format": "{missing}", "log_level": "nonsense"})
        self.assertEqual(len(ring), 1)


class CodecTests(SynchronousTestCase):
    """Values to JSON, arrays to .npy and binary frames."""

    def test_to_json(self) -> None:
        """numpy scalars and small arrays become plain values; non-finite floats strings;
        big arrays a summary."""
        self.assertEqual(to_json({"a": np.float32(1.5), "b": np.arange(3)}),
                         {"a": 1.5, "b": [0, 1, 2]})
        self.assertEqual(to_json([math.nan, math.inf]), ["nan", "inf"])
        self.assertEqual(to_json(np.zeros((300, 300))),
                         {"shape": [300, 300], "dtype": "float64", "truncated": True})
        self.assertEqual(dumps({"x": math.nan}), b'{"x":"nan"}')

    def test_npy_round_trip(self) -> None:
        """npy_bytes gives what numpy.load reads back (without pickles)."""
        array = np.arange(12, dtype=np.uint16).reshape(3, 4)
        back = np.load(io.BytesIO(npy_bytes(array)), allow_pickle=False)
        np.testing.assert_array_equal(back, array)

    @settings(max_examples=60, deadline=None)
    @given(st.integers(1, 20), st.integers(1, 20), st.sampled_from(["float32", "uint16", "uint8"]),
           st.text(max_size=30))
    def test_frame_round_trip(self, h: int, w: int, dtype: str, label: str) -> None:
        """Any frame unpacks to its header and array, the array 8-byte aligned."""
        import json
        import struct
        array = (np.arange(h * w) % 200).astype(dtype).reshape(h, w)
        message = pack_frame({"label": label}, array)
        (length,) = struct.unpack("<I", message[:4])
        self.assertEqual((4 + length) % 8, 0)
        header = json.loads(message[4:4 + length])
        self.assertEqual((header["label"], header["shape"], header["dtype"]), (label, [h, w], dtype))
        back = np.frombuffer(message, dtype=dtype, offset=4 + length).reshape(h, w)
        np.testing.assert_array_equal(back, array)
