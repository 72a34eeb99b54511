# -*- test-case-name: tests.test_web_ws -*-
"""
Live updates over a WebSocket (autobahn's Twisted WebSocket).

The browser sends small JSON messages:

    {"op": "watch", "device": "camera"}     push this device's values and data
    {"op": "unwatch", "device": "camera"}
    {"op": "ack", "device": "camera"}       the last data message is drawn

and receives JSON text (C{{"type": "lab" | "value" | "position" | "data0d" |
"error", ...}}) and binary data messages (L{codec.pack_frame}: a header and
a raw array, for 1D spectra and 2D images).

Flow control is by credit: for each watched detector at most one data
message is in flight (sent, not yet acknowledged) and at most one waits
(the newest replaces it: latest frame wins), and the next grab starts only
when the browser has drawn the last one (and no sooner than C{max_fps}
allows).  A slow browser gets fewer frames; it never makes a queue grow or
the lab wait.
"""
from __future__ import annotations

import json
from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from twisted_lab.data import Export
from twisted_lab.errors import LabError
from twisted_lab.events import ADDED, CHANGED, DATA, OFFLINE, ONLINE, REMOVED, LabEvent
from twisted_lab.interfaces import IActuator, IDetector
from twisted_lab.protocols.web.api import SESSION_CHARS
from twisted_lab.protocols.web.codec import dumps, frame_image, pack_frame, to_json
from twisted_lab.protocols.web.context import WebContext, new_session_id

__all__ = ["LabSocketFactory", "LabSocketProtocol", "DataStream", "encode_export"]

#: Client messages are small; anything bigger closes the socket.
MAX_CLIENT_MESSAGE = 64 * 1024

#: Images with more pixels than this are reduced on a worker thread.
_THREAD_PIXELS = 512 * 512


def encode_export(device: str, export: Export, seq: int, max_side: int) -> bytes | dict[str, Any]:
    """
    One data message for a grab: a C{dict} (JSON text) for 0D values, the
    bytes of a binary message for 1D and 2D data (the first signal of that
    dimensionality; its first channel).
    """
    for signal in export.signals:
        if signal.dim in ("Data2D", "Data1D") and signal.data:
            array = signal.data[0]
            header: dict[str, Any] = {"type": "frame", "device": device, "dim": signal.dim,
                                      "seq": seq, "t": signal.timestamp, "units": signal.units,
                                      "label": signal.labels[0] if signal.labels else signal.name}
            if signal.dim == "Data1D":
                axis = signal.axes[0] if signal.axes else None
                header["x_label"] = axis.label if axis is not None else "index"
                header["x_units"] = axis.units if axis is not None else ""
                header["x"] = to_json(axis.data) if axis is not None and axis.size else None
                return pack_frame(header, array.astype("float32").ravel())
            header["full_shape"] = list(array.shape)
            return pack_frame(header, frame_image(array, max_side))
    values = []
    for signal in export.signals:
        for i, channel in enumerate(signal.data):
            label = signal.labels[i] if i < len(signal.labels) else f"{signal.name}[{i}]"
            flat = channel.ravel()
            values.append({"label": label, "units": signal.units,
                           "value": to_json(flat[0]) if flat.size == 1 else to_json(flat[:16])})
    return {"type": "data0d", "device": device, "seq": seq, "t": export.timestamp,
            "values": values}


class DataStream:
    """
    The data of one watched detector for one browser: one message in
    flight, one waiting slot (latest wins), grabs paced by acknowledgements.

    @param protocol: the socket to send on.
    @param device: the detector.
    """

    log = Logger()

    def __init__(self, protocol: LabSocketProtocol, device: Any) -> None:
        self.protocol = protocol
        self.context = protocol.context
        self.device = device
        self.name = device.name
        self.in_flight = False
        self.pending: Export | None = None
        self.grabbing = False
        self.seq = 0
        self.sent = 0
        self.dropped = 0
        self._last_sent = 0.0
        self._offered_during_grab = False
        self._timer: IDelayedCall | None = None
        self._stopped = False
        self._error_reported = False

    def start(self) -> None:
        """Start pulling data."""
        self.pump()

    def stop(self) -> None:
        """Stop pulling; a grab in progress is left to finish."""
        self._stopped = True
        self.pending = None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def pump(self) -> None:
        """Grab next, when nothing is in flight and the frame rate allows."""
        if self._stopped or self.in_flight or self.grabbing or self._timer is not None:
            return
        now = self.context.reactor.seconds()
        wait = self._last_sent + 1.0 / self.context.max_fps - now
        if wait > 0:
            self._timer = self.context.reactor.callLater(wait, self._tick)
            return
        self.grabbing = True
        self._offered_during_grab = False
        d: Deferred[Any] = self.device.grab()
        d.addCallbacks(self._grabbed, self._failed)
        d.addErrback(lambda f: self.log.failure("stream of {device} failed", f, device=self.name))

    def _tick(self) -> None:
        self._timer = None
        self.pump()

    def _grabbed(self, export: Any) -> None:
        self.grabbing = False
        self._error_reported = False
        if isinstance(export, Export) and not self._offered_during_grab:
            self.offer(export)  # a device that does not announce its grabs as events
        elif not self.in_flight:
            self.pump()

    def _failed(self, failure: Any) -> None:
        self.grabbing = False
        if self._stopped:
            return
        error = failure.value
        if not self._error_reported:
            self._error_reported = True
            self.protocol.send_json({"type": "error", "device": self.name,
                                     "error": getattr(error, "code", type(error).__name__),
                                     "message": str(error)})
        if not isinstance(error, LabError):
            self.log.failure("grab of {device} for a browser failed", failure, device=self.name)
        self._timer = self.context.reactor.callLater(1.0, self._tick)

    def offer(self, export: Export) -> None:
        """New data (ours or anyone's grab): send it, or keep it as the newest waiting."""
        self._offered_during_grab = True
        if self._stopped:
            return
        if self.in_flight:
            if self.pending is not None:
                self.dropped += 1
            self.pending = export
            return
        self._send(export)

    def _send(self, export: Export) -> None:
        self.in_flight = True
        self.seq += 1
        seq, side = self.seq, self.context.max_frame_side
        big = any(s.data and s.data[0].size > _THREAD_PIXELS for s in export.signals)
        if big:
            reactor = self.context.reactor
            d: Deferred[Any] = deferToThreadPool(reactor, reactor.getThreadPool(),
                                                 encode_export, self.name, export, seq, side)
        else:
            d = succeed(encode_export(self.name, export, seq, side))

        def send(message: bytes | dict[str, Any]) -> None:
            if self._stopped:
                return
            self._last_sent = self.context.reactor.seconds()
            self.sent += 1
            if isinstance(message, bytes):
                self.protocol.send_binary(message)
            else:
                self.protocol.send_json(message)

        d.addCallback(send)
        d.addErrback(lambda f: self.log.failure("encoding {device} data failed", f,
                                                device=self.name))

    def ack(self) -> None:
        """The browser drew the last message: send the waiting one or grab anew."""
        if not self.in_flight:
            return
        self.in_flight = False
        if self.pending is not None:
            export, self.pending = self.pending, None
            self._send(export)
        else:
            self.pump()


class LabSocketProtocol(WebSocketServerProtocol):
    """
    One browser: registry events for the device list, and values, positions
    and data of the devices it watches.

    Autobahn's C{maxMessagePayloadSize} bounds what the browser may send
    (L{MAX_CLIENT_MESSAGE}); our own data messages are bounded by the
    section's C{max_frame_side}, so that limit is lifted while we send one.
    """

    _log = Logger()
    factory: LabSocketFactory

    def __init__(self) -> None:
        super().__init__()
        self.session = ""
        self.streams: dict[str, DataStream] = {}
        self.pollers: dict[str, LoopingCall] = {}
        self.watched: set[str] = set()
        self._unsubscribe: Any = None
        self._positions: dict[str, Any] = {}

    @property
    def context(self) -> WebContext:
        """The section's shared state."""
        return self.factory.context

    def onConnect(self, request: Any) -> None:
        """Take the session id from the C{lab_session} cookie (or make one)."""
        cookie = request.headers.get("cookie", "")
        for part in cookie.split(";"):
            key, _, value = part.strip().partition("=")
            if key == "lab_session" and value and len(value) <= 64 and set(value) <= SESSION_CHARS:
                self.session = value
        self.session = self.session or new_session_id()

    def onOpen(self) -> None:
        """Subscribe to the registry."""
        self.factory.clients.add(self)
        self._unsubscribe = self.context.registry.subscribe(self._event)
        self.send_json({"type": "hello", "session": self.session,
                        "max_fps": self.context.max_fps})

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        """Stop every stream and poller."""
        self.factory.clients.discard(self)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for name in list(self.watched):
            self._unwatch(name)

    def send_json(self, message: dict[str, Any]) -> None:
        """Send one JSON text message (when open)."""
        if self.state == WebSocketServerProtocol.STATE_OPEN:
            self.sendMessage(dumps(message), isBinary=False)

    def send_binary(self, data: bytes) -> None:
        """Send one binary message (when open)."""
        if self.state == WebSocketServerProtocol.STATE_OPEN:
            limit: int = getattr(self, "maxMessagePayloadSize", 0)
            self.maxMessagePayloadSize = 0
            try:
                self.sendMessage(data, isBinary=True)
            finally:
                self.maxMessagePayloadSize = limit

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """Handle C{watch}, C{unwatch} and C{ack}; answer anything else with an error."""
        try:
            message = json.loads(payload)
            op, name = message["op"], str(message.get("device", ""))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            self.send_json({"type": "error", "error": "BadMessage",
                            "message": 'expected JSON {"op": ..., "device": ...}'})
            return
        if op == "watch":
            self._watch(name)
        elif op == "unwatch":
            self._unwatch(name)
        elif op == "ack":
            stream = self.streams.get(name)
            if stream is not None:
                stream.ack()
        else:
            self.send_json({"type": "error", "error": "BadMessage",
                            "message": f"unknown op {op!r}; known: watch, unwatch, ack"})

    def _watch(self, name: str) -> None:
        if name in self.watched:
            return
        try:
            device = self.context.registry.lookup(name)
        except LabError as e:
            self.send_json({"type": "error", "device": name, "error": e.code, "message": str(e)})
            return
        self.watched.add(name)
        Deferred.fromCoroutine(self._send_values(device)).addErrback(
            lambda f: self._log.failure("reading {device} for a browser failed", f, device=name))
        if IActuator.providedBy(device):
            poller = LoopingCall(self._poll_position, device)
            poller.clock = self.context.reactor
            self.pollers[name] = poller
            poller.start(self.context.position_interval, now=True).addErrback(
                lambda f: self._log.failure("polling {device} failed", f, device=name))
        if IDetector.providedBy(device):
            stream = DataStream(self, device)
            self.streams[name] = stream
            stream.start()

    def _unwatch(self, name: str) -> None:
        self.watched.discard(name)
        stream = self.streams.pop(name, None)
        if stream is not None:
            stream.stop()
        poller = self.pollers.pop(name, None)
        if poller is not None and poller.running:
            poller.stop()
        self._positions.pop(name, None)

    async def _send_values(self, device: Any) -> None:
        description = await device.describe()
        for pname in description.parameters:
            try:
                value = await device.get(pname)
            except LabError as e:
                self.send_json({"type": "value", "device": device.name, "parameter": pname,
                                "error": e.code, "message": str(e)})
                continue
            self.send_json({"type": "value", "device": device.name, "parameter": pname,
                            "value": value})

    def _poll_position(self, device: Any) -> Deferred[None]:
        d: Deferred[Any] = device.position()

        def got(position: Any) -> None:
            if self._positions.get(device.name) != position and device.name in self.watched:
                self._positions[device.name] = position
                self.send_json({"type": "position", "device": device.name, "value": position,
                                "units": getattr(device, "units", "")})

        def failed(f: Any) -> None:
            f.trap(LabError)

        return d.addCallbacks(got, failed)

    def _event(self, event: LabEvent) -> None:
        if event.kind in (ADDED, REMOVED, ONLINE, OFFLINE):
            self.send_json({"type": "lab", "kind": event.kind, "device": event.device})
            return
        if event.device not in self.watched:
            return
        if event.kind == CHANGED:
            self.send_json({"type": "value", "device": event.device,
                            "parameter": event.parameter, "value": event.value})
        elif event.kind == DATA:
            stream = self.streams.get(event.device)
            if isinstance(event.value, Export) and stream is not None:
                stream.offer(event.value)
            elif event.parameter == "position":
                self._positions[event.device] = event.value
                self.send_json({"type": "position", "device": event.device,
                                "value": event.value})


class LabSocketFactory(WebSocketServerFactory):
    """
    Builds L{LabSocketProtocol}s sharing one L{WebContext}.

    @param context: the section's shared state.
    """

    protocol = LabSocketProtocol  # type: ignore[assignment]

    def __init__(self, context: WebContext) -> None:
        super().__init__()
        self.context = context
        self.clients: set[LabSocketProtocol] = set()
        self.setProtocolOptions(maxMessagePayloadSize=MAX_CLIENT_MESSAGE,
                                maxFramePayloadSize=MAX_CLIENT_MESSAGE,
                                autoPingInterval=10.0, autoPingTimeout=30.0)

    def peers(self) -> list[dict[str, Any]]:
        """The connected browsers, for the wires view."""
        out = []
        for client in list(self.clients):
            sent = sum(s.sent for s in client.streams.values())
            dropped = sum(s.dropped for s in client.streams.values())
            out.append({"peer": str(client.peer), "state": "open",
                        "device": ", ".join(sorted(client.watched)),
                        "counters": {"frames_sent": sent, "frames_dropped": dropped}})
        return out
