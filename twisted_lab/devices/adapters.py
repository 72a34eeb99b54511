# -*- test-case-name: tests.test_devices_adapters -*-
"""
Adapters: new faces for registry devices, so that a protocol that speaks
only actuators and detectors (PyMoDAQ, the PyMoDAQ 5 LECO actors) can serve
any device.

  - L{ParameterActuator} presents one parameter of another device as an
    actuator: C{move_abs(x)} writes it, C{position()} reads it.  An LA4
    board's light level, or a PLESTY server's C{MOTOR.position}, becomes a
    PyMoDAQ ACTUATOR.
  - L{ParameterDetector} presents parameters of another device as a 0D
    detector: C{grab()} reads them, one 0D signal each.

The target is looked up in the registry at every call, so it may be a remote
device that comes and goes; the adapter follows its online state.  A lease
on the target (or on the adapted parameter) also holds against callers of
the adapter: the adapter declares the target's resources in C{covers}, and
L{twisted_lab.registry.GuardedDevice} checks them.
"""
from __future__ import annotations

from typing import Any, Sequence

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from twisted_lab.data import Export, Signal
from twisted_lab.devices.base import BaseActuator, BaseDetector
from twisted_lab.errors import DeviceOffline, UnknownDevice
from twisted_lab.events import ADDED, CHANGED, DATA, OFFLINE, ONLINE, REMOVED, LabEvent
from twisted_lab.registry import DeviceRegistry

__all__ = ["ParameterActuator", "ParameterDetector"]


class _Follower:
    """Mixin: follow a target device's online state through the registry."""

    log = Logger()
    registry: DeviceRegistry | None = None
    target: str
    name: str
    online: bool
    set_online: Any  # from BaseDevice

    def attach_registry(self, registry: DeviceRegistry) -> None:
        """
        Called once the adapter is registered: follow the target's events.
        """
        self.registry = registry
        registry.subscribe(self._on_event)
        self.set_online(self.target in registry and registry.lookup(self.target).online)

    def _on_event(self, event: LabEvent) -> None:
        if event.device != self.target:
            return
        if event.kind in (OFFLINE, REMOVED):
            self.set_online(False)
        elif event.kind in (ONLINE, ADDED):
            assert self.registry is not None
            self.set_online(self.registry.lookup(self.target).online)
        elif event.kind == CHANGED:
            self._target_changed(event)

    def _target_changed(self, event: LabEvent) -> None:
        pass

    def _target(self) -> Any:
        if self.registry is None:
            raise DeviceOffline(f"adapter {self.name!r} is not registered yet")
        try:
            return self.registry.lookup(self.target)
        except UnknownDevice:
            raise DeviceOffline(f"{self.name!r} adapts {self.target!r}, which is not "
                                f"registered") from None


class ParameterActuator(_Follower, BaseActuator):
    """
    One parameter of another device, as an actuator.

    @param name: the adapter's device name.
    @param target: the adapted device's name.
    @param parameter: the parameter moved.
    @param units: position units (default: the parameter's own, when known).
    @param home: the home position.
    """

    def __init__(self, name: str, target: str, parameter: str, units: str = "",
                 home: float = 0.0) -> None:
        self.target = target
        self.parameter = parameter
        self.home = home
        self.covers = (f"{target}/{parameter}",)
        super().__init__(name, units, doc=f"{target}.{parameter} as an actuator")

    def _move_abs(self, position: float) -> Deferred[Any]:
        d: Deferred[Any] = self._target().set(self.parameter, position)
        return d.addCallback(float)

    def _position(self) -> Deferred[Any]:
        d: Deferred[Any] = self._target().get(self.parameter)
        return d.addCallback(float)

    def _stop(self) -> Deferred[Any]:
        return self._position()

    def _target_changed(self, event: LabEvent) -> None:
        if event.parameter == self.parameter:
            try:
                self.emit(LabEvent(DATA, self.name, "position", float(event.value)))
            except (TypeError, ValueError):
                pass


class ParameterDetector(_Follower, BaseDetector):
    """
    Parameters of another device, as a 0D detector (one signal each).

    @param name: the adapter's device name.
    @param target: the adapted device's name.
    @param parameters: the parameters read by each grab.
    """

    dims = ("Data0D",)

    def __init__(self, name: str, target: str, parameters: Sequence[str]) -> None:
        self.target = target
        self.parameters = list(parameters)
        self.covers = ()
        super().__init__(name, doc=f"{target}.{', '.join(parameters)} as a 0D detector")

    async def _read(self) -> Export:
        target = self._target()
        description = await target.describe()
        signals = []
        for parameter in self.parameters:
            value = await target.get(parameter)
            spec = description.parameters.get(parameter)
            signals.append(Signal.scalar(parameter, float(value),
                                         units=spec.units if spec else "",
                                         kind="DataFromPlugins", origin=self.name))
        return Export(self.name, signals)

    def _grab(self) -> Deferred[Export]:
        return Deferred.fromCoroutine(self._read())
