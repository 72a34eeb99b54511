# -*- test-case-name: tests.test_formats_la4 -*-
"""
The LA4 sequence registers (C{specs/la4-pycom.md} §5): the one register
table, the validated L{Row}, and the files and C{boardiocli} verbs of the
board's command surface.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted_lab.errors import InvalidValue

__all__ = ["REGISTERS", "SEQUENCE_FILE", "STANDALONE_FILE", "VERBS", "MAX_ROWS", "Row",
           "row_from"]

#: Register name → (parameter name, lowest, highest) of each CSV field, in order.
REGISTERS: dict[str, tuple[tuple[str, int, int], ...]] = {
    "MODEL_LIGHT": (("power", 0, 100),),
    "ALL_4_NIKON": (("power", 0, 100),),
    "ALL_4_CANON": (("power", 0, 100), ("shutter_ms", 0, 109)),
    "OLAT_4_NIKON": (("power", 0, 100), ("drive", 0, 1)),
    "OLAT_4_CANON": (("power", 0, 100), ("drive", 0, 1)),
    "LED_FAN": (("on", 0, 1),),
    "DIGITAL_POLARIZER": (("on", 0, 1),),
}

#: The sequence file on the node, as the documented command writes it.
SEQUENCE_FILE = "/home/rigsters/la4_sequence.csv"
#: The standalone (boot-time) sequence file.
STANDALONE_FILE = "/home/rigsters/la4_sequence_standalone.csv"
#: The C{boardiocli} verbs the board accepts.
VERBS = ("uSeq", "runSeq", "uSeqStandalone")
#: The most rows a sequence may hold.
MAX_ROWS = 256


@dataclass(frozen=True)
class Row:
    """
    One sequence row: a known register and its integer parameters, in range.

    Build it with L{Row.build} (or L{row_from}), which validate.
    """

    register: str
    params: tuple[int, ...]

    @classmethod
    def build(cls, register: Any, *params: Any) -> Row:
        """
        A validated row.

        @raise InvalidValue: unknown register, wrong number of parameters, a
            parameter that is not an integer, or one out of range.
        """
        if not isinstance(register, str) or register not in REGISTERS:
            raise InvalidValue(f"unknown register {str(register)[:40]!r}; known registers: "
                               + ", ".join(REGISTERS))
        spec = REGISTERS[register]
        if len(params) != len(spec):
            names = ", ".join(name for name, _, _ in spec)
            raise InvalidValue(f"{register} takes {len(spec)} parameter(s) ({names}), "
                               f"got {len(params)}")
        values = []
        for value, (name, low, high) in zip(params, spec):
            if isinstance(value, bool):
                value = int(value)
            elif isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int):
                raise InvalidValue(f"{register} {name} must be an integer, "
                                   f"got {type(value).__name__}")
            if not low <= value <= high:
                raise InvalidValue(f"{register} {name} = {value} is outside {low}-{high}")
            values.append(value)
        return cls(register, tuple(values))

    def render(self) -> str:
        """C{REGISTER,p1,p2} from the validated values."""
        return ",".join([self.register] + [str(int(p)) for p in self.params])


def row_from(row: Any) -> Row:
    """
    A validated row from caller data, leniently: C{"register, p1, p2"} text
    (any case, spaces around fields) or a C{[register, p1, ...]} list whose
    parameters may be integer text.

    @raise InvalidValue: not a row, or a row L{Row.build} refuses.
    """
    if isinstance(row, str):
        fields: list[Any] = [f.strip() for f in row.strip().split(",")]
    elif isinstance(row, (list, tuple)) and row:
        fields = [str(row[0]).strip()] + list(row[1:])
    else:
        raise InvalidValue(f"expected 'REGISTER,param,...' text or a list, got {row!r}")
    register = str(fields[0]).upper()
    spec = REGISTERS.get(register, ())
    params = []
    for i, raw in enumerate(fields[1:]):
        if isinstance(raw, str):
            try:
                raw = int(raw.strip(), 10)
            except ValueError:
                name = spec[i][0] if i < len(spec) else f"parameter {i + 1}"
                raise InvalidValue(f"{register} {name} must be an integer, "
                                   f"got {raw[:20]!r}") from None
        params.append(raw)
    return Row.build(register, *params)
