# -*- test-case-name: tests.test_formats_pymodaq_settings -*-
"""
PyMoDAQ's small data objects, as both of its wire forms carry them (the
PyMoDAQ 4 TCP serializer and PyMoDAQ 5's serializall).
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ParameterWithPath"]


@dataclass(frozen=True)
class ParameterWithPath:
    """
    PyMoDAQ's C{ParameterWithPath}: one setting and where it sits in the tree.

    @ivar path: the names from the tree's top to the parameter.
    @ivar xml: the parameter as PyMoDAQ parameter XML
        (C{ioxml.parameter_to_xml_string}, see L{settings.parameter_xml}).
    """

    path: list[str] = field(default_factory=list)
    xml: bytes = b""
