# -*- test-case-name: tests.test_devices_plesty -*-
"""
PLESTY device packages (C{plesty-thorlabs-powermeter}, C{plesty-k10cr1},
...) hosted as devices, without their own server.

A package's C{Device} class describes itself through plesty-lib's doc model,
built from the package's C{schema_param.json} and C{schema_func.json} and its
C{@expose_to_api} methods.  From it:

  - every configuration parameter becomes a parameter, under the key the
    package's own C{query}/C{write} take (C{"wavelength"}, or
    C{"MO.MaxVelocity"} for a grouped schema), with its type, unit,
    range, options, read-only flag and description;
  - every operation (schema operations and exposed methods) becomes an
    action with its arguments (types, defaults, required); an operation's
    declared budget (C{op_budget}) becomes the action's budget and the
    deadline of its calls;
  - a package whose operations include absolute and relative motions (the
    K10CR1: C{move_absolute}, C{move_relative}, C{home_stage},
    C{stop_motion}, C{get_position}) is an L{IActuator} as well.

The driver object is made when the device is built (the packages' own
constructors do no I/O); its C{connect} runs on the device's driver thread
when the lab starts, its C{disconnect} when it stops.  The limits the
package narrows at connect (the fitted sensor's wavelength range) replace
the schema's.  PLESTY device packages need Python >= 3.12.
"""
from __future__ import annotations

import importlib
import inspect
import sys
from typing import Any, Mapping

from twisted.internet.defer import Deferred

from twisted_lab.description import Action, Argument, Description, Parameter
from twisted_lab.devices.base import BaseActuator, BaseDevice
from twisted_lab.devices.hosted import HostedDriver
from twisted_lab.errors import ConfigError, DriverError, InvalidValue

__all__ = ["PlestyDevice", "PlestyActuator", "load_class", "python_too_old", "make_plesty_device",
           "describe_driver", "check_arguments"]

#: The Python PLESTY device packages need.
MINIMUM_PYTHON = (3, 12)

_TYPES = {"float": "float", "int": "int", "bool": "bool", "str": "str", "list": "list",
          "dict": "dict", "ndarray": "array", "array": "array"}
#: Standard methods of plesty-lib's base class that are offered as actions.
_STANDARD = ("identity", "reset", "clear", "check_errors", "preflight")
_READS = ("get_", "measure_", "read_", "is_", "query", "check_", "identity", "describe_",
          "wait_", "preflight")


def python_too_old() -> str:
    """C{""} on Python >= 3.12, else why PLESTY device packages cannot run here."""
    if sys.version_info[:2] >= MINIMUM_PYTHON:
        return ""
    here = ".".join(map(str, sys.version_info[:3]))
    return (f"PLESTY device packages need Python >= 3.12 and this lab runs on Python {here}: "
            "run the lab with Python 3.12+, or run the package's own server "
            "(python -m plesty.thorlabs_powermeter --mock ...) and import it with a "
            "[[plesty.import]] table (see docs/drivers.md)")


def load_class(package: str, spec: str) -> type:
    """
    The driver class: C{spec} (C{"module:Class"}) or the C{Device} class
    of C{package}.

    @raise ConfigError: naming the key at fault.
    """
    from twisted_lab.devices.plugins import load_factory

    if bool(package) == bool(spec):
        raise ConfigError("give exactly one of 'package' (e.g. 'plesty.thorlabs_powermeter') "
                          "and 'class' ('module:Class')", key="package")
    cls: Any
    if spec:
        try:
            cls = load_factory(spec)
        except ConfigError as e:
            raise ConfigError(e.reason, key="class") from None
        key = "class"
    else:
        key = "package"
        try:
            module = importlib.import_module(package)
        except ImportError as e:
            raise ConfigError(f"cannot import the PLESTY package {package!r}: {e}",
                              key=key) from None
        cls = getattr(module, "Device", None)
        if cls is None:
            raise ConfigError(f"package {package!r} has no 'Device' class", key=key)
    if not inspect.isclass(cls) or not callable(getattr(cls, "query", None)) or not callable(
            getattr(cls, "write", None)):
        raise ConfigError(f"{spec or package!r} is not a PLESTY device class (it needs "
                          f"query and write)", key=key)
    return cls


def check_arguments(cls: type, arguments: Mapping[str, Any]) -> None:
    """
    Check constructor arguments against the class's signature.

    @raise ConfigError: an argument the class does not take, naming it.
    """
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return
    parameters = signature.parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    known = [n for n in parameters if n != "self"]
    for key in arguments:
        if key not in known:
            raise ConfigError(f"{cls.__module__}.{cls.__name__} takes no argument {key!r}; "
                              f"it takes {', '.join(known) or 'none'}", key=key)


def _type(dtype: Any) -> str:
    text = str(dtype or "").strip()
    return _TYPES.get(text, "any")


def _doc(text: Any) -> str:
    clean = inspect.cleandoc(str(text or "")).split("\n\n")[0]
    return " ".join(clean.split())


def _default_of(item: Mapping[str, Any]) -> Any:
    return item.get("default")


#: What a reply may take on top of an operation's deadline: the budget a
#: client is told is this much longer, so that it hears our DeviceTimeout
#: rather than giving up first.
REPLY_MARGIN = 1.0


def describe_driver(driver: Any, deadline: float = 0.0
                    ) -> tuple[list[Parameter], list[Action]]:
    """
    The parameters and actions of a PLESTY driver object, from its doc model
    (see the module docstring).  An operation that declares a budget gets
    C{max(budget, deadline)} as its deadline and that plus L{REPLY_MARGIN}
    as the budget told to clients.
    """
    from plesty.lib.device.device_utils import op_budget_of

    doc = driver.doc_model().to_dict()
    parameters: list[Parameter] = []
    for group, items in (doc.get("parameters") or {}).items():
        keys = list(driver.get_config_list(group)) if group != "default" else []
        for item in items:
            name = item["name"]
            if group != "default":
                name = next((k for k in keys if k.endswith("." + item["name"])), name)
            options = item.get("options")
            parameters.append(Parameter(
                name, _type(item.get("dtype")), units=item.get("unit") or "",
                readonly=bool(item.get("read_only")),
                minimum=item.get("min_value"), maximum=item.get("max_value"),
                choices=tuple(options) if options else None,
                doc=_doc(item.get("description")), default=_default_of(item)))
    actions: list[Action] = []
    functions = list(doc.get("functions") or [])
    functions += [f for f in doc.get("standard_methods") or [] if f["name"] in _STANDARD]
    seen: set[str] = set()
    for function in functions:
        name = function["name"]
        if name in seen or name.startswith("_"):
            continue
        seen.add(name)
        arguments = []
        for item in function.get("iparams") or []:
            default = Argument.REQUIRED if item.get("required") else item.get("default")
            arguments.append(Argument(item["name"], _type(item.get("dtype")), default))
        budget = op_budget_of(getattr(type(driver), name, None))
        told = None if budget is None else max(float(budget), deadline) + REPLY_MARGIN
        actions.append(Action(name, tuple(arguments), _doc(function.get("description")),
                              mutating=not name.startswith(_READS), budget=told))
    return parameters, actions


class _PlestyDriver(HostedDriver):
    """What the plain and the actuator PLESTY devices share."""

    driver: Any
    _description: Description
    name: str
    deadline: float

    def _setup(self, driver: Any, reactor: Any, deadline: float, retry: float,
               connect_deadline: float) -> None:
        self.driver = driver
        self.deadline = deadline
        self.init_hosted(reactor, deadline, retry, connect_deadline)

    def open_driver(self) -> Any:
        if self.driver.connect() is False:
            raise ConnectionError(f"{type(self.driver).__name__}.connect() returned False")
        # the package narrows its limits at connect: describe again
        return describe_driver(self.driver, self.deadline)

    def close_driver(self) -> Any:
        self.driver.disconnect()

    def opened(self, result: Any) -> None:
        parameters, _ = result
        old = self._description
        self._description = Description.build(
            self.name, parameters, list(old.actions.values()), kind=old.kind, doc=old.doc,
            **({"units": old.units} if old.kind == "actuator" else {}))

    def _checked(self, name: str, value: Any) -> Any:
        if value is False:
            raise DriverError(f"device {self.name!r}: the driver refused to write {name!r}")
        return value

    def read_parameter(self, name: str) -> Deferred[Any]:
        return self.drive(self.driver.query, name)

    def write_parameter(self, name: str, value: Any) -> Deferred[Any]:
        d = self.drive(self.driver.write, name, value)
        return d.addCallback(lambda ok: self._checked(name, ok)).addCallback(lambda _: value)

    def run_operation(self, action: str, *args: Any) -> Deferred[Any]:
        spec = self._description.actions[action]
        names = [a.name for a in spec.arguments]
        kwargs = {n: v for n, v in zip(names, args)
                  if not (v is None and spec.arguments[names.index(n)].default is None)}
        method = getattr(self.driver, action)
        timeout = self.deadline if spec.budget is None else spec.budget - REPLY_MARGIN
        return self.drive(method, timeout=timeout, **kwargs)


class PlestyDevice(_PlestyDriver, BaseDevice):
    """A PLESTY device package's driver, hosted (see the module docstring)."""

    doc = "PLESTY device"

    def __init__(self, name: str, reactor: Any, driver: Any, deadline: float = 10.0,
                 retry: float = 5.0, connect_deadline: float = 30.0) -> None:
        """
        @param driver: the package's device object (not connected yet).
        @param deadline: the deadline of each call, in seconds.
        @param retry: seconds between connection attempts.
        @param connect_deadline: the deadline of C{connect}.
        """
        parameters, actions = describe_driver(driver, deadline)
        BaseDevice.__init__(self, name, parameters, actions,
                            _doc(type(driver).__doc__) or self.doc)
        self._setup(driver, reactor, deadline, retry, connect_deadline)

    def run_action(self, action: str, *args: Any) -> Deferred[Any]:
        return self.run_operation(action, *args)


#: operation names of a PLESTY motion package, by actuator method
_MOTION = {"move_abs": "move_absolute", "move_rel": "move_relative", "move_home": "home_stage",
           "stop": "stop_motion", "position": "get_position"}


def is_actuator(actions: list[Action]) -> bool:
    """C{True} when the operations include absolute and relative motion and a position."""
    names = {a.name for a in actions}
    return {"move_absolute", "move_relative", "get_position"} <= names


class PlestyActuator(_PlestyDriver, BaseActuator):
    """A PLESTY motion package (K10CR1, ...) hosted as an actuator."""

    doc = "PLESTY motion device"

    def __init__(self, name: str, reactor: Any, driver: Any, deadline: float = 10.0,
                 retry: float = 5.0, connect_deadline: float = 30.0) -> None:
        parameters, actions = describe_driver(driver, deadline)
        units = ""
        for parameter in parameters:
            if parameter.name.endswith("Position") and parameter.units:
                units = parameter.units
                break
        own = [a for a in actions if a.name not in {"move_abs", "move_rel", "move_home", "stop",
                                                   "position"}]
        BaseActuator.__init__(self, name, units, parameters, own,
                              _doc(type(driver).__doc__) or self.doc)
        self._setup(driver, reactor, deadline, retry, connect_deadline)
        self._motion_budget = max((a.budget or REPLY_MARGIN) for a in actions) - REPLY_MARGIN

    def run_action(self, action: str, *args: Any) -> Deferred[Any]:
        if action in ("move_abs", "move_rel", "move_home", "stop", "position"):
            result: Deferred[Any] = BaseActuator.run_action(self, action, *args)
            return result
        return self.run_operation(action, *args)

    def _motion(self, operation: str, *args: Any) -> Deferred[Any]:
        if operation not in self._description.actions:
            raise InvalidValue(f"device {self.name!r} has no {operation} operation")
        timeout = max(self.deadline, self._motion_budget)
        return self.drive(getattr(self.driver, operation), *args, timeout=timeout)

    def _move_abs(self, position: float) -> Any:
        d = self._motion(_MOTION["move_abs"], position)
        return d.addCallback(lambda _: self._position())

    def _move_rel(self, step: float) -> Any:
        d = self._motion(_MOTION["move_rel"], step)
        return d.addCallback(lambda _: self._position())

    def _move_home(self) -> Any:
        d = self._motion(_MOTION["move_home"])
        return d.addCallback(lambda _: self._position())

    def _stop(self) -> Any:
        d = self._motion(_MOTION["stop"])
        return d.addCallback(lambda _: self._position())

    def _position(self) -> Any:
        return self.drive(self.driver.get_position).addCallback(float)


def make_plesty_device(name: str, reactor: Any, cls: type, arguments: Mapping[str, Any],
                       deadline: float = 10.0, retry: float = 5.0,
                       connect_deadline: float = 30.0) -> Any:
    """Build the driver object and host it (an actuator for motion packages)."""
    try:
        driver = cls(**arguments)
    except Exception as e:
        raise ConfigError(f"{cls.__name__}(**{dict(arguments)!r}) failed: "
                          f"{type(e).__name__}: {e}") from None
    _, actions = describe_driver(driver)
    kind = PlestyActuator if is_actuator(actions) else PlestyDevice
    return kind(name, reactor, driver, deadline, retry, connect_deadline)
