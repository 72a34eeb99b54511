# -*- test-case-name: tests.test_formats_pymodaq_settings -*-
"""
PyMoDAQ's settings tree as parameter XML (C{specs/pymodaq-tcp.md} §6) ↔
L{Parameter}s and values: the one builder and reader used by the PyMoDAQ 4
TCP roles (C{Infos}, C{Info_xml}, C{set_info}) and the LECO PyMoDAQ 5 actor
and director (C{set_director_settings}, C{set_director_info}).

Written as PyMoDAQ's own C{ioxml.parameter_to_xml_string} writes it (the same
in PyMoDAQ 4.4 and in C{pymodaq_gui} 5.x): every element carries C{type},
C{title}, C{visible}, C{removable} and C{readonly} (always, C{"0"} or C{"1"}),
and C{limits} (the C{str} of a list) only when the parameter has limits: the
choices of a C{list}, or both bounds of a number (PyMoDAQ's numeric
parameters compare with both, so an open bound is not sent); booleans are
C{"1"}/C{"0"}, C{list} values C{str('a')}/C{int(1)}/C{float(2.0)}.

Importing, the leaves of a tree become parameters named by their path joined
with C{"."} (C{camera.gain}), remembering the PyMoDAQ type and path so that a
new value can be sent back.  Values are parsed without C{eval}.
"""
from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

from twisted_lab.description import Parameter
from twisted_lab.errors import ProtocolError

__all__ = ["RemoteSetting", "element", "parameter_element", "group", "parameter_xml",
           "value_xml", "settings_tree", "settings_xml", "parse_settings", "parse_parameter",
           "read_parameter", "leaf_values", "setting_xml", "value_text", "parse_value",
           "pymodaq_type"]

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
    if text is None:
        # PyMoDAQ's ioxml: an element without text sets no value ('' for a str)
        return "" if kind == "str" else None
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


def element(name: str, kind: str, value: Any = None, *, title: str | None = None,
            readonly: bool = False, limits: Sequence[Any] | None = None,
            text: str | None = None) -> ET.Element:
    """
    One PyMoDAQ parameter element, as C{ioxml.walk_parameters_to_xml} makes it.

    @param name: the tag (the parameter's name).
    @param kind: the PyMoDAQ type (C{"float"}, C{"list"}, C{"group"}, ...).
    @param value: the value (not written for a group).
    @param title: the shown title (the name if C{None}).
    @param readonly: written as C{readonly="1"}, else C{"0"}.
    @param limits: the C{limits} attribute (choices, or both bounds).
    @param text: the element text, when not L{value_text}C{(kind, value)}.
    """
    attributes = {"type": kind, "title": name if title is None else title, "visible": "1",
                  "removable": "0", "readonly": "1" if readonly else "0"}
    if limits is not None:
        attributes["limits"] = str(list(limits))
    out = ET.Element(name, attributes)
    if "group" not in kind:
        out.text = value_text(kind, value) if text is None else text
    return out


def parameter_element(parameter: Parameter, value: Any, tag: str | None = None) -> ET.Element:
    """The element of one of our parameters with its value (see L{element})."""
    kind = pymodaq_type(parameter)
    limits: Sequence[Any] | None = None
    if parameter.choices is not None:
        limits = parameter.choices
    elif parameter.type in ("float", "int") and (parameter.minimum is not None
                                                 and parameter.maximum is not None):
        # PyMoDAQ's numeric parameters compare with both bounds: no None
        # (an open bound would make its Info_xml handler raise and drop us)
        limits = (parameter.minimum, parameter.maximum)
    text = None
    if parameter.type not in ("float", "int", "bool", "str") and parameter.choices is None:
        text = repr(value)
    return element(tag or parameter.name, kind, value, readonly=parameter.readonly,
                   limits=limits, text=text)


def group(name: str, children: Iterable[ET.Element] = (),
          title: str | None = None) -> ET.Element:
    """A C{group} element holding C{children}."""
    out = element(name, "group", title=title)
    out.extend(children)
    return out


def parameter_xml(parameter: Parameter, value: Any) -> bytes:
    """The one-element XML of a parameter (for C{Info_xml} and C{set_info})."""
    return ET.tostring(parameter_element(parameter, value))


def value_xml(name: str, kind: str, value: Any) -> bytes:
    """The one-element XML of a value of PyMoDAQ type C{kind} (an echo of a write)."""
    return ET.tostring(element(name, kind, value))


def settings_tree(root: str, pairs: Iterable[tuple[Parameter, Any]],
                  head: Iterable[ET.Element] = ()) -> ET.Element:
    """
    The settings tree of a device: the one builder behind L{settings_xml}
    (PyMoDAQ 4 C{Infos}) and the LECO PyMoDAQ 5 actor's C{get_settings}.

    @param root: the root group's name.
    @param pairs: C{(Parameter, value)} pairs, in order; those whose names are
        not XML tags are left out.
    @param head: elements that come first (PyMoDAQ's common actuator settings).
    """
    return group(root, list(head) + [parameter_element(p, v) for p, v in pairs
                                     if _valid_tag(p.name)])


def settings_xml(parameters: Iterable[Parameter], values: Mapping[str, Any],
                 root: str = "settings", extra: Iterable[tuple[Parameter, Any]] = ()) -> bytes:
    """
    The settings tree of a device (for C{Infos}).

    @param parameters: the parameters, in order.
    @param values: their values by name (missing ones are sent empty).
    @param root: the root group's name.
    @param extra: more (parameter, value) pairs, for example C{units}.
    """
    pairs = list(extra) + [(p, values.get(p.name)) for p in parameters]
    return ET.tostring(settings_tree(root, pairs))


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


def _leaf(node: ET.Element, path: tuple[str, ...]) -> RemoteSetting:
    kind = node.get("type") or "str"
    value = parse_value(kind, node.text)
    choices: tuple[Any, ...] | None = None
    minimum = maximum = None
    limits_text = node.get("limits")
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
    parameter = Parameter(".".join(path), ours, readonly=node.get("readonly") == "1",
                          minimum=minimum, maximum=maximum, choices=choices,
                          doc=node.get("title") or "", default=value)
    return RemoteSetting(parameter, value, kind, path, dict(node.attrib))


def _walk(node: ET.Element, path: tuple[str, ...], out: list[RemoteSetting]) -> None:
    if len(path) > MAX_DEPTH:
        raise ProtocolError(f"settings XML nests deeper than {MAX_DEPTH} levels")
    if "group" in (node.get("type") or ""):
        for child in node:
            _walk(child, path + (child.tag,), out)
    else:
        out.append(_leaf(node, path))


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


def read_parameter(xml: str | bytes) -> tuple[str, str, Any]:
    """
    Read one parameter element (a C{ParameterWithPath}'s XML).

    @return: C{(name, PyMoDAQ type, value)}, the value typed by the type.
    @raise ProtocolError: not XML, or a value that does not parse.
    """
    root = _parse(xml)
    kind = root.get("type") or "str"
    return root.tag, kind, parse_value(kind, root.text)


def leaf_values(xml: str | bytes) -> dict[str, Any]:
    """The values of a settings tree's leaves, by their names (never evaluated)."""
    root = _parse(xml)
    out: dict[str, Any] = {}
    for node in root.iter():
        if node is not root and not len(node) and "group" not in (node.get("type") or ""):
            out[node.tag] = parse_value(node.get("type") or "str", node.text)
    return out


def setting_xml(setting: RemoteSetting, value: Any) -> bytes:
    """A remote setting's one-element XML with a new value (for C{set_info})."""
    element = ET.Element(setting.path[-1], setting.attributes)
    element.text = value_text(setting.pymodaq_type, value)
    return ET.tostring(element)
