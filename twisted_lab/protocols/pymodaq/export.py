# -*- test-case-name: tests.test_pymodaq_client -*-
"""
The client role: export a registry device to a PyMoDAQ main computer.

We connect to a PyMoDAQ C{TCPServer} plugin (a DAQ_Viewer or DAQ_Move on the
main computer) as a C{GRABBER} (detector) or C{ACTUATOR}, send the device's
settings, then answer the server's commands (C{specs/pymodaq-tcp.md} §4, §5)
through the registry.  A parameter change on the device is pushed as
C{Info_xml}; C{Quit} is sent before closing.
"""
from __future__ import annotations

from typing import Any, Callable

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import (CancelledError, Deferred, DeferredLock, ensureDeferred,
                                    succeed)
from twisted.internet.endpoints import clientFromString
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_lab import fastpath
from twisted_lab.data import Export, Signal
from twisted_lab.description import Parameter
from twisted_lab.errors import LabError, ProtocolError, UnknownParameter
from twisted_lab.events import CHANGED, ONLINE, LabEvent
from twisted_lab.interfaces import IActuator
from twisted_lab.leases import Owner
from twisted_lab.protocols.pymodaq.codec import DEFAULT_VERSION, WireVersion
from twisted_lab.protocols.pymodaq.transport import PyMoDAQConnection
from twisted_lab.protocols.pymodaq.message import (DEFAULT_MAX_SIZE, SEND_DATA, TO_CLIENT,
                                                  Message)
from twisted_lab.formats.pymodaq.settings import (parameter_xml, parse_parameter,
                                                        settings_xml)
from twisted_lab.registry import DeviceRegistry

__all__ = ["PyMoDAQClientProtocol", "PyMoDAQClientFactory", "PyMoDAQExportService",
           "ROLES", "SETTINGS_ROOT"]

#: The client types.
ROLES = ("GRABBER", "ACTUATOR")
#: The root name of the settings tree we send.
SETTINGS_ROOT = "settings"
_UNITS = Parameter("units", "str", readonly=True, doc="Units:")
_MOVES = ("move_abs", "move_rel", "move_home")
_POSITION_QUERIES = frozenset(("get_actuator_value", "check_position"))


class PyMoDAQClientProtocol(PyMoDAQConnection):
    """
    One connection to a PyMoDAQ server, exporting one registry device.

    Commands are answered in the order they came (PyMoDAQ matches replies by
    order only); C{stop_motion} alone jumps the queue, so it can stop a move.
    """

    log = Logger()
    grammar = TO_CLIENT
    factory: PyMoDAQClientFactory

    def __init__(self, wire: str | WireVersion = DEFAULT_VERSION,
                 max_size: int = DEFAULT_MAX_SIZE) -> None:
        super().__init__(wire, max_size)
        self._lock = DeferredLock()
        self._unsubscribe: Callable[[], None] | None = None
        self._device: Any = None
        self._waiting: Deferred[Any] | None = None
        self.role = ""

    @property
    def owner(self) -> Owner:
        """Our lease owner for mutating calls."""
        return Owner("pymodaq", f"server@{self.peer}")

    def connectionMade(self) -> None:
        """Send the client type, then (once the device exists) its settings."""
        super().connectionMade()
        self.factory.connections.add(self)
        waiting = self.factory.registry.when_registered(self.factory.device_name)
        self._waiting = waiting
        waiting.addCallback(self._registered)
        waiting.addErrback(self._handshake_failed)

    def _handshake_failed(self, failure: Failure) -> None:
        if failure.check(CancelledError) and self.closing:
            return
        self._log_failure(failure, "handshake")

    def _registered(self, device: Any) -> Deferred[None]:
        self._waiting = None
        self._device = device
        self.role = self.factory.role_of(device)
        self.send(self.role)
        self._unsubscribe = device.subscribe(self._device_event)
        if not getattr(device, "online", True):
            # a hosted driver still connecting: PyMoDAQ needs every setting's
            # value, so the settings tree is sent once the device is online
            self._infos_pending = True
            self.log.info("{device} is offline: its settings go to {peer} once it is online",
                          device=device.name, peer=self.peer)
            return succeed(None)
        return ensureDeferred(self._send_infos())

    async def _send_infos(self) -> None:
        device = self._device
        description = await device.describe()
        values = await self._values(description.parameters.values())
        extra = []
        if self.role == "ACTUATOR":
            extra.append((_UNITS, getattr(device, "units", "") or description.units))
        self.send("Infos", settings_xml(self._exported(description), values,
                                        SETTINGS_ROOT, extra))
        self.log.info("exporting {device} to PyMoDAQ server {peer} as {role}",
                      device=device.name, peer=self.peer, role=self.role)

    @staticmethod
    def _exported(description: Any) -> list[Parameter]:
        return [p for p in description.parameters.values() if p.name != "units"]

    async def _values(self, parameters: Any) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for parameter in parameters:
            try:
                values[parameter.name] = await self._device.get(parameter.name)
            except LabError:
                values[parameter.name] = parameter.default
        return values

    def _device_event(self, event: LabEvent) -> None:
        if event.kind == ONLINE and getattr(self, "_infos_pending", False) and not self.closing:
            self._infos_pending = False
            ensureDeferred(self._send_infos()).addErrback(self._log_failure, "settings")
            return
        if event.kind != CHANGED or event.parameter is None or self.closing:
            return
        parameter = self._device.description.parameters.get(event.parameter)
        if parameter is None:
            return
        self.send("Info_xml", [SETTINGS_ROOT, parameter.name], parameter_xml(parameter, event.value))

    # -- commands --------------------------------------------------------------

    def message_received(self, message: Message) -> None:
        """Answer a server command."""
        if message.command == "Quit":
            self.log.info("PyMoDAQ server {peer} quit", peer=self.peer)
            self.closing = True
            assert self.transport is not None
            self.transport.loseConnection()
            return
        command = message.command
        if command in _POSITION_QUERIES and not self._lock.locked and self._device is not None:
            self._answer_position(command, self._device)
            return
        if command == "stop_motion":
            d = ensureDeferred(self._handle(message))
        else:
            d = self._lock.run(lambda: ensureDeferred(self._handle(message)))
        d.addErrback(self._log_failure, command)

    def _answer_position(self, command: str, device: Any) -> None:
        """
        Answer a position query with nothing queued before it (the common
        case, kept free of coroutines): the reply goes out at once if the
        position is known at once; otherwise later commands wait for it.
        """
        d = device.position()
        result = fastpath.fired_result(d)
        if result is not fastpath.NOTHING:
            self._send_position(result, device)
            return
        done: list[Any] = []
        d.addCallbacks(self._send_position, self._position_failed, callbackArgs=(device,),
                       errbackArgs=(command,))
        d.addBoth(done.append)
        if not done:
            self._lock.locked = True  # as DeferredLock.acquire does, without a Deferred
            d.addBoth(self._release)

    def _send_position(self, position: Any, device: Any) -> None:
        if isinstance(position, Signal):
            self.send("position_is", position)
        else:
            self.send_position("position_is", float(position), self.factory.device_name,
                               getattr(device, "units", ""))

    def _position_failed(self, failure: Failure, command: str) -> None:
        if isinstance(failure.value, LabError):
            self._report(command, failure.value)
        else:
            self._log_failure(failure, command)

    def _release(self, result: Any) -> None:
        self._lock.release()

    def _log_failure(self, failure: Failure, command: str) -> None:
        self.log.failure("answering {command} from {peer} failed", failure, command=command,
                         peer=self.peer)

    async def _device_now(self) -> Any:
        if self._device is None:
            self._device = await self.factory.registry.get(self.factory.device_name)
        return self._device

    async def _handle(self, message: Message) -> None:
        command = message.command
        name = self.factory.device_name
        try:
            device = await self._device_now()
            if command in SEND_DATA:
                export = await device.grab()
                self.send("Done", self._as_export(export))
            elif command in _MOVES:
                guarded = await self.factory.registry.guarded(name, self.owner)
                if command == "move_home":
                    position = await guarded.move_home()
                else:
                    target = message.args[0].value()
                    method = guarded.move_abs if command == "move_abs" else guarded.move_rel
                    position = await method(target)
                self.send("move_done", self._position(device, position))
            elif command in ("get_actuator_value", "check_position"):
                self.send("position_is", self._position(device, await device.position()))
            elif command == "stop_motion":
                await device.stop()
            elif command == "set_info":
                await self._set_info(*message.args)
        except LabError as e:
            self._report(command, e)
            if command in _MOVES:
                await self._answer_refused_move(device_or_none=self._device)

    async def _answer_refused_move(self, device_or_none: Any) -> None:
        """
        A move was refused (a lease, a limit, an offline device): still answer
        C{move_done} with the position where the actuator stays, because the
        PyMoDAQ main computer matches replies by order and would otherwise
        credit the next move's reply to this one.
        """
        if device_or_none is None:
            return
        try:
            position = await device_or_none.position()
        except LabError as e:
            self.log.warn("cannot read the position of {device} after a refused move: {reason}",
                          device=self.factory.device_name, reason=e.message)
            return
        self.send("move_done", self._position(device_or_none, position))

    def _report(self, command: str, error: LabError) -> None:
        self.log.warn("{command} from PyMoDAQ server {peer} failed: {code}: {reason}",
                      command=command, peer=self.peer, code=error.code, reason=error.message)
        self.send("Info", f"{self.factory.device_name}.{command}", f"{error.code}: {error.message}")

    async def _set_info(self, path: list[str], xml: str) -> None:
        if len(path) > 1 and path[0] == SETTINGS_ROOT:
            path = path[1:]
        settings = parse_parameter(xml, tuple(path))
        guarded = await self.factory.registry.guarded(self.factory.device_name, self.owner)
        for setting in settings:
            name = ".".join(setting.path)
            if name == "units":
                continue
            description = await guarded.describe()
            if name not in description.parameters:
                raise UnknownParameter(self.factory.device_name, name,
                                       list(description.parameters))
            await guarded.set(name, setting.value)

    def _position(self, device: Any, position: Any) -> Signal:
        if isinstance(position, Signal):
            return position
        return Signal.scalar(self.factory.device_name, float(position),
                             units=getattr(device, "units", ""), kind="DataActuator")

    def _as_export(self, export: Any) -> Export:
        if isinstance(export, Export):
            return export
        if isinstance(export, Signal):
            return Export(self.factory.device_name, [export])
        raise ProtocolError(f"grab of {self.factory.device_name} returned {type(export).__name__}")

    def send_quit(self) -> None:
        """Say goodbye (real PyMoDAQ servers spin on a socket closed without it)."""
        if not self.closing:
            self.send("Quit")

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        """Stop listening to the device."""
        super().connectionLost(reason)
        self.factory.connections.discard(self)
        if self._waiting is not None:
            self._waiting.cancel()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None


class PyMoDAQClientFactory(Factory):
    """
    Builds connections that export C{device_name} as a C{role} client.

    @ivar connections: the live connections.
    """

    protocol = PyMoDAQClientProtocol  # type: ignore[assignment]

    def __init__(self, registry: DeviceRegistry, device_name: str, role: str = "",
                 wire: str | WireVersion = DEFAULT_VERSION,
                 max_size: int = DEFAULT_MAX_SIZE) -> None:
        if role not in ROLES + ("",):
            raise ValueError(f"role must be one of {ROLES} (or empty: from the device), "
                             f"got {role!r}")
        self.registry = registry
        self.device_name = device_name
        self.role = role
        self.wire = wire
        self.max_size = max_size
        self.connections: set[PyMoDAQClientProtocol] = set()

    def role_of(self, device: Any) -> str:
        """Our client type: the configured role, else from the device kind."""
        if self.role:
            return self.role
        return "ACTUATOR" if IActuator.providedBy(device) else "GRABBER"

    def buildProtocol(self, addr: Any) -> PyMoDAQClientProtocol:  # type: ignore[override]
        """A connection with our wire settings."""
        proto = self.protocol(self.wire, self.max_size)
        proto.factory = self
        return proto


class PyMoDAQExportService(ClientService):
    """
    Keeps one export connection up (with back-off), sending C{Quit} on stop.
    """

    def __init__(self, reactor: Any, endpoint: str, factory: PyMoDAQClientFactory) -> None:
        super().__init__(clientFromString(reactor, endpoint), factory,
                         retryPolicy=backoffPolicy(initialDelay=0.5, maxDelay=30), clock=reactor)
        self.factory = factory
        self.endpoint = endpoint

    def stopService(self) -> Deferred[None]:
        """Send C{Quit} on the live connection, then close it."""
        for proto in list(self.factory.connections):
            proto.send_quit()
        return super().stopService()
