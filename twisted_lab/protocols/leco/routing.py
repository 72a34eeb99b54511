# -*- test-case-name: tests.test_leco_routing -*-
"""
The LECO Coordinator's routing decision, socket-free (spec leco.md, the
Coordinator): who may send, and where a message goes.

L{route} reads one message as the ROUTER received it (C{identity, version,
receiver, sender, header, payload...}) against the Coordinator's directory
and says what to do with it; L{twisted_lab.protocols.leco.coordinator}
does it (sockets, logs, replies).  A message is:

  1. I{malformed}: fewer than five frames, another version, a header of
     the wrong length or no sender;
  2. I{refused}: a local sender whose name another connection signed in
     (C{DUPLICATE_NAME}), a local sender that did not sign in, or a message
     of an unknown node that is not a Coordinator signing in or out
     (C{NOT_SIGNED_IN}), or a node's Coordinator connection sending as
     another node (C{NOT_SIGNED_IN}, L{Route.target}: the node it is);
     C{sign_in}/C{sign_out} are let through unsigned;
  3. for I{the Coordinator itself} (C{COORDINATOR} or C{ns.COORDINATOR});
  4. for a I{local} Component, by its ROUTER identity;
  5. for another I{node}, over the link to its Coordinator;
  6. I{unknown}: the receiver is not signed in here (C{RECEIVER_UNKNOWN}),
     or its node is not known (C{NODE_UNKNOWN}).

Routing also records liveness: a known sender's heartbeat is set to C{now}.
"""
from __future__ import annotations

from typing import Any, Generic, Mapping, NamedTuple, Sequence, TypeVar

from twisted_lab.access import Role
from twisted_lab.protocols.leco.message import HEADER_LENGTH, VERSION_BYTE, split_name
from twisted_lab.protocols.leco.rpc import (DUPLICATE_NAME, NODE_UNKNOWN, NOT_SIGNED_IN,
                                            RECEIVER_UNKNOWN)

__all__ = ["MALFORMED", "REFUSED", "OWN", "LOCAL", "NODE", "UNKNOWN", "COORDINATOR",
           "Local", "Route", "route"]

COORDINATOR = b"COORDINATOR"

#: What to do with a message (L{Route.action}).
MALFORMED, REFUSED, OWN, LOCAL, NODE, UNKNOWN = (
    "malformed", "refused", "own", "local", "node", "unknown")

L = TypeVar("L")


class Local:
    """
    A Component signed in here: its ROUTER identity, when it was last heard,
    and the role its connection was given (L{twisted_lab.access.Role}).
    """

    __slots__ = ("identity", "heartbeat", "role")

    def __init__(self, identity: bytes, heartbeat: float, role: Role = Role.ADMIN) -> None:
        self.identity, self.heartbeat, self.role = identity, heartbeat, role


class Route(NamedTuple, Generic[L]):
    """
    The decision for one message.

    @ivar action: L{MALFORMED}, L{REFUSED}, L{OWN}, L{LOCAL}, L{NODE} or L{UNKNOWN}.
    @ivar target: the receiver's ROUTER identity (L{LOCAL}), the node link
        (L{NODE}), the sending connection's own node when it sent as another
        (L{REFUSED}), else C{None}.
    @ivar code: the LECO error code (L{REFUSED}, L{UNKNOWN}), else 0.
    @ivar data: the error's data (L{UNKNOWN}: the receiver or the node name).
    """

    action: str
    target: Any = None
    code: int = 0
    data: Any = None


_MALFORMED: Route[Any] = Route(MALFORMED)
_OWN: Route[Any] = Route(OWN)


def _small_payload(frames: Sequence[Any]) -> bool:
    """
    The message has a first payload frame received as C{bytes}: a large one
    (a C{zmq.Frame}, never copied) is never a sign-in, and is not searched.
    """
    return len(frames) > 5 and isinstance(frames[5], bytes)


def route(frames: Sequence[bytes], now: float, namespace: bytes,
          local: Mapping[bytes, Local], node_ids: Mapping[bytes, list[Any]],
          nodes: Mapping[bytes, L]) -> Route[L]:
    """
    Decide what to do with one message received by the ROUTER.

    @param frames: C{identity, version, receiver, sender, header, payload...};
        the payload frames may be C{zmq.Frame}s (large ones, uncopied).
    @param now: the clock's time (a known sender's heartbeat is set to it).
    @param namespace: this node's namespace.
    @param local: name → L{Local} of the Components signed in here.
    @param node_ids: ROUTER identity → C{[namespace, heartbeat, ...]} of the other
        Coordinators signed in to us.
    @param nodes: namespace → our link to the Coordinator of that node.
    """
    n = len(frames)
    if n < 5 or frames[1] != VERSION_BYTE or len(frames[4]) != HEADER_LENGTH \
            or not frames[3]:
        return _MALFORMED
    identity, receiver, sender = frames[0], frames[2], frames[3]
    s_ns, s_nm = split_name(sender)
    if not s_ns or s_ns == namespace:
        entry = local.get(s_nm)
        if entry is not None:
            if entry.identity != identity:
                return Route(REFUSED, code=DUPLICATE_NAME)
            entry.heartbeat = now
        elif not (_small_payload(frames)
                  and (b'"sign_in"' in frames[5] or b'"sign_out"' in frames[5])):
            return Route(REFUSED, code=NOT_SIGNED_IN)
    else:
        node = node_ids.get(identity)
        if node is not None and node[0] != s_ns:
            return Route(REFUSED, node[0], NOT_SIGNED_IN)
        if node is not None:
            node[1] = now
        elif not (s_nm == COORDINATOR and _small_payload(frames)
                  and b"coordinator_sign_" in frames[5]):
            return Route(REFUSED, code=NOT_SIGNED_IN)
    if receiver == COORDINATOR or receiver == namespace + b"." + COORDINATOR:
        return _OWN
    r_ns, r_nm = split_name(receiver)
    if not r_ns or r_ns == namespace:
        target = local.get(r_nm)
        if target is None:
            return Route(UNKNOWN, code=RECEIVER_UNKNOWN,
                         data=receiver.decode("utf-8", "replace"))
        return Route(LOCAL, target.identity)
    link = nodes.get(r_ns)
    if link is None:
        return Route(UNKNOWN, code=NODE_UNKNOWN, data=r_ns.decode("utf-8", "replace"))
    return Route(NODE, link)
