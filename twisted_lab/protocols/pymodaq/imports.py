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

What clients can make the lab hold is bounded: connections (a
L{ConnectionGuard}: caps, a handshake deadline, TCP keepalive), imported
devices (C{max_clients}; an offline device is unregistered C{forget_after}
seconds after its client left, or sooner to make room for a new client) and
C{Info} names per device (L{twisted_lab.protocols.pymodaq.remote.MAX_INFOS}).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_lab.errors import LabError, ProtocolError
from twisted_lab.protocols.guard import ConnectionGuard, Refused
from twisted_lab.protocols.pymodaq.codec import DEFAULT_VERSION, WireVersion
from twisted_lab.protocols.pymodaq.transport import PyMoDAQConnection
from twisted_lab.protocols.pymodaq.message import (CLIENT_TYPES, DEFAULT_MAX_SIZE, TO_SERVER,
                                                  Message, UnknownCommand)
from twisted_lab.protocols.pymodaq.remote import RemoteActuator, RemoteGrabber
from twisted_lab.formats.pymodaq.settings import (RemoteSetting, parse_parameter,
                                                        parse_settings)
from twisted_lab.ratelog import BadInputLog
from twisted_lab.registry import DeviceRegistry

__all__ = ["PyMoDAQServerProtocol", "PyMoDAQServerFactory", "INFOS_GRACE", "MAX_CLIENTS",
           "FORGET_AFTER", "MAX_SETTINGS"]

#: Seconds a client may take between its type and its C{Infos} before it is
#: registered without settings.
INFOS_GRACE = 1.0
#: Imported devices (online or offline) a listener keeps at most.
MAX_CLIENTS = 64
#: Seconds an offline imported device keeps its name before it is unregistered.
FORGET_AFTER = 600.0
#: Largest settings XML (C{Infos}, C{Info_xml}) parsed, in characters: a
#: PyMoDAQ settings tree is tens of kilobytes; parsing costs reactor time.
MAX_SETTINGS = 1024 * 1024


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
        self.factory.guard.opened(self, self.transport, self.peer_host)

    def message_received(self, message: Message) -> None:
        """Handle the handshake, replies, settings updates and C{Quit}."""
        command, args = message
        if self.client_type is None:
            if command not in CLIENT_TYPES:
                raise ProtocolError(f"{command!r} is not a valid client type "
                                    f"(expected {' or '.join(CLIENT_TYPES)})")
            self.client_type = command
            self.factory.guard.handshaken(self)
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
        if command in ("Infos", "Info_xml"):
            self._check_settings_size(command, args[-1])
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
            if not device.update_info(*args):
                self.bad_input.warn(("info", self.peer_host),
                               "{device}: ignored a new Info name from {peer}: the device "
                               "holds {count} names already", device=device.name,
                               peer=self.peer, count=len(device._infos))
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
            self.bad_input.info(("ignored", self.peer_host), "ignoring {command} from {peer}",
                           command=command, peer=self.peer)

    def _check_settings_size(self, command: str, xml: Any) -> None:
        limit = self.factory.max_settings
        if isinstance(xml, (str, bytes)) and len(xml) > limit:
            raise ProtocolError(f"{command} settings XML of {len(xml)} characters exceeds "
                                f"max_settings_size ({limit})")

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
        self.factory.guard.closed(self)
        if self._grace is not None and self._grace.active():
            self._grace.cancel()
        if self.device is not None:
            self.log.info("PyMoDAQ client {peer} ({device}) went away", peer=self.peer,
                          device=self.device.name)
            self.device.detach(self)
            if self.device.connection is None:
                self.factory.device_left(self.device)


class PyMoDAQServerFactory(Factory):
    """
    Listens for PyMoDAQ clients and registers each as a remote device.

    @param rules: import naming rules, tried in order: tables with C{name}
        and optional C{host} (peer address), C{type} (C{GRABBER}/C{ACTUATOR})
        and C{contains} (a text the C{Infos} XML must contain; matched
        against the setting values).
    @param call_timeout: seconds each remote call waits for its reply.
    @param max_clients: imported devices kept at most (online or offline).
    @param forget_after: seconds an offline imported device is kept.
    @param guard: the connection limits (default: L{ConnectionGuard}'s).
    @param max_settings: the largest settings XML parsed (characters); a
        bigger one closes the connection with that reason.
    """

    protocol = PyMoDAQServerProtocol  # type: ignore[assignment]
    log = Logger()

    def __init__(self, registry: DeviceRegistry, clock: Any,
                 wire: str | WireVersion = DEFAULT_VERSION, max_size: int = DEFAULT_MAX_SIZE,
                 call_timeout: float = 10.0, rules: Sequence[Mapping[str, Any]] = (),
                 grab_dim: str = "2D", max_clients: int = MAX_CLIENTS,
                 forget_after: float = FORGET_AFTER,
                 guard: ConnectionGuard | None = None,
                 max_settings: int = MAX_SETTINGS) -> None:
        self.registry = registry
        self.clock = clock
        self.wire = wire
        self.max_size = max_size
        self.call_timeout = call_timeout
        self.rules = list(rules)
        self.grab_dim = grab_dim
        self.connections: set[PyMoDAQServerProtocol] = set()
        self.devices: dict[str, Any] = {}
        self.max_clients = max_clients
        self.forget_after = forget_after
        self.max_settings = max_settings
        self.guard = guard or ConnectionGuard(clock, "PyMoDAQ")
        self.bad_input = BadInputLog(self.log, clock)
        self.stopped = False
        #: the expiry of each offline device, by name (oldest first)
        self._expiry: dict[str, IDelayedCall] = {}

    def buildProtocol(self, addr: Any) -> Any:
        """A connection with our wire settings, or a refusal over the caps."""
        if self.guard.admit(str(getattr(addr, "host", ""))) is not None:
            return Refused()
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
        names = set(self.registry.names())
        for i in range(1, 1000):
            name = base if i == 1 else f"{base}_{i}"
            ours = self.devices.get(name)
            if ours is not None:
                if ours.connection is None and ours.client_type == client_type:
                    self._keep(name)
                    if settings:
                        ours.replace_settings(settings)
                    return ours
                continue
            if name in names:
                continue
            if len(self.devices) >= self.max_clients and not self._make_room():
                raise LabError(f"{len(self.devices)} PyMoDAQ clients are connected "
                               "(max_clients)")
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

    def device_left(self, device: Any) -> None:
        """C{device}'s client went away: unregister it after C{forget_after}."""
        self._keep(device.name)
        if self.stopped:
            return
        self._expiry[device.name] = self.clock.callLater(self.forget_after, self.forget,
                                                         device.name)

    def _keep(self, name: str) -> None:
        timer = self._expiry.pop(name, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _make_room(self) -> bool:
        """Forget the offline device that went away first, if any."""
        for name in self._expiry:
            self.forget(name)
            return True
        return False

    def forget(self, name: str) -> None:
        """Unregister the offline device C{name} and drop what it holds."""
        self._keep(name)
        device = self.devices.get(name)
        if device is None or device.connection is not None:
            return
        del self.devices[name]
        if self.registry.names().count(name) and self.registry.lookup(name) is device:
            self.registry.unregister(name)
        device.forget()
        self.log.info("forgot the offline PyMoDAQ device {device}", device=name)

    def stop(self) -> None:
        """Close every client connection (on service stop)."""
        self.stopped = True
        self.bad_input.flush()
        for name in list(self._expiry):
            self._keep(name)
        for proto in list(self.connections):
            if proto.transport is not None:
                proto.transport.loseConnection()
