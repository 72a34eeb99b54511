# -*- test-case-name: tests.test_formats_la4 -*-
"""
Tests for L{twisted_lab.formats.la4}: the one register table and board
model, and that the simulated board device and the simulated node agree.
"""
from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.devices.simulated import SimulatedLA4Board
from twisted_lab.errors import InvalidValue
from twisted_lab.formats.la4.board import SHOT_TIME, effect
from twisted_lab.formats.la4.registers import REGISTERS, Row, row_from
from twisted_lab.protocols.la4.commands import run_sequence
from twisted_lab.protocols.la4.node import BoardState

ROWS = ["MODEL_LIGHT,40", "LED_FAN,1", "DIGITAL_POLARIZER,1", "ALL_4_NIKON,30",
        "ALL_4_CANON,20,100", "OLAT_4_CANON,10,1"]


class RegisterTests(SynchronousTestCase):
    def test_build_validates(self) -> None:
        """Row.build refuses unknown registers, wrong counts, non-integers and ranges."""
        self.assertEqual(Row.build("ALL_4_CANON", 1, 109).render(), "ALL_4_CANON,1,109")
        for args, fragment in [(("FOO", 1), "unknown register"),
                               (("MODEL_LIGHT", 1, 2), "takes 1 parameter(s) (power)"),
                               (("MODEL_LIGHT", "1"), "power must be an integer"),
                               (("OLAT_4_NIKON", 5, 2), "drive = 2 is outside 0-1")]:
            with self.assertRaises(InvalidValue) as caught:
                Row.build(*args)
            self.assertIn(fragment, str(caught.exception))

    def test_row_from(self) -> None:
        """Caller rows are read leniently (case, spaces, integer text) and validated."""
        self.assertEqual(row_from(" model_light , 5"), Row("MODEL_LIGHT", (5,)))
        self.assertEqual(row_from(["led_fan", True]), Row("LED_FAN", (1,)))
        self.assertRaises(InvalidValue, row_from, "MODEL_LIGHT,x")
        self.assertRaises(InvalidValue, row_from, 7)


class BoardTests(SynchronousTestCase):
    def test_effects(self) -> None:
        """Setting registers set; ALL_4 fires one shot of all heads, OLAT four of one each."""
        self.assertEqual(effect(Row.build("MODEL_LIGHT", 40)).setting, ("model_light", 40))
        self.assertEqual(effect(Row.build("LED_FAN", 1)).setting, ("fans", True))
        (shot,) = effect(Row.build("ALL_4_CANON", 20, 100)).shots
        self.assertEqual((shot.leds, shot.duration, shot.extra),
                         ((20, 20, 20, 20), 0.1, {"shutter_ms": 100}))
        shots = effect(Row.build("OLAT_4_NIKON", 10, 0)).shots
        self.assertEqual([s.leds for s in shots], [(10, 0, 0, 0), (0, 10, 0, 0),
                                                    (0, 0, 10, 0), (0, 0, 0, 10)])
        self.assertEqual({s.duration for s in shots}, {SHOT_TIME})
        self.assertEqual(set(REGISTERS), {"MODEL_LIGHT", "ALL_4_NIKON", "ALL_4_CANON",
                                          "OLAT_4_NIKON", "OLAT_4_CANON", "LED_FAN",
                                          "DIGITAL_POLARIZER"})

    def test_device_and_node_agree(self) -> None:
        """The same sequence leaves the simulated device and the simulated node alike."""
        clock = Clock()
        device = SimulatedLA4Board("la4", clock)
        d = device.call("run_sequence", ROWS)
        clock.pump([0.01] * 200)
        self.assertEqual(self.successResultOf(d), len(ROWS))
        node = BoardState()
        node.execute(run_sequence(ROWS))
        values = device._values
        self.assertEqual((values["model_light"], values["fans"], values["polarizer"],
                          values["shots"]),
                         (node.model_light, node.fans, node.polarizer, node.shots))
        self.assertEqual(node.shots, 1 + 1 + 4)
