# -*- test-case-name: tests.test_plesty_plugin -*-
"""
The C{[plesty]} config section: which registry devices are served at which
ZMQ address, and which PLESTY servers are imported as devices.

    [plesty]
    serve = [{device = "powermeter", address = "tcp://127.0.0.1:5555"}]
    import = [{name = "demo", address = "tcp://127.0.0.1:5600", timeout = 5.0}]
    strict = false
    lease_ttl = 60.0
    max_message_size = 16777216
    allow = ["127.0.0.1/32", "192.168.10.0/24"]   # who may connect (ZAP)
    role = "operate"                              # read, operate (admin: same here)
    roles = {"192.168.10.0/24" = "read"}
    curve_secret_key = ""                         # optional CURVE key file
"""
from __future__ import annotations

from typing import Any, Mapping

from twisted.application.service import IService

from twisted_lab.access import ACCESS_OPTIONS, CURVE_OPTIONS, curve_from, policy_from
from twisted_lab.options import Option
from twisted_lab.protocols.base import ProtocolPlugin, require_positive
from twisted_lab.protocols.plesty.handler import DEFAULT_MAX_MESSAGE_SIZE
from twisted_lab.registry import DeviceRegistry
from twisted_lab.startup import guard

__all__ = ["PlestyPlugin", "plugin"]

#: Default addresses of the simulated lab (DESIGN.md §6).
DEFAULT_PORTS = {"powermeter": 5555, "stage": 5556, "camera": 5557}

_SERVE = {
    "device": Option(str, doc="the registry device to serve"),
    "address": Option(str, doc='the ZMQ address to bind, e.g. "tcp://127.0.0.1:5555"'),
}
_IMPORT = {
    "name": Option(str, doc="the name of the device in the registry"),
    "address": Option(str, doc='the PLESTY server, e.g. "tcp://127.0.0.1:5555"'),
    "timeout": Option(float, 5.0, "seconds to wait for a reply without its own timeout"),
    "keepalive": Option(float, 2.0, "seconds of silence before a keep-alive request"),
    "client_id": Option(str, "", "a stable client identity (locks survive reconnection); "
                        "empty for a random one"),
    "resources": Option(list, [], "resources to reserve at connect",
                        items={"*": Option(str)}),
}


class PlestyPlugin(ProtocolPlugin):
    """PLESTY device servers and clients over ZeroMQ."""

    name = "plesty"
    description = "PLESTY device servers (ZMQ ROUTER) and clients (DEALER), plesty-lib 0.6 compatible"
    options = {
        "serve": Option(list, [], "devices to serve: tables of device and address",
                        items=_SERVE),
        "import": Option(list, [], "PLESTY servers to import: tables of name, address, "
                         "timeout", items=_IMPORT),
        "strict": Option(bool, False, "behave exactly as plesty-lib 0.6 (no lease expiry, "
                         "ping, request ids or binary arrays)"),
        "lease_ttl": Option(float, 60.0, "seconds a client's lock lives without a request "
                            "(not in strict mode)"),
        "max_message_size": Option(int, DEFAULT_MAX_MESSAGE_SIZE,
                                   "the largest request answered, in bytes"),
        **ACCESS_OPTIONS,
        **CURVE_OPTIONS,
    }

    def default_section(self, device_names: list[str]) -> dict[str, Any]:
        """Serve the power meter on 127.0.0.1:5555, the stage on :5556, the camera on :5557."""
        return {"serve": [{"device": name, "address": f"tcp://127.0.0.1:{port}"}
                          for name, port in DEFAULT_PORTS.items() if name in device_names]}

    def check(self, section: Mapping[str, Any]) -> None:
        """The lease time must be positive."""
        require_positive(section, "plesty", "lease_ttl")

    def build(self, registry: DeviceRegistry, section: Mapping[str, Any],
              reactor: Any) -> IService:
        """One server per served device and one import per server."""
        from twisted_lab.protocols.plesty.export import PlestyServerService
        from twisted_lab.protocols.plesty.remote import PlestyImportService

        top = self.multi_service()
        policy = policy_from(section, "plesty")
        curve = curve_from(section, "plesty")
        for i, entry in enumerate(section["serve"]):
            guard(PlestyServerService(registry, entry["device"], entry["address"], reactor,
                                      strict=section["strict"], lease_ttl=section["lease_ttl"],
                                      max_message_size=section["max_message_size"],
                                      policy=policy, curve=curve),
                  f"plesty.serve[{i}].address", entry["address"]).setServiceParent(top)
        for entry in section["import"]:
            PlestyImportService(registry, entry["name"], entry["address"], reactor,
                                timeout=entry["timeout"], keepalive=entry["keepalive"],
                                client_id=entry["client_id"] or None,
                                resources=entry["resources"] or None,
                                ).setServiceParent(top)
        return top


plugin = PlestyPlugin()
