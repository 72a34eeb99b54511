# -*- test-case-name: tests.test_leco_pymodaq_settings -*-
"""
The settings tree an actor sends PyMoDAQ 5's directors
(C{set_director_settings}), shaped like a real PyMoDAQ actor's.

A real C{DAQ_Move} actor sends its C{move_settings} group, whose first
children are PyMoDAQ's common actuator settings (C{comon_parameters} in
C{pymodaq.control_modules.move_utility_classes}): C{units}, C{epsilon},
C{timeout}, the C{bounds} group and the C{scaling} group; the plugin's own
settings follow.  C{DAQ_Move_LECODirector.set_director_settings} reads
C{settings_client/units} from that tree to take the actor's units.  Here the
common settings are mapped from the device description:

  - C{units}: the actuator's position units;
  - C{epsilon}: a parameter named C{epsilon} or C{tolerance} if the device
    has one, else PyMoDAQ's default (1 unit is too coarse for a lab stage:
    C{DEFAULT_EPSILON});
  - C{timeout}: the budget of C{move_abs} rounded up, else PyMoDAQ's 20 s;
  - C{bounds}: on, from C{minimum}/C{maximum} parameters or the limits of
    C{position}, when the device has them;
  - C{scaling}: off (factor 1, offset 0).

The device's parameters follow, except those whose names the common settings
use.  Writes to the common settings (C{set_info}) are kept by the actor
(L{CommonSettings}), since they are the director's view, not the device's.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Any, Sequence

from twisted_lab.description import Description, Parameter
from twisted_lab.formats.pymodaq.settings import element, group, settings_tree

__all__ = ["COMMON_NAMES", "CommonSettings", "DEFAULT_EPSILON", "DEFAULT_TIMEOUT",
           "move_settings_xml"]

#: PyMoDAQ's default polling timeout (pymodaq config C{actuator.polling_timeout_s}).
DEFAULT_TIMEOUT = 20
#: Our default epsilon, in position units, when the device declares none.
DEFAULT_EPSILON = 1e-3

#: Names of the common settings (and of their children).
COMMON_NAMES = frozenset({"units", "epsilon", "timeout", "bounds", "is_bounds", "min_bound",
                          "max_bound", "scaling", "use_scaling", "offset"})

class CommonSettings:
    """
    The common actuator settings of one actor, as the directors see them.

    @ivar values: setting name to value (C{units}, C{epsilon}, C{timeout},
        C{is_bounds}, C{min_bound}, C{max_bound}, C{use_scaling}, C{scaling},
        C{offset}).
    """

    def __init__(self, description: Description, units: str,
                 values: dict[str, Any]) -> None:
        """
        @param description: the device's description.
        @param units: its position units.
        @param values: current values of its parameters (for bounds and epsilon).
        """
        self.values: dict[str, Any] = {
            "units": units, "epsilon": DEFAULT_EPSILON, "timeout": DEFAULT_TIMEOUT,
            "is_bounds": False, "min_bound": 0.0, "max_bound": 1.0,
            "use_scaling": False, "scaling": 1.0, "offset": 0.0}
        for name in ("epsilon", "tolerance"):
            value: Any = values.get(name)
            if _number(value):
                self.values["epsilon"] = float(value)
                break
        move = description.actions.get("move_abs")
        if move is not None and move.budget is not None:
            self.values["timeout"] = int(math.ceil(move.budget))
        low: Any = values.get("minimum")
        high: Any = values.get("maximum")
        if not (_number(low) and _number(high)):
            position = description.parameters.get("position")
            low, high = (position.minimum, position.maximum) if position else (None, None)
        if _number(low) and _number(high):
            self.values.update(is_bounds=True, min_bound=float(low), max_bound=float(high))

    def set(self, name: str, value: Any) -> Any:
        """Keep a director's write to a common setting (C{units} is read-only)."""
        if name == "units":
            return self.values["units"]
        self.values[name] = value
        return value

    def elements(self) -> list[ET.Element]:
        """The common settings as PyMoDAQ parameter XML elements, in PyMoDAQ's order."""
        v = self.values
        bounds = group("bounds", [element("is_bounds", "bool", v["is_bounds"], title="Set Bounds:"),
                                  element("min_bound", "float", v["min_bound"], title="Min:"),
                                  element("max_bound", "float", v["max_bound"], title="Max:")],
                       title="Bounds:")
        scaling = group("scaling", [
            element("use_scaling", "bool", v["use_scaling"], title="Use scaling:"),
            element("scaling", "float", v["scaling"], title="Scaling factor:"),
            element("offset", "float", v["offset"], title="Offset factor:")], title="Scaling:")
        return [element("units", "str", v["units"], title="Units:", readonly=True),
                element("epsilon", "float", v["epsilon"], title="Epsilon:"),
                element("timeout", "int", v["timeout"], title="Timeout (s):"),
                bounds, scaling]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def move_settings_xml(common: CommonSettings, pairs: Sequence[tuple[Parameter, Any]]) -> bytes:
    """
    The C{move_settings} group: the common settings, then the device's
    parameters (C{(Parameter, value)} pairs) whose names they do not use.
    """
    return ET.tostring(settings_tree("move_settings", [
        (parameter, value) for parameter, value in pairs if parameter.name not in COMMON_NAMES],
        head=common.elements()))
