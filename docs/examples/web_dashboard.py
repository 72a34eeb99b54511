"""
Embedding twisted_lab in an existing Twisted application: a small
C{twisted.web} site that shows every device of the lab as JSON, served from
the same process and the same registry as the lab's protocols.

Run it with::

    twistd -n -y docs/examples/web_dashboard.py            # the simulated lab
    LAB_CONFIG=lab.toml twistd -n -y docs/examples/web_dashboard.py

then open http://127.0.0.1:8080/devices and http://127.0.0.1:8080/devices/stage.
"""
from __future__ import annotations

import json
import os
from typing import Any

from twisted.application import service, strports
from twisted.internet.defer import Deferred
from twisted.web import resource, server

from twisted_lab.config import Config, default_config, load_config
from twisted_lab.errors import LabError
from twisted_lab.registry import DeviceRegistry
from twisted_lab.service import build_service


def _plain(value: Any) -> Any:
    """JSON-friendly form of a device value."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


class DeviceResource(resource.Resource):
    """C{GET /devices/NAME}: the device's description and parameter values."""

    isLeaf = True

    def __init__(self, registry: DeviceRegistry, name: str) -> None:
        super().__init__()
        self.registry = registry
        self.name = name

    async def _render(self) -> dict[str, Any]:
        device = await self.registry.get(self.name)
        description = await device.describe()
        values = {}
        for parameter in description.parameters:
            try:
                values[parameter] = _plain(await device.get(parameter))
            except LabError as e:
                values[parameter] = {"error": e.code, "message": str(e)}
        return {"name": self.name, "online": device.online, "kind": description.kind,
                "description": description.as_dict(), "values": values}

    def render_GET(self, request: Any) -> Any:
        d = Deferred.fromCoroutine(self._render())

        def done(body: dict[str, Any]) -> None:
            request.setHeader(b"content-type", b"application/json")
            request.write(json.dumps(body).encode())
            request.finish()

        def failed(failure: Any) -> None:
            request.setResponseCode(404 if failure.check(LabError) else 500)
            request.setHeader(b"content-type", b"application/json")
            request.write(json.dumps({"error": str(failure.value)}).encode())
            request.finish()

        d.addCallbacks(done, failed)
        return server.NOT_DONE_YET


class DevicesResource(resource.Resource):
    """C{GET /devices}: the device names; C{/devices/NAME}: one device."""

    def __init__(self, registry: DeviceRegistry) -> None:
        super().__init__()
        self.registry = registry

    def getChild(self, path: bytes, request: Any) -> resource.Resource:
        if not path:
            return self
        return DeviceResource(self.registry, path.decode("utf-8", "replace"))

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({"devices": self.registry.names()}).encode()


def make_service(config: Config, reactor: Any, web: str = "tcp:8080:interface=127.0.0.1"
                 ) -> service.MultiService:
    """
    The application's own service tree: its web site, plus the lab.

    @param config: the lab config.
    @param web: the web site's endpoint string.
    """
    top = service.MultiService()
    registry = DeviceRegistry(reactor)
    build_service(registry, config, reactor).setServiceParent(top)   # the lab
    root = resource.Resource()
    root.putChild(b"devices", DevicesResource(registry))
    site = strports.service(web, server.Site(root), reactor=reactor)
    site.setName("web")
    site.setServiceParent(top)                                      # the app's own part
    top.registry = registry  # type: ignore[attr-defined]
    return top


if __name__ == "__builtin__" or __name__ == "builtins":  # twistd -y
    from twisted.internet import reactor as _reactor

    _config = load_config(os.environ["LAB_CONFIG"]) if "LAB_CONFIG" in os.environ else default_config()
    application = service.Application("web-dashboard")
    make_service(_config, _reactor).setServiceParent(application)
