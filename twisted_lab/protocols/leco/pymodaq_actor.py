# -*- test-case-name: tests.test_leco_pymodaq_actor -*-
"""
The PyMoDAQ 5 actor method set on a LECO Component: a registry device driven
by PyMoDAQ's C{ActuatorDirector}/C{DetectorDirector} (spec leco.md §13).

Every method answers at once (pyleco's Director waits only 0.1 s); the work
runs in the background and reports by calling the remote director(s) named
with C{set_remote_name}: C{set_move_done}, C{send_position}, C{set_data},
C{set_director_settings}, C{set_director_info}, each with a serializall frame
when the value is not plain JSON (C{binary_serialization_to_kwargs}).
Mutating calls (moves, C{set_info}) go through C{registry.guarded}, so leases
taken through any protocol hold; a refusal that is known at once (a lease
conflict, a bad value, an unknown device) is the JSON-RPC error reply.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Any, Callable, Sequence

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_lab.bigjson import BIG, shared_pool, weight
from twisted_lab.data import Export, Signal
from twisted_lab.errors import InvalidValue, LabError
from twisted_lab.events import CHANGED, LabEvent
from twisted_lab.interfaces import IActuator, IDetector
from twisted_lab.leases import Owner
from twisted_lab.protocols.leco import serializall
from twisted_lab.protocols.leco.pymodaq_settings import (COMMON_NAMES, CommonSettings,
                                                         move_settings_xml)
from twisted_lab.formats.pymodaq.objects import ParameterWithPath
from twisted_lab.formats.pymodaq.settings import read_parameter, settings_tree, value_xml
from twisted_lab.registry import DeviceRegistry

__all__ = ["register_pymodaq_methods", "PyMoDAQActor", "ACTOR_METHODS", "RECEIVER_GONE"]

log = Logger()

#: The methods registered on the component.
ACTOR_METHODS = (
    "set_remote_name", "get_settings", "set_info", "move_abs", "move_rel", "move_home",
    "stop_motion", "get_actuator_value", "send_data_grab", "send_data_snap", "stop_grab",
)

#: JSON-RPC codes meaning a remote director is gone (PyMoDAQ then forgets it).
RECEIVER_GONE = (-32093, -32092)
#: Callbacks in a row a director may fail (time out, error) before it is
#: dropped: a director that left without a word stops a grab loop.
MAX_CALLBACK_FAILURES = 3
#: Remote directors one actor calls back at most.
MAX_DIRECTORS = 16


def _params(params: Any, names: Sequence[str]) -> dict[str, Any]:
    """By-name or positional JSON-RPC params as a dict (missing → absent)."""
    if params is None:
        return {}
    if isinstance(params, dict):
        unknown = set(params) - set(names) - {"additional_payload"}
        if unknown:
            raise TypeError(f"unexpected argument(s) {', '.join(sorted(unknown))}")
        return params
    if len(params) > len(names):
        raise TypeError(f"takes {len(names)} arguments, {len(params)} given")
    return dict(zip(names, params))


def _position_of(value: Any, frames: Sequence[bytes], what: str) -> float:
    """The position carried by a C{move_*} call: a DataActuator frame, or JSON."""
    if value is None and frames:
        obj = serializall.decode(frames[0])
        if isinstance(obj, Signal):
            position = obj.value()
        elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
            position = float(obj)
        else:
            raise InvalidValue(f"{what}: expected a DataActuator frame, got {type(obj).__name__}")
    elif isinstance(value, list) and value:
        position = value[0]
    elif isinstance(value, dict) and "position" in value:
        return _position_of(value["position"], (), what)
    else:
        position = value
    if isinstance(position, bool) or not isinstance(position, (int, float)) \
            or not math.isfinite(position):
        raise InvalidValue(f"{what}: position must be a finite number, got {position!r}")
    return float(position)


def _settled(d: Deferred[Any]) -> Failure | None:
    """The failure of a Deferred that already failed (consumed), else C{None}."""
    box: list[Any] = []

    def keep(result: Any) -> Any:
        box.append(result)
        return result

    d.addBoth(keep)
    if box and isinstance(box[0], Failure):
        failure: Failure = box[0]
        d.addErrback(lambda f: None)
        return failure
    return None


class PyMoDAQActor:
    """
    The PyMoDAQ actor state of one exported device: its remote directors and
    its continuous-grab loop.

    @ivar remote_names: the full names callbacks go to.
    @ivar grabbing: C{True} while the C{send_data_grab} loop runs (after
        C{stop_grab}, until the acquisition in progress has ended).
    @ivar grab_interval: pause between continuous acquisitions (seconds).
    """

    log = Logger()

    def __init__(self, component: Any, registry: DeviceRegistry, device_name: str,
                 owner_for: Callable[[str], Owner] | None = None,
                 callback_timeout: float = 1.0) -> None:
        self.component = component
        self.registry = registry
        self.device_name = device_name
        self.owner_for = owner_for or (lambda sender: Owner("leco", sender))
        self.callback_timeout = callback_timeout
        #: seconds between the end of one continuous acquisition and the next
        self.grab_interval = 0.001
        self.remote_names: set[str] = set()
        #: failed callbacks in a row, per director
        self._failures: dict[str, int] = {}
        self.grabbing = False
        #: C{False} once C{stop_grab} asked the loop to end
        self._grab_wanted = False
        self._grab_loop: Deferred[None] | None = None
        #: an actuator's common PyMoDAQ settings, once a director asked for them
        self.common: CommonSettings | None = None
        self._units_sent: str | None = None
        self._unsubscribe: Callable[[], None] | None = None

    # -- helpers -------------------------------------------------------------

    def _sender(self) -> str:
        sender = getattr(self.component, "caller", None)
        if isinstance(sender, bytes):
            sender = sender.decode("utf-8", "replace")
        if sender:
            return str(sender)
        if self.remote_names:
            return sorted(self.remote_names)[0]
        return "pymodaq"

    def _owner(self) -> Owner:
        return self.owner_for(self._sender())

    def callback(self, method: str, params: dict[str, Any], frames: Sequence[bytes] = ()
                 ) -> Deferred[None]:
        """
        Call C{method} on every remote director; forget those that are gone.

        @return: a L{Deferred} firing when every director answered (or failed).
        """
        calls = []
        for name in sorted(self.remote_names):
            d = maybeDeferred(self.component.ask, name, method, params, list(frames),
                              timeout=self.callback_timeout)
            d.addCallbacks(self._callback_done, self._callback_failed, callbackArgs=(name,),
                           errbackArgs=(name, method))
            calls.append(d)
        done: Deferred[None] = Deferred()
        remaining = [len(calls)]

        def one(_: Any) -> None:
            remaining[0] -= 1
            if remaining[0] == 0:
                done.callback(None)

        for d in calls:
            d.addBoth(one)
        if not calls:
            done.callback(None)
        return done

    def _callback_done(self, result: Any, name: str) -> None:
        self._failures.pop(name, None)

    def _callback_failed(self, failure: Failure, name: str, method: str) -> None:
        code = getattr(failure.value, "rpc_code", None)
        failures = self._failures[name] = self._failures.get(name, 0) + 1
        if code in RECEIVER_GONE or failures >= MAX_CALLBACK_FAILURES:
            self.log.info("director {name} is gone ({error}); dropping it", name=name,
                          error=str(failure.value))
            self.remote_names.discard(name)
            self._failures.pop(name, None)
        else:
            self.log.warn("{method} callback to {name} failed: {error}", method=method,
                          name=name, error=str(failure.value))

    def _data_callback(self, method: str, value: Any) -> Deferred[None]:
        """PyMoDAQ's C{binary_serialization_to_kwargs}: JSON if plain, else one frame."""
        if isinstance(value, (str, int, float, list)) and not isinstance(value, bool):
            return self.callback(method, {"data": value})
        if weight(value) < BIG:
            return self.callback(method, {"data": None}, [serializall.encode(value)])
        # a large frame: serialised (one copy of the arrays) on the encoder
        # pool, so the reactor answers other requests meanwhile
        def send(frame: Any) -> Deferred[None]:
            return self.callback(method, {"data": None}, [frame])

        encoded: Deferred[Any] = shared_pool(self.registry.clock).run(serializall.encode_buffer, value)
        return encoded.addCallback(send)

    def _actuator_data(self, position: float, device: Any) -> Signal:
        return Signal.scalar(self.device_name, float(position), getattr(device, "units", "") or "",
                             kind="DataActuator")

    def _report(self, what: str) -> Callable[[Failure], None]:
        def report(failure: Failure) -> None:
            if failure.check(LabError):  # expected (the device went offline...): one line
                self.log.warn("{what} of {device} failed: {error}", what=what,
                              device=self.device_name, error=str(failure.value))
                return
            self.log.failure("{what} of {device} failed", failure, what=what,
                             device=self.device_name)
        return report

    def _device(self) -> Any:
        return self.registry.lookup(self.device_name)

    def _actuator(self) -> Any:
        device = self._device()
        if not IActuator.providedBy(device):
            raise InvalidValue(f"device {self.device_name!r} is not an actuator")
        return device

    def _detector(self) -> Any:
        device = self._device()
        if not IDetector.providedBy(device):
            raise InvalidValue(f"device {self.device_name!r} is not a detector")
        return device

    # -- generic methods -----------------------------------------------------

    def set_remote_name(self, params: Any, frames: list[bytes]) -> None:
        """Add a director to call back (C{name}: its full name; default: the caller)."""
        name = _params(params, ("name",)).get("name") or self._sender()
        if not isinstance(name, str):
            raise InvalidValue(f"set_remote_name: name must be a string, got {name!r}")
        if name not in self.remote_names and len(self.remote_names) >= MAX_DIRECTORS:
            raise InvalidValue(f"set_remote_name: {len(self.remote_names)} directors are "
                               "registered already")
        self.remote_names.add(name)
        self.log.info("{device} reports to director {name}", device=self.device_name, name=name)
        device = self.registry.lookup(self.device_name) \
            if self.device_name in self.registry.names() else None
        if device is not None and IActuator.providedBy(device):
            # as a PyMoDAQ actor does: tell the new director our units (after this reply)
            self.registry.clock.callLater(0, self._send_units, device, name)
            if self._unsubscribe is None:
                self._unsubscribe = self.registry.subscribe(self._on_event)

    def _send_units(self, device: Any, name: str | None = None) -> None:
        """C{set_units} to one director (or all of them) with the device's units."""
        units = str(getattr(device, "units", "") or "")
        self._units_sent = units
        if self.common is not None:
            self.common.values["units"] = units
        names = [name] if name is not None else sorted(self.remote_names)
        for director in names:
            d = maybeDeferred(self.component.ask, director, "set_units", {"units": units},
                              timeout=self.callback_timeout)
            d.addErrback(self._callback_failed, director, "set_units")

    def _on_event(self, event: LabEvent) -> None:
        """Send C{set_units} when the actuator's units changed."""
        if not self.remote_names:
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            return
        if event.kind != CHANGED or event.device != self.device_name:
            return
        device = self.registry.lookup(self.device_name)
        if str(getattr(device, "units", "") or "") != self._units_sent:
            self._send_units(device)

    def get_settings(self, params: Any, frames: list[bytes]) -> None:
        """Send the settings tree to the directors (C{set_director_settings})."""
        _params(params, ())
        device = self._device()
        description = device.description if hasattr(device, "description") else None
        group = "move_settings" if IActuator.providedBy(device) else "detector_settings"

        async def send() -> None:
            desc = description if description is not None else await device.describe()
            pairs = []
            for parameter in desc.parameters.values():
                try:
                    value = await device.get(parameter.name)
                except LabError:
                    value = None
                pairs.append((parameter, value))
            if group == "move_settings":
                # what PyMoDAQ's own move_settings carry first (units, epsilon, bounds...)
                if self.common is None:
                    self.common = CommonSettings(desc, str(getattr(device, "units", "") or ""),
                                                 {p.name: v for p, v in pairs})
                xml = move_settings_xml(self.common, pairs)
            else:
                xml = ET.tostring(settings_tree(group, pairs))
            await self.callback("set_director_settings", {"settings": xml.decode()})

        Deferred.fromCoroutine(send()).addErrback(self._report("get_settings"))

    def set_info(self, params: Any, frames: list[bytes]) -> None:
        """Set one setting from a C{ParameterWithPath} frame (C{parameter} is null)."""
        args = _params(params, ("parameter",))
        if args.get("parameter") is not None or not frames:
            raise InvalidValue("set_info needs parameter=null and one ParameterWithPath frame")
        pwp = serializall.decode(frames[0])
        if not isinstance(pwp, ParameterWithPath):
            raise InvalidValue(f"set_info: expected a ParameterWithPath frame, "
                               f"got {type(pwp).__name__}")
        tag, kind, value = read_parameter(pwp.xml)
        name = pwp.path[-1] if pwp.path else tag
        owner = self._owner()
        if self.common is not None and name in COMMON_NAMES:
            # the director's view of PyMoDAQ's common settings: kept here, echoed back
            actual = self.common.set(name, value)
            self.callback("set_director_info", {"parameter": None}, [serializall.encode(
                ParameterWithPath(list(pwp.path) or [name], value_xml(name, kind, actual)))])
            return

        async def apply() -> None:
            guarded = await self.registry.guarded(self.device_name, owner)
            actual = await guarded.set(name, value)
            xml = value_xml(name, kind, actual)
            await self.callback("set_director_info", {"parameter": None},
                                [serializall.encode(ParameterWithPath(list(pwp.path) or [name],
                                                                      xml))])

        d = Deferred.fromCoroutine(apply())
        failure = _settled(d)
        if failure is not None:
            failure.raiseException()  # refused at once: the error reply
        d.addErrback(self._report("set_info"))

    # -- actuator ------------------------------------------------------------

    def _move(self, what: str, start: Callable[[Any], Deferred[Any]]) -> None:
        device = self._actuator()
        owner = self._owner()

        async def run() -> None:
            guarded = await self.registry.guarded(self.device_name, owner)
            reached = await start(guarded)
            if reached is None:
                reached = await device.position()
            await self._data_callback("set_move_done", self._actuator_data(reached, device))

        d = Deferred.fromCoroutine(run())
        failure = _settled(d)
        if failure is not None:
            failure.raiseException()  # refused at once: the error reply
        d.addErrback(self._report(what))

    def move_abs(self, params: Any, frames: list[bytes]) -> Any:
        """Move to C{position} (null + a DataActuator frame, or a JSON number)."""
        position = _position_of(_params(params, ("position",)).get("position"), frames, "move_abs")
        return self._move("move_abs", lambda g: g.move_abs(position))

    def move_rel(self, params: Any, frames: list[bytes]) -> Any:
        """Move by C{position} (null + a DataActuator frame, or a JSON number)."""
        step = _position_of(_params(params, ("position",)).get("position"), frames, "move_rel")
        return self._move("move_rel", lambda g: g.move_rel(step))

    def move_home(self, params: Any, frames: list[bytes]) -> Any:
        """Move to the home position."""
        _params(params, ())
        return self._move("move_home", lambda g: g.move_home())

    def stop_motion(self, params: Any, frames: list[bytes]) -> None:
        """Stop any motion (never lease-checked), then report the position."""
        _params(params, ())
        device = self._actuator()

        async def run() -> None:
            here = await device.stop()
            if here is None:
                here = await device.position()
            await self._data_callback("send_position", self._actuator_data(here, device))

        Deferred.fromCoroutine(run()).addErrback(self._report("stop_motion"))

    def get_actuator_value(self, params: Any, frames: list[bytes]) -> None:
        """Report the current position (C{send_position})."""
        _params(params, ())
        device = self._actuator()

        async def run() -> None:
            here = await device.position()
            await self._data_callback("send_position", self._actuator_data(here, device))

        Deferred.fromCoroutine(run()).addErrback(self._report("get_actuator_value"))

    # -- detector ------------------------------------------------------------

    async def _acquire(self, device: Any) -> Export:
        export = await device.grab()
        if isinstance(export, Signal):
            export = Export(self.device_name, [export])
        elif not isinstance(export, Export):
            raise InvalidValue(f"{self.device_name}.grab() returned {type(export).__name__}")
        return export

    async def _grab_once(self, device: Any) -> None:
        await self._data_callback("set_data", await self._acquire(device))

    def send_data_snap(self, params: Any, frames: list[bytes]) -> None:
        """Acquire once and send it (C{set_data})."""
        _params(params, ())
        device = self._detector()
        Deferred.fromCoroutine(self._grab_once(device)).addErrback(self._report("send_data_snap"))

    def send_data_grab(self, params: Any, frames: list[bytes]) -> None:
        """
        Acquire continuously, one C{set_data} per acquisition, until
        C{stop_grab}.

        The two stages overlap: while one frame goes to the directors (its
        C{set_data} not yet answered), the next is acquired, so a chain
        (a camera imported over PyMoDAQ 4, served here over LECO) delivers
        at the rate of its slower hop, not of both in turn.  At most one
        frame waits: the next C{set_data} is sent once the previous one was
        answered (or failed).  A frame whose acquisition ends after
        C{stop_grab} is not sent.
        """
        _params(params, ())
        device = self._detector()
        self._grab_wanted = True
        if self.grabbing:  # running (or stopping: it goes on)
            return
        self.grabbing = True

        def wanted() -> bool:
            return self._grab_wanted and bool(self.remote_names)

        async def loop() -> None:
            clock = self.registry.clock
            sending: Deferred[None] | None = None
            try:
                while wanted():
                    export = await self._acquire(device)
                    if not wanted():
                        break
                    if sending is not None:
                        waiting, sending = sending, None
                        await waiting
                        if not wanted():
                            break
                    sending = self._data_callback("set_data", export)
                    # let the reactor breathe between acquisitions
                    pause: Deferred[None] = Deferred()
                    clock.callLater(self.grab_interval, pause.callback, None)
                    await pause
                if sending is not None:
                    waiting, sending = sending, None
                    await waiting
            finally:
                if sending is not None:  # an acquisition failed while it was sent
                    sending.addErrback(self._report("send_data_grab"))
                self.grabbing = False
                self._grab_loop = None

        self._grab_loop = Deferred.fromCoroutine(loop())
        self._grab_loop.addErrback(self._report("send_data_grab"))

    def stop_grab(self, params: Any, frames: list[bytes]) -> None:
        """Stop a continuous acquisition (one in progress is not sent)."""
        _params(params, ())
        self._grab_wanted = False

    def register(self) -> None:
        """Register every method of L{ACTOR_METHODS} on the component."""
        for name in ACTOR_METHODS:
            self.component.register_method(name, getattr(self, name))


def register_pymodaq_methods(component: Any, registry: DeviceRegistry, device_name: str,
                             owner_for: Callable[[str], Owner] | None = None) -> PyMoDAQActor:
    """
    Offer the PyMoDAQ actor method set (spec §13.2) for one registry device.

    @param component: the LECO component (C{register_method}, C{ask}).
    @param registry: where C{device_name} is looked up at call time.
    @param owner_for: the lease owner for a caller's full name; by default
        C{Owner("leco", sender)}.
    @return: the L{PyMoDAQActor} holding the state (remote directors, grab loop).
    """
    actor = PyMoDAQActor(component, registry, device_name, owner_for)
    actor.register()
    return actor
