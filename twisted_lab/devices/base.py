# -*- test-case-name: tests.test_devices_base -*-
"""
Base classes that implement the device contract once.

A device type declares its L{Parameter}s and L{Action}s; L{BaseDevice} does
the checking every caller relies on (unknown names, read-only parameters,
types and limits, offline state), turns every result into a L{Deferred} and
sends change events.  Subclasses write only the instrument-specific parts:
L{BaseDevice.read_parameter}, L{BaseDevice.write_parameter} and an
C{action_<name>} method per action.

L{BaseActuator} and L{BaseDetector} add the L{IActuator} and L{IDetector}
methods, and offer them as actions too, so a protocol that only knows
C{call} (PLESTY, pyleco's C{call_action}) can move and grab.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from twisted_lab.data import Export
from twisted_lab.description import Action, Argument, Description, Parameter
from twisted_lab.errors import (DeviceBusy, DeviceOffline, ReadOnly, UnknownAction,
                                UnknownParameter)
from twisted_lab.events import CHANGED, DATA, OFFLINE, ONLINE, LabEvent, Listener, add_listener
from twisted_lab.interfaces import IActuator, IDetector, IDevice

__all__ = ["BaseDevice", "BaseActuator", "BaseDetector", "ACTUATOR_ACTIONS", "DETECTOR_ACTIONS"]


@implementer(IDevice)
class BaseDevice:
    """
    A device described by parameters and actions.

    @ivar name: the device name.
    @ivar online: C{False} while unreachable; calls then fail with L{DeviceOffline}.
    @ivar busy: C{True} while a call that overran its deadline still runs.
    """

    log = Logger()
    kind = "device"
    doc = ""

    def __init__(self, name: str, parameters: Sequence[Parameter] = (),
                 actions: Sequence[Action] = (), doc: str = "") -> None:
        self.name = name
        self.online = True
        self._listeners: list[Listener] = []
        self._values: dict[str, Any] = {p.name: p.default for p in parameters}
        self._description = self._build_description(parameters, actions, doc or self.doc)

    def _build_description(self, parameters: Sequence[Parameter], actions: Sequence[Action],
                           doc: str) -> Description:
        return Description.build(self.name, parameters, actions, kind=self.kind, doc=doc)

    @property
    def busy(self) -> bool:
        """C{True} while a call that overran its deadline still runs."""
        return False

    @property
    def description(self) -> Description:
        """The device's L{Description}, synchronously."""
        return self._description

    # -- IDevice ---------------------------------------------------------------

    def describe(self) -> Deferred[Description]:
        """@return: a L{Deferred} firing with the L{Description}."""
        return succeed(self._description)

    def get(self, name: str) -> Deferred[Any]:
        """Read a parameter (see L{IDevice.get})."""
        try:
            self._check_online()
            self._parameter(name)
        except Exception:
            return fail()
        return maybeDeferred(self.read_parameter, name)

    def set(self, name: str, value: Any) -> Deferred[Any]:
        """Write a parameter after validating it (see L{IDevice.set})."""
        try:
            self._check_online()
            parameter = self._parameter(name)
            if parameter.readonly:
                raise ReadOnly(self.name, name)
            value = parameter.validate(value, self.name)
        except Exception:
            return fail()
        d = maybeDeferred(self.write_parameter, name, value)

        def written(result: Any) -> Any:
            actual = value if result is None else result
            self.changed(name, actual)
            return actual

        return d.addCallback(written)

    def call(self, action: str, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Run an action after binding its arguments (see L{IDevice.call})."""
        try:
            self._check_online()
            spec = self._description.actions.get(action)
            if spec is None or action.startswith("_"):
                raise UnknownAction(self.name, action, list(self._description.actions))
            values = spec.bind(args, kwargs, self.name)
        except Exception:
            return fail()
        return maybeDeferred(self.run_action, action, *values)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call C{listener(event)} with this device's events; return an unsubscriber."""
        return add_listener(self._listeners, listener)

    # -- for subclasses --------------------------------------------------------

    def read_parameter(self, name: str) -> Any:
        """
        Read a (known) parameter: its stored value by default.

        @return: the value or a L{Deferred} of it.
        """
        return self._values[name]

    def write_parameter(self, name: str, value: Any) -> Any:
        """
        Write a (known, validated) parameter: stores it by default.

        @return: C{None}, the value actually set, or a L{Deferred} of either.
        """
        self._values[name] = value
        return None

    def run_action(self, action: str, *args: Any) -> Any:
        """
        Run a (known) action with bound arguments: calls C{action_<name>}.

        @return: the result or a L{Deferred} of it.
        """
        method = getattr(self, "action_" + action, None)
        if method is None:
            raise UnknownAction(self.name, action)
        return method(*args)

    def emit(self, event: LabEvent) -> None:
        """Send an event to every subscriber (a failing one is logged)."""
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                self.log.failure("listener of {device} failed on {kind}", device=self.name,
                                 kind=event.kind)

    def changed(self, name: str, value: Any) -> None:
        """Report that parameter C{name} now has C{value}."""
        self.emit(LabEvent(CHANGED, self.name, name, value))

    def set_online(self, online: bool) -> None:
        """Mark the device reachable or not, and tell subscribers on a change."""
        if online != self.online:
            self.online = online
            self.emit(LabEvent(ONLINE if online else OFFLINE, self.name))

    def _check_online(self) -> None:
        if not self.online:
            raise DeviceOffline(f"device {self.name!r} is offline")

    def _check_not_busy(self) -> None:
        if self.busy:
            raise DeviceBusy(f"device {self.name!r} is still busy with an earlier call")

    def _parameter(self, name: str) -> Parameter:
        try:
            return self._description.parameters[name]
        except KeyError:
            raise UnknownParameter(self.name, name, list(self._description.parameters)) from None


#: The actions every actuator offers (for protocols that only know C{call}).
ACTUATOR_ACTIONS = (
    Action("move_abs", (Argument("position", "float"),), "Move to an absolute position."),
    Action("move_rel", (Argument("step", "float"),), "Move by a step."),
    Action("move_home", (), "Move to the home position."),
    Action("stop", (), "Stop any motion.", mutating=False),
    Action("position", (), "Read the current position.", mutating=False),
)

#: The actions every detector offers.
DETECTOR_ACTIONS = (
    Action("grab", (), "Acquire once and return the data.", mutating=False),
)


@implementer(IActuator)
class BaseActuator(BaseDevice):
    """
    An actuator: subclasses implement C{_move_abs}, C{_stop} and C{_position}
    (and may override C{_move_rel} and C{_move_home}); each may return a
    value or a L{Deferred}.

    @ivar units: position units.
    @ivar home: the home position (C{0.0} by default).
    """

    kind = "actuator"
    home = 0.0

    def __init__(self, name: str, units: str = "", parameters: Sequence[Parameter] = (),
                 actions: Sequence[Action] = (), doc: str = "") -> None:
        self.units = units
        super().__init__(name, parameters, tuple(ACTUATOR_ACTIONS) + tuple(actions), doc)

    def _build_description(self, parameters: Sequence[Parameter], actions: Sequence[Action],
                           doc: str) -> Description:
        return Description.build(self.name, parameters, actions, kind=self.kind, doc=doc,
                                 units=self.units)

    def move_abs(self, position: float) -> Deferred[float]:
        """Move to C{position}; fires with the position reached."""
        return self.call("move_abs", position)

    def move_rel(self, step: float) -> Deferred[float]:
        """Move by C{step}; fires with the position reached."""
        return self.call("move_rel", step)

    def move_home(self) -> Deferred[float]:
        """Move home; fires with the position reached."""
        return self.call("move_home")

    def stop(self) -> Deferred[float]:
        """Stop any motion; fires with the current position."""
        return self.call("stop")

    def position(self) -> Deferred[float]:
        """
        Fires with the current position.  (The same as C{call("position")},
        without the generic dispatch: position queries are the hot path of
        actuator polling.)
        """
        cls = type(self)
        if (cls.action_position is not BaseActuator.action_position
                or cls.run_action is not BaseDevice.run_action):
            return self.call("position")  # a subclass routes actions its own way
        if not self.online:
            return fail(DeviceOffline(f"device {self.name!r} is offline"))
        return maybeDeferred(self._position)

    def action_move_abs(self, position: float) -> Deferred[float]:
        return self._moved(maybeDeferred(self._move_abs, position))

    def action_move_rel(self, step: float) -> Deferred[float]:
        return self._moved(maybeDeferred(self._move_rel, step))

    def action_move_home(self) -> Deferred[float]:
        return self._moved(maybeDeferred(self._move_home))

    def action_stop(self) -> Deferred[float]:
        return maybeDeferred(self._stop)

    def action_position(self) -> Deferred[float]:
        return maybeDeferred(self._position)

    def _moved(self, d: Deferred[Any]) -> Deferred[float]:
        def report(position: float) -> float:
            self.emit(LabEvent(DATA, self.name, "position", position))
            return position

        return d.addCallback(report)

    def _move_rel(self, step: float) -> Any:
        d = maybeDeferred(self._position)
        return d.addCallback(lambda here: self._move_abs(here + step))

    def _move_home(self) -> Any:
        return self._move_abs(self.home)

    def _move_abs(self, position: float) -> Any:
        raise NotImplementedError

    def _stop(self) -> Any:
        raise NotImplementedError

    def _position(self) -> Any:
        raise NotImplementedError


@implementer(IDetector)
class BaseDetector(BaseDevice):
    """
    A detector: subclasses implement C{_grab} returning an L{Export} (or a
    L{Deferred} of one).

    @ivar dims: the dimensionalities it produces.
    """

    kind = "detector"
    dims: tuple[str, ...] = ()

    def __init__(self, name: str, parameters: Sequence[Parameter] = (),
                 actions: Sequence[Action] = (), doc: str = "",
                 dims: Sequence[str] | None = None) -> None:
        if dims is not None:
            self.dims = tuple(dims)
        super().__init__(name, parameters, tuple(DETECTOR_ACTIONS) + tuple(actions), doc)

    def _build_description(self, parameters: Sequence[Parameter], actions: Sequence[Action],
                           doc: str) -> Description:
        return Description.build(self.name, parameters, actions, kind=self.kind, doc=doc,
                                 dims=self.dims)

    def grab(self) -> Deferred[Export]:
        """Acquire once; fires with an L{Export}."""
        return self.call("grab")

    def action_grab(self) -> Deferred[Export]:
        d = maybeDeferred(self._grab)

        def report(export: Export) -> Export:
            self.emit(LabEvent(DATA, self.name, None, export))
            return export

        return d.addCallback(report)

    def _grab(self) -> Any:
        raise NotImplementedError
