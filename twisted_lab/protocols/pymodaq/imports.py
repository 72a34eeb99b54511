# -*- test-case-name: tests.test_pymodaq_server -*-
"""
The server role: import PyMoDAQ instruments that connect to us.

Each connecting C{GRABBER} or C{ACTUATOR} client (a PyMoDAQ DAQ_Viewer or
DAQ_Move with "Connect to server" ticked, or any custom program) becomes a
remote device in the registry (L{twisted_lab.protocols.pymodaq.remote}).
Unlike PyMoDAQ's own server, any number of clients of both types may be
connected at once, each its own device.  The device is named by the first
matching import rule, else after its settings' C{title}/C{name} (or its
type) and its host; a client that reconnects gets its offline device back.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_lab.errors import LabError, ProtocolError
from twisted_lab.protocols.pymodaq.codec import DEFAULT_VERSION, WireVersion
from twisted_lab.protocols.pymodaq.transport import PyMoDAQConnection
from twisted_lab.protocols.pymodaq.message import (CLIENT_TYPES, DEFAULT_MAX_SIZE, TO_SERVER,
                                                  Message, UnknownCommand)
from twisted_lab.protocols.pymodaq.remote import RemoteActuator, RemoteGrabber
from twisted_lab.formats.pymodaq.settings import (RemoteSetting, parse_parameter,
                                                        parse_settings)
from twisted_lab.registry import DeviceRegistry

__all__ = ["PyMoDAQServerProtocol", "PyMoDAQServerFactory", "INFOS_GRACE"]

#: Seconds a client may take between its type and its C{Infos} before it is
#: registered without settings.
INFOS_GRACE = 1.0


def _safe(text: str) -> str:
    out = "".join(c if c.isalnum() or c in "_-" else "_" for c in text)
    return out.strip("_") or "pymodaq"


class PyMoDAQServerProtocol(PyMoDAQConnection):
    """
    One connected PyMoDAQ client: its handshake, then its replies and updates.

    @ivar client_type: C{"GRABBER"} or C{"ACTUATOR"} once known.
    @ivar device: the remote device it serves, once registered.
    """

    log = Logger()
    grammar = TO_SERVER
    factory: PyMoDAQServerFactory

    def __init__(self, wire: str | WireVersion = DEFAULT_VERSION,
                 max_size: int = DEFAULT_MAX_SIZE) -> None:
        super().__init__(wire, max_size)
        self.client_type: str | None = None
        self.device: Any = None
        self._grace: IDelayedCall | None = None

    def connectionMade(self) -> None:
        """Track the connection; the client speaks first."""
        super().connectionMade()
        self.factory.connections.add(self)

    def message_received(self, message: Message) -> None:
        """Handle the handshake, replies, settings updates and C{Quit}."""
        command, args = message
        if self.client_type is None:
            if command not in CLIENT_TYPES:
                raise ProtocolError(f"{command!r} is not a valid client type "
                                    f"(expected {' or '.join(CLIENT_TYPES)})")
            self.client_type = command
            self._grace = self.factory.clock.callLater(INFOS_GRACE, self._attach, [])
            return
        if command in CLIENT_TYPES:
            raise ProtocolError(f"client type {command!r} sent again")
        if command == "Quit":
            self.log.info("PyMoDAQ client {peer} quit", peer=self.peer)
            self.closing = True
            assert self.transport is not None
            self.transport.loseConnection()
            return
        if command == "Infos":
            settings = parse_settings(args[0])
            if self.device is None:
                self._attach(settings)
            else:
                self.device.replace_settings(settings)
            return
        if self.device is None:
            self._attach([])
        device = self.device
        if command == "Info_xml":
            path, xml = args
            device.update_settings(parse_parameter(xml, tuple(path[1:])))
        elif command == "Info":
            device.update_info(*args)
        elif command == "Done":
            if self.client_type != "GRABBER":
                raise ProtocolError("an ACTUATOR client sent Done")
            if not device.reply_received("Done", args[0]):
                device.data_received(args[0])
        elif command in ("move_done", "position_is"):
            if self.client_type != "ACTUATOR":
                raise ProtocolError(f"a GRABBER client sent {command}")
            if not device.reply_received(command, args[0]):
                device.position_received(args[0])
        elif command in ("x_axis", "y_axis"):
            self.log.info("ignoring {command} from legacy client {peer}", command=command,
                          peer=self.peer)
        else:
            self.log.info("ignoring {command} from {peer}", command=command, peer=self.peer)

    def explain(self, error: ProtocolError) -> str:
        """Before the handshake, an unknown command is an invalid client type."""
        if self.client_type is None and isinstance(error, UnknownCommand):
            return (f"{error.command!r} is not a valid client type "
                    f"(expected {' or '.join(CLIENT_TYPES)})")
        return str(error)

    def _attach(self, settings: Sequence[RemoteSetting]) -> None:
        if self._grace is not None and self._grace.active():
            self._grace.cancel()
        self._grace = None
        if self.device is not None or self.closing:
            return
        assert self.client_type is not None
        try:
            self.device = self.factory.device_for(self, self.client_type, settings)
        except LabError as e:
            self.protocol_error(f"cannot register the client: {e}")
            return
        self.device.attach(self)
        self.log.info("PyMoDAQ {type} client {peer} is device {device}",
                      type=self.client_type, peer=self.peer, device=self.device.name)

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        """Take the device offline (it keeps its name for a reconnection)."""
        super().connectionLost(reason)
        self.factory.connections.discard(self)
        if self._grace is not None and self._grace.active():
            self._grace.cancel()
        if self.device is not None:
            self.log.info("PyMoDAQ client {peer} ({device}) went away", peer=self.peer,
                          device=self.device.name)
            self.device.detach(self)


class PyMoDAQServerFactory(Factory):
    """
    Listens for PyMoDAQ clients and registers each as a remote device.

    @param rules: import naming rules, tried in order: tables with C{name}
        and optional C{host} (peer address), C{type} (C{GRABBER}/C{ACTUATOR})
        and C{contains} (a text the C{Infos} XML must contain; matched
        against the setting values).
    @param call_timeout: seconds each remote call waits for its reply.
    """

    protocol = PyMoDAQServerProtocol  # type: ignore[assignment]
    log = Logger()

    def __init__(self, registry: DeviceRegistry, clock: Any,
                 wire: str | WireVersion = DEFAULT_VERSION, max_size: int = DEFAULT_MAX_SIZE,
                 call_timeout: float = 10.0, rules: Sequence[Mapping[str, Any]] = (),
                 grab_dim: str = "2D") -> None:
        self.registry = registry
        self.clock = clock
        self.wire = wire
        self.max_size = max_size
        self.call_timeout = call_timeout
        self.rules = list(rules)
        self.grab_dim = grab_dim
        self.connections: set[PyMoDAQServerProtocol] = set()
        self.devices: dict[str, Any] = {}

    def buildProtocol(self, addr: Any) -> PyMoDAQServerProtocol:  # type: ignore[override]
        """A connection with our wire settings."""
        proto = self.protocol(self.wire, self.max_size)
        proto.factory = self
        return proto

    def _base_name(self, proto: PyMoDAQServerProtocol, client_type: str,
                   settings: Sequence[RemoteSetting]) -> str:
        host = proto.peer_host
        for rule in self.rules:
            if rule.get("type") not in (None, "", client_type):
                continue
            if rule.get("host") not in (None, "", host):
                continue
            text = rule.get("contains")
            if text and not any(text in str(s.value) or text in s.parameter.name
                                for s in settings):
                continue
            return str(rule["name"])
        title = next((s.value for s in settings
                      if s.path[-1] in ("title", "name") and isinstance(s.value, str)
                      and s.value), None)
        base = _safe(title) if title else f"pymodaq_{client_type.lower()}"
        return f"{base}_{_safe(host)}"

    def device_for(self, proto: PyMoDAQServerProtocol, client_type: str,
                   settings: Sequence[RemoteSetting]) -> Any:
        """
        The device a new connection serves: its offline device of the same
        name and type if any, else a new one under a unique name.  The
        settings are mirrored before a new device is registered, so that
        exporters woken by its registration see them all at once.
        """
        base = self._base_name(proto, client_type, settings)
        for i in range(1, 1000):
            name = base if i == 1 else f"{base}_{i}"
            ours = self.devices.get(name)
            if ours is not None:
                if ours.connection is None and ours.client_type == client_type:
                    if settings:
                        ours.replace_settings(settings)
                    return ours
                continue
            if name in self.registry.names():
                continue
            if client_type == "GRABBER":
                device: Any = RemoteGrabber(name, self.clock, self.call_timeout, self.grab_dim)
            else:
                device = RemoteActuator(name, self.clock, self.call_timeout)
            device.set_online(False)
            if settings:
                device.replace_settings(settings)
            self.registry.register(device)
            self.devices[name] = device
            return device
        raise LabError(f"no free device name for {base!r}")

    def stop(self) -> None:
        """Close every client connection (on service stop)."""
        for proto in list(self.connections):
            if proto.transport is not None:
                proto.transport.loseConnection()
