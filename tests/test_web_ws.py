# -*- test-case-name: tests.test_web_ws -*-
"""
The console's WebSocket: credit-based frame flow (one in flight, the newest
waiting, grabs paced by acknowledgements), the client message parser, and a
real loopback session with autobahn's client.
"""
from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_lab.data import Axis, Export, Signal
from twisted_lab.errors import DeviceOffline
from twisted_lab.events import DATA
from twisted_lab.options import validate
from twisted_lab.protocols.web.context import WebContext
from twisted_lab.protocols.web.plugin import plugin
from twisted_lab.protocols.web.ws import (
    DataStream,
    LabSocketFactory,
    LabSocketProtocol,
    encode_export,
)
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeActuator, FakeDetector


def image_export(name: str, value: float, shape: tuple[int, int] = (4, 6)) -> Export:
    """A 2D export filled with C{value}."""
    return Export(name, [Signal(name, [np.full(shape, value)], units="counts")])


def unpack(message: bytes) -> tuple[dict[str, Any], np.ndarray]:
    """Split a binary data message into its header and array."""
    (length,) = struct.unpack("<I", message[:4])
    header = json.loads(message[4:4 + length])
    array = np.frombuffer(message, dtype=header["dtype"], offset=4 + length)
    return header, array.reshape(header["shape"])


class _Socket:
    """What a L{DataStream} needs of its protocol: a context and two send methods."""

    def __init__(self, context: WebContext) -> None:
        self.context = context
        self.sent: list[Any] = []

    def send_json(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def send_binary(self, data: bytes) -> None:
        self.sent.append(data)


class DataStreamTests(SynchronousTestCase):
    """At most one message in flight, one waiting (the newest), grabs paced by acks."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(100)
        self.context = WebContext(DeviceRegistry(self.clock), self.clock, max_fps=10.0)
        self.socket = _Socket(self.context)
        self.device = FakeDetector("cam", image_export("cam", 1.0), instant=False)
        self.stream = DataStream(self.socket, self.device)  # type: ignore[arg-type]

    def test_first_grab_sent(self) -> None:
        """Starting grabs once; its frame is sent and is then in flight."""
        self.stream.start()
        self.assertEqual(len(self.device.calls), 1)
        self.device.finish()
        self.assertEqual(len(self.socket.sent), 1)
        header, array = unpack(self.socket.sent[0])
        self.assertEqual((header["device"], header["dim"], array.shape), ("cam", "Data2D", (4, 6)))
        self.assertTrue(self.stream.in_flight)

    def test_no_ack_no_more_frames(self) -> None:
        """Without an ack nothing more is grabbed or sent, however long we wait."""
        self.stream.start()
        self.device.finish()
        self.clock.advance(60)
        self.assertEqual((len(self.device.calls), len(self.socket.sent)), (1, 1))

    def test_latest_frame_wins(self) -> None:
        """Frames offered while one is in flight keep only the newest; it goes on ack."""
        self.stream.start()
        self.device.finish()
        for value in (2.0, 3.0, 4.0):
            self.stream.offer(image_export("cam", value))
        self.assertEqual(len(self.socket.sent), 1)
        self.assertEqual(self.stream.dropped, 2)
        self.stream.ack()
        self.assertEqual(len(self.socket.sent), 2)
        _, array = unpack(self.socket.sent[1])
        self.assertEqual(float(array[0, 0]), 4.0)
        self.assertIsNone(self.stream.pending)

    def test_ack_paces_next_grab(self) -> None:
        """After an ack with nothing waiting the next grab waits for 1/max_fps."""
        self.stream.start()
        self.device.finish()
        self.stream.ack()
        self.assertEqual(len(self.device.calls), 1)
        self.clock.advance(0.099)
        self.assertEqual(len(self.device.calls), 1)
        self.clock.advance(0.002)
        self.assertEqual(len(self.device.calls), 2)

    def test_event_from_own_grab_sent_once(self) -> None:
        """A device that announces its grab as a DATA event gets it sent once, not twice."""
        unsubscribe = self.device.subscribe(
            lambda e: self.stream.offer(e.value) if e.kind == DATA else None)
        self.addCleanup(unsubscribe)
        self.stream.start()
        self.device.finish()
        self.assertEqual(len(self.socket.sent), 1)
        self.assertIsNone(self.stream.pending)

    def test_grab_failure_reported_once_and_retried(self) -> None:
        """A failing grab sends one error message and retries a second later."""
        self.device.set_online(False)
        self.stream.start()
        self.clock.advance(1.0)
        self.clock.advance(1.0)
        errors = [m for m in self.socket.sent if isinstance(m, dict)]
        self.assertEqual([m["error"] for m in errors], [DeviceOffline.code])
        self.assertEqual(self.stream.sent, 0)

    def test_stop(self) -> None:
        """A stopped stream sends nothing more."""
        self.stream.start()
        self.stream.stop()
        self.device.finish()
        self.stream.offer(image_export("cam", 5.0))
        self.assertEqual(self.socket.sent, [])


class EncodeTests(SynchronousTestCase):
    """Data messages: 2D reduced for drawing, 1D with its axis, 0D as JSON."""

    def test_2d_reduced(self) -> None:
        """A 2048x1024 image is sent every 2nd pixel (max side 1024), as float32, with its full shape."""
        export = image_export("cam", 3.0, (1024, 2048))
        header, array = unpack(encode_export("cam", export, 1, 1024))  # type: ignore[arg-type]
        self.assertEqual((array.shape, array.dtype.name), ((512, 1024), "float32"))
        self.assertEqual(header["full_shape"], [1024, 2048])

    def test_1d_axis(self) -> None:
        """A spectrum carries its axis values, label and units."""
        axis = Axis("wavelength", "nm", np.linspace(500, 700, 5))
        export = Export("spec", [Signal("spec", [np.arange(5.0)], units="counts", axes=[axis])])
        header, array = unpack(encode_export("spec", export, 1, 1024))  # type: ignore[arg-type]
        self.assertEqual((header["x_label"], header["x_units"], header["x"][-1]),
                         ("wavelength", "nm", 700.0))
        self.assertEqual(array.tolist(), [0, 1, 2, 3, 4])

    def test_0d_json(self) -> None:
        """0D values go as one JSON message with label, units and value."""
        export = Export("pm", [Signal.scalar("pm", 1.5e-3, "W")])
        message = encode_export("pm", export, 7, 1024)
        assert isinstance(message, dict)
        self.assertEqual((message["type"], message["seq"], message["values"][0]["value"],
                          message["values"][0]["units"]), ("data0d", 7, 1.5e-3, "W"))

    def test_header_aligned(self) -> None:
        """The array starts at a multiple of 8 bytes (typed arrays need alignment)."""
        for name in ("c", "cam", "camera-with-a-long-name"):
            message = encode_export(name, image_export(name, 1.0), 1, 64)
            assert isinstance(message, bytes)
            (length,) = struct.unpack("<I", message[:4])
            self.assertEqual((4 + length) % 8, 0)


class _RecorderFactory(WebSocketClientFactory):
    """Keeps what the client received; C{waiter} fires on the next message."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.opened: Deferred[Any] = Deferred()
        self.messages: list[tuple[bytes, bool]] = []
        self.waiter: Deferred[None] | None = None


class _Recorder(WebSocketClientProtocol):
    factory: _RecorderFactory

    def onOpen(self) -> None:
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.messages.append((payload, isBinary))
        waiter, self.factory.waiter = self.factory.waiter, None
        if waiter is not None:
            waiter.callback(None)


class LiveSocketTests(TestCase):
    """A real autobahn client over loopback watches devices through /ws."""

    def setUp(self) -> None:
        self.registry = DeviceRegistry(reactor)
        self.camera = FakeDetector("cam", image_export("cam", 1.0))
        self.stage = FakeActuator("stage")
        self.registry.register(self.camera)
        self.registry.register(self.stage)
        section = validate(plugin.options, {"listen": "tcp:0:interface=127.0.0.1",
                                            "max_fps": 1000.0})
        self.web = plugin.make_service(self.registry, section, reactor)
        self.web.startService()
        self.addCleanup(self.web.stopService)

    async def connect(self) -> Any:
        port = self.web.listener.port.getHost().port
        factory = _RecorderFactory(f"ws://127.0.0.1:{port}/ws")
        factory.protocol = _Recorder
        from twisted.internet.endpoints import TCP4ClientEndpoint
        await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(factory)
        client = await factory.opened
        self.addCleanup(client.dropConnection, abort=True)
        return client, factory

    async def until(self, factory: Any, check: Any) -> None:
        for _ in range(100):
            if check():
                return
            factory.waiter = Deferred()
            await factory.waiter.addTimeout(5, reactor)
        self.fail("condition not reached")

    async def test_frames_need_acks(self) -> None:
        """Watching a camera sends one frame; the next comes only after the ack."""
        client, factory = await self.connect()
        client.sendMessage(json.dumps({"op": "watch", "device": "cam"}).encode())
        binary = lambda: [m for m, b in factory.messages if b]  # noqa: E731
        await self.until(factory, lambda: len(binary()) >= 1)
        grabs = len(self.camera.calls)
        from twisted.internet.task import deferLater
        await deferLater(reactor, 0.2)
        self.assertEqual((len(binary()), len(self.camera.calls)), (1, grabs))
        client.sendMessage(json.dumps({"op": "ack", "device": "cam"}).encode())
        await self.until(factory, lambda: len(binary()) >= 2)
        header, array = unpack(binary()[1])
        self.assertEqual((header["device"], array.shape), ("cam", (4, 6)))

    async def test_values_and_position(self) -> None:
        """Watching an actuator sends its parameter values and its position."""
        client, factory = await self.connect()
        client.sendMessage(json.dumps({"op": "watch", "device": "stage"}).encode())
        texts = lambda: [json.loads(m) for m, b in factory.messages if not b]  # noqa: E731
        await self.until(factory, lambda: any(t["type"] == "position" for t in texts()))
        self.stage.current = 3.0
        await self.until(factory, lambda: [t["value"] for t in texts()
                                           if t["type"] == "position"][-1] == 3.0)

    async def test_bad_messages_answered(self) -> None:
        """Garbage and unknown ops get an error message; the socket stays open."""
        client, factory = await self.connect()
        client.sendMessage(b"\xff\xfe", isBinary=True)  # (invalid UTF-8 text closes: RFC 6455)
        for payload in (b"[]", b'{"op": "dance"}', b'{"op": "watch", "device": "x"}'):
            client.sendMessage(payload)
        texts = lambda: [json.loads(m) for m, b in factory.messages if not b]  # noqa: E731
        await self.until(factory, lambda: len([t for t in texts() if t["type"] == "error"]) >= 4)
        errors = [t["error"] for t in texts() if t["type"] == "error"]
        self.assertEqual(errors, ["BadMessage", "BadMessage", "BadMessage", "UnknownDevice"])


class ClientMessageFuzzTests(SynchronousTestCase):
    """No client message, whole or arbitrary, raises out of the protocol."""

    @settings(max_examples=200, deadline=None)
    @given(st.one_of(st.binary(max_size=200),
                     st.dictionaries(st.sampled_from(["op", "device", "x"]),
                                     st.one_of(st.text(max_size=10), st.integers(),
                                               st.none(), st.lists(st.integers(), max_size=3)),
                                     max_size=3).map(lambda d: json.dumps(d).encode())))
    def test_any_message(self, payload: bytes) -> None:
        """onMessage answers or ignores any payload without raising."""
        registry = DeviceRegistry(Clock())
        context = WebContext(registry, Clock())
        factory = LabSocketFactory(context)
        proto = factory.buildProtocol(None)
        assert isinstance(proto, LabSocketProtocol)
        sent: list[Any] = []
        proto.send_json = sent.append
        proto.onMessage(payload, False)
        proto.onClose(True, 1000, "")


class _Http(Protocol):
    """A raw HTTP/1.1 client connection: what it received, and whether it was closed."""

    def __init__(self) -> None:
        self.received = b""
        self.closed = False

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True


class IdleTimeoutTests(TestCase):
    """C{idle_timeout} closes idle HTTP connections, not WebSockets."""

    def setUp(self) -> None:
        self.registry = DeviceRegistry(reactor)
        self.registry.register(FakeActuator("stage"))
        section = validate(plugin.options, {"listen": "tcp:0:interface=127.0.0.1",
                                            "idle_timeout": 0.3})
        self.web = plugin.make_service(self.registry, section, reactor)
        self.web.startService()
        self.addCleanup(self.web.stopService)
        self.port = self.web.listener.port.getHost().port

    async def test_idle_http_closed_websocket_kept(self) -> None:
        """A keep-alive HTTP connection idle past C{idle_timeout} is closed by the
        lab; a WebSocket opened before it and idle as long stays open and answers."""
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
        from twisted.internet.task import deferLater

        from tests.polling import until
        ws_factory = _RecorderFactory(f"ws://127.0.0.1:{self.port}/ws")
        ws_factory.protocol = _Recorder
        await TCP4ClientEndpoint(reactor, "127.0.0.1", self.port).connect(ws_factory)
        ws = await ws_factory.opened
        self.addCleanup(ws.dropConnection, abort=True)
        http = _Http()
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), http)
        self.addCleanup(lambda: http.transport.abortConnection())  # type: ignore[attr-defined]
        http.transport.write(b"GET /api/devices HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await until(lambda: b"\r\n\r\n" in http.received, 30, "the HTTP response")
        self.assertTrue(http.received.startswith(b"HTTP/1.1 200"))
        self.assertFalse(http.closed)  # keep-alive: open after the response
        await until(lambda: http.closed, 30, "the idle HTTP connection closed by the lab")
        # the WebSocket has now been idle longer than the timeout, and stays so a while
        await deferLater(reactor, 1.0)
        self.assertEqual(ws.state, ws.STATE_OPEN)
        ws.sendMessage(b'{"op": "dance"}')
        errors = lambda: [json.loads(m) for m, b in ws_factory.messages  # noqa: E731
                          if not b and json.loads(m).get("type") == "error"]
        await until(errors, 30, "the WebSocket's answer")
        self.assertEqual(errors()[0]["error"], "BadMessage")


class HeaderTimeoutTests(TestCase):
    """C{header_timeout} cuts slow-header clients, not idle keep-alive connections."""

    def setUp(self) -> None:
        self.registry = DeviceRegistry(reactor)
        self.registry.register(FakeActuator("stage"))
        section = validate(plugin.options, {"listen": "tcp:0:interface=127.0.0.1",
                                            "header_timeout": 0.3, "idle_timeout": 30.0})
        self.web = plugin.make_service(self.registry, section, reactor)
        self.web.startService()
        self.addCleanup(self.web.stopService)
        self.port = self.web.listener.port.getHost().port

    async def connect(self) -> _Http:
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
        http = _Http()
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), http)
        self.addCleanup(lambda: http.closed or http.transport.abortConnection())  # type: ignore
        return http

    async def test_slow_headers_cut(self) -> None:
        """
        A client that sends its headers a byte every 50 ms (each byte resets
        twisted.web's idle timer) is cut once C{header_timeout} has passed
        since its first byte, with no response and a log line; another
        client is served meanwhile.
        """
        from twisted.internet.task import deferLater
        from twisted.logger import globalLogPublisher

        from tests.polling import until
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        slow = await self.connect()
        request = b"GET /api/devices HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
        sent = 0
        while not slow.closed and sent < len(request):
            slow.transport.write(request[sent:sent + 1])  # type: ignore[attr-defined]
            sent += 1
            await deferLater(reactor, 0.05)
        self.assertTrue(slow.closed)
        self.assertLess(sent, 40)  # cut after ~0.3 s, not at the end of the headers
        self.assertEqual(slow.received, b"")
        self.assertTrue([e for e in events if "headers took longer" in e.get("log_format", "")])
        fast = await self.connect()
        fast.transport.write(b"GET /api/devices HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # type: ignore
        await until(lambda: b"\r\n\r\n" in fast.received, 30, "the HTTP response")
        self.assertTrue(fast.received.startswith(b"HTTP/1.1 200"))

    async def test_idle_keep_alive_kept(self) -> None:
        """A keep-alive connection idle between requests for longer than
        C{header_timeout} is not cut; its next request is answered."""
        from twisted.internet.task import deferLater

        from tests.polling import until
        http = await self.connect()
        for _ in range(2):
            http.received = b""
            http.transport.write(b"GET /api/devices HTTP/1.1\r\nHost: x\r\n\r\n")  # type: ignore
            await until(lambda: b"\r\n\r\n" in http.received, 30, "the HTTP response")
            self.assertTrue(http.received.startswith(b"HTTP/1.1 200"))
            await deferLater(reactor, 0.8)
            self.assertFalse(http.closed)
