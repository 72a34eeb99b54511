# -*- test-case-name: tests.test_formats_pymodaq_data -*-
"""
PyMoDAQ's C{DataWithAxes} ↔ L{Signal}: the field layouts of its two wire
forms and the one mapping from read fields to a L{Signal}.

A C{DataWithAxes} (C{DataActuator}, C{DataFromPlugins}, ...) is written as
its class name followed by its fields.  The PyMoDAQ 4 TCP serializer
(C{specs/pymodaq-tcp.md} §2, L{twisted_lab.protocols.pymodaq.codec}) and
PyMoDAQ 5's serializall (L{twisted_lab.protocols.leco.serializall}) write the
same fields in different orders, the TCP one depending on the peer's release
(C{units} from 4.4, C{errors} from 4.2, extra attributes from 4.1.3).  Each
layout is a tuple of C{(field, form)}: the field is the L{Signal} attribute
of the same name, the form says how it is written (C{"scalar"},
C{"string"}, a typed list C{"list:array"}, or C{"extra"}: names then values).
Both codecs read and write through these tables; L{signal_from_fields} is
the one place the fields become a L{Signal}.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from twisted_lab.data import Signal
from twisted_lab.errors import ProtocolError

__all__ = ["Layout", "tcp_layout", "SERIALIZALL_LAYOUT", "signal_fields", "signal_from_fields",
           "check_array"]

#: A DataWithAxes layout: C{(field, form)} pairs in wire order.
Layout = tuple[tuple[str, str], ...]

#: PyMoDAQ 5's serializall C{DataWithAxes} (C{pymodaq_data.serialize.serializer_legacy}).
SERIALIZALL_LAYOUT: Layout = (
    ("timestamp", "scalar"), ("name", "string"), ("source", "string"), ("dim", "string"),
    ("distribution", "string"), ("data", "list:array"), ("units", "string"),
    ("labels", "list:string"), ("origin", "string"), ("nav_indexes", "list:scalar"),
    ("axes", "list:axis"), ("errors", "list:array"), ("extra", "extra"))


@lru_cache(maxsize=None)
def tcp_layout(units: bool, errors: bool, extra: bool) -> Layout:
    """
    The PyMoDAQ 4 TCP serializer's C{DataWithAxes} for a peer release.

    @param units: the release writes C{units} (4.4+).
    @param errors: it writes C{errors} (4.2+).
    @param extra: it writes extra attributes (4.1.3+).
    """
    return tuple(field for field, present in (
        (("timestamp", "scalar"), True), (("name", "string"), True),
        (("units", "string"), units), (("source", "string"), True), (("dim", "string"), True),
        (("distribution", "string"), True), (("data", "list:array"), True),
        (("labels", "list:string"), True), (("origin", "string"), True),
        (("nav_indexes", "list:scalar"), True), (("axes", "list:axis"), True),
        (("errors", "list:array"), errors), (("extra", "extra"), extra)) if present)


def signal_fields(signal: Signal) -> dict[str, Any]:
    """A L{Signal}'s fields by their layout names, as they are written."""
    return {"timestamp": float(signal.timestamp), "name": signal.name, "units": signal.units,
            "source": signal.source, "dim": signal.dim, "distribution": signal.distribution,
            "data": list(signal.data), "labels": [str(label) for label in signal.labels],
            "origin": signal.origin or "", "nav_indexes": [int(i) for i in signal.nav_indexes],
            "axes": list(signal.axes), "errors": list(signal.errors or []),
            "extra": dict(signal.extra)}


def signal_from_fields(kind: str, fields: Mapping[str, Any], what: str = "") -> Signal:
    """
    The L{Signal} of a read C{DataWithAxes}; fields a layout lacks take
    their defaults (no units, errors or extra attributes).

    @param kind: its class name (L{Signal.kind}).
    @param what: the wire form, for error messages.
    @raise ProtocolError: the fields do not make a valid signal.
    """
    timestamp = fields["timestamp"]
    name = fields["name"]
    if not isinstance(timestamp, (float, int)) or isinstance(timestamp, bool):
        raise ProtocolError(f"{what}{kind} {name!r}: timestamp is not a number")
    try:
        return Signal(name, fields["data"], labels=fields["labels"],
                      units=fields.get("units", ""), axes=fields["axes"],
                      timestamp=float(timestamp), origin=fields["origin"], kind=kind,
                      source=fields["source"], distribution=fields["distribution"],
                      nav_indexes=tuple(int(i) for i in fields["nav_indexes"]),
                      errors=fields.get("errors", []), extra=fields.get("extra", {}),
                      dim=fields["dim"])
    except (ValueError, TypeError) as e:
        raise ProtocolError(f"{what}{kind} is inconsistent: {e}") from None


def check_array(what: str, dtype: np.dtype[Any], shape: tuple[int, ...], nbytes: int) -> None:
    """
    Check an array header (both wire forms write dtype, byte count, shape):
    the byte count must be what the shape and dtype need.

    @raise ProtocolError: it is not.
    """
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != nbytes:
        raise ProtocolError(f"{what} of shape {shape} and dtype {dtype.str} needs "
                            f"{count * dtype.itemsize} bytes, header says {nbytes}")
