# -*- test-case-name: tests.test_leco_interop -*-
"""
The LECO data protocol: C{topic | header(17) | payload...} over PUB/SUB.

  - L{ProxyService}: the XSUB/XPUB proxy (publishers connect to the XSUB
    port, 11100 by default; subscribers to the XPUB port, 11099), run on
    the reactor;
  - L{DataPublisher}: a PUB socket connected to the proxy's XSUB port;
  - L{RegistryPublisher}: publishes exported devices' events: parameter
    changes as C{{"<parameter>": value}}, new positions as
    C{{"position": x}}, grabs as C{{"<device>": {signals...}}} with each
    channel's raw array in an additional binary frame.  The topic is the
    device actor's full name (C{lab.stage}); the header type is 1 (JSON).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import zmq
from twisted.application.service import Service
from twisted.logger import Logger

from twisted_lab.access import AccessPolicy, CurveConfig, ZapRegistration, zap_handler
from twisted_lab.data import Export
from twisted_lab.errors import ConfigError
from twisted_lab.events import CHANGED, DATA, LabEvent
from twisted_lab.protocols.leco.export import to_json
from twisted_lab.protocols.leco.message import JSON, conversation_id
from twisted_lab.protocols.leco.rpc import dumps
from twisted_lab.protocols.zmqutil import ZmqConnection, open_connection, shared_context
from twisted_lab.ratelog import BadInputLog
from twisted_lab.registry import DeviceRegistry

__all__ = ["ProxyService", "DataPublisher", "RegistryPublisher", "data_frames",
           "export_frames", "INLINE_LIMIT", "MAX_SUBSCRIPTION", "MAX_TOPICS",
           "SUBSCRIBER_HWM"]

#: Largest subscription message a subscriber may send the proxy (bytes);
#: ZMQ drops a subscriber sending a bigger one before it is in memory (a
#: subscription costs memory per byte in every socket it passes).
MAX_SUBSCRIPTION = 256
#: Distinct topics subscribed through the proxy at once; subscriptions past
#: it are not passed on to the publishers (logged, rate-limited).
MAX_TOPICS = 1000

#: Messages the proxy keeps for one subscriber that does not read (ZeroMQ's
#: C{SNDHWM} on the XPUB; past it, that subscriber's messages are dropped).
#: A count, not bytes: with camera frames it is what bounds the memory a
#: stalled subscriber holds (16 frames, shared between subscribers).  Small
#: messages first fill the kernel's socket buffers, so a subscriber that
#: reads loses none.
SUBSCRIBER_HWM = 16

#: Exports with at most this many values also carry them inline in the JSON.
INLINE_LIMIT = 1000
_TYPE = bytes([JSON])


def data_frames(topic: bytes, value: Any, binary: Sequence[Any] | None = None,
                message_type: int = JSON) -> list[Any]:
    """
    The frames of one data message carrying C{value} as JSON.

    @param binary: additional frames, C{bytes} or buffers (sent without a
        copy when large: keep them unchanged until sent).
    """
    return [topic, conversation_id() + bytes([message_type]), dumps(value), *(binary or [])]


def export_frames(device: str, export: Export) -> tuple[dict[str, Any], list[Any]]:
    """
    The JSON content and binary frames for a grab: one frame per channel
    (C-order raw bytes, little-endian dtype named in the JSON).  A numeric
    channel's frame is a view of its array, not a copy (ZeroMQ sends large
    ones without copying either: a camera frame is not copied on the
    reactor); the export's arrays are not changed once grabbed.
    """
    frames: list[Any] = []
    signals = []
    total = sum(int(np.asarray(a).size) for s in export.signals for a in s.data)
    for signal in export.signals:
        channels = []
        for array in signal.data:
            a = np.ascontiguousarray(array)
            if a.dtype.byteorder == ">":
                a = a.astype(a.dtype.newbyteorder("<"))
            channels.append({"dtype": a.dtype.str, "shape": list(a.shape), "frame": len(frames)})
            if a.dtype.kind in "biufc" and a.ndim > 0:
                frames.append(a.data.cast("B"))
            else:
                frames.append(a.tobytes())
        entry = {"name": signal.name, "kind": signal.kind, "dim": signal.dim,
                 "units": signal.units, "labels": list(signal.labels),
                 "timestamp": signal.timestamp, "channels": channels}
        if total <= INLINE_LIMIT:
            entry["data"] = [np.asarray(a).tolist() for a in signal.data]
        signals.append(entry)
    return {device: {"name": export.name, "timestamp": export.timestamp,
                     "signals": signals}}, frames


class ProxyService(Service):
    """
    The data proxy: XSUB bound at C{xsub} (publishers), XPUB at C{xpub}
    (subscribers), forwarding both ways on the reactor.

    @ivar xsub_endpoint: the bound XSUB endpoint, once started.
    @ivar inproc_endpoint: an C{inproc://} endpoint of the same XSUB, once
        started: a publisher of this process (in the shared ZeroMQ context)
        connects there, and its frames are handed over in memory instead of
        through the loopback TCP stack.
    @ivar xpub_endpoint: the bound XPUB endpoint, once started.
    """

    log = Logger()

    def __init__(self, reactor: Any, xsub: str = "tcp://127.0.0.1:11100",
                 xpub: str = "tcp://127.0.0.1:11099", policy: AccessPolicy | None = None,
                 curve: CurveConfig | None = None, max_topics: int = MAX_TOPICS,
                 subscriber_hwm: int = SUBSCRIBER_HWM) -> None:
        self.reactor = reactor
        #: messages kept for one subscriber that does not read
        self.subscriber_hwm = subscriber_hwm
        #: messages passed on from publishers to subscribers
        self.forwarded = 0
        #: who may connect to either port (a ZAP allow-list; default loopback)
        self.policy = policy if policy is not None else AccessPolicy()
        self.curve = curve
        self._zap: list[ZapRegistration] = []
        self.max_topics = max_topics
        #: the topics subscribed and passed on to the publishers
        self.topics: set[bytes] = set()
        self.bad_input = BadInputLog(self.log, reactor)
        self.xsub_address, self.xpub_address = xsub, xpub
        self.xsub_endpoint: str | None = None
        self.inproc_endpoint: str | None = None
        self.xpub_endpoint: str | None = None
        self._xsub: ZmqConnection | None = None
        self._xpub: ZmqConnection | None = None

    def startService(self) -> None:
        zap = zap_handler(self.reactor, shared_context())
        self._zap = [zap.add("LECO data proxy (publishers)", self.policy, self.curve),
                     zap.add("LECO data proxy (subscribers)", self.policy, self.curve)]
        # large frames (camera images) are passed on without a copy
        self._xsub = open_connection(self.reactor, zmq.XSUB, self._from_publishers,
                                     options=self._zap[0].socket_options(), large_from=2)
        self._xpub = open_connection(self.reactor, zmq.XPUB, self._from_subscribers,
                                     options={**self._zap[1].socket_options(),
                                              zmq.MAXMSGSIZE: MAX_SUBSCRIPTION,
                                              zmq.SNDHWM: self.subscriber_hwm,
                                              zmq.XPUB_VERBOSE: 1})
        try:
            self.xsub_endpoint = self._xsub.bind(self.xsub_address)
            self.inproc_endpoint = self._xsub.bind(
                f"inproc://twisted-lab-data-proxy-{os.getpid()}-{id(self):x}")
            self.xpub_endpoint = self._xpub.bind(self.xpub_address)
        except BaseException:
            # nothing left on the reactor or bound: the caller may retry
            self._xsub.close()
            self._xpub.close()
            self._xsub = self._xpub = None
            for registration in self._zap:
                registration.close()
            self._zap = []
            raise
        Service.startService(self)
        self.log.info("LECO data proxy: publishers {xsub}, subscribers {xpub}",
                      xsub=self.xsub_endpoint, xpub=self.xpub_endpoint)

    def _from_publishers(self, frames: list[bytes]) -> None:
        if self._xpub is not None:
            self._xpub.send(frames)
            self.forwarded += 1

    def _from_subscribers(self, frames: list[bytes]) -> None:
        """
        (Un)subscriptions: the XPUB (verbose) passes every subscription and
        each topic's last unsubscription; each topic is passed on once, so
        L{topics} is the set the publishers hold, and a topic refused while
        the set was full is passed on when a later subscriber asks again.
        """
        if self._xsub is None or len(frames) != 1 or not frames[0]:
            return
        message = frames[0]
        topic = message[1:]
        if message[0] == 1:
            if topic in self.topics:
                return
            if len(self.topics) >= self.max_topics:
                self.bad_input.warn("topics", "LECO data proxy: not passing on a "
                                    "subscription, {count} topics are subscribed",
                                    count=len(self.topics))
                return
            self.topics.add(topic)
        elif message[0] == 0:
            if topic not in self.topics:
                return
            self.topics.discard(topic)
        self._xsub.send(frames)

    def stopService(self) -> None:
        Service.stopService(self)
        self.topics.clear()
        self.bad_input.flush()
        if self._xsub is not None and self.inproc_endpoint is not None:
            # a closed socket releases an inproc name only once ZeroMQ has
            # reaped it: unbind, so that a restart can bind it again
            try:
                self._xsub.socket.unbind(self.inproc_endpoint)
            except zmq.ZMQError:
                pass
        self.inproc_endpoint = None
        for sock in (self._xsub, self._xpub):
            if sock is not None:
                sock.close()
        self._xsub = self._xpub = None
        for registration in self._zap:
            registration.close()
        self._zap = []


class DataPublisher:
    """
    A PUB socket connected to a data proxy's XSUB port.

    @param address: the proxy's XSUB address.
    """

    log = Logger()

    def __init__(self, reactor: Any, address: str = "tcp://127.0.0.1:11100") -> None:
        self.socket = open_connection(reactor, zmq.PUB, lambda frames: None)
        self.socket.connect(address)

    def publish(self, topic: str | bytes, value: Any, binary: Sequence[Any] | None = None
                ) -> bool:
        """Publish C{value} (JSON) under C{topic}, with optional binary frames."""
        t = topic.encode() if isinstance(topic, str) else topic
        return self.socket.send(data_frames(t, value, binary))

    def close(self) -> None:
        """Close the socket."""
        self.socket.close()


class RegistryPublisher(Service):
    """
    Publish the events of exported devices on the data protocol.

    @param address: the proxy's XSUB address, or a callable returning it
        when the service starts (the endpoint a L{ProxyService} of the same
        process really bound, e.g. with port 0).
    @param topics: registry device name → topic (the actor's full name), or
        a callable returning it (evaluated per event: the namespace is
        learnt at sign-in).
    """

    log = Logger()

    def __init__(self, registry: DeviceRegistry, reactor: Any,
                 address: str | Callable[[], str | None],
                 topics: Mapping[str, Any]) -> None:
        self.registry = registry
        self.reactor = reactor
        self.address = address
        self.topics = dict(topics)
        self.publisher: DataPublisher | None = None
        self._unsubscribe: Any = None

    def startService(self) -> None:
        address = self.address() if callable(self.address) else self.address
        if not address:
            raise ConfigError("the LECO data publisher has no proxy address "
                              "(is the data proxy started?)")
        Service.startService(self)
        self.publisher = DataPublisher(self.reactor, address)
        self.log.info("publishing LECO data to {address}", address=address)
        self._unsubscribe = self.registry.subscribe(self.on_event)

    def stopService(self) -> None:
        Service.stopService(self)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self.publisher is not None:
            self.publisher.close()
            self.publisher = None

    def on_event(self, event: LabEvent) -> None:
        """Publish one registry event if it concerns an exported device."""
        entry = self.topics.get(event.device)
        if entry is None or self.publisher is None:
            return
        topic = (entry() if callable(entry) else entry).encode()
        if event.kind == CHANGED:
            value: Any = {event.parameter: to_json(event.value)}
            binary: list[Any] = []
        elif event.kind == DATA and isinstance(event.value, Export):
            value, binary = export_frames(event.device, event.value)
        elif event.kind == DATA:
            value, binary = {event.parameter or event.device: to_json(event.value)}, []
        else:
            return
        try:
            self.publisher.socket.send(data_frames(topic, value, binary))
        except Exception:
            self.log.failure("publishing {kind} of {device} failed", kind=event.kind,
                             device=event.device)
