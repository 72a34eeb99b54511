# -*- test-case-name: tests.test_leco_pymodaq_settings -*-
"""
Tests for L{twisted_lab.protocols.leco.pymodaq_settings}: the C{move_settings}
tree an actuator actor sends PyMoDAQ 5's directors.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.description import Action, Description, Parameter
from twisted_lab.devices.simulated import SimulatedStage
from twisted_lab.protocols.leco.pymodaq_settings import (DEFAULT_EPSILON, DEFAULT_TIMEOUT,
                                                         CommonSettings, move_settings_xml)


def values_of(stage: SimulatedStage) -> dict[str, object]:
    return {p: stage._values[p] for p in stage.description.parameters}


class MoveSettingsTests(SynchronousTestCase):
    """The common settings come first, mapped from the description; the device's follow."""

    def test_stage(self) -> None:
        """
        A simulated stage: units from the actuator, bounds on from its
        minimum/maximum, PyMoDAQ's defaults elsewhere; its own parameters
        follow under their names.
        """
        stage = SimulatedStage("stage", Clock(), units="mm", minimum=-5.0, maximum=7.5)
        description = stage.description
        common = CommonSettings(description, "mm", values_of(stage))
        pairs = [(p, values_of(stage)[p.name]) for p in description.parameters.values()]
        root = ET.fromstring(move_settings_xml(common, pairs))
        self.assertEqual(root.tag, "move_settings")
        children = [c.tag for c in root]
        self.assertEqual(children[:5], ["units", "epsilon", "timeout", "bounds", "scaling"])
        self.assertEqual(children[5:], list(description.parameters))
        self.assertEqual((root.find("units").text, root.find("units").get("readonly")),  # type: ignore
                         ("mm", "1"))
        self.assertEqual(float(root.find("epsilon").text), DEFAULT_EPSILON)  # type: ignore
        self.assertEqual(int(root.find("timeout").text), DEFAULT_TIMEOUT)  # type: ignore
        bounds = root.find("bounds")
        assert bounds is not None
        self.assertEqual([(c.tag, c.text) for c in bounds],
                         [("is_bounds", "1"), ("min_bound", "-5.0"), ("max_bound", "7.5")])
        scaling = root.find("scaling")
        assert scaling is not None
        self.assertEqual([(c.tag, c.text) for c in scaling],
                         [("use_scaling", "0"), ("scaling", "1.0"), ("offset", "0.0")])

    def test_mapped_epsilon_timeout_position_limits(self) -> None:
        """
        A C{tolerance} parameter gives epsilon, C{move_abs}'s budget the
        timeout (rounded up), C{position}'s limits the bounds; a device
        parameter named like a common setting is not repeated.
        """
        description = Description.build(
            "axis", [Parameter("tolerance", "float", "deg", default=0.02),
                     Parameter("position", "float", "deg", minimum=0.0, maximum=360.0),
                     Parameter("units", "str", default="deg")],
            [Action("move_abs", budget=12.5)], kind="actuator", units="deg")
        common = CommonSettings(description, "deg", {"tolerance": 0.02, "position": 3.0,
                                                     "units": "deg"})
        self.assertEqual((common.values["epsilon"], common.values["timeout"]), (0.02, 13))
        self.assertEqual((common.values["is_bounds"], common.values["min_bound"],
                          common.values["max_bound"]), (True, 0.0, 360.0))
        root = ET.fromstring(move_settings_xml(common, [
            (p, None) for p in description.parameters.values()]))
        self.assertEqual([c.tag for c in root].count("units"), 1)

    def test_no_bounds(self) -> None:
        """Without limits the bounds stay off, as in PyMoDAQ's defaults."""
        description = Description.build("axis", [Parameter("position", "float")])
        common = CommonSettings(description, "", {})
        self.assertFalse(common.values["is_bounds"])

    def test_set(self) -> None:
        """A director's write to a common setting is kept; units stay the device's."""
        common = CommonSettings(Description.build("axis"), "mm", {})
        self.assertEqual(common.set("epsilon", 0.5), 0.5)
        self.assertEqual(common.values["epsilon"], 0.5)
        self.assertEqual(common.set("units", "m"), "mm")
