# -*- test-case-name: tests.test_check -*-
"""
C{twistd -n lab --check}: everything that can be known before binding.

L{check} reads a validated L{Config} (keys, types and device options were
checked when it was loaded) and finds what still fails at start-up or
misbehaves once running:

  - every endpoint string and ZeroMQ address, by its real parser
    (L{twisted_lab.addresses});
  - two listeners on one port (across protocols, or twice in one);
  - exported or served device names that no device or import provides
    (a warning naming the key, with "did you mean");

and lists what the lab will run: its devices, each listener's address and
the peers it will connect to.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

from twisted_lab.addresses import (
    Address,
    check_client_endpoint,
    parse_server_endpoint,
    parse_zmq_address,
)
from twisted_lab.config import Config
from twisted_lab.discovery import check as check_options
from twisted_lab.discovery import device_plugin, did_you_mean, protocol_plugin
from twisted_lab.errors import ConfigError

__all__ = ["Report", "check", "render", "did_you_mean"]


@dataclass
class Report:
    """
    What L{check} found.

    @ivar errors: C{(key, message)}: the lab would not start, or not as meant.
    @ivar warnings: C{(key, message)}: it starts, but probably not as meant.
    @ivar devices: C{(name, what)}: every device the running lab registers.
    @ivar listeners: C{(key, protocol, address)}.
    @ivar peers: C{(key, what, address)}: where the lab connects to.
    """

    errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    devices: list[tuple[str, str]] = field(default_factory=list)
    listeners: list[tuple[str, str, Address]] = field(default_factory=list)
    peers: list[tuple[str, str, str]] = field(default_factory=list)
    _wanted: list[tuple[str, str]] = field(default_factory=list)

    def listen(self, key: str, protocol: str, parse: Callable[[], Address]) -> None:
        """Record a listener, or the error its parser raised."""
        try:
            self.listeners.append((key, protocol, parse()))
        except ValueError as e:
            self.errors.append((key, str(e)))

    def peer(self, key: str, what: str, address: str,
             parse: Callable[[], object] | None = None) -> None:
        """Record a peer, or the error its parser raised."""
        if parse is not None:
            try:
                parse()
            except ValueError as e:
                self.errors.append((key, str(e)))
                return
        self.peers.append((key, what, address))

    def wants(self, key: str, device: str) -> None:
        """A key names a device that must exist."""
        self._wanted.append((key, device))

    @property
    def ok(self) -> bool:
        """No errors."""
        return not self.errors


def _pymodaq(report: Report, s: dict[str, Any]) -> None:
    for i, description in enumerate(s["listen"]):
        report.listen(f"pymodaq.listen[{i}]", "PyMoDAQ TCP server",
                      partial(parse_server_endpoint, description))
    for i, entry in enumerate(s["import"]):
        report.devices.append((entry["name"], "PyMoDAQ client, when it connects "
                               f"(pymodaq.import[{i}])"))
    for i, entry in enumerate(s["export"]):
        report.wants(f"pymodaq.export[{i}].device", entry["device"])
        report.peer(f"pymodaq.export[{i}].server", f"PyMoDAQ main computer ({entry['device']})",
                    entry["server"], partial(check_client_endpoint, entry["server"]))


def _leco(report: Report, s: dict[str, Any]) -> None:
    host = s["host"]
    if s["coordinator"]:
        report.listen("leco.port", f"LECO Coordinator (namespace {s['namespace']})",
                      lambda: parse_zmq_address(f"tcp://{host}:{s['port']}"))
    if s["connect"]:
        report.peer("leco.connect", "LECO Coordinator of our actors", s["connect"],
                    lambda: parse_zmq_address(s["connect"], bind=False))
    for i, address in enumerate(s["federate"]):
        report.peer(f"leco.federate[{i}]", "LECO Coordinator (federation)", address,
                    partial(_federate_address, address))
    if s["data_proxy"]:
        report.listen("leco.data_publish_port", "LECO data proxy, publishers (XSUB)",
                      lambda: parse_zmq_address(f"tcp://{s['data_host']}:"
                                                f"{s['data_publish_port']}"))
        report.listen("leco.data_subscribe_port", "LECO data proxy, subscribers (XPUB)",
                      lambda: parse_zmq_address(f"tcp://{s['data_host']}:"
                                                f"{s['data_subscribe_port']}"))
    for i, name in enumerate(s["export"]):
        report.wants(f"leco.export[{i}]", name)
    for i, entry in enumerate(s["remote"]):
        actor = entry["actor"] or entry["name"]
        report.devices.append((entry["name"], f"LECO actor {actor} (leco.remote[{i}])"))
        report.peers.append((f"leco.remote[{i}]", "LECO actor", actor))


def _federate_address(address: str) -> Address:
    """A C{[leco] federate} entry: host:port, checked as a ZeroMQ address."""
    if "://" not in address:
        return parse_zmq_address(f"tcp://{address}", bind=False)
    raise ValueError(f"must be host:port, without a scheme; did you mean "
                     f"{address.partition('://')[2]!r}?")


def _plesty(report: Report, s: dict[str, Any]) -> None:
    for i, entry in enumerate(s["serve"]):
        report.wants(f"plesty.serve[{i}].device", entry["device"])
        report.listen(f"plesty.serve[{i}].address", f"PLESTY server ({entry['device']})",
                      partial(parse_zmq_address, entry["address"]))
    for i, entry in enumerate(s["import"]):
        report.devices.append((entry["name"], f"PLESTY server {entry['address']} "
                               f"(plesty.import[{i}])"))
        report.peer(f"plesty.import[{i}].address", f"PLESTY server ({entry['name']})",
                    entry["address"],
                    partial(parse_zmq_address, entry["address"], bind=False))


def _la4(report: Report, s: dict[str, Any]) -> None:
    from twisted_lab.protocols.la4.plugin import callback_endpoint

    node = s["node"]
    if node["enabled"]:
        report.listen("la4.node.port", "simulated LA4 node",
                      lambda: Address(f"{node['interface']}:{node['port']}", node["interface"],
                                      node["port"]))
    callback = callback_endpoint(s)
    key = "la4.callback"
    report.listen(key, "LA4 coordinator callbacks",
                  lambda: parse_server_endpoint(callback, bare_port_host="127.0.0.1"))
    for i, entry in enumerate(s["nodes"]):
        report.devices.append((entry["name"], f"LA4 node {entry['host']}:{entry['port']} "
                               f"(la4.nodes[{i}])"))
        report.peers.append((f"la4.nodes[{i}]", f"LA4 node ({entry['name']})",
                             f"{entry['host']}:{entry['port']}"))


def _web(report: Report, s: dict[str, Any]) -> None:
    report.listen("web.listen", "web console and HTTP API",
                  partial(parse_server_endpoint, s["listen"]))


_SECTIONS: dict[str, Callable[[Report, dict[str, Any]], None]] = {
    "pymodaq": _pymodaq, "leco": _leco, "plesty": _plesty, "la4": _la4, "web": _web,
}


def device_errors(config: Config) -> list[tuple[str, str]]:
    """
    Every device's options checked against its driver, when its plugin can
    (an optional C{check(options)}): the driver class exists, takes those
    arguments, and the type can run here.

    @return: C{(key, reason)} pairs, C{key} as C{devices.<name>.<option>}.
    """
    errors = []
    for device in config.devices:
        plugin = device_plugin(device.type, config.file, f"devices.{device.name}.type")
        try:
            check_options(plugin, device.options)
        except ConfigError as e:
            errors.append((f"devices.{device.name}" + (f".{e.key}" if e.key else ""), e.reason))
    return errors


def check(config: Config) -> Report:
    """
    Check a loaded config as far as possible without binding anything.
    """
    report = Report()
    for device in config.devices:
        report.devices.append((device.name, device.type))
    report.errors.extend(device_errors(config))
    for section in config.protocols:
        inspect = _SECTIONS.get(section.name)
        if inspect is None:
            # another plugin's section: it may describe itself
            # (check_section(report, options), recording with report.listen,
            # report.peer, report.wants and report.devices)
            inspect = getattr(protocol_plugin(section.name, config.file), "check_section", None)
        if inspect is not None:
            inspect(report, section.options)
    # two listeners on one port
    for i, (key, _, address) in enumerate(report.listeners):
        for other_key, _, other in report.listeners[:i]:
            if address.overlaps(other):
                report.errors.append((key, f"port {address.port} is also used by {other_key} "
                                           f"({other}); give one of them another port"))
                break
    # names nothing provides
    names = [name for name, _ in report.devices]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            report.errors.append((f"devices.{name}", "two devices have this name"))
        seen.add(name)
    for key, name in report._wanted:
        if name not in seen:
            report.warnings.append((key, f"no device or import provides {name!r}"
                                         f"{did_you_mean(name, names)} (devices: "
                                         f"{', '.join(names) or 'none'})"))
    return report


def render(config: Config, report: Report) -> str:
    """The summary C{--check} prints."""
    where = config.file or "built-in simulated lab"
    lines = []
    if report.ok:
        note = f" ({len(report.warnings)} warning{'s' * (len(report.warnings) != 1)})" \
            if report.warnings else ""
        lines.append(f"{where}: OK{note}")
    else:
        lines.append(f"{where}: {len(report.errors)} error"
                     f"{'s' * (len(report.errors) != 1)}")
        lines += [f"{where}: {key}: {message}" for key, message in report.errors]
    for key, message in report.warnings:
        lines.append(f"{where}: warning: {key}: {message}")
    lines.append(f"devices ({len(report.devices)}):")
    width = max([len(n) for n, _ in report.devices] + [0])
    lines += [f"  {name.ljust(width)}  {what}" for name, what in report.devices]
    lines.append(f"listeners ({len(report.listeners)}):")
    width = max([len(k) for k, _, _ in report.listeners] + [0])
    lines += [f"  {key.ljust(width)}  {address.text}  {what}"
              for key, what, address in report.listeners]
    lines.append(f"connects to ({len(report.peers)}):")
    width = max([len(k) for k, _, _ in report.peers] + [0])
    lines += [f"  {key.ljust(width)}  {address}  {what}" for key, what, address in report.peers]
    protocols = ", ".join(p.name for p in config.protocols) or "none"
    lines.append(f"protocols: {protocols}")
    return "\n".join(lines) + "\n"
