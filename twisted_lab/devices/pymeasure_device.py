# -*- test-case-name: tests.test_devices_pymeasure -*-
"""
Any pymeasure C{Instrument} subclass, hosted as a device.

The description is read from the class, without touching the instrument:

  - properties made with C{Instrument.control}, C{measurement} and
    C{setting} become parameters: read-only when they have no set command,
    write-only ones (C{setting}) readable as their last written value;
    limits from C{strict_range} (minimum/maximum) and
    C{strict_discrete_set}/C{strict_discrete_range} (choices, the mapped
    keys when C{map_values}); the doc from the docstring; units from the
    docstring ("in V", "in nm", "(Hz)") where it names them;
  - plain properties of the instrument's own classes become parameters too
    (read-only without a setter);
  - public methods of the instrument's own classes (not pymeasure's base
    classes, whose C{write}/C{ask} would send free text) become actions,
    plus C{reset}, C{clear} and C{shutdown} when present;
  - channels (C{Instrument.ChannelCreator}/C{MultiChannelCreator}) become
    sub-parameters named C{<channel>.<property>} and sub-actions
    C{<channel>.<method>}.

Values are validated against those limits before anything reaches the
instrument (L{InvalidValue}); pymeasure's own validator runs as well.  A
dynamic property whose limits the instance changes (C{ch_1.voltage_values =
[0, 6]}) gets the instance's limits once connected.

The instrument is constructed on the device's driver thread when the lab
starts (that opens the adapter) and its adapter is closed when it stops.
"""
from __future__ import annotations

import inspect
import re
from typing import Any, Callable, Iterator, Mapping

from twisted.internet.defer import Deferred

from twisted_lab.description import Action, Description, Parameter
from twisted_lab.devices.base import BaseDevice
from twisted_lab.devices.hosted import HostedDriver
from twisted_lab.devices.wrap import _action
from twisted_lab.errors import ConfigError

__all__ = ["PymeasureDevice", "describe_class", "units_from_doc", "check_instrument"]

#: Methods of pymeasure's base classes that are still offered as actions.
BASE_ACTIONS = ("reset", "clear", "shutdown")

_UNIT_WORDS = {
    "volt": "V", "volts": "V", "v": "V", "mv": "mV", "amp": "A", "amps": "A", "ampere": "A",
    "amperes": "A", "a": "A", "ma": "mA", "watt": "W", "watts": "W", "w": "W", "mw": "mW",
    "ohm": "Ohm", "ohms": "Ohm", "hz": "Hz", "hertz": "Hz", "khz": "kHz", "mhz": "MHz",
    "second": "s", "seconds": "s", "s": "s", "ms": "ms", "nm": "nm", "mm": "mm", "um": "um",
    "degree": "deg", "degrees": "deg", "deg": "deg", "kelvin": "K", "k": "K", "j": "J",
    "joule": "J", "joules": "J", "db": "dB", "dbm": "dBm", "percent": "%", "c": "C",
}
_UNIT_PATTERNS = (
    re.compile(r"\bin (?:units of )?([A-Za-z%]+)\b"),
    re.compile(r"\(([A-Za-z%]+)\)"),
    re.compile(r"\[([A-Za-z%]+)\]"),
)


def units_from_doc(doc: str) -> str:
    """
    The units a docstring names ("in Volts", "in nm", "(Hz)", "[V]"), or C{""}.
    """
    for pattern in _UNIT_PATTERNS:
        for match in pattern.finditer(doc or ""):
            word = match.group(1)
            unit = _UNIT_WORDS.get(word.lower())
            if unit is not None:
                return unit
    return ""


def _doc_line(doc: str | None) -> str:
    text = inspect.cleandoc(doc or "").strip()
    if not text:
        return ""
    first = text.split("\n\n")[0].replace("\n", " ")
    return " ".join(first.split())


def _defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return {p.name: p.default for p in inspect.signature(fn).parameters.values()
                if p.default is not inspect.Parameter.empty}
    except (TypeError, ValueError):
        return {}


def _closure(fn: Callable[..., Any]) -> dict[str, Any]:
    code = getattr(fn, "__code__", None)
    cells = getattr(fn, "__closure__", None) or ()
    if code is None:
        return {}
    out = {}
    for name, cell in zip(code.co_freevars, cells):
        try:
            out[name] = cell.cell_contents
        except ValueError:
            pass
    return out


def _is_pymeasure_property(prop: Any) -> bool:
    fget = getattr(prop, "fget", None)
    return "control.<locals>" in getattr(fget, "__qualname__", "")


def _type_of_values(values: Any) -> str:
    kinds = {type(v) for v in values}
    if kinds and kinds <= {bool}:
        return "bool"
    if kinds and kinds <= {int}:
        return "int"
    if kinds and kinds <= {int, float}:
        return "float"
    if kinds and kinds <= {str}:
        return "str"
    return "any"


def _limits(validator: Any, values: Any, map_values: bool) -> dict[str, Any]:
    """Parameter keyword arguments from a pymeasure validator and its values."""
    from pymeasure.instruments import validators

    if isinstance(values, dict) and map_values:
        keys = tuple(values)
    elif isinstance(values, (list, tuple, range)):
        keys = tuple(values)
    else:
        return {}
    if validator is validators.strict_range and len(keys) == 2:
        low, high = keys
        return {"type": "float", "minimum": low, "maximum": high}
    if validator is validators.strict_discrete_range and len(keys) == 3:
        low, high, step = keys
        return {"type": "float", "minimum": low, "maximum": high}
    if validator is validators.strict_discrete_set and keys:
        return {"type": _type_of_values(keys), "choices": keys}
    return {}


def _pymeasure_parameter(name: str, prop: Any, values_override: Any = None) -> Parameter:
    fget, fset = prop.fget, prop.fset
    get_defaults = _defaults(fget)
    set_defaults = _defaults(fset)
    readable = get_defaults.get("get_command") is not None
    writable = set_defaults.get("set_command") is not None
    doc_raw = fget.__doc__ or ""
    doc = _doc_line(doc_raw.replace("(dynamic)", ""))
    kind = "any"
    cast = _closure(fget).get("cast")
    kinds = {float: "float", int: "int", str: "str", bool: "bool"}
    if cast in kinds:
        kind = kinds[cast]
    extra: dict[str, Any] = {}
    if writable:
        values = set_defaults.get("values") if values_override is None else values_override
        extra = _limits(set_defaults.get("validator"), values, bool(set_defaults.get("map_values")))
        if "type" in extra and extra["type"] == "any":
            extra["type"] = kind
    if not readable:
        doc = (doc + " (write-only: reads give the last value written)").strip()
    extra.setdefault("type", kind)
    if extra["type"] == "float" and kind == "int":
        extra["type"] = "int" if "minimum" in extra and all(
            isinstance(extra[k], int) for k in ("minimum", "maximum")) else "float"
    if extra["type"] == "any" and not writable:
        extra["type"] = "any"
    return Parameter(name, units=units_from_doc(doc_raw), readonly=not writable, doc=doc,
                     **extra)


def _own_classes(cls: type) -> list[type]:
    """The classes of C{cls}'s MRO that are not pymeasure's base classes."""
    from pymeasure.instruments.channel import Channel
    from pymeasure.instruments.common_base import CommonBase
    from pymeasure.instruments.instrument import Instrument

    bases = {Instrument, Channel, CommonBase, object}
    out = []
    for klass in cls.__mro__:
        if klass in bases or klass.__module__.startswith("pymeasure.instruments.generic_types") \
                or klass.__module__ in ("pymeasure.instruments.instrument",
                                        "pymeasure.instruments.common_base",
                                        "pymeasure.instruments.channel"):
            continue
        out.append(klass)
    return out


def _members(cls: type, prefix: str = "", overrides: Mapping[str, Any] | None = None
             ) -> tuple[list[Parameter], list[Action]]:
    from pymeasure.instruments.common_base import CommonBase, DynamicProperty

    own = _own_classes(cls)
    parameters: list[Parameter] = []
    actions: list[Action] = []
    for name in sorted(dir(cls)):
        if name.startswith("_"):
            continue
        try:
            static = inspect.getattr_static(cls, name)
        except AttributeError:
            continue
        owner = next((k for k in cls.__mro__ if name in vars(k)), None)
        if isinstance(static, (property, DynamicProperty)):
            if _is_pymeasure_property(static):
                override = (overrides or {}).get(name)
                parameters.append(_pymeasure_parameter(prefix + name, static, override))
            elif owner in own and isinstance(static, property):
                doc_raw = static.__doc__ or ""
                parameters.append(Parameter(prefix + name, "any", units=units_from_doc(doc_raw),
                                            readonly=static.fset is None,
                                            doc=_doc_line(doc_raw)))
            continue
        if isinstance(static, CommonBase.BaseChannelCreator):
            continue
        if inspect.isfunction(static) and (owner in own or name in BASE_ACTIONS):
            action = _action(prefix + name, getattr(cls, name))
            doc = _doc_line(static.__doc__)
            # the first argument of an unbound function is self
            arguments = tuple(a for a in action.arguments if a.name != "self")
            actions.append(Action(action.name, arguments, doc, mutating=action.mutating))
    return parameters, actions


def _channels(cls: type) -> Iterator[tuple[str, type]]:
    """(attribute name, channel class) of every channel an instance will have."""
    from pymeasure.instruments.common_base import CommonBase

    for name in sorted(dir(cls)):
        static = inspect.getattr_static(cls, name, None)
        if isinstance(static, CommonBase.MultiChannelCreator):
            for child_cls, cid in static.pairs:
                yield f"{static.kwargs.get('prefix', 'ch_')}{cid}", child_cls
        elif isinstance(static, CommonBase.ChannelCreator):
            if not name.startswith("_"):
                yield name, static.pairs[0][0] if static.pairs else object


def describe_class(cls: type, overrides: Mapping[str, Any] | None = None
                   ) -> tuple[list[Parameter], list[Action]]:
    """
    The parameters and actions of a pymeasure instrument class (channels
    included).

    @param overrides: C{"<channel>.<property>"} (or C{"<property>"}) to the
        instance's own C{values} of a dynamic property.
    """
    parameters, actions = _members(cls, "", overrides)
    for channel, channel_cls in _channels(cls):
        sub = {k[len(channel) + 1:]: v for k, v in (overrides or {}).items()
               if k.startswith(channel + ".")}
        p, a = _members(channel_cls, channel + ".", sub)
        parameters += p
        actions += a
    return parameters, actions


def check_instrument(spec: str, kwargs: Mapping[str, Any]) -> type:
    """
    Load C{"module:Class"} and check it is a pymeasure C{Instrument} whose
    constructor accepts C{kwargs} (besides the adapter).

    @raise ConfigError: with the key at fault.
    """
    from twisted_lab.devices.plugins import load_factory

    try:
        from pymeasure.instruments import Instrument
    except ImportError as e:
        raise ConfigError(f"pymeasure is not installed ({e}); pip install pymeasure",
                          key="instrument") from None
    try:
        cls = load_factory(spec)
    except ConfigError as e:
        raise ConfigError(e.reason, key="instrument") from None
    if not (inspect.isclass(cls) and issubclass(cls, Instrument)):
        raise ConfigError(f"{spec!r} is not a pymeasure Instrument subclass", key="instrument")
    try:
        signature = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return cls
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    if not takes_any:
        known = [n for n in signature.parameters if n not in ("self", "adapter")]
        for key in kwargs:
            if key not in known:
                raise ConfigError(f"{spec} takes no argument {key!r}; it takes "
                                  f"{', '.join(known) or 'none'}", key=f"kwargs.{key}")
    return cls


class PymeasureDevice(HostedDriver, BaseDevice):
    """
    A pymeasure instrument hosted as a device (see the module docstring).

    @ivar instrument: the pymeasure instrument, once connected (else C{None}).
    """

    doc = "pymeasure instrument"

    def __init__(self, name: str, reactor: Any, cls: type, adapter: Any,
                 kwargs: Mapping[str, Any] | None = None, deadline: float = 5.0,
                 retry: float = 5.0, doc: str = "") -> None:
        """
        @param cls: the C{Instrument} subclass.
        @param adapter: what its constructor takes as C{adapter}: a VISA
            resource name, or an adapter object.
        @param kwargs: more constructor arguments (C{visa_library}, ...).
        @param deadline: the deadline of each call, in seconds.
        @param retry: seconds between connection attempts.
        """
        self.cls = cls
        self.adapter = adapter
        self.kwargs = dict(kwargs or {})
        self.instrument: Any = None
        self._written: dict[str, Any] = {}
        parameters, actions = describe_class(cls)
        BaseDevice.__init__(self, name, parameters, actions,
                            doc or _doc_line(cls.__doc__) or self.doc)
        self.init_hosted(reactor, deadline, retry)

    # -- connection (worker thread) ----------------------------------------------------

    def open_driver(self) -> Any:
        instrument = self.cls(self.adapter, **self.kwargs)
        overrides = {}
        for parameter in self._description.parameters.values():
            owner, attr = self._resolve(instrument, parameter.name)
            static = inspect.getattr_static(type(owner), attr, None)
            if static is not None and type(static).__name__ == "DynamicProperty":
                # where pymeasure keeps an instance's own values of a dynamic property
                overrides[parameter.name] = getattr(owner, f"___{attr}_values", None)
        return instrument, overrides

    def close_driver(self) -> Any:
        instrument, self.instrument = self.instrument, None
        if instrument is not None:
            adapter = getattr(instrument, "adapter", None)
            close = getattr(adapter, "close", None)
            if close is not None:
                close()

    def opened(self, result: Any) -> None:
        self.instrument, overrides = result
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if overrides:
            parameters, actions = describe_class(self.cls, overrides)
            old = self._description
            self._description = Description.build(
                self.name, parameters, list(old.actions.values()), kind=old.kind, doc=old.doc)

    # -- access ------------------------------------------------------------------------

    @staticmethod
    def _resolve(instrument: Any, name: str) -> tuple[Any, str]:
        owner = instrument
        *path, attr = name.split(".")
        for part in path:
            owner = getattr(owner, part)
        return owner, attr

    def _read(self, name: str) -> Any:
        owner, attr = self._resolve(self.instrument, name)
        return getattr(owner, attr)

    def _write(self, name: str, value: Any) -> None:
        owner, attr = self._resolve(self.instrument, name)
        setattr(owner, attr, value)

    def read_parameter(self, name: str) -> Deferred[Any]:
        prop = self._description.parameters[name]
        if "write-only" in prop.doc and name in self._written:
            return self.drive(lambda: self._written[name])
        return self.drive(self._read, name)

    def write_parameter(self, name: str, value: Any) -> Deferred[Any]:
        def written(_: Any) -> Any:
            self._written[name] = value
            return value

        return self.drive(self._write, name, value).addCallback(written)

    def run_action(self, action: str, *args: Any) -> Deferred[Any]:
        def invoke() -> Any:
            owner, attr = self._resolve(self.instrument, action)
            return getattr(owner, attr)(*args)

        invoke.__name__ = action
        return self.drive(invoke)
