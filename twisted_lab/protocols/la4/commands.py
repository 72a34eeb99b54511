# -*- test-case-name: tests.test_la4_commands -*-
"""
The allow-listed C{cmd} grammar (spec §5–6): parse and render, never a shell.

A C{cmd} line is one to four steps joined by C{&&}::

    line  := step ( "&&" step ){0,3}
    step  := 'echo "' rows '"' ">" path          (at most one per line)
           | "boardiocli" ( "uSeq" | "runSeq" | "uSeqStandalone" )
    rows  := row ( "\\n" row )*                   (a backslash-n, or a newline)
    row   := REGISTER ( "," INTEGER )*            (known register, params in range)
    path  := /home/rigsters/la4_sequence.csv | ~/la4_sequence.csv
           | /home/rigsters/la4_sequence_standalone.csv | ~/la4_sequence_standalone.csv

L{parse_command} turns a string into a L{CommandLine} or raises
L{CommandRejected}; L{CommandLine.render} builds the string back from fixed
templates and validated integers only.  The builders (L{model_light},
L{fire_all}, ...) are the only way the coordinator makes command strings.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Union

from twisted_lab.errors import InvalidValue, ProtocolError
from twisted_lab.formats.la4.registers import (MAX_ROWS, SEQUENCE_FILE, STANDALONE_FILE,
                                              VERBS, Row)

__all__ = [
    "CommandRejected",
    "WriteRows", "Boardio", "CommandLine", "parse_command", "parse_row", "rows_from",
    "model_light", "fire_all", "olat", "fans", "polarizer", "run_sequence",
    "upload_sequence", "start_sequence", "store_standalone",
]

_PATHS = {
    SEQUENCE_FILE: "sequence", "~/la4_sequence.csv": "sequence",
    STANDALONE_FILE: "standalone", "~/la4_sequence_standalone.csv": "standalone",
}
_FILES = {"sequence": SEQUENCE_FILE, "standalone": STANDALONE_FILE}
_MAX_STEPS = 4

_VERB_RE = re.compile(r"boardiocli[ \t]+(uSeq|runSeq|uSeqStandalone)")
_WRITE_RE = re.compile(r'echo[ \t]+"([A-Z0-9_,\\n \t\n-]*)"[ \t]*>[ \t]*([A-Za-z0-9_./~]+)')
_ROW_RE = re.compile(r"[ \t]*([A-Z][A-Z0-9_]{0,31})((?:[ \t]*,[ \t]*-?[0-9]{1,6})*)[ \t]*")


class CommandRejected(ProtocolError):
    """A C{cmd} line is outside the allow-listed grammar; nothing was run."""

    code = "CommandRejected"


@dataclass(frozen=True)
class WriteRows:
    """
    Write rows to the sequence (or standalone) file on the node.

    @ivar target: C{"sequence"} or C{"standalone"}.
    """

    target: str
    rows: tuple[Row, ...]

    def render(self) -> str:
        """C{echo "R1\\nR2" > FILE}."""
        body = "\\n".join(row.render() for row in self.rows)
        return f'echo "{body}" > {_FILES[self.target]}'


@dataclass(frozen=True)
class Boardio:
    """One C{boardiocli} verb."""

    verb: str

    def render(self) -> str:
        """C{boardiocli VERB}."""
        if self.verb not in VERBS:
            raise InvalidValue(f"unknown boardiocli verb {self.verb!r}")
        return f"boardiocli {self.verb}"


Step = Union[WriteRows, Boardio]


@dataclass(frozen=True)
class CommandLine:
    """A whole allow-listed C{cmd} line: its steps, run in order."""

    steps: tuple[Step, ...]

    def render(self) -> str:
        """The command string, built from fixed templates only."""
        return " && ".join(step.render() for step in self.steps)


def parse_row(text: str) -> Row:
    """
    Parse one C{REGISTER,p1,...} row.

    @raise InvalidValue: not a row, unknown register, or a bad parameter.
    """
    match = _ROW_RE.fullmatch(text)
    if match is None:
        raise InvalidValue("a sequence row must be REGISTER,INTEGER[,INTEGER...]")
    params = [int(p) for p in re.findall(r"-?[0-9]+", match.group(2))]
    return Row.build(match.group(1), *params)


def _parse_rows(body: str) -> tuple[Row, ...]:
    lines = [line for line in body.replace("\\n", "\n").split("\n") if line.strip()]
    if len(lines) > MAX_ROWS:
        raise InvalidValue(f"more than {MAX_ROWS} sequence rows")
    return tuple(parse_row(line) for line in lines)


def parse_command(text: str) -> CommandLine:
    """
    Parse a C{cmd} string against the allow-list.

    @raise CommandRejected: anything outside the grammar (the reason says why,
        without echoing the input).
    """
    if not isinstance(text, str):
        raise CommandRejected("command must be a string")
    parts = text.split("&&")
    if len(parts) > _MAX_STEPS:
        raise CommandRejected(f"at most {_MAX_STEPS} steps joined by && are allowed")
    steps: list[Step] = []
    for index, part in enumerate(parts):
        part = part.strip(" \t")
        verb = _VERB_RE.fullmatch(part)
        if verb is not None:
            steps.append(Boardio(verb.group(1)))
            continue
        write = _WRITE_RE.fullmatch(part)
        if write is None:
            raise CommandRejected(
                f"step {index + 1} is not allowed: only 'echo \"ROWS\" > SEQUENCE_FILE' and "
                "'boardiocli uSeq|runSeq|uSeqStandalone' may be run")
        target = _PATHS.get(write.group(2))
        if target is None:
            raise CommandRejected(f"step {index + 1} writes to a file other than the "
                                  "sequence or standalone file")
        if any(isinstance(step, WriteRows) for step in steps):
            raise CommandRejected("only one file write per command is allowed")
        try:
            rows = _parse_rows(write.group(1))
        except InvalidValue as e:
            raise CommandRejected(f"step {index + 1}: {e.message}") from None
        steps.append(WriteRows(target, rows))
    return CommandLine(tuple(steps))


def rows_from(value: Iterable[Any]) -> tuple[Row, ...]:
    """
    Validated rows from caller data: L{Row}s, C{"REG,1,2"} strings or
    C{["REG", 1, 2]} lists.  The strings are parsed, never pasted.

    @raise InvalidValue: a row that is not allowed.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidValue("rows must be a list of rows")
    rows: list[Row] = []
    for item in value:
        if isinstance(item, Row):
            rows.append(Row.build(item.register, *item.params))
        elif isinstance(item, str):
            rows.append(parse_row(item))
        elif isinstance(item, (list, tuple)) and item:
            rows.append(Row.build(item[0], *item[1:]))
        else:
            raise InvalidValue("each row must be 'REG,1,2' or ['REG', 1, 2]")
        if len(rows) > MAX_ROWS:
            raise InvalidValue(f"more than {MAX_ROWS} sequence rows")
    return tuple(rows)


def run_sequence(rows: Iterable[Any]) -> CommandLine:
    """Write rows to the sequence file, load them and run them (the documented form)."""
    return CommandLine((WriteRows("sequence", rows_from(rows)), Boardio("uSeq"),
                        Boardio("runSeq")))


def upload_sequence(rows: Iterable[Any]) -> CommandLine:
    """Write rows to the sequence file and load them, without running."""
    return CommandLine((WriteRows("sequence", rows_from(rows)), Boardio("uSeq")))


def start_sequence() -> CommandLine:
    """Run the sequence already loaded."""
    return CommandLine((Boardio("runSeq"),))


def store_standalone(rows: Iterable[Any]) -> CommandLine:
    """Write the boot-time sequence and load it (C{uSeqStandalone})."""
    return CommandLine((WriteRows("standalone", rows_from(rows)), Boardio("uSeqStandalone")))


def model_light(power: int) -> CommandLine:
    """Set the model light to C{power} % (0 = off)."""
    return run_sequence([Row.build("MODEL_LIGHT", power)])


def fire_all(power: int, camera: str = "nikon", shutter_ms: int | None = None) -> CommandLine:
    """
    Fire all four LEDs once.

    @param camera: C{"nikon"} (Nikon/Sony) or C{"canon"} (Canon/other; needs C{shutter_ms}).
    """
    if camera == "nikon":
        if shutter_ms is not None:
            raise InvalidValue("shutter_ms applies only to camera='canon'")
        return run_sequence([Row.build("ALL_4_NIKON", power)])
    if camera == "canon":
        if shutter_ms is None:
            raise InvalidValue("camera='canon' needs shutter_ms (0-109)")
        return run_sequence([Row.build("ALL_4_CANON", power, shutter_ms)])
    raise InvalidValue(f"camera must be 'nikon' or 'canon', got {str(camera)[:20]!r}")


def olat(power: int, continuous: bool = False, camera: str = "nikon") -> CommandLine:
    """Four shots, one LED each (one-light-at-a-time), single or continuous drive."""
    if camera not in ("nikon", "canon"):
        raise InvalidValue(f"camera must be 'nikon' or 'canon', got {str(camera)[:20]!r}")
    register = "OLAT_4_NIKON" if camera == "nikon" else "OLAT_4_CANON"
    return run_sequence([Row.build(register, power, 1 if continuous else 0)])


def fans(on: bool) -> CommandLine:
    """Switch the LED fans on or off."""
    return run_sequence([Row.build("LED_FAN", 1 if on else 0)])


def polarizer(on: bool) -> CommandLine:
    """Switch the digital polarizer on or off."""
    return run_sequence([Row.build("DIGITAL_POLARIZER", 1 if on else 0)])
