# -*- test-case-name: tests.test_plesty_server -*-
"""
The PLESTY server: one ROUTER socket per exported registry device.

L{PlestyServerConnection} is the thin socket half (on the shared
L{twisted_lab.protocols.zmqutil.ZmqConnection} reader: every pending message
per reactor wakeup, requests as C{bytes}, array replies sent zero-copy);
L{twisted_lab.protocols.plesty.handler.PlestyHandler} is the pure half.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

import zmq
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from twisted_lab.access import (AccessPolicy, CurveConfig, Role, ZapRegistration,
                                role_of_frame, zap_handler)
from twisted_lab.flow import PeerSendBudget
from twisted_lab.interfaces import IWireReport

from twisted_lab.protocols.plesty.handler import DEFAULT_MAX_MESSAGE_SIZE, PlestyHandler
from twisted_lab.protocols.plesty.message import client_name
from twisted_lab.protocols.zmqutil import (ZmqConnection, end_context, open_connection,
                                           service_context)
from twisted_lab.registry import DeviceRegistry

__all__ = ["PlestyServerConnection", "PlestyServerService", "DEFAULT_SEND_HWM"]

#: Replies that may wait for one client (ZeroMQ's send high-water mark):
#: room for a client that pipelines requests; what large replies may pin is
#: bounded in bytes by the connection's L{PeerSendBudget} instead.
DEFAULT_SEND_HWM = 1000


class PlestyServerConnection:
    """
    A ROUTER socket answering PLESTY requests through a L{PlestyHandler}.

    @ivar link: the L{ZmqConnection} (made by
        L{twisted_lab.protocols.zmqutil.open_connection}, bound).
    """

    log = Logger()

    def __init__(self, reactor: Any, handler: PlestyHandler, address: str,
                 context: zmq.Context[Any], options: dict[int, Any],
                 default_role: Role = Role.OPERATE) -> None:
        """
        Bind the ROUTER socket.

        @raise zmq.ZMQError: the address cannot be bound (nothing is left open).
        """
        self.handler = handler
        #: the role of a message without a ZAP User-Id
        self.default_role = default_role
        #: requests received per client identity (for the wire report)
        self.requests: Counter[bytes] = Counter()
        #: the requests being carried out (a Deferred's id → its frames)
        self.inflight: dict[int, list[bytes]] = {}
        #: large replies not yet written out, per client identity
        self.send_budget = PeerSendBudget(reactor, self._not_reading)
        self.link: ZmqConnection = open_connection(
            reactor, zmq.ROUTER, self.messageReceived, bind=address, context=context,
            linger=0, options=options, track_properties=True,
            name=f"PlestyServer({handler.device_name})")

    def send(self, frames: list[Any]) -> bool:
        """Send a reply (see L{ZmqConnection.send})."""
        return self.link.send(frames)

    def close(self, linger: int = 0) -> None:
        """Close the socket, keeping unsent replies C{linger} ms."""
        self.send_budget.clear()
        if linger:
            self.link.setsockopt(zmq.LINGER, linger)
        self.link.close()

    def messageReceived(self, frames: list[bytes]) -> None:
        if frames and len(self.requests) < 10000:
            self.requests[bytes(frames[0])] += 1
        role = role_of_frame(self.link.current_frame, self.default_role)
        d = Deferred.fromCoroutine(self.handler.handle(frames, role))
        if not d.called:
            key = id(d)
            self.inflight[key] = frames
            d.addBoth(self._answered, key)
        d.addCallback(self._reply, frames)
        d.addErrback(lambda f: self.log.failure("answering a request to {device} failed", f,
                                                device=self.handler.device_name))

    def _answered(self, result: Any, key: int) -> Any:
        self.inflight.pop(key, None)
        return result

    def refuse_inflight(self) -> int:
        """
        At stop: answer every request still being carried out with an error
        (C{ConnectionAbortedError}), before the socket closes.

        @return: how many were answered.
        """
        inflight, self.inflight = self.inflight, {}
        for frames in inflight.values():
            reply = self.handler.shutdown_reply(frames)
            if reply is not None:
                self.send(reply)
        return len(inflight)

    def _reply(self, frames: list[Any] | None, request: list[bytes]) -> None:
        if frames is None or self.link.send_within(frames, self.send_budget):
            return
        if self.send_budget.refused(bytes(frames[0])):
            # past its byte budget: a short error instead of more data
            reply = self.handler.error_reply(
                request, "BufferError", f"the client does not read its replies: more than "
                f"{self.send_budget.limit} bytes of replies wait for it; this reply was "
                f"not sent")
            if reply is not None:
                self.send(reply)
            return
        client = client_name(frames[0])
        self.log.warn("{device}: the reply to {client} was not delivered (the client is "
                      "gone, or does not read: at most {hwm} replies wait for one "
                      "client); the request itself was carried out; the client's "
                      "session and locks are dropped", device=self.handler.device_name,
                      client=client, hwm=self.link.socket.getsockopt(zmq.SNDHWM))
        self.handler.drop_client(client)

    def _not_reading(self, identity: bytes, reason: str) -> None:
        """
        A client went past its byte budget: logged (once each time, and
        rate-limited), its session dropped.
        """
        client = client_name(identity)
        self.handler.bad_input.warn(
            (client, "budget"), "{device}: client {client} does not read its replies "
            "({reason}); it gets error replies instead of data until it reads, and its "
            "session and locks are dropped", device=self.handler.device_name, client=client,
            reason=reason)
        self.handler.drop_client(client)


@implementer(IWireReport)
class PlestyServerService(Service):
    """
    Serves one registry device at one ZMQ address.

    @ivar address: the address really bound, once started (the port is
        chosen when the configured one is C{*}).
    """

    log = Logger()

    def __init__(self, registry: DeviceRegistry, device_name: str, address: str, reactor: Any,
                 strict: bool = False, lease_ttl: float | None = 60.0,
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
                 send_hwm: int = DEFAULT_SEND_HWM,
                 policy: AccessPolicy | None = None, curve: CurveConfig | None = None) -> None:
        self.send_hwm = send_hwm
        self.registry = registry
        #: who may connect (ZAP allow-list) and with which role
        self.policy = policy if policy is not None else AccessPolicy()
        self.curve = curve
        self._zap: ZapRegistration | None = None
        self.device_name = device_name
        self.configured_address = address
        self.address = address
        self.reactor = reactor
        self.max_message_size = max_message_size
        self.handler = PlestyHandler(registry, device_name, reactor, strict, lease_ttl,
                                     max_message_size)
        self.connection: PlestyServerConnection | None = None
        self._context: zmq.Context[Any] | None = None
        self.setName(f"plesty:{device_name}")

    def startService(self) -> None:
        """Bind the ROUTER socket (fails startup when the address is taken)."""
        self._context = service_context()
        try:
            self._zap = zap_handler(self.reactor, self._context).add(
                f"PLESTY server of {self.device_name}", self.policy, self.curve)
            self.connection = PlestyServerConnection(
                self.reactor, self.handler, self.configured_address, self._context, {
                **self._zap.socket_options(),
                zmq.ROUTER_MANDATORY: 1,
                # a hard cap: ZMQ drops a peer whose message is far beyond the
                # limit, before it is ever in memory; up to it, the handler answers
                zmq.MAXMSGSIZE: 2 * self.max_message_size + 65536,
                # at most this many replies wait for a client that does not
                # read (memory bound: about send_hwm of its largest replies);
                # past it the reply is not sent and the client is dropped
                zmq.SNDHWM: self.send_hwm,
            }, self.policy.role)
        except BaseException:
            self._close()
            raise
        assert self.connection.link.endpoint is not None
        self.address = self.connection.link.endpoint
        super().startService()
        self.log.info("serving {device} over PLESTY at {address} (requests over {limit} "
                      "bytes get an error reply; over {cap} bytes ZeroMQ cuts the client's "
                      "connection without a reply)", device=self.device_name,
                      address=self.address, limit=self.max_message_size,
                      cap=2 * self.max_message_size + 65536)

    def wire_report(self) -> dict[str, Any]:
        """The bound address and the clients seen, with their requests and resources."""
        peers = []
        requests = self.connection.requests if self.connection is not None else Counter()
        for identity, count in requests.most_common(100):
            name = client_name(identity)
            client = self.handler.clients.get(name)
            peers.append({"peer": name, "device": self.device_name,
                          "state": "connected" if client is not None else "seen",
                          "counters": {"requests": count},
                          "resources": list(client.resources) if client is not None else []})
        return {"listeners": [self.address] if self.running else [], "peers": peers}

    def stopService(self) -> None:
        """Close the socket and release the locks PLESTY clients held."""
        super().stopService()
        if self.connection is not None:
            # let ZMQ send the refusals of requests in flight before the socket goes
            self.connection.close(500 if self.connection.refuse_inflight() else 0)
        self._close()
        self.handler.release_all()

    def _close(self) -> None:
        end_context(self._context, self.connection, self._zap)
        self.connection, self._zap, self._context = None, None, None
