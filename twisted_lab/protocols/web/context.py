# -*- test-case-name: tests.test_web_api -*-
"""
What the HTTP API and the WebSocket share: the registry, the settings of
the C{[web]} section, the log ring, the wire reports, and the web sessions'
leases.
"""
from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from twisted_lab.interfaces import IActuator, IDetector
from twisted_lab.leases import Lease, Owner
from twisted_lab.protocols.web.logbuffer import LogRing
from twisted_lab.registry import DeviceRegistry

__all__ = ["WebContext", "device_summary", "origin_of", "new_session_id"]

#: The protocol name of web sessions as lease owners.
PROTOCOL = "web"


def new_session_id() -> str:
    """A fresh, unguessable session id."""
    return uuid.uuid4().hex[:16]


def origin_of(device: Any) -> dict[str, Any]:
    """
    Where a device comes from: C{{"local": True}} or, for a device imported
    over a protocol, C{{"local": False, "protocol": ..., "peer": ...}}.

    A device may say it itself with an C{origin} attribute (a C{dict});
    otherwise the package of its class tells the protocol, and its C{peer}
    or C{address} attribute the peer.
    """
    own = getattr(device, "origin", None)
    if isinstance(own, dict):
        return dict(own)
    module = type(device).__module__
    prefix = "twisted_lab.protocols."
    if module.startswith(prefix):
        protocol = module[len(prefix):].split(".")[0]
        peer = (getattr(device, "peer", None) or getattr(device, "address", None)
                or getattr(device, "remote_name", None) or "")
        if not peer and getattr(device, "host", None) and getattr(device, "port", None):
            peer = f"{device.host}:{device.port}"
        return {"local": False, "protocol": protocol, "peer": str(peer)}
    return {"local": True}


def _kind(device: Any) -> str:
    if IActuator.providedBy(device):
        return "actuator"
    if IDetector.providedBy(device):
        return "detector"
    return "device"


def device_summary(registry: DeviceRegistry, name: str) -> dict[str, Any]:
    """One row of the device list: name, kind, dims, units, origin, online, busy, leases."""
    device = registry.lookup(name)
    holders = sorted({str(lease.owner) for lease in registry.leases.leases()
                      if any(r == name or r.startswith(name + "/") for r in lease.resources)})
    return {
        "name": name, "kind": _kind(device), "dims": list(getattr(device, "dims", ()) or ()),
        "units": str(getattr(device, "units", "") or ""), "origin": origin_of(device),
        "online": bool(getattr(device, "online", True)), "busy": bool(getattr(device, "busy", False)),
        "leased_by": holders,
    }


@dataclass
class WebContext:
    """
    The shared state of one C{[web]} section.

    @ivar registry: the lab's registry.
    @ivar reactor: the reactor.
    @ivar read_only: refuse every write.
    @ivar token: the write token, or C{None} when writes need none.
    @ivar max_body: the largest request body accepted, in bytes.
    @ivar idle_timeout: seconds an HTTP connection may stay idle (no request
        in progress) before it is closed; WebSockets are not cut (autobahn
        pings them).
    @ivar header_timeout: seconds a request may take, from its first byte,
        to send its request line and headers (slow-header clients).
    @ivar max_fps: the highest frame rate sent to one browser per device.
    @ivar max_frame_side: images are reduced so no side is longer.
    @ivar position_interval: seconds between position pushes of a watched actuator.
    @ivar log_ring: the recent log events.
    @ivar wires: returns the wire reports of the lab's protocol services.
    @ivar leases: the leases web sessions took through the API, by id.
    """

    registry: DeviceRegistry
    reactor: Any
    read_only: bool = False
    token: str | None = None
    max_body: int = 1024 * 1024
    idle_timeout: float = 60.0
    header_timeout: float = 10.0
    max_fps: float = 30.0
    max_frame_side: int = 1024
    position_interval: float = 0.1
    log_ring: LogRing = field(default_factory=LogRing)
    wires: Callable[[], list[dict[str, Any]]] = list
    leases: dict[str, Lease] = field(default_factory=dict)

    def owner(self, session: str) -> Owner:
        """The lease owner of a web session: C{Owner("web", session)}."""
        return Owner(PROTOCOL, session)

    def token_ok(self, given: str | None) -> bool:
        """C{True} when writes need no token or C{given} is the token."""
        if self.token is None:
            return True
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())
