# -*- test-case-name: tests.test_devices_base -*-
"""
Public fakes for users' own tests (and ours).

  - L{FakeDevice}: parameters from a dict, with types inferred;
  - L{FakeActuator}: moves instantly, or waits for L{FakeActuator.finish};
  - L{FakeDetector}: returns a fixed L{Export}, or waits for
    L{FakeDetector.finish}.

Each records the calls it received in C{calls}.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from twisted.internet.defer import Deferred

from twisted_lab.data import Export, Signal
from twisted_lab.description import Action, Parameter
from twisted_lab.devices.base import BaseActuator, BaseDetector, BaseDevice

__all__ = ["FakeDevice", "FakeActuator", "FakeDetector", "parameters_from"]

_TYPES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}


def parameters_from(values: Mapping[str, Any], readonly: Sequence[str] = ()) -> list[Parameter]:
    """
    Parameters whose types are inferred from example values.

    @param values: parameter name to initial value.
    @param readonly: names of the read-only ones.
    """
    return [
        Parameter(name, _TYPES.get(type(value), "any"), readonly=name in readonly, default=value)
        for name, value in values.items()
    ]


class FakeDevice(BaseDevice):
    """
    A device whose parameters are stored values; it records calls.

    @param parameters: parameter name to initial value (types inferred).
    @param actions: action name to a callable run with the call's arguments.
    """

    def __init__(self, name: str, parameters: Mapping[str, Any] | None = None,
                 actions: Mapping[str, Any] | None = None,
                 readonly: Sequence[str] = ()) -> None:
        from twisted_lab.description import Argument
        import inspect

        self.calls: list[tuple[Any, ...]] = []
        self._actions = dict(actions or {})
        specs = []
        for action, function in self._actions.items():
            arguments = tuple(
                Argument(p.name, "any", Argument.REQUIRED if p.default is p.empty else p.default)
                for p in inspect.signature(function).parameters.values()
            )
            specs.append(Action(action, arguments))
        super().__init__(name, parameters_from(parameters or {}, readonly), specs)

    def write_parameter(self, name: str, value: Any) -> Any:
        self.calls.append(("set", name, value))
        return super().write_parameter(name, value)

    def run_action(self, action: str, *args: Any) -> Any:
        self.calls.append(("call", action, *args))
        return self._actions[action](*args)


class FakeActuator(BaseActuator):
    """
    An actuator that moves instantly, or, with C{instant=False}, only when
    the test calls L{finish}.
    """

    def __init__(self, name: str = "actuator", units: str = "mm", instant: bool = True) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.current = 0.0
        self.instant = instant
        self.pending: list[tuple[Deferred[float], float]] = []
        super().__init__(name, units)

    def _move_abs(self, position: float) -> Any:
        self.calls.append(("move_abs", position))
        if self.instant:
            self.current = position
            return position
        d: Deferred[float] = Deferred()
        self.pending.append((d, position))
        return d

    def finish(self) -> None:
        """Complete every pending move."""
        pending, self.pending = self.pending, []
        for d, position in pending:
            self.current = position
            d.callback(position)

    def _stop(self) -> float:
        self.calls.append(("stop",))
        pending, self.pending = self.pending, []
        for d, _ in pending:
            d.callback(self.current)
        return self.current

    def _position(self) -> float:
        return self.current


class FakeDetector(BaseDetector):
    """
    A detector returning a fixed 1D export, or, with C{instant=False}, one
    only when the test calls L{finish}.
    """

    dims = ("Data1D",)

    def __init__(self, name: str = "detector", export: Export | None = None,
                 instant: bool = True) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.export = export or Export(name, [Signal(name, [np.arange(4.0)], units="V")])
        self.instant = instant
        self.pending: list[Deferred[Export]] = []
        super().__init__(name)

    def _grab(self) -> Any:
        self.calls.append(("grab",))
        if self.instant:
            return self.export
        d: Deferred[Export] = Deferred()
        self.pending.append(d)
        return d

    def finish(self) -> None:
        """Complete every pending grab."""
        pending, self.pending = self.pending, []
        for d in pending:
            d.callback(self.export)
