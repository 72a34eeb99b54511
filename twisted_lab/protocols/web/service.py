# -*- test-case-name: tests.test_web_api -*-
"""
The C{[web]} service: one twisted.web site (static console, C{/api/},
C{/ws}) on one endpoint, the log ring installed while it runs, and the wire
reports read from the lab's other services.
"""
from __future__ import annotations

import importlib.resources
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from twisted.application.service import MultiService, Service
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger, globalLogPublisher
from twisted.internet.interfaces import IDelayedCall, ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from twisted.web.static import File
from zope.interface import implementer

from twisted_lab.access import AccessPolicy, AllowListFactory
from twisted_lab.interfaces import IWireReport
from twisted_lab.protocols.web.api import ApiResource
from twisted_lab.protocols.web.context import WebContext
from twisted_lab.protocols.web.ws import LabSocketFactory

__all__ = ["WebService", "LimitedRequest", "HeaderDeadlineChannel", "build_site",
           "collect_wires", "static_root", "ListenerService"]


class ListenerService(Service):
    """
    Listens on a server endpoint string while running, and keeps the port
    (its address is reported).  Startup fails when the port cannot be bound.

    @param reactor: the reactor.
    @param description: the endpoint string.
    @param factory: the protocol factory.
    """

    def __init__(self, reactor: Any, description: str, factory: Any) -> None:
        self.endpoint = serverFromString(reactor, description)
        self.description = description
        self.factory = factory
        self.port: Any = None

    def startService(self) -> None:
        """Listen; raise when listening fails at once."""
        failures: list[Any] = []
        self.endpoint.listen(self.factory).addCallbacks(self._listening, failures.append)
        if failures:
            failures[0].raiseException()
        super().startService()

    def _listening(self, port: Any) -> None:
        self.port = port

    def stopService(self) -> Any:
        """Stop listening."""
        super().stopService()
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()
        return None


def static_root() -> str:
    """The folder of the console's static files (shipped as package data)."""
    return str(importlib.resources.files("twisted_lab.protocols.web") / "static")


class LimitedRequest(Request):
    """
    A request whose body is kept only up to the site's C{max_body} bytes;
    beyond it the rest is discarded and C{body_too_large} is set (the API
    answers 413).
    """

    body_too_large = False
    _received = 0

    def gotLength(self, length: int | None) -> None:
        """Refuse to store a body announced as too large."""
        limit = getattr(getattr(self.channel, "site", None), "max_body", None)
        if limit is not None and length is not None and length > limit:
            self.body_too_large = True
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        """Store the body up to the limit, count the rest."""
        if self.body_too_large:
            return
        limit = getattr(getattr(self.channel, "site", None), "max_body", None)
        self._received += len(data)
        if limit is not None and self._received > limit:
            self.body_too_large = True
            return
        super().handleContentChunk(data)


class HeaderDeadlineChannel(HTTPChannel):
    """
    An HTTP/1.1 channel that gives each request C{header_timeout} seconds,
    from its first byte, to finish its request line and headers.

    twisted.web's own timeout (C{idle_timeout}) restarts with every byte
    received, so a client sending a header a byte at a time ("slowloris")
    holds a connection for ever; this one is aborted, with a log line.  An
    idle keep-alive connection (no byte of a next request yet) is left to
    C{idle_timeout}.

    @ivar header_timeout: seconds; the site's C{header_timeout}.
    """

    log = Logger()
    header_timeout = 10.0
    _header_call: IDelayedCall | None = None
    _in_request = False

    def dataReceived(self, data: bytes) -> None:
        """Start the header deadline at the first byte of a request."""
        if not self._in_request and self._header_call is None and data:
            self._header_call = self.callLater(self.header_timeout, self._headers_late)
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        """The headers are in: no deadline until the next request starts."""
        self._cancel_header_deadline()
        self._in_request = True
        super().allHeadersReceived()

    def requestDone(self, request: Any) -> None:
        """The request is answered: the next one starts at its first byte."""
        self._in_request = False
        super().requestDone(request)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_header_deadline()
        super().connectionLost(reason)

    def _cancel_header_deadline(self) -> None:
        call, self._header_call = self._header_call, None
        if call is not None and call.active():
            call.cancel()

    def _headers_late(self) -> None:
        self._header_call = None
        if self.transport is None:
            return
        self.log.info("web: closed a connection from {peer} whose request headers took "
                      "longer than {timeout} s", peer=str(self.transport.getPeer()),
                      timeout=self.header_timeout)
        if ITCPTransport.providedBy(self.transport):
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()


class _LabSite(Site):
    requestFactory = LimitedRequest
    # HTTP/1.1 only (twisted.web's default channel would negotiate HTTP/2 over
    # TLS when the h2 package is installed; the lab does not install it)
    protocol = HeaderDeadlineChannel  # type: ignore[assignment]

    def log(self, request: Any) -> None:
        """No access log: the console polls; the API logs its errors itself."""

    def __init__(self, resource: Resource, max_body: int, idle_timeout: float,
                 reactor: Any = None, header_timeout: float = 10.0) -> None:
        # an HTTP connection with no request in progress is closed after
        # idle_timeout; a WebSocket's upgrade request never ends, so twisted.web
        # does not time it out (autobahn's pings watch it instead)
        super().__init__(resource, timeout=idle_timeout, reactor=reactor)
        self.max_body = max_body
        self.header_timeout = header_timeout
        self.displayTracebacks = False

    def buildProtocol(self, addr: Any) -> Any:
        """A L{HeaderDeadlineChannel} with the site's C{header_timeout}."""
        channel = super().buildProtocol(addr)
        channel.header_timeout = self.header_timeout
        return channel


def build_site(context: WebContext, sockets: LabSocketFactory | None = None) -> Site:
    """The site: C{/} the console, C{/api/} the HTTP API, C{/ws} the WebSocket."""
    root = File(static_root(), defaultType="application/octet-stream")
    root.contentTypes.update({".js": "text/javascript", ".css": "text/css",
                              ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml"})
    root.putChild(b"api", ApiResource(context))
    root.putChild(b"ws", WebSocketResource(sockets or LabSocketFactory(context)))
    return _LabSite(root, context.max_body, context.idle_timeout, context.reactor,
                    context.header_timeout)


def _walk(service: Any, section: str, out: list[dict[str, Any]]) -> None:
    report = IWireReport(service, None)
    if report is not None:
        try:
            entry = dict(report.wire_report())
        except Exception as e:  # a broken reporter must not break the console
            entry = {"listeners": [], "peers": [], "error": str(e)}
        entry.setdefault("listeners", [])
        entry.setdefault("peers", [])
        entry["protocol"] = section
        entry["service"] = service.name or section
        out.append(entry)
    for child in list(service) if isinstance(service, MultiService) else []:
        _walk(child, section, out)


def collect_wires(root: Any, skip: Any = None) -> list[dict[str, Any]]:
    """
    The wire reports of every service under C{root} (each protocol section
    is one child), in tree order; a section with no reporter is listed with
    its running state only.
    """
    out: list[dict[str, Any]] = []
    if root is None:
        return out
    for child in root:
        if child is skip or child.name == "devices":
            continue
        section = child.name or "?"
        found: list[dict[str, Any]] = []
        _walk(child, section, found)
        if not found:
            found.append({"protocol": section, "service": section, "listeners": [], "peers": [],
                          "running": bool(child.running)})
        out.extend(found)
    return out


@implementer(IWireReport)
class WebService(MultiService):
    """
    Serves the console and API on one endpoint.

    @param context: the section's shared state.
    @param listen: a server endpoint string (C{tcp:8765:interface=127.0.0.1}).
    """

    log = Logger()

    def __init__(self, context: WebContext, listen: str,
                 policy: AccessPolicy | None = None) -> None:
        super().__init__()
        self.context = context
        self.listen = listen
        self.socket_factory = LabSocketFactory(context)
        self.site = build_site(context, self.socket_factory)
        #: the allow-list wrapper of the listener (clients elsewhere are refused)
        self.allow_factory = AllowListFactory(self.site, policy or AccessPolicy(),
                                              "web console")
        self.listener = ListenerService(context.reactor, listen, self.allow_factory)
        self.listener.setServiceParent(self)
        context.wires = self.wire_reports

    def wire_reports(self) -> list[dict[str, Any]]:
        """The reports of the lab's protocol services (this one included)."""
        root = self.parent  # the lab (build_service puts every section under it)
        if root is None:
            return [dict(self.wire_report(), protocol=self.name or "web",
                         service=self.name or "web")]
        return collect_wires(root)

    def wire_report(self) -> dict[str, Any]:
        """Where the console listens and how many browsers watch."""
        listeners = [self.listen]
        address = self.listener.port.getHost() if self.listener.port is not None else None
        if address is not None and hasattr(address, "port"):
            host = f"[{address.host}]" if ":" in address.host else address.host
            listeners = [f"http://{host}:{address.port}/"]
        return {"listeners": listeners, "peers": self.socket_factory.peers()}

    def startService(self) -> None:
        """Install the log ring, then listen."""
        globalLogPublisher.addObserver(self.context.log_ring)
        super().startService()
        self.log.info("web console at {listen}", listen=self.listen)

    def stopService(self) -> Any:
        """Stop listening, release the web sessions' leases, remove the log ring."""
        d = super().stopService()
        for lease in list(self.context.leases.values()):
            self.context.registry.release(lease)
        self.context.leases.clear()
        globalLogPublisher.removeObserver(self.context.log_ring)
        return d
