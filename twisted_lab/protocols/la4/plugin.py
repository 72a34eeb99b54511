# -*- test-case-name: tests.test_la4_plugin -*-
"""
The C{[la4]} config section: coordinated nodes, callback listener, node emulation.

Example::

    [la4]
    nodes = [{name = "la4", host = "192.168.0.23", port = 5000}]
    callback = "tcp:5000:interface=192.168.0.100"   # the interface facing the LA4
    heartbeat_interval = 5.0
    offline_after = 15.0
    allow_raw_cmd = false

    [la4.node]                                       # the simulated node (off by default)
    enabled = true
    port = 5000
"""
from __future__ import annotations

from typing import Any

from typing import Mapping

from twisted.application.service import IService

from twisted_lab.errors import ConfigError
from twisted_lab.options import Option, validate
from twisted_lab.protocols.base import ProtocolPlugin
from twisted_lab.registry import DeviceRegistry
from twisted_lab.startup import guard

__all__ = ["LA4Plugin", "plugin", "OPTIONS", "NODE_OPTIONS", "NODES_ITEM", "callback_endpoint"]

#: One coordinated node.
NODES_ITEM: dict[str, Option] = {
    "name": Option(str, doc="The registry device name of the node."),
    "host": Option(str, doc="The node's IP address (192.168.0.23 on a point-to-point cable)."),
    "port": Option(int, 5000, "The node's pycom port."),
}

#: The C{[la4.node]} table: the simulated node.
NODE_OPTIONS: dict[str, Option] = {
    "enabled": Option(bool, False, "Run a simulated LA4 node (it never runs a shell)."),
    "port": Option(int, 5000, "Port the simulated node listens on."),
    "interface": Option(str, "127.0.0.1", "Address the simulated node listens on."),
    "coordinator": Option(str, "", "host:port of a coordinator to heartbeat from the start "
                                   "(empty: learn it from the coordinator's heartbeats)."),
    "name": Option(str, "rigsters-controller", "The node's pycom name."),
    "version": Option(str, "0.14.0", "The node's pycom version string."),
    "heartbeat_interval": Option(float, 3.0, "Seconds between the node's heartbeats."),
    "offline_after": Option(float, 15.0, "Seconds of silence before the node forgets a peer."),
    "allowed_peers": Option(list, [], "Networks requests are accepted from (empty: any).",
                            items={"*": Option(str)}),
    "callback_ports": Option(list, [], "Ports events may be sent to (empty: any).",
                             items={"*": Option(int)}),
    "events_per_second": Option(float, 100.0, "Events per destination host per second "
                                              "(0: no limit)."),
    "scan": Option(str, "", "Network (at most a /24) to scan for a coordinator; "
                            "empty: no scan."),
    "scan_port": Option(int, 5000, "Port probed by the scan."),
    "boardio_messages": Option(bool, True, "Send BOARDIO_READY/BOARDIO_ERROR and "
                                           "'Sequence complete' message events."),
}

#: The C{[la4]} section.
OPTIONS: dict[str, Option] = {
    "nodes": Option(list, [], "LA4 nodes to coordinate; each becomes a registry device.",
                    items=NODES_ITEM),
    "callback": Option(str, "",
                       "Endpoint (or bare port on 127.0.0.1) of the callback listener; empty: "
                       "tcp:5000:interface=127.0.0.1 (the port LA4 nodes scan for), or port "
                       "5001 when the simulated node is enabled on port 5000."),
    "advertise_ip": Option(str, "127.0.0.1", "The 'ip' field sent to nodes (informational)."),
    "heartbeat_interval": Option(float, 5.0, "Seconds between heartbeats to each node."),
    "offline_after": Option(float, 15.0, "Seconds of silence before a node goes offline."),
    "command_timeout": Option(float, 30.0, "Seconds to wait for a command's output event."),
    "allow_raw_cmd": Option(bool, False, "Offer a raw 'cmd' action that sends any command "
                                         "line to the node (dangerous)."),
    "allow": Option(list, [], "Networks allowed on the callback listener besides the "
                              "configured nodes' IP addresses (nodes given by host name "
                              "need one).", items={"*": Option(str)}),
    "node": Option(dict, validate(NODE_OPTIONS, {}), "The simulated node.",
                   items=NODE_OPTIONS),
}


def _host_port(value: str) -> tuple[str, int] | None:
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"must be host:port, got {value!r}", key="la4.node.coordinator")
    return host, int(port)


#: The callback listener LA4 nodes find by scanning (port 5000).
DEFAULT_CALLBACK = "tcp:5000:interface=127.0.0.1"
#: The callback listener when the simulated node holds port 5000.
SIMULATED_NODE_CALLBACK = "tcp:5001:interface=127.0.0.1"


def callback_endpoint(section: Mapping[str, Any]) -> str:
    """
    The callback listener of a validated C{[la4]} section: C{callback}, or
    by default port 5000, or 5001 when the simulated node is enabled on port
    5000 (the two defaults never collide).
    """
    if section["callback"]:
        return str(section["callback"])
    node = section["node"]
    if node["enabled"] and node["port"] == 5000:
        return SIMULATED_NODE_CALLBACK
    return DEFAULT_CALLBACK


class LA4Plugin(ProtocolPlugin):
    """The LA4 pycom protocol plugin."""

    name = "la4"
    description = "LightArray LA4 pycom JSON protocol (coordinator and simulated node)."
    options = OPTIONS

    def default_section(self, device_names: list[str]) -> dict[str, Any]:
        """Run the simulated node on 127.0.0.1:5000 and coordinate it as C{la4}."""
        return {
            "nodes": [{"name": "la4", "host": "127.0.0.1", "port": 5000}],
            "callback": "tcp:5001:interface=127.0.0.1",
            "node": {"enabled": True, "port": 5000, "interface": "127.0.0.1",
                     "coordinator": "127.0.0.1:5001"},
        }

    def check(self, section: Mapping[str, Any]) -> None:
        """Node names must be unique; the simulated node's coordinator is host:port."""
        names = [n["name"] for n in section["nodes"]]
        if len(set(names)) != len(names):
            raise ConfigError("node names must be unique", key="la4.nodes")
        _host_port(section["node"]["coordinator"])

    def build(self, registry: DeviceRegistry, section: Mapping[str, Any],
              reactor: Any) -> IService:
        """The simulated node (when enabled) and the coordinator, as one service."""
        from twisted_lab.protocols.la4.imports import LA4CoordinatorService, NodeConfig
        from twisted_lab.protocols.la4.node import SimulatedNode

        top = self.multi_service()
        node = section["node"]
        if node["enabled"]:
            try:
                simulated = SimulatedNode(
                    reactor, port=node["port"], interface=node["interface"],
                    name=node["name"], version=node["version"],
                    coordinator=_host_port(node["coordinator"]),
                    heartbeat_interval=node["heartbeat_interval"],
                    offline_after=node["offline_after"], allowed_peers=node["allowed_peers"],
                    callback_ports=node["callback_ports"],
                    events_per_second=node["events_per_second"], scan=node["scan"],
                    scan_port=node["scan_port"], boardio_messages=node["boardio_messages"])
            except ValueError as e:
                raise ConfigError(str(e), key="la4.node") from None
            simulated.setName("la4-node")
            guard(simulated, "la4.node.port", f"{node['interface']}:{node['port']}"
                  ).setServiceParent(top)
        callback = callback_endpoint(section)
        coordinator = LA4CoordinatorService(
            registry, reactor, [NodeConfig(n["name"], n["host"], n["port"])
                                for n in section["nodes"]],
            callback, heartbeat_interval=section["heartbeat_interval"],
            offline_after=section["offline_after"],
            command_timeout=section["command_timeout"],
            allow_raw_cmd=section["allow_raw_cmd"], advertise_ip=section["advertise_ip"],
            allow=section["allow"])
        coordinator.setName("la4-coordinator")
        guard(coordinator, "la4.callback", callback).setServiceParent(top)
        return top


#: The plugin instance the dropin names.
plugin = LA4Plugin()
