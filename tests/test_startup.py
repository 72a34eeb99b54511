# -*- test-case-name: tests.test_startup -*-
"""
L{twisted_lab.startup}: the one-line start-up failure, and a lab that cannot
bind stops what already started.
"""
from __future__ import annotations

import errno
import socket
import time
from typing import Any, Generator

import zmq
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.error import CannotListenError
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from twisted_lab.config import parse_config
from twisted_lab.registry import DeviceRegistry
from twisted_lab.service import build_service
from twisted_lab.startup import StartupError, bind_reason, format_key


class MessageTests(TestCase):
    """The message and its parts."""

    def test_line(self) -> None:
        """Key, address, reason and a hint naming the key, in one line."""
        e = StartupError("leco.port", "tcp://127.0.0.1:12300", "address already in use")
        self.assertEqual(str(e), "[leco] port: cannot listen on tcp://127.0.0.1:12300: address "
                                 "already in use (another lab running? change [leco] port)")

    def test_format_key(self) -> None:
        """Dotted keys read as in the file."""
        self.assertEqual(format_key("plesty.serve[1].address"), "[plesty] serve[1].address")
        self.assertEqual(format_key("la4"), "[la4]")

    def test_reasons(self) -> None:
        """Twisted, ZeroMQ and OS errors give the same words."""
        in_use = OSError(errno.EADDRINUSE, "Address already in use")
        self.assertEqual(bind_reason(CannotListenError("127.0.0.1", 1, in_use)),
                         "address already in use")
        self.assertEqual(bind_reason(zmq.ZMQError(errno.EADDRINUSE)), "address already in use")
        self.assertEqual(bind_reason(OSError(errno.EADDRNOTAVAIL, "x")),
                         "address not available on this machine")


class LabStartTests(TestCase):
    """build_service + startService with a port taken."""

    @inlineCallbacks
    def test_stops_what_started(self) -> Generator[Any, Any, None]:
        """A PLESTY address taken after LECO started: StartupError naming the key,
        and the LECO Coordinator's port is free again."""
        held = socket.socket()
        held.bind(("127.0.0.1", 0))
        held.listen()
        self.addCleanup(held.close)
        port = held.getsockname()[1]
        free = socket.socket()
        free.bind(("127.0.0.1", 0))
        leco_port = free.getsockname()[1]
        free.close()
        config = parse_config({
            "lab": {"simulated": True},
            "leco": {"port": leco_port, "data_proxy": False},
            "plesty": {"serve": [{"device": "stage", "address": f"tcp://127.0.0.1:{port}"}]},
        }, "lab.toml")
        service = build_service(DeviceRegistry(reactor), config, reactor)
        e = self.assertRaises(StartupError, service.startService)
        self.assertEqual((e.key, e.address, e.reason),
                         ("plesty.serve[0].address", f"tcp://127.0.0.1:{port}",
                          "address already in use"))
        self.assertFalse(service.running)
        # the Coordinator lets its port go (after a reactor turn; ZeroMQ then
        # closes it in its I/O thread)
        deadline = time.monotonic() + 5
        while True:
            yield deferLater(reactor, 0.05, lambda: None)
            probe = socket.socket()
            try:
                probe.bind(("127.0.0.1", leco_port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
            finally:
                probe.close()
