# -*- test-case-name: tests.test_devices_wrap -*-
"""
Turn any Python object into a device.

L{WrappedDevice} looks at an object once, when it is wrapped:

  - public data attributes become parameters, their type inferred from the
    current value; they are read-only unless named in C{writable} (C{"*"}:
    every one), so that a client cannot replace a driver's internals;
  - public properties become parameters, read-only when they have no
    setter (or are not in C{writable}), their type taken from the getter's
    return annotation;
  - public methods become actions, their arguments (names, defaults, types
    from annotations) taken from C{inspect.signature};
  - names starting with C{_} are never exposed, whatever C{include} says.

With a L{DriverRunner} (C{runner=} or C{threaded=True}), every access to the
object runs on the runner's worker thread, for objects whose methods block;
the device is then an L{IService} that starts and stops that thread.
"""
from __future__ import annotations

import inspect
import typing
from dataclasses import replace
from typing import Any, Callable, Iterable

import numpy as np
from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred, ensureDeferred, fail, maybeDeferred, succeed
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_lab.description import Action, Argument, Parameter
from twisted_lab.devices.base import BaseDevice
from twisted_lab.drivers import DriverRunner
from twisted_lab.errors import DriverError, LabError

__all__ = ["WrappedDevice", "introspect"]

_TYPES: dict[Any, str] = {bool: "bool", int: "int", float: "float", str: "str", list: "list",
                          tuple: "list", dict: "dict", np.ndarray: "array"}
_TYPE_NAMES = {"bool": "bool", "int": "int", "float": "float", "str": "str", "list": "list",
               "dict": "dict", "tuple": "list", "ndarray": "array", "np.ndarray": "array",
               "numpy.ndarray": "array"}
_READ_PREFIXES = ("get_", "read_", "is_", "measure")


def _type_of_value(value: Any) -> str:
    for kind, name in _TYPES.items():
        if type(value) is kind:
            return name
    if isinstance(value, np.ndarray):
        return "array"
    return "any"


def _type_of_annotation(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty or annotation is None:
        return "any"
    if isinstance(annotation, str):
        return _TYPE_NAMES.get(annotation.strip(), "any")
    if annotation in _TYPES:
        return _TYPES[annotation]
    origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        return "list"
    if origin is dict:
        return "dict"
    return "any"


def _hints(fn: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:
        return dict(getattr(fn, "__annotations__", {}) or {})


def _doc_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def introspect(obj: Any, include: Iterable[str] | None = None,
               exclude: Iterable[str] = ()) -> tuple[list[Parameter], list[Action]]:
    """
    The parameters and actions of an object (see the module docstring).

    @param include: only these names (private ones are still refused).
    @param exclude: never these names.
    """
    wanted = None if include is None else set(include)
    unwanted = set(exclude)
    parameters: list[Parameter] = []
    actions: list[Action] = []
    for name in sorted(set(dir(obj))):
        if name.startswith("_") or name in unwanted or (wanted is not None and name not in wanted):
            continue
        try:
            static = inspect.getattr_static(obj, name)
        except AttributeError:
            continue
        if isinstance(static, property):
            kind = _type_of_annotation(_hints(static.fget).get("return", inspect.Parameter.empty))
            parameters.append(Parameter(name, kind, readonly=static.fset is None,
                                        doc=_doc_line(static)))
            continue
        if isinstance(static, (staticmethod, classmethod)) or inspect.isroutine(static):
            method = getattr(obj, name)
            actions.append(_action(name, method))
            continue
        if inspect.isclass(static) or inspect.ismodule(static):
            continue
        if hasattr(static, "__get__") and not isinstance(static, (int, float, str, bytes)):
            # another descriptor: expose as a read-only parameter of unknown type
            parameters.append(Parameter(name, "any", readonly=not hasattr(static, "__set__")))
            continue
        value = getattr(obj, name)
        if callable(value):
            actions.append(_action(name, value))
            continue
        parameters.append(Parameter(name, _type_of_value(value), default=value))
    return parameters, actions


def _action(name: str, method: Callable[..., Any]) -> Action:
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):
        return Action(name, (), _doc_line(method))
    hints = _hints(method)
    arguments = []
    for p in signature.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name.startswith("_"):
            continue
        kind = _type_of_annotation(hints.get(p.name, p.annotation))
        default = Argument.REQUIRED if p.default is p.empty else p.default
        arguments.append(Argument(p.name, kind, default))
    mutating = not name.startswith(_READ_PREFIXES)
    return Action(name, tuple(arguments), _doc_line(method), mutating=mutating)


@implementer(IService)
class WrappedDevice(BaseDevice, Service):  # type: ignore[misc]
    """
    A device made from any Python object.

    @ivar obj: the wrapped object.
    @ivar runner: the L{DriverRunner} all accesses go through, or C{None}
        to access the object directly on the reactor thread.
    """

    doc = "Wrapped Python object"

    def __init__(self, name: str, obj: Any, reactor: Any = None,
                 runner: DriverRunner | None = None, threaded: bool = False,
                 deadline: float = 5.0, include: Iterable[str] | None = None,
                 exclude: Iterable[str] = (), doc: str = "",
                 writable: Iterable[str] = ()) -> None:
        """
        @param obj: the object.
        @param reactor: the reactor (needed with C{threaded=True}).
        @param runner: run every access on this runner's thread.
        @param threaded: make a runner of our own (with C{deadline}).
        @param include: expose only these public names.
        @param exclude: never expose these names.
        @param writable: the parameters clients may write (C{"*"}: every
            attribute and property with a setter); the others are read-only.
        """
        if runner is None and threaded:
            if reactor is None:
                raise ValueError("a threaded WrappedDevice needs a reactor")
            runner = DriverRunner(reactor, name, deadline=deadline)
        self.obj = obj
        self.runner = runner
        parameters, actions = introspect(obj, include, exclude)
        allowed = set(writable)
        if "*" not in allowed:
            parameters = [p if p.readonly or p.name in allowed
                          else replace(p, readonly=True) for p in parameters]
        if runner is not None:
            # Each call may run up to the runner's deadline: publish it.
            actions = [replace(a, budget=runner.deadline) for a in actions]
        BaseDevice.__init__(self, name, parameters, actions,
                            doc or _doc_line(type(obj)) or self.doc)

    @property
    def busy(self) -> bool:
        """C{True} while a call that overran its deadline still runs."""
        return self.runner is not None and self.runner.busy

    # -- IService -------------------------------------------------------------

    def startService(self) -> None:
        """Start the runner's thread, if any."""
        Service.startService(self)
        if self.runner is not None:
            self.runner.start()

    def stopService(self) -> Deferred[None]:
        """Stop (and join) the runner's thread, if any."""
        Service.stopService(self)
        if self.runner is not None:
            return self.runner.stop()
        return succeed(None)

    # -- access -----------------------------------------------------------------

    def _access(self, fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
        if self.runner is not None:
            return self.runner.run(fn, *args)
        try:
            result = fn(*args)
        except LabError:
            return fail()
        except Exception as e:
            return fail(self._driver_error(fn, e))
        if inspect.iscoroutine(result):
            result = ensureDeferred(result)
        d = maybeDeferred(lambda: result)
        return d.addErrback(self._wrap_failure, fn)

    def _wrap_failure(self, failure: Failure, fn: Callable[..., Any]) -> Failure:
        if isinstance(failure.value, LabError):
            return failure
        assert failure.value is not None
        return Failure(self._driver_error(fn, failure.value))

    def _driver_error(self, fn: Callable[..., Any], error: BaseException) -> DriverError:
        what = getattr(fn, "__name__", "call")
        out = DriverError(f"device {self.name!r}: {what} failed: {type(error).__name__}: {error}",
                          device=self.name, reason=str(error))
        out.__cause__ = error
        return out

    def read_parameter(self, name: str) -> Deferred[Any]:
        return self._access(getattr, self.obj, name)

    def write_parameter(self, name: str, value: Any) -> Deferred[Any]:
        return self._access(setattr, self.obj, name, value).addCallback(lambda _: value)

    def run_action(self, action: str, *args: Any) -> Deferred[Any]:
        method = getattr(self.obj, action)
        names = [a.name for a in self._description.actions[action].arguments]
        try:
            signature = inspect.signature(method)
        except (TypeError, ValueError):
            return self._access(method, *args)
        positional: list[Any] = []
        keywords: dict[str, Any] = {}
        for name, value in zip(names, args):
            if signature.parameters[name].kind == inspect.Parameter.KEYWORD_ONLY:
                keywords[name] = value
            else:
                positional.append(value)
        if keywords:
            return self._access(lambda: method(*positional, **keywords))
        return self._access(method, *positional)
