# -*- test-case-name: tests.test_zmq_restart -*-
"""
Every ZeroMQ service that binds can stop and start again at once on the
same fixed port (zmqutil's context policy: a binding service owns its
context and ends it on stop).

With one shared context, a closed listener lingers in libzmq's I/O thread
for a moment, so a restart on the same port sometimes met C{EADDRINUSE}
(about one in four restarts with a peer connected, measured while writing
these tests).  Each test restarts a service several times, each time with a
peer whose ZMTP handshake (ZAP included) completed, and checks that the
service is bound again on the same address and that a new peer is served.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import zmq
from twisted.application.service import Service
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zmq.utils.monitor import recv_monitor_message

from tests.labproc import free_ports
from twisted_lab.protocols.leco.coordinator import CoordinatorService
from twisted_lab.protocols.leco.datapub import ProxyService
from twisted_lab.protocols.plesty.export import PlestyServerService
from twisted_lab.protocols.zmqutil import end_context, open_connection, service_context
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeDevice

#: Restarts per service.
RESTARTS = 20
#: Wall-clock seconds a peer may take to complete its handshake (generous: CI is loaded).
HANDSHAKE_DEADLINE = 20.0


class _Peer:
    """A plain pyzmq socket in a context of its own, watched by a monitor."""

    def __init__(self, context: zmq.Context[Any], kind: int, address: str) -> None:
        self.socket = context.socket(kind)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.monitor = self.socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self.socket.connect(address)

    def handshake_done(self) -> bool:
        """C{True} once ZMTP (and the server's ZAP check) accepted us."""
        if not self.monitor.poll(0):
            return False
        event = recv_monitor_message(self.monitor)
        return bool(event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED)

    def close(self) -> None:
        self.socket.disable_monitor()
        self.monitor.close(0)
        self.socket.close(0)


class _RestartMixin:
    """Start, connect a peer, stop, start again on the same port: repeatedly."""

    reactor: MemoryReactorClock
    assertEqual: Callable[..., None]

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.context: zmq.Context[Any] = zmq.Context()
        self.addCleanup(self.context.destroy, 0)  # type: ignore[attr-defined]

    def pump_until(self, condition: Callable[[], bool], what: str) -> None:
        """Run the service's readers (as the reactor would) until C{condition()}."""
        deadline = time.monotonic() + HANDSHAKE_DEADLINE
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"not reached within {HANDSHAKE_DEADLINE} s: {what}")
            self.reactor.advance(0)
            for reader in list(self.reactor.getReaders()):
                reader.doRead()
            time.sleep(0.002)

    def stop(self, service: Service) -> None:
        result = service.stopService()
        self.reactor.advance(1)  # a Coordinator's sign-out pause
        if result is not None:
            self.assertEqual(self.successResultOf(result), None)  # type: ignore[attr-defined]

    def restart(self, service: Service, addresses: Callable[[], list[str]],
                peer_kind: int) -> None:
        for round_ in range(RESTARTS):
            service.startService()
            self.assertEqual(addresses(), self.fixed, f"restart {round_}")
            peer = _Peer(self.context, peer_kind, self.fixed[0])
            try:
                self.pump_until(peer.handshake_done, f"a peer's handshake, restart {round_}")
            finally:
                self.stop(service)
                peer.close()
        self.assertEqual(self.reactor.getReaders(), [], "readers left after the last stop")


class CoordinatorRestartTests(_RestartMixin, SynchronousTestCase):
    def test_restart_on_fixed_port(self) -> None:
        """A LECO Coordinator restarts at once on its fixed port."""
        [port] = free_ports(1)
        self.fixed = [f"tcp://127.0.0.1:{port}"]
        service = CoordinatorService("N1", self.fixed[0], self.reactor)
        self.restart(service, lambda: [service.endpoint], zmq.DEALER)


class ProxyRestartTests(_RestartMixin, SynchronousTestCase):
    def test_restart_on_fixed_ports(self) -> None:
        """A LECO data proxy restarts at once on its two fixed ports."""
        xsub, xpub = free_ports(2)
        self.fixed = [f"tcp://127.0.0.1:{xsub}", f"tcp://127.0.0.1:{xpub}"]
        service = ProxyService(self.reactor, *self.fixed)
        self.restart(service, lambda: [service.xsub_endpoint, service.xpub_endpoint],
                     zmq.PUB)


class PlestyRestartTests(_RestartMixin, SynchronousTestCase):
    def test_restart_on_fixed_port(self) -> None:
        """A PLESTY server restarts at once on its fixed port."""
        [port] = free_ports(1)
        self.fixed = [f"tcp://127.0.0.1:{port}"]
        registry = DeviceRegistry()
        registry.register(FakeDevice("oven"))
        service = PlestyServerService(registry, "oven", self.fixed[0], self.reactor)
        self.restart(service, lambda: [service.address], zmq.DEALER)


class InprocPeerTests(SynchronousTestCase):
    def test_inproc_peer_joins_the_binding_context(self) -> None:
        """
        A connection to an C{inproc://} endpoint a service bound in its own
        context is made in that context (inproc is context-local), receives
        from it, and is closed (off the reactor) when the context ends.
        """
        reactor = MemoryReactorClock()
        context = service_context()
        received: list[list[bytes]] = []
        server = open_connection(reactor, zmq.PULL, received.append, context=context,
                                 bind="inproc://restart-tests-inproc", linger=0)
        peer = open_connection(reactor, zmq.PUSH, lambda frames: None,
                               connect="inproc://restart-tests-inproc", linger=0)
        self.assertTrue(peer.send([b"hello"]))
        deadline = time.monotonic() + HANDSHAKE_DEADLINE
        while not received and time.monotonic() < deadline:
            server.doRead()
        self.assertEqual(received, [[b"hello"]])
        end_context(context, server)
        self.assertTrue(peer.closed)
        self.assertTrue(context.closed)
        self.assertEqual(reactor.getReaders(), [])
