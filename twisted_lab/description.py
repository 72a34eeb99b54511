# -*- test-case-name: tests.test_description -*-
"""
Self-description of a device, SECoP style: its parameters and its actions.

A L{Description} is what C{IDevice.describe()} returns and what every
protocol renders in its own form (PLESTY C{describe}, PyMoDAQ settings XML,
pyleco C{get_parameters}).  L{Parameter.validate} is the one place where a
value crossing a protocol is checked and coerced.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from twisted_lab.errors import InvalidValue

__all__ = ["Parameter", "Argument", "Action", "Description", "PARAMETER_TYPES"]

#: The value types a parameter may declare.
PARAMETER_TYPES = ("float", "int", "bool", "str", "list", "dict", "array", "any")


def _type_name(value: Any) -> str:
    return type(value).__name__


def coerce(kind: str, value: Any, what: str) -> Any:
    """
    Coerce C{value} to the parameter type C{kind}, or raise L{InvalidValue}.

    Integral floats are accepted for C{int}, ints for C{float}; C{bool} is
    never accepted as a number and numbers never as a C{bool}.

    @param kind: one of L{PARAMETER_TYPES}.
    @param value: the value received.
    @param what: what is being set, for the message (C{"stage.position"}).
    """
    if kind == "any":
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind == "bool":
        if isinstance(value, bool):
            return value
    elif kind == "str":
        if isinstance(value, str):
            return value
    elif kind == "list":
        if isinstance(value, (list, tuple)):
            return list(value)
    elif kind == "dict":
        if isinstance(value, dict):
            return value
    elif kind == "array":
        if isinstance(value, (np.ndarray, list, tuple)):
            return np.asarray(value)
    else:
        raise InvalidValue(f"{what}: unknown parameter type {kind!r}")
    raise InvalidValue(f"{what} must be {kind}, got {_type_name(value)} {value!r}")


@dataclass(frozen=True)
class Parameter:
    """
    A named value of a device.

    @ivar name: its name (C{"wavelength"}).
    @ivar type: one of L{PARAMETER_TYPES}.
    @ivar units: its units (C{"nm"}), empty when dimensionless.
    @ivar readonly: C{True} when it can only be read.
    @ivar minimum: the lowest allowed value, or C{None}.
    @ivar maximum: the highest allowed value, or C{None}.
    @ivar choices: the allowed values, or C{None} for any.
    @ivar doc: one line saying what it is.
    @ivar default: its initial value, if any.
    """

    name: str
    type: str = "float"
    units: str = ""
    readonly: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    doc: str = ""
    default: Any = None

    def __post_init__(self) -> None:
        if self.type not in PARAMETER_TYPES:
            raise ValueError(f"parameter {self.name!r}: type {self.type!r} not in {PARAMETER_TYPES}")

    @property
    def limits(self) -> tuple[float | None, float | None]:
        """C{(minimum, maximum)}."""
        return (self.minimum, self.maximum)

    def validate(self, value: Any, device: str = "") -> Any:
        """
        Check and coerce a value for this parameter.

        @param value: the value to write.
        @param device: the device name, for the message.
        @return: the coerced value.
        @raise InvalidValue: wrong type, outside the limits, or not a choice.
        """
        what = f"{device}.{self.name}" if device else self.name
        value = coerce(self.type, value, what)
        unit = f" {self.units}" if self.units else ""
        if self.minimum is not None and value < self.minimum:
            raise InvalidValue(
                f"{what} = {value!r}{unit} is below the minimum {self.minimum!r}{unit}"
            )
        if self.maximum is not None and value > self.maximum:
            raise InvalidValue(
                f"{what} = {value!r}{unit} is above the maximum {self.maximum!r}{unit}"
            )
        if self.choices is not None and value not in self.choices:
            raise InvalidValue(
                f"{what} = {value!r} is not one of {', '.join(map(repr, self.choices))}"
            )
        return value

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form (used by protocols' describe replies)."""
        out: dict[str, Any] = {"name": self.name, "type": self.type, "units": self.units,
                               "readonly": self.readonly, "doc": self.doc}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.choices is not None:
            out["choices"] = list(self.choices)
        return out


@dataclass(frozen=True)
class Argument:
    """
    One argument of an L{Action}.

    @ivar name: its name.
    @ivar type: one of L{PARAMETER_TYPES}.
    @ivar default: its default; C{Argument.REQUIRED} when it must be given.
    @ivar units: its units.
    """

    REQUIRED = object()

    name: str
    type: str = "any"
    default: Any = REQUIRED
    units: str = ""

    @property
    def required(self) -> bool:
        """C{True} when the caller must give it."""
        return self.default is Argument.REQUIRED

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        out: dict[str, Any] = {"name": self.name, "type": self.type, "units": self.units,
                               "required": self.required}
        if not self.required:
            out["default"] = self.default
        return out


@dataclass(frozen=True)
class Action:
    """
    An operation a device offers.

    @ivar name: its name (C{"move_abs"}).
    @ivar arguments: its arguments, in order.
    @ivar doc: one line saying what it does.
    @ivar mutating: C{False} for actions that only read (no lease needed).
    @ivar budget: how long one call may take, in seconds (the deadline of
        the device's driver), or C{None} when it is not bounded by one;
        protocols publish it (PLESTY C{describe} C{budgets}).
    """

    name: str
    arguments: tuple[Argument, ...] = ()
    doc: str = ""
    mutating: bool = True
    budget: float | None = None

    def bind(self, args: Sequence[Any], kwargs: dict[str, Any], device: str = "") -> list[Any]:
        """
        Match positional and keyword arguments to this action's arguments.

        @return: the argument values in declaration order, coerced to their types.
        @raise InvalidValue: too many, unknown, missing or ill-typed arguments.
        """
        if not args and not kwargs and not self.arguments:
            return []
        what = f"{device}.{self.name}" if device else self.name
        if len(args) > len(self.arguments):
            raise InvalidValue(
                f"{what}() takes {len(self.arguments)} arguments, {len(args)} given"
            )
        names = [a.name for a in self.arguments]
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise InvalidValue(f"{what}() has no argument {', '.join(map(repr, unknown))}; "
                               f"it takes {', '.join(names) or 'none'}")
        values: list[Any] = []
        for i, argument in enumerate(self.arguments):
            if i < len(args):
                if argument.name in kwargs:
                    raise InvalidValue(f"{what}() got {argument.name!r} twice")
                value = args[i]
            elif argument.name in kwargs:
                value = kwargs[argument.name]
            elif argument.required:
                raise InvalidValue(f"{what}() is missing its argument {argument.name!r}")
            else:
                value = argument.default
            if value is not argument.default or i < len(args) or argument.name in kwargs:
                value = coerce(argument.type, value, f"{what}({argument.name})")
            values.append(value)
        return values

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        out: dict[str, Any] = {"name": self.name, "doc": self.doc, "mutating": self.mutating,
                               "arguments": [a.as_dict() for a in self.arguments]}
        if self.budget is not None:
            out["budget"] = self.budget
        return out


@dataclass(frozen=True)
class Description:
    """
    What a device is: its kind, its parameters and its actions.

    @ivar name: the device name.
    @ivar kind: C{"device"}, C{"actuator"} or C{"detector"}.
    @ivar parameters: parameters by name, in order.
    @ivar actions: actions by name, in order.
    @ivar doc: one line saying what the device is.
    @ivar units: an actuator's position units.
    @ivar dims: a detector's data dimensionalities (C{("Data2D",)}).
    """

    name: str
    kind: str = "device"
    parameters: dict[str, Parameter] = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)
    doc: str = ""
    units: str = ""
    dims: tuple[str, ...] = ()

    @classmethod
    def build(cls, name: str, parameters: Sequence[Parameter] = (),
              actions: Sequence[Action] = (), **kwargs: Any) -> Description:
        """Build a description from lists of parameters and actions."""
        return cls(name, parameters={p.name: p for p in parameters},
                   actions={a.name: a for a in actions}, **kwargs)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "name": self.name, "kind": self.kind, "doc": self.doc, "units": self.units,
            "dims": list(self.dims),
            "parameters": {n: p.as_dict() for n, p in self.parameters.items()},
            "actions": {n: a.as_dict() for n, a in self.actions.items()},
        }
