# -*- test-case-name: tests.test_leco_actor -*-
"""
The C{[leco]} config section: a Coordinator (with federation), actors
exporting registry devices, a Director importing remote actors, and the
data protocol (proxy and publisher).

Example::

    [leco]
    coordinator = true            # run our own Coordinator
    host = "127.0.0.1"
    port = 12300
    namespace = "lab"
    advertise = "labpc.example.org"  # how other nodes reach us (default: see below)
    federate = ["192.0.2.7:12300"]  # other Coordinators (ours or pyleco's)
    export = ["stage", "camera"]    # registry devices offered as actors
    dashboard = true                # answer PyMoDAQ 5.3's dashboard methods
    states_file = "lab-states.json" # its saved states, next to this file
    data_proxy = true               # run the XSUB/XPUB proxy
    data_publish_port = 11100
    data_subscribe_port = 11099
    allow = ["127.0.0.1/32", "192.168.10.0/24"]   # who may connect (ZAP)
    role = "operate"                # read, operate or admin
    roles = {"192.168.10.7/32" = "admin"}
    curve_secret_key = "keys/server.key_secret"   # optional CURVE

    [[leco.remote]]
    name = "oven"                 # registry name
    actor = "N2.oven"             # LECO name of the remote actor
    kind = "generic"              # or pymodaq_actuator / pymodaq_detector
    parameters = ["temperature"]
"""
from __future__ import annotations

from typing import Any, Mapping

from twisted.application.service import IService

from twisted_lab.access import ACCESS_OPTIONS, CURVE_OPTIONS, curve_from, policy_from
from twisted_lab.options import Option
from twisted_lab.protocols.base import ProtocolPlugin
from twisted_lab.registry import DeviceRegistry
from twisted_lab.startup import guard

__all__ = ["LecoPlugin", "plugin"]

_REMOTE = {
    "name": Option(str, doc="Registry name of the imported device."),
    "actor": Option(str, "", "LECO name of the remote actor (default: name)."),
    "kind": Option(str, "generic", "generic, pymodaq_actuator or pymodaq_detector.",
                   choices=("generic", "pymodaq_actuator", "pymodaq_detector")),
    "parameters": Option(list, [], "Parameter names to describe (generic).",
                         items={"*": Option(str)}),
    "actions": Option(list, [], "Action names to describe (generic).",
                      items={"*": Option(str)}),
}

OPTIONS: dict[str, Option] = {
    "coordinator": Option(bool, True, "Run a LECO Coordinator."),
    "host": Option(str, "127.0.0.1", "Interface the Coordinator binds (and components use)."),
    "port": Option(int, 12300, "Coordinator port (0: any free port)."),
    "namespace": Option(str, "lab", "Namespace of our Coordinator's node."),
    "connect": Option(str, "", "ZeroMQ address of the Coordinator our actors and director "
                               "use (default: ours, reached in memory)."),
    "advertise": Option(str, "", "host or host:port other Coordinators reach ours at "
                                 "(default: the bind address when it is a specific one, the "
                                 "host name when bound to every interface; never 0.0.0.0)."),
    "federate": Option(list, [], "Other Coordinators (host:port) to link with.",
                       items={"*": Option(str)}),
    "export": Option(list, [], "Registry devices offered as LECO actors.",
                     items={"*": Option(str)}),
    "pymodaq_methods": Option(bool, True, "Actors also offer the PyMoDAQ method set."),
    "remote": Option(list, [], "Remote actors imported as registry devices.", items=_REMOTE),
    "dashboard": Option(bool, True, "Answer PyMoDAQ 5.3's dashboard methods as Component "
                                    "'dashboard' (devices, saved states)."),
    "states_file": Option(str, "lab-states.json", "The dashboard's saved states (JSON; a "
                                                  "relative path is next to the config file; "
                                                  "empty: in memory only)."),
    "director_name": Option(str, "twisted_lab_director", "Component name of our director."),
    "timeout": Option(float, 2.0, "Deadline of requests to remote actors (s)."),
    "data_proxy": Option(bool, True, "Run the data protocol's XSUB/XPUB proxy."),
    "data_publish": Option(bool, True, "Publish exported devices' data and changes."),
    "data_host": Option(str, "127.0.0.1", "Interface of the data proxy."),
    "data_publish_port": Option(int, 11100, "Proxy port publishers connect to (XSUB; 0: any "
                                            "free port, our publisher follows it)."),
    "data_subscribe_port": Option(int, 11099, "Proxy port subscribers connect to (XPUB; 0: "
                                              "any free port)."),
    **ACCESS_OPTIONS,
    **CURVE_OPTIONS,
    "link_allow": Option(list, [], "Networks of Coordinators add_nodes may make us link to "
                                   "(besides federate and the asking Coordinator itself).",
                         items={"*": Option(str)}),
}


class LecoPlugin(ProtocolPlugin):
    """The C{[leco]} protocol plugin."""

    name = "leco"
    description = "LECO over ZeroMQ: Coordinator, actors, directors (pyleco, PyMoDAQ 5)."
    options = OPTIONS

    def default_section(self, device_names: list[str]) -> dict[str, Any]:
        """Our Coordinator on 127.0.0.1:12300, namespace C{lab}, every device an actor."""
        return {"coordinator": True, "host": "127.0.0.1", "port": 12300, "namespace": "lab",
                "export": list(device_names)}

    def build(self, registry: DeviceRegistry, section: Mapping[str, Any],
              reactor: Any) -> IService:
        """The LECO service tree of a validated C{[leco]} section."""
        from twisted_lab.protocols.leco.export import DeviceActor
        from twisted_lab.protocols.leco.coordinator import CoordinatorService
        from twisted_lab.protocols.leco.datapub import ProxyService, RegistryPublisher
        from twisted_lab.protocols.leco.imports import DirectorService
        from twisted_lab.protocols.leco.locallink import LocalHub

        top = self.multi_service()
        host, port = section["host"], section["port"]
        connect = section["connect"] or f"tcp://{host}:{port}"
        # our actors and director reach our own Coordinator in memory, not over ZeroMQ
        hub: LocalHub | None = None
        policy = policy_from(section, "leco")
        curve = curve_from(section, "leco")
        role_of: Any = None
        if section["coordinator"]:
            coordinator = CoordinatorService(section["namespace"], f"tcp://{host}:{port}", reactor,
                                             coordinators=section["federate"],
                                             advertised=section["advertise"] or None,
                                             policy=policy, curve=curve,
                                             link_allow=section["link_allow"])
            coordinator.setName("coordinator")
            guard(coordinator, "leco.port", f"tcp://{host}:{port}").setServiceParent(top)
            if not section["connect"]:
                hub = coordinator.local_hub
                # our actors learn each caller's role from our Coordinator
                role_of = coordinator.role_of
        proxy: ProxyService | None = None
        if section["data_proxy"]:
            proxy = ProxyService(reactor,
                                 f"tcp://{section['data_host']}:{section['data_publish_port']}",
                                 f"tcp://{section['data_host']}:{section['data_subscribe_port']}",
                                 policy=policy)
            proxy.setName("data-proxy")
            xsub, xpub = proxy.xsub_address, proxy.xpub_address
            own = proxy
            guard(proxy, lambda: (("leco.data_publish_port", xsub) if own.xsub_endpoint is None
                                  else ("leco.data_subscribe_port", xpub))).setServiceParent(top)
        topics: dict[str, Any] = {}
        for name in section["export"]:
            actor = DeviceActor(registry, name, connect, reactor,
                                pymodaq=section["pymodaq_methods"], hub=hub, role_of=role_of,
                                default_role=policy.role)
            actor.setName(f"actor-{name}")
            actor.setServiceParent(top)
            topics[name] = lambda actor=actor: actor.full_name
        if section["dashboard"]:
            from twisted_lab.protocols.leco.dashboard import DashboardComponent, StateStore
            dashboard = DashboardComponent(registry, connect, reactor,
                                           StateStore(section["states_file"] or None),
                                           {name: name for name in section["export"]}, hub=hub)
            dashboard.setName("dashboard")
            dashboard.setServiceParent(top)
        if section["remote"]:
            director = DirectorService(registry, section["remote"], connect, reactor,
                                       section["director_name"], section["timeout"], hub=hub,
                                       role_of=role_of)
            director.setName("director")
            director.setServiceParent(top)
        if section["data_publish"] and topics:
            address: Any = f"tcp://{section['data_host']}:{section['data_publish_port']}"
            if proxy is not None:
                # our own proxy: publish to it in memory (its inproc endpoint;
                # frames are not copied through the loopback TCP stack)
                own_proxy = proxy
                address = lambda: own_proxy.inproc_endpoint  # noqa: E731
            publisher = RegistryPublisher(registry, reactor, address, topics)
            publisher.setName("data-publisher")
            publisher.setServiceParent(top)
        return top


plugin = LecoPlugin()
