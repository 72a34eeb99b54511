# -*- test-case-name: tests.test_leco_pymodaq_director -*-
"""
Directing a remote PyMoDAQ 5 module (an C{ActorListener}) over LECO: it
becomes a registry actuator or detector (spec leco.md §13).

The remote module answers every call at once and reports later by calling
us back: C{set_move_done}, C{send_position}, C{set_data},
C{set_director_settings}, C{set_director_info}.  Those methods are
registered once per Component and routed to the right remote device by the
caller's name, so one Component can direct any number of modules.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable

import numpy as np
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_lab.data import Axis, Export, Signal
from twisted_lab.devices.base import BaseActuator, BaseDetector
from twisted_lab.devices.remote import RemoteDeviceMixin
from twisted_lab.errors import DeviceOffline, DeviceTimeout, InvalidValue
from twisted_lab.protocols.leco import serializall
from twisted_lab.formats.pymodaq.objects import ParameterWithPath
from twisted_lab.formats.pymodaq.settings import leaf_values, read_parameter
from twisted_lab.registry import DeviceRegistry
from twisted_lab.waiting import KeyedWaiters

__all__ = ["make_remote", "PyMoDAQRemoteActuator", "PyMoDAQRemoteDetector", "DIRECTOR_METHODS",
           "KINDS"]

#: The callbacks a PyMoDAQ actor makes (spec §13.3).
DIRECTOR_METHODS = ("set_move_done", "send_position", "set_data", "set_director_settings",
                    "set_director_info", "set_units")

#: The C{kind} values of L{make_remote}.
KINDS = ("pymodaq_actuator", "pymodaq_detector")

_GONE = (-32093, -32092)


def _bare(name: str) -> str:
    return name.rpartition(".")[2]


def _data_value(params: Any, frames: list[bytes], key: str = "data") -> Any:
    """The value of a callback: the JSON C{data} or, when null, the serializall frame."""
    if isinstance(params, dict):
        value = params.get(key)
    elif isinstance(params, list) and params:
        value = params[0]
    else:
        value = None
    if value is None and frames:
        return serializall.decode(frames[0])
    return value


def _position_from(value: Any) -> float:
    if isinstance(value, Signal):
        return value.value()
    if isinstance(value, dict) and "position" in value:
        value = value["position"]
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise InvalidValue(f"expected a position (DataActuator or number), got {value!r}")


def _export_from(value: Any, name: str) -> Export:
    """Accept the binary DataToExport and the JSON forms of spec §13.3."""
    if isinstance(value, Export):
        return value
    if isinstance(value, Signal):
        return Export(name, [value])
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Export(name, [Signal(name, [np.array([float(value)])], kind="DataFromPlugins")])
    if isinstance(value, list):
        return Export(name, [Signal(name, [np.asarray(value, dtype=float)],
                                    kind="DataFromPlugins")])
    if isinstance(value, dict) and "data" in value:
        data = value["data"]
        multichannel = bool(value.get("multichannel", False))
        channels = [np.asarray(c, dtype=float) for c in data] if multichannel \
            else [np.asarray(data, dtype=float)]
        axes = [Axis(a.get("label", ""), a.get("units", ""), np.asarray(a.get("data", [])), i)
                for i, a in enumerate(value.get("axes", []) or [])]
        labels = list(value.get("labels") or [])
        try:
            return Export(name, [Signal(name, channels, labels=labels, axes=axes,
                                        kind="DataFromPlugins")])
        except ValueError as e:
            raise InvalidValue(f"set_data: {e}") from None
    raise InvalidValue(f"set_data: expected a DataToExport, got {type(value).__name__}")


class _Router:
    """The director callbacks of one Component, routed to devices by caller name."""

    log = Logger()

    def __init__(self, component: Any) -> None:
        self.component = component
        self.devices: dict[str, Any] = {}
        for method in DIRECTOR_METHODS:
            component.register_method(method, self._make(method))

    def _make(self, method: str) -> Callable[[Any, list[bytes]], None]:
        def handle(params: Any, frames: list[bytes]) -> None:
            caller = getattr(self.component, "caller", None) or ""
            if isinstance(caller, bytes):
                caller = caller.decode("utf-8", "replace")
            device = self.devices.get(caller) or self.devices.get(_bare(caller))
            if device is None:
                self.log.warn("{method} from {caller}, which we do not direct", method=method,
                              caller=caller)
                raise InvalidValue(f"{self.component.full_name} does not direct {caller!r}")
            getattr(device, "on_" + method)(params, frames)
            return None

        handle.__doc__ = f"PyMoDAQ director callback {method}."
        return handle


_routers: weakref.WeakKeyDictionary[Any, _Router] = weakref.WeakKeyDictionary()


def _router(component: Any) -> _Router:
    router = _routers.get(component)
    if router is None:
        router = _routers[component] = _Router(component)
    return router


class _RemoteMixin(RemoteDeviceMixin):
    """
    What remote PyMoDAQ 5 actuators and detectors share: calls, liveness,
    settings (following the link is L{RemoteDeviceMixin}'s).
    """

    log = Logger()

    def _setup(self, component: Any, actor: str, reactor: Any, timeout: float,
               done_timeout: float, ping_interval: float) -> None:
        self.component = component
        self.actor = actor
        self.reactor = reactor
        self.timeout = timeout
        self.done_timeout = done_timeout
        self.ping_interval = ping_interval
        self.settings_xml: str | None = None
        self.remote_settings: dict[str, Any] = {}
        #: callers waiting for a callback of the actor, by callback method
        self._waiting: KeyedWaiters[str, Any] = KeyedWaiters(reactor)
        self._introduced = False

    def fail_pending(self, error: Exception) -> None:
        """Fail the callers waiting for a callback of the actor."""
        self._waiting.fail_all(error)

    # -- calls -----------------------------------------------------------------

    def _ask(self, method: str, params: Any = None, frames: list[bytes] | None = None
             ) -> Deferred[Any]:
        d = maybeDeferred(self.component.ask, self.actor, method, params, frames or [],
                          timeout=self.timeout)
        d.addErrback(self._ask_failed)
        return d

    def _ask_failed(self, failure: Failure) -> Failure:
        if getattr(failure.value, "rpc_code", None) in _GONE:
            self._gone()
            return Failure(DeviceOffline(f"PyMoDAQ actor {self.actor!r} is not signed in"))
        return failure

    def _expect(self, event: str, method: str, params: Any = None,
                frames: list[bytes] | None = None) -> Deferred[Any]:
        """Ask C{method}, then wait for the C{event} callback (within done_timeout)."""
        if not self.online:
            from twisted.internet.defer import fail
            return fail(DeviceOffline(f"PyMoDAQ actor {self.actor!r} is offline"))
        waiter = self._waiting.when(event, self.done_timeout, lambda: DeviceTimeout(
            f"PyMoDAQ actor {self.actor!r} sent no {event} within {self.done_timeout} s"))
        outcome: Deferred[Any] = Deferred(lambda d: waiter.cancel())

        def refused(failure: Failure) -> None:
            if not outcome.called:
                outcome.errback(failure)
                waiter.cancel()  # stop waiting for the callback

        def relay(result: Any) -> None:
            if outcome.called:
                return
            if isinstance(result, Failure):
                outcome.errback(result)
            else:
                outcome.callback(result)

        waiter.addBoth(relay)
        self._ask(method, params, frames).addErrback(refused)
        return outcome

    def _deliver(self, event: str, value: Any) -> bool:
        return self._waiting.fire(event, value) > 0

    # -- liveness --------------------------------------------------------------

    def start_polling(self) -> Deferred[Any]:
        """Introduce ourselves to the actor and start checking that it lives."""
        self.start_liveness(self._check, self.ping_interval, self.reactor, now=False)
        return self._introduce()

    def stop_polling(self) -> None:
        """Stop the liveness checks and fail pending calls (the device stays registered)."""
        self.stop_liveness(f"director of {self.actor!r} stopped")

    def _introduce(self) -> Deferred[Any]:
        d = self._ask("set_remote_name", {"name": self.component.full_name})
        d.addCallback(lambda _: self._ask("get_settings"))

        def ok(_: Any) -> None:
            self._introduced = True
            self.link_up()

        def failed(failure: Failure) -> None:
            self._introduced = False
            self.log.info("PyMoDAQ actor {actor} not reachable yet: {error}", actor=self.actor,
                          error=str(failure.value))
            if failure.check(DeviceOffline):
                self._gone()

        return d.addCallbacks(ok, failed)

    def _check(self) -> Deferred[Any]:
        d = maybeDeferred(self.component.ask, self.actor, "pong", None, [],
                          timeout=min(self.timeout, self.ping_interval))

        def alive(_: Any) -> Any:
            if not self.online or not self._introduced:
                return self._introduce()   # it came back: it forgot us
            return None

        def dead(failure: Failure) -> None:
            if getattr(failure.value, "rpc_code", None) in _GONE or failure.check(DeviceTimeout):
                self._gone()

        return d.addCallbacks(alive, dead)

    def _gone(self) -> None:
        self._introduced = False
        if self.link_down(f"PyMoDAQ actor {self.actor!r} went away"):
            self.log.info("PyMoDAQ actor {actor} went away", actor=self.actor)

    # -- callbacks -------------------------------------------------------------

    def on_set_director_settings(self, params: Any, frames: list[bytes]) -> None:
        settings = params.get("settings") if isinstance(params, dict) else \
            (params[0] if isinstance(params, list) and params else None)
        if not isinstance(settings, str):
            raise InvalidValue("set_director_settings needs settings (an XML string)")
        self.settings_xml = settings
        self.remote_settings = leaf_values(settings)

    def on_set_director_info(self, params: Any, frames: list[bytes]) -> None:
        value = _data_value(params, frames, "parameter")
        if not isinstance(value, ParameterWithPath):
            raise InvalidValue("set_director_info needs a ParameterWithPath frame")
        name, _, setting = read_parameter(value.xml)
        self.remote_settings[name] = setting

    def on_set_units(self, params: Any, frames: list[bytes]) -> None:
        units = params.get("units") if isinstance(params, dict) else None
        if isinstance(units, str) and hasattr(self, "units"):
            self.units = units

    def on_set_move_done(self, params: Any, frames: list[bytes]) -> None:
        raise InvalidValue(f"{self.name} is not an actuator")

    def on_send_position(self, params: Any, frames: list[bytes]) -> None:
        raise InvalidValue(f"{self.name} is not an actuator")

    def on_set_data(self, params: Any, frames: list[bytes]) -> None:
        raise InvalidValue(f"{self.name} is not a detector")


class PyMoDAQRemoteActuator(_RemoteMixin, BaseActuator):
    """
    A remote PyMoDAQ 5 C{DAQ_Move} directed over LECO.

    @ivar actor: the remote module's LECO name.
    @ivar remote_settings: its settings as last reported (name → value).
    """

    def __init__(self, name: str, component: Any, actor: str, reactor: Any,
                 timeout: float = 1.0, done_timeout: float = 120.0,
                 ping_interval: float = 1.0, units: str = "") -> None:
        self._setup(component, actor, reactor, timeout, done_timeout, ping_interval)
        BaseActuator.__init__(self, name, units, doc=f"PyMoDAQ actuator {actor} over LECO")

    def _frame(self, value: float) -> list[bytes]:
        return [serializall.encode(Signal.scalar(self.name, float(value), self.units,
                                                 kind="DataActuator"))]

    def _move_abs(self, position: float) -> Deferred[float]:
        return self._expect("set_move_done", "move_abs", {"position": None}, self._frame(position))

    def _move_rel(self, step: float) -> Deferred[float]:
        return self._expect("set_move_done", "move_rel", {"position": None}, self._frame(step))

    def _move_home(self) -> Deferred[float]:
        return self._expect("set_move_done", "move_home")

    def _position(self) -> Deferred[float]:
        return self._expect("send_position", "get_actuator_value")

    def _stop(self) -> Deferred[Any]:
        return self._ask("stop_motion").addCallback(lambda _: self._position())

    def on_set_move_done(self, params: Any, frames: list[bytes]) -> None:
        self._position_event("set_move_done", params, frames)

    def on_send_position(self, params: Any, frames: list[bytes]) -> None:
        self._position_event("send_position", params, frames)

    def _position_event(self, event: str, params: Any, frames: list[bytes]) -> None:
        """A callback carrying a position (its units are taken if we have none)."""
        value = _data_value(params, frames)
        position = _position_from(value)
        if isinstance(value, Signal) and value.units and not self.units:
            self.units = value.units
        self._deliver(event, position)


class PyMoDAQRemoteDetector(_RemoteMixin, BaseDetector):
    """
    A remote PyMoDAQ 5 C{DAQ_Viewer} directed over LECO.

    Continuous grabs started remotely (C{send_data_grab}) arrive as C{data}
    events; L{grab} snaps once.
    """

    def __init__(self, name: str, component: Any, actor: str, reactor: Any,
                 timeout: float = 1.0, done_timeout: float = 120.0,
                 ping_interval: float = 1.0) -> None:
        self._setup(component, actor, reactor, timeout, done_timeout, ping_interval)
        BaseDetector.__init__(self, name, doc=f"PyMoDAQ detector {actor} over LECO")

    def _grab(self) -> Deferred[Export]:
        return self._expect("set_data", "send_data_snap")

    def on_set_data(self, params: Any, frames: list[bytes]) -> None:
        export = _export_from(_data_value(params, frames), self.name)
        if not self._deliver("set_data", export):
            from twisted_lab.events import DATA, LabEvent
            self.emit(LabEvent(DATA, self.name, None, export))


def make_remote(component: Any, registry: DeviceRegistry, name: str, actor: str, kind: str,
                reactor: Any, timeout: float = 1.0) -> Any:
    """
    Direct the remote PyMoDAQ 5 module C{actor} as registry device C{name}.

    Registers the director callbacks on C{component} (once per component),
    registers the device in C{registry}, sends C{set_remote_name} and
    C{get_settings} (now or as soon as the actor is reachable) and pings the
    actor every second: it goes offline when the Coordinator reports it
    unknown (or it stops answering), and online again when it answers.

    @param kind: C{"pymodaq_actuator"} or C{"pymodaq_detector"}.
    @param timeout: deadline of each call (the completion callbacks, such as
        C{set_move_done}, have their own, C{done_timeout}, 120 s).
    @return: the L{PyMoDAQRemoteActuator} or L{PyMoDAQRemoteDetector}; call
        its C{stop()} to end the liveness checks.
    @raise InvalidValue: unknown C{kind}.
    """
    if kind == "pymodaq_actuator":
        device: Any = PyMoDAQRemoteActuator(name, component, actor, reactor, timeout)
    elif kind == "pymodaq_detector":
        device = PyMoDAQRemoteDetector(name, component, actor, reactor, timeout)
    else:
        raise InvalidValue(f"unknown remote kind {kind!r}; use one of {', '.join(KINDS)}")
    router = _router(component)
    router.devices[actor] = device
    registry.register(device)
    device.start_polling()
    return device
