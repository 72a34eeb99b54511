# -*- test-case-name: tests.test_pymodaq_plugin -*-
"""
The C{[pymodaq]} config section: listeners (server role, importing PyMoDAQ
instruments) and exports (client role, serving registry devices to a PyMoDAQ
main computer).

Example::

    [pymodaq]
    listen = ["tcp:6341:interface=127.0.0.1"]
    version = "4.4"
    allow = ["127.0.0.1/32", "192.168.1.0/24"]   # who may connect; others refused

    # TLS instead (Twisted endpoint string; real PyMoDAQ 4 clients cannot
    # speak TLS, so this is for a TLS tunnel such as stunnel on their side):
    # listen = ["ssl:6341:interface=0.0.0.0:privateKey=lab.key:certKey=lab.crt"]

    [[pymodaq.export]]
    device = "camera"
    server = "tcp:host=192.168.1.10:port=6341"
    role = "GRABBER"

    [[pymodaq.import]]
    name = "spectro_pc"
    host = "192.168.1.20"
    type = "GRABBER"
"""
from __future__ import annotations

from typing import Any, Mapping

from twisted.application import strports
from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred
from zope.interface import implementer

from twisted_lab.access import ACCESS_OPTIONS, AllowListFactory, policy_from
from twisted_lab.interfaces import IWireReport
from twisted_lab.options import Option
from twisted_lab.protocols.base import ProtocolPlugin
from twisted_lab.protocols.pymodaq.export import PyMoDAQClientFactory, PyMoDAQExportService
from twisted_lab.protocols.pymodaq.codec import VERSIONS
from twisted_lab.protocols.guard import (HANDSHAKE_TIMEOUT, MAX_CONNECTIONS, MAX_PER_HOST,
                                         ConnectionGuard)
from twisted_lab.protocols.pymodaq.imports import (FORGET_AFTER, MAX_CLIENTS, MAX_SETTINGS,
                                                   PyMoDAQServerFactory)
from twisted_lab.protocols.pymodaq.message import DEFAULT_MAX_SIZE
from twisted_lab.registry import DeviceRegistry
from twisted_lab.startup import guard

__all__ = ["PyMoDAQPlugin", "PyMoDAQService", "plugin", "DEFAULT_LISTEN", "DEFAULT_SERVER"]

#: The default listener: PyMoDAQ's port, loopback only.
DEFAULT_LISTEN = "tcp:6341:interface=127.0.0.1"
#: The default PyMoDAQ main computer of an export.
DEFAULT_SERVER = "tcp:host=127.0.0.1:port=6341"

_VERSION = Option(str, "4.4", "PyMoDAQ wire version: 4.4, 4.3, 4.2, 4.1.3, 4.1 or legacy (≤ 4.0)",
                  choices=tuple(VERSIONS))

_EXPORT = {
    "device": Option(str, doc="the registry device to export"),
    "server": Option(str, DEFAULT_SERVER, "client endpoint of the PyMoDAQ main computer"),
    "role": Option(str, "", "GRABBER or ACTUATOR; empty: ACTUATOR for actuators, else GRABBER",
                   choices=("", "GRABBER", "ACTUATOR")),
    "version": Option(str, "", "wire version for this server (empty: the section's)",
                      choices=("",) + tuple(VERSIONS)),
}

_IMPORT = {
    "name": Option(str, doc="the device name to give a matching client"),
    "host": Option(str, "", "match the client's address (empty: any)"),
    "type": Option(str, "", "match GRABBER or ACTUATOR (empty: any)",
                   choices=("", "GRABBER", "ACTUATOR")),
    "contains": Option(str, "", "match a text in the client's settings (empty: any)"),
}


@implementer(IWireReport)
class PyMoDAQService(MultiService):
    """The listeners and exports; closes client connections on stop."""

    listen: list[str] = []

    def wire_report(self) -> dict[str, Any]:
        """The configured listeners and the connected PyMoDAQ clients."""
        peers = []
        for factory in self.server_factories:
            for proto in list(factory.connections):
                device = getattr(proto.device, "name", "") if proto.device is not None else ""
                peers.append({"peer": proto.peer, "state": proto.client_type or "connecting",
                              "device": device})
        return {"listeners": list(self.listen) if self.running else [], "peers": peers}

    def __init__(self) -> None:
        super().__init__()
        self.server_factories: list[PyMoDAQServerFactory] = []
        #: the allow-list wrapper of the listeners (its C{refused} count)
        self.allow_factory: AllowListFactory | None = None

    def stopService(self) -> Deferred[None]:
        """Stop listening and exporting; drop connected PyMoDAQ clients."""
        d: Deferred[None] = super().stopService()
        for factory in self.server_factories:
            factory.stop()
        return d


class PyMoDAQPlugin(ProtocolPlugin):
    """PyMoDAQ 4.x TCP/IP, both roles."""

    name = "pymodaq"
    description = "PyMoDAQ 4.x TCP/IP: import connecting clients, export devices to a server"
    options = {
        "listen": Option(list, [DEFAULT_LISTEN], "server endpoints PyMoDAQ clients connect to",
                         items={"*": Option(str)}),
        "version": _VERSION,
        "max_message_size": Option(int, DEFAULT_MAX_SIZE,
                                   "largest message accepted (bytes); bigger closes the connection"),
        "call_timeout": Option(float, 10.0, "seconds a call to an imported client waits"),
        "grab_dim": Option(str, "2D", "grab command sent to GRABBER clients: Send Data <dim>",
                           choices=("0D", "1D", "2D", "ND")),
        "max_clients": Option(int, MAX_CLIENTS,
                              "imported client devices kept at most (online or offline)"),
        "forget_after": Option(float, FORGET_AFTER,
                               "seconds an offline imported device keeps its name"),
        "max_connections": Option(int, MAX_CONNECTIONS,
                                  "client connections open at once, at most; more are closed"),
        "max_per_host": Option(int, MAX_PER_HOST, "client connections from one host, at most"),
        "handshake_timeout": Option(float, HANDSHAKE_TIMEOUT,
                                    "seconds a client has to send its type"),
        "max_settings_size": Option(int, MAX_SETTINGS,
                                    "largest settings XML (Infos, Info_xml) parsed, in "
                                    "characters; bigger closes the connection"),
        "export": Option(list, [], "registry devices served to PyMoDAQ main computers",
                         items=_EXPORT),
        "import": Option(list, [], "names for connecting clients, first match wins",
                         items=_IMPORT),
        # a connecting PyMoDAQ client is an instrument (it becomes a device):
        # it sends no commands, so only the allow-list applies, not roles
        "allow": ACCESS_OPTIONS["allow"],
    }

    def default_section(self, device_names: list[str]) -> dict[str, Any]:
        """Listen on 6341 (loopback); no exports (no PyMoDAQ main computer by default)."""
        return {"listen": [DEFAULT_LISTEN], "export": []}

    def build(self, registry: DeviceRegistry, section: Mapping[str, Any],
              reactor: Any) -> IService:
        """The listeners and export connections."""
        top = PyMoDAQService()
        version = section["version"]
        max_size = section["max_message_size"]
        if section["listen"]:
            factory = PyMoDAQServerFactory(registry, reactor, version, max_size,
                                           section["call_timeout"], section["import"],
                                           section["grab_dim"], section["max_clients"],
                                           section["forget_after"],
                                           ConnectionGuard(reactor, "PyMoDAQ",
                                                           section["max_connections"],
                                                           section["max_per_host"],
                                                           section["handshake_timeout"]),
                                           section["max_settings_size"])
            top.server_factories.append(factory)
            top.listen = list(section["listen"])
            guarded = AllowListFactory(factory, policy_from(section, "pymodaq"),
                                       "PyMoDAQ listener")
            top.allow_factory = guarded
            for i, description in enumerate(section["listen"]):
                guard(strports.service(description, guarded, reactor=reactor),
                      f"pymodaq.listen[{i}]", description).setServiceParent(top)
        for export in section["export"]:
            client = PyMoDAQClientFactory(registry, export["device"], export["role"],
                                          export["version"] or version, max_size)
            PyMoDAQExportService(reactor, export["server"], client).setServiceParent(top)
        return top


#: The plugin instance.
plugin = PyMoDAQPlugin()
