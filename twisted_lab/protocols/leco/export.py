# -*- test-case-name: tests.test_leco_actor -*-
"""
Export a registry device as a LECO Actor.

Each exported device is one L{Component} named after it (or a configured
name), offering pyleco's Actor methods mapped to the device model:

  - C{get_parameters(parameters=[names])} → C{{name: value}} (L{IDevice.get});
  - C{set_parameters(parameters={name: value})} (L{IDevice.set});
  - C{call_action(action, args=[…], kwargs={…})} (L{IDevice.call}; actuators
    and detectors offer C{move_abs}, C{grab}, … as actions);
  - C{describe()} → the device's L{Description} as a dict (an extension our
    own Director uses);

plus the PyMoDAQ actor method set when
L{twisted_lab.protocols.leco.pymodaq_actor} is available.  The device is
looked up in the registry at call time; every mutating call goes through
L{DeviceRegistry.guarded} with C{Owner("leco", <caller full name>)}.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger

from twisted_lab.access import Role, require
from twisted_lab.data import Axis, Export, Signal
from twisted_lab.description import Description
from twisted_lab.errors import InvalidValue, LabError
from twisted_lab.interfaces import IDevice
from twisted_lab.leases import Owner
from twisted_lab.protocols.leco.component import DEFAULT_COORDINATOR, Component
from twisted_lab.protocols.leco.locallink import LocalHub
from twisted_lab.protocols.leco.locking import register_lock_methods
from twisted_lab.registry import DeviceRegistry

__all__ = ["DeviceActor", "to_json", "split_arrays", "join_arrays", "register_pymodaq",
           "ARRAY_KEY"]

#: The key of an array reference in the JSON of C{call_action_binary}:
#: C{{"__array__": n, "dtype": "<u2", "shape": [h, w]}} is the array in
#: additional payload frame C{n} (0-based), as PLESTY's binary arrays.
ARRAY_KEY = "__array__"

log = Logger()


def to_json(value: Any, keep_arrays: bool = False) -> Any:
    """
    A JSON-friendly form of a device value: numpy values become lists and
    numbers, an L{Export} or L{Signal} becomes a dict of plain values.

    @param keep_arrays: leave numpy arrays as they are (for
        L{twisted_lab.protocols.leco.rpc.dumps}, which writes large ones
        much faster than C{tolist()} would).
    """
    if isinstance(value, Export):
        return {"name": value.name, "timestamp": value.timestamp,
                "signals": [to_json(s, keep_arrays) for s in value.signals]}
    if isinstance(value, Signal):
        return {"name": value.name, "kind": value.kind, "dim": value.dim, "units": value.units,
                "labels": list(value.labels), "timestamp": value.timestamp,
                "data": [to_json(np.asarray(a), keep_arrays) for a in value.data],
                "axes": [to_json(a, keep_arrays) for a in value.axes]}
    if isinstance(value, Axis):
        return {"label": value.label, "units": value.units,
                "data": to_json(np.asarray(value.data), keep_arrays), "index": value.index}
    if isinstance(value, np.ndarray):
        return value if keep_arrays else value.tolist()
    if isinstance(value, np.generic):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): to_json(v, keep_arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v, keep_arrays) for v in value]
    return value


def split_arrays(value: Any, frames: list[Any] | None = None) -> tuple[Any, list[Any]]:
    """
    Move the numpy arrays of a L{to_json}C{(keep_arrays=True)} value to
    binary frames (not copied): each becomes C{{"__array__": n, "dtype":
    <numpy dtype str>, "shape": [...]}}, C{n} its index in the frames.

    @return: C{(JSON value, frames)}.
    """
    if frames is None:
        frames = []
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf" or value.ndim == 0:
            return value.tolist(), frames
        array = np.ascontiguousarray(value)
        frames.append(memoryview(array.data).cast("B"))
        return {ARRAY_KEY: len(frames) - 1, "dtype": array.dtype.str,
                "shape": list(array.shape)}, frames
    if isinstance(value, dict):
        return {k: split_arrays(v, frames)[0] for k, v in value.items()}, frames
    if isinstance(value, list):
        return [split_arrays(v, frames)[0] for v in value], frames
    return value, frames


def join_arrays(value: Any, frames: list[Any]) -> Any:
    """
    The inverse of L{split_arrays}: array references become read-only numpy
    arrays on the received frames (what a script does with pyleco's
    additional payload).

    @raise ValueError: a reference names no frame, or sizes disagree.
    """
    if isinstance(value, dict):
        if ARRAY_KEY in value:
            index = value[ARRAY_KEY]
            if not isinstance(index, int) or not 0 <= index < len(frames):
                raise ValueError(f"array reference {index!r} names no frame")
            return np.frombuffer(frames[index], dtype=np.dtype(value["dtype"])).reshape(
                value["shape"])
        return {k: join_arrays(v, frames) for k, v in value.items()}
    if isinstance(value, list):
        return [join_arrays(v, frames) for v in value]
    return value


def register_pymodaq(component: Any, registry: DeviceRegistry, device_name: str) -> Any:
    """
    Register the PyMoDAQ actor method set on C{component} if the module
    L{twisted_lab.protocols.leco.pymodaq_actor} is present.

    @return: what C{register_pymodaq_methods} returns, or C{None} (logged)
        when the module is missing.
    """
    try:
        from twisted_lab.protocols.leco.pymodaq_actor import register_pymodaq_methods
    except ImportError as e:
        log.info("PyMoDAQ actor methods unavailable for {device}: {error}", device=device_name,
                 error=str(e))
        return None
    return register_pymodaq_methods(component, registry, device_name)


def _arg(params: Any, name: str, position: int, default: Any = None) -> Any:
    if isinstance(params, dict):
        return params.get(name, default)
    if isinstance(params, list):
        return params[position] if position < len(params) else default
    return default


def _check_params(params: Any, method: str, allowed: tuple[str, ...]) -> None:
    if isinstance(params, dict):
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise InvalidValue(f"{method}() got unexpected argument(s) {', '.join(unknown)}")
    elif isinstance(params, list) and len(params) > len(allowed):
        raise InvalidValue(f"{method}() takes {len(allowed)} arguments, {len(params)} given")


class DeviceActor(Component):
    """
    One registry device as a LECO Actor (a signed-in L{Component}).

    @param registry: where the device is looked up at call time.
    @param device_name: the registry name of the device.
    @param name: the LECO Component name (default: the device name).
    @param pymodaq: also offer the PyMoDAQ actor method set.
    @param hub: an in-process Coordinator's L{LocalHub} (see L{Component}).
    """

    def __init__(self, registry: DeviceRegistry, device_name: str,
                 coordinator: str = DEFAULT_COORDINATOR, reactor: Any = None,
                 name: str | None = None, timeout: float = 5.0, pymodaq: bool = True,
                 heartbeat_interval: float = 10.0, hub: LocalHub | None = None,
                 role_of: Callable[[str], Role | None] | None = None,
                 default_role: Role = Role.OPERATE) -> None:
        super().__init__(name or device_name, coordinator, reactor, timeout,
                         heartbeat_interval, hub=hub, role_of=role_of,
                         default_role=default_role)
        self.registry = registry
        self.device_name = device_name
        self.register_method("get_parameters", self.get_parameters,
                             "Read parameters: parameters=[names] -> {name: value}.")
        self.register_method("set_parameters", self.set_parameters,
                             "Write parameters: parameters={name: value}.")
        self.register_method("call_action", self.call_action,
                             "Run an action: action, args=[...], kwargs={...}.")
        self.register_method("call_action_binary", self.call_action_binary,
                             "Run an action; arrays of the result come back as additional "
                             "binary payload frames ({'__array__': n, 'dtype', 'shape'}).")
        self.register_method("describe", self.describe,
                             "The device's parameters and actions (twisted_lab extension).")
        self.pymodaq = register_pymodaq(self, registry, device_name) if pymodaq else None
        self.locking = register_lock_methods(self, registry, device_name)

    def _owner(self) -> Owner:
        return Owner("leco", self.caller or "?")

    def log_namespace(self) -> str:
        """C{set_log_level} on an actor sets its device's log namespace."""
        try:
            device = self.registry.lookup(self.device_name)
        except LabError:
            return super().log_namespace()
        namespace = getattr(getattr(device, "log", None), "namespace", None)
        return namespace if isinstance(namespace, str) and namespace else \
            super().log_namespace()

    def get_parameters(self, params: Any, frames: list[bytes]) -> Deferred[dict[str, Any]]:
        """C{get_parameters(parameters=[names])} → C{{name: value}}."""
        _check_params(params, "get_parameters", ("parameters",))
        names = _arg(params, "parameters", 0)
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InvalidValue("get_parameters() needs parameters: a list of names")
        device = self.registry.lookup(self.device_name)
        d = gatherResults([device.get(n) for n in names], consumeErrors=True)
        d.addCallback(lambda values: {n: to_json(v, True) for n, v in zip(names, values)})
        return d.addErrback(_first_error)

    def set_parameters(self, params: Any, frames: list[bytes]) -> Deferred[None]:
        """C{set_parameters(parameters={name: value})}, through the lease guard."""
        _check_params(params, "set_parameters", ("parameters",))
        values = _arg(params, "parameters", 0)
        if not isinstance(values, dict):
            raise InvalidValue("set_parameters() needs parameters: {name: value}")
        owner = self._owner()

        async def run() -> None:
            device = await self.registry.guarded(self.device_name, owner)
            for name, value in values.items():
                await device.set(name, value)

        return Deferred.fromCoroutine(run())

    def call_action(self, params: Any, frames: list[bytes]) -> Deferred[Any]:
        """C{call_action(action, args=[…], kwargs={…})}, through the lease guard."""
        _check_params(params, "call_action", ("action", "args", "kwargs"))
        action = _arg(params, "action", 0)
        args = _arg(params, "args", 1) or []
        kwargs = _arg(params, "kwargs", 2) or {}
        if not isinstance(action, str) or not isinstance(args, list) \
                or not isinstance(kwargs, dict):
            raise InvalidValue("call_action() needs action: str, args: list, kwargs: dict")
        owner = self._owner()
        role = self.caller_role()
        caller = self.caller

        async def run() -> Any:
            if role < Role.OPERATE:
                # a read client may call only actions that change nothing
                described = await self.registry.lookup(self.device_name).describe()
                spec = described.actions.get(action)
                if spec is None or spec.mutating:
                    self.log.warn("{name} refused call_action {action!r} from {caller} "
                                  "(role {role}, needs operate)", name=self.full_name,
                                  action=action[:80], caller=caller, role=role.label)
                    require(role, Role.OPERATE, f"call_action {action!r} on {self.full_name}")
            device = await self.registry.guarded(self.device_name, owner)
            return to_json(await device.call(action, *args, **kwargs), True)

        return Deferred.fromCoroutine(run())

    def call_action_binary(self, params: Any, frames: list[bytes]
                           ) -> Deferred[tuple[Any, list[Any]]]:
        """
        C{call_action}, with the arrays of the result in additional binary
        payload frames (L{split_arrays}): the fast way to get a camera frame.
        """
        d = self.call_action(params, frames)
        return d.addCallback(split_arrays)

    def describe(self, params: Any, frames: list[bytes]) -> Deferred[dict[str, Any]]:
        """The device's description as a dict."""
        device: IDevice = self.registry.lookup(self.device_name)
        described: Deferred[Description] = device.describe()
        return described.addCallback(Description.as_dict)


def _first_error(failure: Any) -> Any:
    from twisted.internet.defer import FirstError
    if failure.check(FirstError):
        return failure.value.subFailure
    return failure
