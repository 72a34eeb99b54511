# -*- test-case-name: tests.test_la4_coordinator -*-
"""
The LA4 coordinator role: each configured node becomes a registry device.

L{LA4CoordinatorService} runs the callback listener (events arrive on new
connections), heartbeats every configured node every 5 s, and routes what
each node sends to its L{LA4NodeDevice}.  A node silent for 15 s goes
offline (pending calls fail with L{DeviceOffline}); it comes back online,
as the same object, as soon as it speaks again.

The device's actions are the documented lighting operations.  Each is
rendered by L{twisted_lab.protocols.la4.commands} from a fixed template and
validated numbers; its result is the text of the next C{output} event from
that node (pycom has no correlation id, so calls run one at a time per node),
or L{DeviceTimeout} after C{command_timeout}.  A raw C{cmd} action exists
only when C{allow_raw_cmd} is set.
"""
from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_lab import __version__
from twisted_lab.access import AccessPolicy, AllowListFactory
from twisted_lab.description import Action, Argument, Parameter
from twisted_lab.devices.base import BaseDevice
from twisted_lab.devices.remote import RemoteDeviceMixin
from twisted_lab.errors import (DeviceOffline, DeviceTimeout, LabError, ProtocolError,
                                UnknownAction)
from twisted_lab.events import DATA, LabEvent
from twisted_lab.interfaces import IWireReport
from twisted_lab.protocols.la4 import commands
from twisted_lab.formats.la4.registers import Row
from twisted_lab.protocols.la4.commands import Boardio, CommandLine, WriteRows
from twisted_lab.protocols.la4.message import (Command, Heartbeat, Message, MessageEvent,
                                               OutputEvent, UnitInfo, UnknownMessage, new_id)
from twisted_lab.protocols.la4.transport import (MAX_MESSAGE, READ_TIMEOUT, DocumentFactory,
                                                 ListenWaiters, Outgoing, send_message,
                                                 listen_now, stop_listening)
from twisted_lab.registry import DeviceRegistry
from twisted_lab.waiting import PendingCalls

__all__ = ["LA4NodeDevice", "LA4CoordinatorService", "NodeConfig", "NODE_ACTIONS",
           "NODE_PARAMETERS", "callback_endpoint"]

_ROWS = Argument("rows", "list")
_POWER = Argument("power", "int", units="%")

#: The documented lighting operations, offered as actions.
NODE_ACTIONS = (
    Action("set_model_light", (_POWER,), "Set the model light power (0 = off)."),
    Action("fire_all", (_POWER, Argument("camera", "str", "nikon"),
                        Argument("shutter_ms", "any", None, "ms")),
           "Fire all four LEDs once (camera 'nikon' or 'canon'; canon needs shutter_ms)."),
    Action("olat", (_POWER, Argument("continuous", "bool", False),
                    Argument("camera", "str", "nikon")),
           "Four shots, one LED each, single-frame or continuous drive."),
    Action("set_fans", (Argument("on", "bool"),), "Switch the LED fans on or off."),
    Action("set_polarizer", (Argument("on", "bool"),), "Switch the digital polarizer."),
    Action("run_sequence", (_ROWS,),
           "Write sequence rows ('REG,1,2' or ['REG', 1, 2]), load and run them."),
    Action("upload_sequence", (_ROWS,), "Write sequence rows and load them (uSeq)."),
    Action("start_sequence", (), "Run the loaded sequence (runSeq)."),
    Action("store_standalone", (_ROWS,), "Write and load the boot-time sequence."),
)

#: Raw command pass-through, offered only when the config allows it.
RAW_ACTION = Action("cmd", (Argument("command", "str"),),
                    "Send a raw command line to the node (allow_raw_cmd only).")

#: The node device's parameters.
NODE_PARAMETERS = (
    Parameter("model_light", "int", "%", minimum=0, maximum=100, default=0,
              doc="Model light power last commanded (0 = off)."),
    Parameter("fans", "bool", default=False, doc="LED fans, as last commanded."),
    Parameter("polarizer", "bool", default=False, doc="Digital polarizer, as last commanded."),
    Parameter("last_output", "str", readonly=True, default="",
              doc="Text of the node's last output event."),
    Parameter("last_message", "str", readonly=True, default="",
              doc="Text of the node's last message event (BOARDIO_READY, ...)."),
    Parameter("unit_info", "dict", readonly=True, default={},
              doc="The node's hardware information event, as received."),
    Parameter("node_id", "str", readonly=True, default="", doc="The node's pycom id."),
    Parameter("node_version", "str", readonly=True, default="",
              doc="The node's software version."),
)

_TRACKED = {"MODEL_LIGHT": ("model_light", int), "LED_FAN": ("fans", bool),
            "DIGITAL_POLARIZER": ("polarizer", bool)}


@dataclass(eq=False)
class _Pending:
    command: str
    line: CommandLine | None
    deferred: Deferred[str]
    #: the command reached the node (an output before that is not its answer)
    delivered: bool = False


class LA4NodeDevice(RemoteDeviceMixin, BaseDevice):
    """
    A remote LA4 node seen as a device.

    @param name: the registry name.
    @param host: the node's address.
    @param port: the node's pycom port.
    @param send: sends a command line to the node; its L{Deferred} fires
        once delivered (the coordinator's L{LA4CoordinatorService.send_command}).
    @param clock: for deadlines and the silence watchdog.
    """

    doc = "A LightArray LA4 node driven over pycom."

    def __init__(self, name: str, host: str, port: int,
                 send: Callable[[LA4NodeDevice, str], Deferred[None]], clock: IReactorTime,
                 command_timeout: float = 30.0, offline_after: float = 15.0,
                 allow_raw_cmd: bool = False) -> None:
        self.host = host
        self.port = port
        self._send = send
        self.clock = clock
        self.command_timeout = command_timeout
        self.offline_after = offline_after
        self.allow_raw_cmd = allow_raw_cmd
        self._queue: list[_Pending] = []
        self._current: _Pending | None = None
        #: the command in flight, awaiting its output (with its deadline)
        self._inflight: PendingCalls[_Pending] = PendingCalls(clock)
        self._watchdog: IDelayedCall | None = None
        self._uploaded: tuple[Row, ...] = ()
        self._file_rows: tuple[Row, ...] = ()
        actions = NODE_ACTIONS + ((RAW_ACTION,) if allow_raw_cmd else ())
        super().__init__(name, NODE_PARAMETERS, actions)
        self.online = False

    # -- liveness ----------------------------------------------------------------

    def accepts(self, message: Message) -> bool:
        """
        Is C{message} from this node? Events (C{output}, C{message}, unit
        info, ...) must carry the node id learnt from its heartbeats; only a
        heartbeat may introduce a new id (the node restarted).  A refused
        message is logged.
        """
        known = self._values.get("node_id") or ""
        if message.type_ is None or message.id == known:
            return True
        self.log.warn("LA4 node {device}: refused a {kind} event claiming node id {id!r} "
                      "(the node's id is {known!r}; no heartbeat seen yet if empty)",
                      device=self.name, kind=str(message.type_)[:40], id=message.id[:40],
                      known=known)
        return False

    def seen(self, message: Message) -> None:
        """The node spoke: restart the silence watchdog; back online if needed."""
        if self._values.get("node_id") != message.id:
            if self._values.get("node_id"):
                self.log.warn("LA4 node {device}: node id changed from {old!r} to {new!r} "
                              "(the node restarted?)", device=self.name,
                              old=self._values.get("node_id"), new=message.id)
            self._values["node_id"] = message.id
            self.changed("node_id", message.id)
        if self._values.get("node_version") != message.version:
            self._values["node_version"] = message.version
            self.changed("node_version", message.version)
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.reset(self.offline_after)
        else:
            self._watchdog = self.clock.callLater(self.offline_after, self._silent)
        if self.link_up():
            self.log.info("LA4 node {device} at {host}:{port} is online", device=self.name,
                          host=self.host, port=self.port)

    def _silent(self) -> None:
        self._watchdog = None
        self.log.warn("LA4 node {device} silent for {seconds} s: offline", device=self.name,
                      seconds=self.offline_after)
        self.went_offline()

    def went_offline(self) -> None:
        """The node is gone (silent, or we stop): go offline, fail its calls."""
        self.link_down(f"LA4 node {self.name!r} went offline")

    def fail_pending(self, error: Exception) -> None:
        """Fail the running and queued calls; stop watching for heartbeats."""
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self._watchdog = None
        queued, self._queue = self._queue, []
        self._inflight.fail_all(error)
        for item in queued:
            self._finish(item, failure=Failure(error))

    # -- events ------------------------------------------------------------------

    def output_received(self, text: str) -> None:
        """An C{output} event: it completes the call in flight."""
        current = self._current
        if current is None or not current.delivered:
            self.log.warn("LA4 node {device}: output with no command in flight; ignored",
                          device=self.name)
            return
        self._values["last_output"] = text
        self.changed("last_output", text)
        self._track(current.line)
        self._inflight.resolve(current, text)

    def message_received(self, text: str) -> None:
        """A C{message} event (C{BOARDIO_READY}, C{Sequence complete}, ...)."""
        self._values["last_message"] = text
        self.changed("last_message", text)

    def unit_info_received(self, fields: dict[str, Any]) -> None:
        """The node's hardware information."""
        self._values["unit_info"] = fields
        self.changed("unit_info", fields)

    def other_received(self, message: UnknownMessage) -> None:
        """An event of a C{type_} we do not know: passed on as a data event."""
        self.log.info("LA4 node {device}: event of unknown type {kind!r}", device=self.name,
                      kind=message.kind[:40])
        self.emit(LabEvent(DATA, self.name, message.kind[:256], message.fields))

    def _track(self, line: CommandLine | None) -> None:
        """Update the commanded state once a command's output arrived."""
        if line is None:
            return
        for step in line.steps:
            if isinstance(step, WriteRows) and step.target == "sequence":
                self._file_rows = step.rows
            elif isinstance(step, Boardio) and step.verb == "uSeq":
                self._uploaded = self._file_rows
            elif isinstance(step, Boardio) and step.verb == "runSeq":
                for row in self._uploaded:
                    tracked = _TRACKED.get(row.register)
                    if tracked is not None:
                        name, kind = tracked
                        value = kind(row.params[0])
                        if self._values.get(name) != value:
                            self._values[name] = value
                            self.changed(name, value)

    # -- the call queue ----------------------------------------------------------

    def run_line(self, line: CommandLine | None, command: str | None = None) -> Deferred[str]:
        """
        Queue a command line; fires with the text of its C{output} event.

        @param line: a validated command line (rendered here), or C{None}
            with C{command} for the raw pass-through.
        """
        text = line.render() if line is not None else (command or "")
        pending: _Pending

        def cancel(_d: Deferred[str]) -> None:
            if pending in self._queue:
                self._queue.remove(pending)

        pending = _Pending(text, line, Deferred(cancel))
        self._queue.append(pending)
        self._pump()
        return pending.deferred

    def _pump(self) -> None:
        if self._current is not None or not self._queue:
            return
        pending = self._queue.pop(0)
        if not self.online:
            self._finish(pending, failure=Failure(
                DeviceOffline(f"LA4 node {self.name!r} is offline")))
            self._pump()
            return
        self._current = pending
        output = self._inflight.add(pending, self.command_timeout, lambda: DeviceTimeout(
            f"no output from LA4 node {self.name!r} within {self.command_timeout} s"))
        output.addCallbacks(lambda text: self._finish(pending, result=text),
                            lambda f: self._finish(pending, failure=f))

        def undelivered(f: Failure) -> None:
            self._inflight.reject(pending, DeviceOffline(
                f"cannot deliver the command to LA4 node {self.name!r} at "
                f"{self.host}:{self.port}: {f.getErrorMessage()}"))

        def delivered(_: Any) -> None:
            pending.delivered = True

        self._send(self, pending.command).addCallbacks(delivered, undelivered)

    def _finish(self, pending: _Pending, result: str | None = None,
                failure: Failure | None = None) -> None:
        if pending.deferred.called:
            pass
        elif failure is not None:
            pending.deferred.errback(failure)
        else:
            pending.deferred.callback(result or "")
        if self._current is pending:
            self._current = None
            self._pump()

    # -- parameters and actions --------------------------------------------------

    def write_parameter(self, name: str, value: Any) -> Any:
        line = {"model_light": commands.model_light, "fans": commands.fans,
                "polarizer": commands.polarizer}[name](value)
        return self.run_line(line).addCallback(lambda _out: value)

    def _action(self, line: CommandLine) -> Deferred[str]:
        return self.run_line(line)

    def action_set_model_light(self, power: int) -> Deferred[str]:
        return self._action(commands.model_light(power))

    def action_fire_all(self, power: int, camera: str = "nikon",
                        shutter_ms: Any = None) -> Deferred[str]:
        return self._action(commands.fire_all(power, camera, shutter_ms))

    def action_olat(self, power: int, continuous: bool = False,
                    camera: str = "nikon") -> Deferred[str]:
        return self._action(commands.olat(power, continuous, camera))

    def action_set_fans(self, on: bool) -> Deferred[str]:
        return self._action(commands.fans(on))

    def action_set_polarizer(self, on: bool) -> Deferred[str]:
        return self._action(commands.polarizer(on))

    def action_run_sequence(self, rows: list[Any]) -> Deferred[str]:
        return self._action(commands.run_sequence(rows))

    def action_upload_sequence(self, rows: list[Any]) -> Deferred[str]:
        return self._action(commands.upload_sequence(rows))

    def action_start_sequence(self) -> Deferred[str]:
        return self._action(commands.start_sequence())

    def action_store_standalone(self, rows: list[Any]) -> Deferred[str]:
        return self._action(commands.store_standalone(rows))

    def action_cmd(self, command: str) -> Deferred[str]:
        if not self.allow_raw_cmd:  # not in the description then; defence in depth
            raise UnknownAction(self.name, "cmd")
        self.log.warn("LA4 node {device}: raw command pass-through ({size} chars)",
                      device=self.name, size=len(command))
        return self.run_line(None, command)


@dataclass(frozen=True)
class NodeConfig:
    """One node to coordinate: its device name and pycom address."""

    name: str
    host: str
    port: int = 5000


def callback_endpoint(value: str | int) -> str:
    """
    The listener's endpoint string: a bare port means C{127.0.0.1}.

    @param value: C{"tcp:5000:interface=127.0.0.1"}, C{"5000"} or C{5000}.
    """
    text = str(value).strip()
    if text.isdigit():
        return f"tcp:{text}:interface=127.0.0.1"
    return text


def _normal_host(host: str) -> str:
    return "127.0.0.1" if host == "localhost" else host


@functools.lru_cache(maxsize=64)
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@implementer(IWireReport)
class LA4CoordinatorService(Service):
    """
    The coordinator: callback listener, heartbeats, one device per node.

    @param registry: where the node devices are registered (on start).
    @param reactor: for listening and connecting.
    @param nodes: the nodes to coordinate.
    @param callback: the listener's endpoint string (or bare port).
    @param clock: for heartbeats, deadlines and silence; C{reactor} when not given.
    @param advertise_ip: the C{ip} field we send (informational: nodes call
        back the address they observe).
    @param allow: networks allowed on the callback listener besides the
        configured nodes' addresses (nodes given by host name need an entry
        here); everyone else is refused before any document is read.
    """

    log = Logger()

    def __init__(self, registry: DeviceRegistry, reactor: Any, nodes: Sequence[NodeConfig],
                 callback: str | int = "tcp:5000:interface=127.0.0.1",
                 clock: IReactorTime | None = None, *, heartbeat_interval: float = 5.0,
                 offline_after: float = 15.0, command_timeout: float = 30.0,
                 allow_raw_cmd: bool = False, advertise_ip: str = "127.0.0.1",
                 name: str = "twisted_lab coordinator", max_message: int = MAX_MESSAGE,
                 read_timeout: float = READ_TIMEOUT, allow: Sequence[str] = ()) -> None:
        self.registry = registry
        self.reactor = reactor
        self.clock: IReactorTime = clock if clock is not None else reactor
        self.callback = callback_endpoint(callback)
        self.heartbeat_interval = heartbeat_interval
        self.id = new_id()
        self.coordinator_name = name
        self.advertise_ip = advertise_ip
        self.devices: list[LA4NodeDevice] = [
            LA4NodeDevice(n.name, _normal_host(n.host), n.port, self.send_command, self.clock,
                          command_timeout, offline_after, allow_raw_cmd)
            for n in nodes
        ]
        self.factory = DocumentFactory(self, self.clock, max_message, read_timeout)
        networks = [f"{n.host}" for n in nodes if _is_ip(_normal_host(n.host))]
        self.policy = AccessPolicy.build(
            [str(ipaddress.ip_network(_normal_host(h))) for h in networks] + list(allow),
            key="la4")
        self.listener_factory = AllowListFactory(self.factory, self.policy,
                                                 "LA4 callback listener")
        self._listening: IListeningPort | None = None
        self._waiters = ListenWaiters()
        self._heartbeat = LoopingCall(self.send_heartbeats)
        self._heartbeat.clock = self.clock
        self._registered: list[str] = []
        self._outgoing = Outgoing()

    # -- service -----------------------------------------------------------------

    @property
    def port(self) -> int:
        """The callback port actually listened on (0 until listening)."""
        if self._listening is None:
            return 0
        return int(getattr(self._listening.getHost(), "port"))

    def wire_report(self) -> dict[str, Any]:
        """The callback listener and the LA4 nodes with their state."""
        listeners = [f"{self.callback} (callbacks, port {self.port})"] if self.port else []
        return {"listeners": listeners, "peers": [
            {"peer": f"{d.host}:{d.port}", "device": d.name,
             "state": "online" if d.online else "offline"} for d in self.devices]}

    def startService(self) -> None:
        """Register the node devices, listen for callbacks, start heartbeating."""
        super().startService()
        for device in self.devices:
            try:
                self.registry.register(device)
            except LabError as e:
                self.log.error("LA4: cannot register node device {device}: {reason}",
                               device=device.name, reason=e.message)
            else:
                self._registered.append(device.name)
        d = serverFromString(self.reactor, self.callback).listen(self.listener_factory)
        listen_now(d, self._listening_on, self._listen_failed, self._waiters, self.stopService)

    def _listening_on(self, port: IListeningPort) -> None:
        self._listening = port
        self.factory.listening(port)
        self.log.info("LA4 coordinator {id} listening for callbacks on {endpoint} "
                      "(port {port})", id=self.id, endpoint=self.callback, port=self.port)
        self._heartbeat.start(self.heartbeat_interval, now=True)
        self._waiters.fire(self.port)

    def _listen_failed(self, failure: Failure) -> None:
        self.log.failure("LA4 coordinator cannot listen on {endpoint}", failure,
                         endpoint=self.callback)
        self._waiters.fail(failure)

    def when_listening(self) -> Deferred[int]:
        """@return: a new L{Deferred} firing with the callback port once listening."""
        return self._waiters.when_or_now(self._listening is not None, self.port)

    def stopService(self) -> Deferred[None]:
        """Stop heartbeating and listening; the devices go offline and are
        unregistered; fires once outgoing connections have ended."""
        super().stopService()
        if self._heartbeat.running:
            self._heartbeat.stop()
        for device in self.devices:
            device.went_offline()
        for name in self._registered:
            if name in self.registry:
                self.registry.unregister(name)
        self._registered = []
        port, self._listening = self._listening, None
        return stop_listening(port, self._outgoing)

    # -- outgoing ----------------------------------------------------------------

    def _base(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.coordinator_name, "ip": self.advertise_ip,
                "port": self.port, "version": __version__, "coordinator": True}

    def send_heartbeats(self) -> None:
        """One heartbeat to every configured node."""
        data = Heartbeat(**self._base()).encode()
        for device in self.devices:
            d = self._send(device.host, device.port, data)
            d.addErrback(self._heartbeat_failed, device)

    def _heartbeat_failed(self, failure: Failure, device: LA4NodeDevice) -> None:
        self.log.debug("LA4 heartbeat to {device} at {host}:{port} failed: {reason}",
                       device=device.name, host=device.host, port=device.port,
                       reason=failure.getErrorMessage())

    def send_command(self, device: LA4NodeDevice, command: str) -> Deferred[None]:
        """Send one C{cmd} request to a node (the devices call this)."""
        message = Command(command=command, **self._base())
        return self._send(device.host, device.port, message.encode())

    def _send(self, host: str, port: int, data: bytes) -> Deferred[None]:
        """Deliver one encoded message on a new connection (tests replace this)."""
        return self._outgoing.track(send_message(self.reactor, host, port, data))

    # -- incoming ----------------------------------------------------------------

    def _device_for(self, host: str, port: int) -> LA4NodeDevice | None:
        at_host = [d for d in self.devices if d.host == host]
        for device in at_host:
            if device.port == port:
                return device
        # a node configured by host name: matched by its port alone (give
        # nodes as IP addresses to have the sender's address checked too)
        named = [d for d in self.devices if not _is_ip(d.host) and d.port == port]
        if len(named) == 1:
            return named[0]
        return None

    def message_received(self, message: Message, host: str) -> None:
        """
        Route a node's message to its device (others are ignored and logged).
        A message still being read when the service stopped is dropped: its
        device is offline and stays so (no watchdog is started again).
        """
        if not self.running:
            return
        device = self._device_for(host, message.port)
        if device is None:
            self.log.warn("LA4 coordinator: ignoring {kind} from unknown node {peer} "
                          "(port {port})", kind=message.type_ or "heartbeat", peer=host,
                          port=message.port)
            return
        if not device.accepts(message):
            return
        device.seen(message)
        if isinstance(message, OutputEvent):
            device.output_received(message.output)
        elif isinstance(message, MessageEvent):
            device.message_received(message.message)
        elif isinstance(message, UnitInfo):
            device.unit_info_received(message.fields)
        elif isinstance(message, UnknownMessage):
            device.other_received(message)
        elif isinstance(message, Command):
            self.log.warn("LA4 coordinator: node {device} sent a cmd request; ignored",
                          device=device.name)

    def message_rejected(self, error: ProtocolError, host: str) -> None:
        """A bad document on the callback port: already logged; nothing else to do."""
