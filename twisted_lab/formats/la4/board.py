# -*- test-case-name: tests.test_formats_la4 -*-
"""
What one sequence row does on the LA4 board (C{specs/la4-pycom.md} §5): the
one board model behind the simulated board device and the simulated node.

A row either sets a board setting (C{MODEL_LIGHT}, C{LED_FAN},
C{DIGITAL_POLARIZER}) or fires LED shots: C{ALL_4_*} one shot with all four
heads, C{OLAT_4_*} four shots, one head each.  L{effect} says which, without
a clock: the device times the shots, the node only counts them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted_lab.formats.la4.registers import Row

__all__ = ["SHOT_TIME", "SETTINGS", "Shot", "Effect", "effect"]

#: Duration of one LED shot when no shutter time is given, in seconds.
SHOT_TIME = 0.05

#: The registers that set a board setting: register → (setting, type).
SETTINGS: dict[str, tuple[str, type]] = {
    "MODEL_LIGHT": ("model_light", int), "LED_FAN": ("fans", bool),
    "DIGITAL_POLARIZER": ("polarizer", bool)}


@dataclass(frozen=True)
class Shot:
    """
    One LED shot.

    @ivar register: the row's register.
    @ivar power: its power, %.
    @ivar leds: the power of each of the four heads during the shot.
    @ivar duration: how long it lasts, in seconds.
    @ivar extra: the row's other facts (C{shutter_ms}; C{drive}, C{led}).
    """

    register: str
    power: int
    leds: tuple[int, int, int, int]
    duration: float
    extra: dict[str, int] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        """The shot as plain values (the device's C{last_shot})."""
        return {"register": self.register, "power": self.power, "leds": list(self.leds),
                **self.extra}


@dataclass(frozen=True)
class Effect:
    """
    What a row does: a setting to change, or shots to fire (in order).

    @ivar setting: C{(name, value)} of the setting it sets, or C{None}.
    @ivar shots: the shots it fires.
    """

    setting: tuple[str, Any] | None = None
    shots: tuple[Shot, ...] = ()


def effect(row: Row) -> Effect:
    """What validated C{row} does on the board."""
    register, params = row.register, row.params
    if register in SETTINGS:
        name, kind = SETTINGS[register]
        return Effect(setting=(name, kind(params[0])))
    power = params[0]
    if register.startswith("ALL_4"):
        shutter = params[1] if len(params) > 1 else 0
        return Effect(shots=(Shot(register, power, (power, power, power, power),
                                  shutter / 1000.0 if shutter else SHOT_TIME,
                                  {"shutter_ms": shutter}),))
    drive = params[1]
    return Effect(shots=tuple(Shot(register, power, _one_head(power, led), SHOT_TIME,
                                   {"drive": drive, "led": led}) for led in range(4)))


def _one_head(power: int, led: int) -> tuple[int, int, int, int]:
    """Head C{led} at C{power}, the others off."""
    heads = [0, 0, 0, 0]
    heads[led] = power
    return heads[0], heads[1], heads[2], heads[3]
