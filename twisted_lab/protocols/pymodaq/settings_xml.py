# -*- test-case-name: tests.test_pymodaq_settings_xml -*-
"""
PyMoDAQ settings XML (C{specs/pymodaq-tcp.md} §6) ↔ L{Parameter}s and values.

Exporting, a device's parameters become the children of a C{settings} group
element (C{Infos}) or single elements (C{Info_xml}); importing, the leaves of
a PyMoDAQ settings tree become parameters named by their path joined with
C{"."} (C{camera.gain}), remembering the PyMoDAQ type and path so that a new
value can be sent back with C{set_info}.  Values are parsed without C{eval}.
"""
from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from typing import Any, Iterable, Mapping, NamedTuple

from twisted_lab.description import Parameter
from twisted_lab.errors import ProtocolError

__all__ = ["RemoteSetting", "parameter_xml", "settings_xml", "parse_settings",
           "parse_parameter", "value_text", "parse_value", "pymodaq_type"]

_BOOL_TYPES = ("bool", "led", "bool_push")
#: The deepest settings tree read from a peer (PyMoDAQ's own trees nest a few levels).
MAX_DEPTH = 64
_WRAPPED = re.compile(r"^(str|int|float)\((.*)\)$", re.S)


class RemoteSetting(NamedTuple):
    """
    One leaf of a PyMoDAQ settings tree.

    @ivar parameter: its description (name = path joined with C{"."}).
    @ivar value: its value.
    @ivar pymodaq_type: the PyMoDAQ parameter type (C{"float"}, C{"list"}, ...).
    @ivar path: its path below the settings root.
    @ivar attributes: the element's attributes, to send it back unchanged.
    """

    parameter: Parameter
    value: Any
    pymodaq_type: str
    path: tuple[str, ...]
    attributes: dict[str, str]


def pymodaq_type(parameter: Parameter) -> str:
    """The PyMoDAQ type a parameter is shown as."""
    if parameter.choices is not None:
        return "list"
    if parameter.type in ("float", "int", "bool", "str"):
        return parameter.type
    return "str"


def value_text(kind: str, value: Any) -> str:
    """The element text of a value of PyMoDAQ type C{kind}."""
    if kind in _BOOL_TYPES:
        return "1" if value else "0"
    if kind == "list":
        if isinstance(value, str):
            return f"str('{value}')"
        if isinstance(value, bool):
            return str(value)
        if isinstance(value, int):
            return f"int({value})"
        if isinstance(value, float):
            return f"float({value})"
        return str(value)
    if kind == "int" and value is True:
        return "1"
    if value is None:
        return ""
    return str(value)


#: The longest literal (a list value, a limits attribute) read from a peer.
MAX_LITERAL = 65536


def _literal(text: str) -> Any:
    """
    Read a Python literal sent by a peer (PyMoDAQ writes lists and limits as
    their C{repr}): never evaluated as code, bounded in size and depth.

    @raise ValueError: not a literal, too long, or too deeply nested.
    """
    if len(text) > MAX_LITERAL:
        raise ValueError(f"literal of {len(text)} characters is longer than {MAX_LITERAL}")
    try:
        return ast.literal_eval(text)
    except (SyntaxError, TypeError, RecursionError, MemoryError) as e:
        raise ValueError(f"not a literal: {type(e).__name__}") from None


def parse_value(kind: str, text: str | None) -> Any:
    """
    The value of an element of PyMoDAQ type C{kind} and text C{text}.

    @raise ProtocolError: the text is not a value of that type.
    """
    text = text or ""
    try:
        if kind in _BOOL_TYPES:
            return text.strip() not in ("0", "", "False", "false")
        if kind == "float":
            return float(text)
        if kind == "int":
            return int(float(text)) if text.strip() not in ("True", "False") else text == "True"
        if kind == "list":
            match = _WRAPPED.match(text)
            if match:
                cast, inner = match.groups()
                if cast == "str":
                    return str(_literal(inner))
                return int(inner) if cast == "int" else float(inner)
            try:
                return _literal(text)
            except ValueError:
                return text
    except (ValueError, SyntaxError) as e:
        raise ProtocolError(f"{text[:40]!r} is not a {kind} value ({e})") from None
    return text


def _element(parameter: Parameter, value: Any, tag: str | None = None) -> ET.Element:
    kind = pymodaq_type(parameter)
    attributes = {"type": kind, "title": parameter.name, "visible": "1", "removable": "0",
                  "readonly": "1" if parameter.readonly else "0"}
    if parameter.choices is not None:
        attributes["limits"] = str(list(parameter.choices))
    elif parameter.type in ("float", "int") and (parameter.minimum is not None
                                                 and parameter.maximum is not None):
        # PyMoDAQ's numeric parameters compare with both bounds: no None
        # (an open bound would make its Info_xml handler raise and drop us)
        attributes["limits"] = str([parameter.minimum, parameter.maximum])
    element = ET.Element(tag or parameter.name, attributes)
    if parameter.type not in ("float", "int", "bool", "str") and parameter.choices is None:
        element.text = repr(value)
    else:
        element.text = value_text(kind, value)
    return element


def parameter_xml(parameter: Parameter, value: Any) -> bytes:
    """The one-element XML of a parameter (for C{Info_xml} and C{set_info})."""
    return ET.tostring(_element(parameter, value))


def settings_xml(parameters: Iterable[Parameter], values: Mapping[str, Any],
                 root: str = "settings", extra: Iterable[tuple[Parameter, Any]] = ()) -> bytes:
    """
    The settings tree of a device (for C{Infos}).

    @param parameters: the parameters, in order.
    @param values: their values by name (missing ones are sent empty).
    @param root: the root group's name.
    @param extra: more (parameter, value) pairs, for example C{units}.
    """
    element = ET.Element(root, {"type": "group", "title": root, "visible": "1",
                                "removable": "0", "readonly": "0"})
    for parameter, value in list(extra) + [(p, values.get(p.name)) for p in parameters]:
        if _valid_tag(parameter.name):
            element.append(_element(parameter, value))
    return ET.tostring(element)


def _valid_tag(name: str) -> bool:
    try:
        ET.fromstring(f"<{name}/>")
    except ET.ParseError:
        return False
    return True


def _parse(xml: str | bytes) -> ET.Element:
    try:
        return ET.fromstring(xml)
    except ET.ParseError as e:
        raise ProtocolError(f"settings XML does not parse ({e})") from None


def _leaf(element: ET.Element, path: tuple[str, ...]) -> RemoteSetting:
    kind = element.get("type") or "str"
    value = parse_value(kind, element.text)
    choices: tuple[Any, ...] | None = None
    minimum = maximum = None
    limits_text = element.get("limits")
    if limits_text:
        try:
            limits = _literal(limits_text)
        except ValueError:
            limits = None
        if kind == "list" and isinstance(limits, (list, tuple)):
            choices = tuple(limits)
        elif kind in ("float", "int") and isinstance(limits, (list, tuple)) and len(limits) == 2:
            minimum, maximum = limits
            minimum = minimum if isinstance(minimum, (int, float)) else None
            maximum = maximum if isinstance(maximum, (int, float)) else None
    if kind in _BOOL_TYPES:
        ours = "bool"
    elif kind in ("float", "int"):
        ours = kind
    elif kind == "list":
        ours = {str: "str", int: "int", float: "float", bool: "bool"}.get(type(value), "any")
    else:
        ours = "str"
    if choices is not None and value not in choices:
        choices = None
    parameter = Parameter(".".join(path), ours, readonly=element.get("readonly") == "1",
                          minimum=minimum, maximum=maximum, choices=choices,
                          doc=element.get("title") or "", default=value)
    return RemoteSetting(parameter, value, kind, path, dict(element.attrib))


def _walk(element: ET.Element, path: tuple[str, ...], out: list[RemoteSetting]) -> None:
    if len(path) > MAX_DEPTH:
        raise ProtocolError(f"settings XML nests deeper than {MAX_DEPTH} levels")
    if "group" in (element.get("type") or ""):
        for child in element:
            _walk(child, path + (child.tag,), out)
    else:
        out.append(_leaf(element, path))


def parse_settings(xml: str | bytes) -> list[RemoteSetting]:
    """
    The leaves of a whole settings tree (C{Infos}), paths below its root.

    @raise ProtocolError: not XML, or a value that does not parse.
    """
    root = _parse(xml)
    out: list[RemoteSetting] = []
    if "group" in (root.get("type") or "") or len(root):
        for child in root:
            _walk(child, (child.tag,), out)
    else:
        out.append(_leaf(root, (root.tag,)))
    return out


def parse_parameter(xml: str | bytes, path: tuple[str, ...] = ()) -> list[RemoteSetting]:
    """
    The leaves of a one-parameter XML (C{Info_xml}, C{set_info}).

    @param path: the element's path below the settings root (its tag if empty).
    """
    root = _parse(xml)
    out: list[RemoteSetting] = []
    _walk(root, path or (root.tag,), out)
    return out


def setting_xml(setting: RemoteSetting, value: Any) -> bytes:
    """A remote setting's one-element XML with a new value (for C{set_info})."""
    element = ET.Element(setting.path[-1], setting.attributes)
    element.text = value_text(setting.pymodaq_type, value)
    return ET.tostring(element)
