# -*- test-case-name: tests.test_leco_locallink -*-
"""
In-process links between a Coordinator and the Components of its process.

A lab process usually runs our Coordinator I{and} the actors exporting its
devices (and the director importing remote actors).  Over ZeroMQ every
message between them would cross the loopback twice per hop (DEALER ->
libzmq I/O thread -> TCP -> I/O thread -> ROUTER).  A L{LocalHub} hands
those messages over in memory instead: the Coordinator sees each link as one
more ROUTER identity, so sign-in, name checks, routing, heartbeats, expiry,
errors and federation are the same code as for remote Components.

Delivery is never re-entrant: a message sent on a link is queued and handed
over from the reactor (L{LocalHub.pump}), after the sender's call returned,
in the order sent; messages the Coordinator routes to a link while the hub
is pumping are appended to the same queue.  So a Component's C{send} never
runs the receiver's code inside it, and a chain of local calls does not
grow the stack.

Link identities start with a zero byte and are longer than five bytes, so
they cannot equal a ZeroMQ identity: libzmq generates five-byte identities
starting with a zero byte, and refuses routing ids chosen by a peer that
start with one.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, Sequence

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from twisted_lab.protocols.leco.message import ADDITIONAL_FROM
from twisted_lab.protocols.zmqutil import COPY_THRESHOLD

__all__ = ["LocalHub", "LocalLink", "LINK_PREFIX"]

#: Every link identity starts with this (see the module docstring).
LINK_PREFIX = b"\x00twisted_lab.local."


def _as_received(frames: Sequence[Any]) -> list[Any]:
    """
    Frames as a Component receives them from ZeroMQ (its DEALER's
    C{large_from}): C{bytes}, but for additional payload frames of
    L{COPY_THRESHOLD} bytes or more, which come as read-only views of the
    buffers they were sent as (a camera frame is not copied on the reactor
    thread on its way to an in-process director, and cannot be changed
    through its receiver's arrays).
    """
    out: list[Any] = []
    for i, frame in enumerate(frames):
        if type(frame) is bytes:
            out.append(frame)
            continue
        view = memoryview(frame)
        out.append(view.toreadonly() if i >= ADDITIONAL_FROM and view.nbytes >= COPY_THRESHOLD
                   else view.tobytes())
    return out


class LocalLink:
    """
    One Component's end of a L{LocalHub}: the same C{send}/C{close} as a
    L{twisted_lab.protocols.zmqutil.ZmqConnection} DEALER.

    @ivar identity: the identity the Coordinator knows this link by.
    @ivar closed: C{True} once L{close}d.
    """

    def __init__(self, hub: LocalHub, identity: bytes,
                 on_message: Callable[[list[bytes]], object]) -> None:
        self.hub = hub
        self.identity = identity
        self.on_message = on_message
        self.closed = False

    def send(self, frames: Sequence[Any]) -> bool:
        """
        Queue a message for the Coordinator.

        @param frames: C{bytes} or buffers, as for a DEALER (keep buffers
            unchanged until delivered).
        @return: C{False} when the link is closed or the Coordinator is not
            listening (the message is dropped, as ZeroMQ would while
            disconnected).
        """
        if self.closed:
            return False
        return self.hub.from_link(self, frames)

    def close(self) -> None:
        """Detach from the hub (idempotent); queued messages to us are dropped."""
        if not self.closed:
            self.closed = True
            self.hub.detach(self)


class LocalHub:
    """
    The Coordinator's end: links keyed by identity, and one delivery queue.

    @param reactor: an C{IReactorTime}.
    @param receive: the Coordinator's handler of ROUTER messages (identity
        first, then the LECO frames).

    @ivar open: the Coordinator accepts messages (set by the Coordinator
        while its ROUTER is bound); messages from links are dropped otherwise.
    """

    log = Logger()

    def __init__(self, reactor: Any, receive: Callable[[list[Any]], None]) -> None:
        self.reactor = reactor
        self.open = False
        self._receive = receive
        self._links: dict[bytes, LocalLink] = {}
        self._queue: deque[tuple[LocalLink | None, list[Any]]] = deque()
        self._pumping = False
        self._scheduled: IDelayedCall | None = None
        self._count = 0

    def connect(self, on_message: Callable[[list[bytes]], object]) -> LocalLink:
        """
        A new link; C{on_message} receives the Coordinator's messages to it
        (frames as C{bytes}, no identity).
        """
        self._count += 1
        link = LocalLink(self, LINK_PREFIX + str(self._count).encode(), on_message)
        self._links[link.identity] = link
        return link

    def detach(self, link: LocalLink) -> None:
        """Forget a link (L{LocalLink.close} calls this)."""
        if self._links.get(link.identity) is link:
            del self._links[link.identity]

    @staticmethod
    def is_link(identity: bytes) -> bool:
        """C{True} for a link identity (open or closed), never for a ZeroMQ one."""
        return identity.startswith(LINK_PREFIX)

    @property
    def pending(self) -> int:
        """Messages queued and not yet delivered."""
        return len(self._queue)

    # -- queueing ----------------------------------------------------------------

    def from_link(self, link: LocalLink, frames: Sequence[Any]) -> bool:
        """Queue a link's message for the Coordinator (see L{LocalLink.send})."""
        if not self.open:
            self.log.debug("dropped a message from {identity!r}: the Coordinator is not "
                           "listening", identity=link.identity)
            return False
        self._queue.append((None, [link.identity, *frames]))
        self._kick()
        return True

    def to_link(self, frames: list[Any]) -> bool:
        """
        Queue a Coordinator message (C{frames[0]} is a link identity).

        @return: C{False} if no open link has that identity (dropped, as a
            ROUTER drops a message to an identity that disconnected).
        """
        link = self._links.get(frames[0])
        if link is None:
            self.log.debug("dropped a message to closed link {identity!r}",
                           identity=frames[0])
            return False
        self._queue.append((link, frames[1:]))
        self._kick()
        return True

    def _kick(self) -> None:
        if not self._pumping and self._scheduled is None:
            self._scheduled = self.reactor.callLater(0, self.pump)

    # -- delivery ----------------------------------------------------------------

    def pump(self) -> None:
        """
        Deliver every queued message, including those queued while
        delivering.  Call it only where running a receiver's code is safe
        (from the reactor: the Coordinator calls it after each ROUTER read).
        """
        if self._scheduled is not None:
            if self._scheduled.active():
                self._scheduled.cancel()
            self._scheduled = None
        if self._pumping:
            return
        self._pumping = True
        queue = self._queue
        try:
            while queue:
                link, frames = queue.popleft()
                try:
                    if link is None:
                        if self.open:
                            self._receive(frames)
                    elif not link.closed:
                        link.on_message(_as_received(frames))
                except Exception:
                    self.log.failure("delivering an in-process LECO message failed")
        finally:
            self._pumping = False
