# -*- test-case-name: tests.test_guard -*-
"""
Limits on what TCP clients can hold open: a connection cap (total and per
host), a handshake deadline, an optional idle deadline, and TCP keepalive so
that half-open connections (a peer that vanished without a FIN) end.

A server factory owns one L{ConnectionGuard}; its C{buildProtocol} asks
L{ConnectionGuard.admit} and returns L{Refused} when refused, and its
protocols call L{ConnectionGuard.opened}, L{ConnectionGuard.handshaken},
L{ConnectionGuard.active} and L{ConnectionGuard.closed}.  The guard does not
wrap the protocol, so the transports' fast paths (L{twisted_lab.fastpath})
still apply.
"""
from __future__ import annotations

import socket
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger

from twisted_lab.ratelog import BadInputLog

__all__ = ["ConnectionGuard", "Refused", "MAX_CONNECTIONS", "MAX_PER_HOST",
           "HANDSHAKE_TIMEOUT", "KEEPALIVE_IDLE"]

#: Connections open at once on one listener, at most.
MAX_CONNECTIONS = 256
#: Connections open at once from one host, at most.
MAX_PER_HOST = 128
#: Seconds a client has to complete its handshake.
HANDSHAKE_TIMEOUT = 10.0
#: Seconds of silence before TCP keepalive probes start (then 3 probes 10 s apart).
KEEPALIVE_IDLE = 60


def _keepalive(transport: Any) -> None:
    """Turn on TCP keepalive with short timers, where the transport allows."""
    set_keepalive = getattr(transport, "setTcpKeepAlive", None)
    if set_keepalive is None:
        return
    try:
        set_keepalive(True)
        handle = transport.getHandle()
        for option, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE), ("TCP_KEEPINTVL", 10),
                              ("TCP_KEEPCNT", 3)):
            number = getattr(socket, option, None)
            if number is not None:
                handle.setsockopt(socket.IPPROTO_TCP, number, value)
    except (OSError, AttributeError):
        pass


class Refused(Protocol):
    """
    Answers a refused connection: writes C{message} (if any), then closes.
    """

    def __init__(self, message: bytes = b"") -> None:
        self.message = message

    def connectionMade(self) -> None:
        assert self.transport is not None
        if self.message:
            self.transport.write(self.message)
        self.transport.loseConnection()


class _Entry:
    __slots__ = ("host", "handshake", "idle")

    def __init__(self, host: str) -> None:
        self.host = host
        self.handshake: IDelayedCall | None = None
        self.idle: IDelayedCall | None = None


class ConnectionGuard:
    """
    Connection limits of one listener.

    @param clock: for the deadlines.
    @param what: the listener's name in log lines (C{"PyMoDAQ"}).
    @param handshake_timeout: seconds from accept to L{handshaken}; C{None}
        for no deadline.
    @param idle_timeout: seconds without L{active} before the connection is
        closed; C{None} (the default) for long-lived quiet clients.
    @ivar refused: connections refused since the start.
    @ivar expired: connections closed by a deadline since the start.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, what: str, max_connections: int = MAX_CONNECTIONS,
                 max_per_host: int = MAX_PER_HOST,
                 handshake_timeout: float | None = HANDSHAKE_TIMEOUT,
                 idle_timeout: float | None = None) -> None:
        self.clock = clock
        self.what = what
        self.max_connections = max_connections
        self.max_per_host = max_per_host
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self._entries: dict[Any, _Entry] = {}
        self._per_host: dict[str, int] = {}
        self.refused = 0
        self.expired = 0
        self.bad = BadInputLog(self.log, clock)

    @property
    def count(self) -> int:
        """Connections open now."""
        return len(self._entries)

    def admit(self, host: str) -> str | None:
        """
        Whether a new connection from C{host} may open.

        @return: C{None} to admit it, else why it is refused (logged here).
        """
        reason = None
        if len(self._entries) >= self.max_connections:
            reason = f"{len(self._entries)} connections open (max_connections)"
        elif self._per_host.get(host, 0) >= self.max_per_host:
            reason = f"{self._per_host[host]} connections open from that host (max_per_host)"
        if reason is not None:
            self.refused += 1
            self.bad.warn(("refused", host), "refused {what} connection from {peer}: {reason}",
                          what=self.what, peer=host, reason=reason)
        return reason

    def opened(self, proto: Any, transport: Any, host: str) -> None:
        """C{proto} was accepted: count it, start its deadlines and keepalive."""
        entry = self._entries[proto] = _Entry(host)
        self._per_host[host] = self._per_host.get(host, 0) + 1
        _keepalive(transport)
        if self.handshake_timeout is not None:
            entry.handshake = self.clock.callLater(self.handshake_timeout, self._expire, proto,
                                                   transport, "did not complete its handshake "
                                                   f"within {self.handshake_timeout} s")
        self.active(proto, transport)

    def handshaken(self, proto: Any) -> None:
        """C{proto} completed its handshake: end its handshake deadline."""
        entry = self._entries.get(proto)
        if entry is not None and entry.handshake is not None:
            if entry.handshake.active():
                entry.handshake.cancel()
            entry.handshake = None

    def active(self, proto: Any, transport: Any) -> None:
        """C{proto} received something: restart its idle deadline."""
        if self.idle_timeout is None:
            return
        entry = self._entries.get(proto)
        if entry is None:
            return
        if entry.idle is not None and entry.idle.active():
            entry.idle.reset(self.idle_timeout)
        else:
            entry.idle = self.clock.callLater(self.idle_timeout, self._expire, proto, transport,
                                              f"was idle for {self.idle_timeout} s")

    def _expire(self, proto: Any, transport: Any, why: str) -> None:
        entry = self._entries.get(proto)
        if entry is None:
            return
        self.expired += 1
        self.bad.warn(("expired", entry.host), "closing {what} connection from {peer}: it {why}",
                      what=self.what, peer=entry.host, why=why)
        abort = getattr(transport, "abortConnection", None)
        (abort or transport.loseConnection)()

    def closed(self, proto: Any) -> None:
        """C{proto}'s connection is gone: forget it and its deadlines."""
        entry = self._entries.pop(proto, None)
        if entry is None:
            return
        left = self._per_host[entry.host] - 1
        if left:
            self._per_host[entry.host] = left
        else:
            del self._per_host[entry.host]
        for timer in (entry.handshake, entry.idle):
            if timer is not None and timer.active():
                timer.cancel()
