"""
Tests for L{twisted_lab.devices.simulated}: every simulated instrument,
driven by a L{Clock} (no sleeping, no real time).
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_lab.data import Export
from twisted_lab.devices.simulated import (SimulatedCamera, SimulatedLA4Board,
                                           SimulatedPowerMeter, SimulatedSpectrometer,
                                           SimulatedStage, parse_sequence)
from twisted_lab.formats.la4.registers import REGISTERS, Row
from twisted_lab.errors import (DeviceBusy, InvalidValue, ReadOnly, UnknownAction,
                                UnknownParameter)
from twisted_lab.events import CHANGED, DATA, LabEvent
from twisted_lab.interfaces import IActuator, IDetector, IDevice


def near(case: SynchronousTestCase, actual: float, expected: float, delta: float) -> None:
    """Assert that C{actual} is within C{delta} of C{expected}."""
    case.assertTrue(abs(actual - expected) <= delta,
                    f"{actual!r} is not within {delta!r} of {expected!r}")


class StageTests(SynchronousTestCase):
    """L{SimulatedStage} moves at its speed on the clock, within its limits."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.stage = SimulatedStage("stage", self.clock, speed=10.0, minimum=-50, maximum=50)
        self.events: list[LabEvent] = []
        self.stage.subscribe(self.events.append)

    def value(self, name: str) -> Any:
        return self.successResultOf(self.stage.get(name))

    def test_interfaces(self) -> None:
        """The stage provides IDevice and IActuator."""
        verifyObject(IDevice, self.stage)
        verifyObject(IActuator, self.stage)
        self.assertEqual(self.stage.units, "mm")
        self.assertEqual(self.stage.description.kind, "actuator")

    def test_move_takes_time(self) -> None:
        """A 20 mm move at 10 mm/s takes 2 s; the position interpolates meanwhile."""
        d = self.stage.move_abs(20)
        self.assertNoResult(d)
        self.assertTrue(self.value("moving"))
        self.clock.advance(1.0)
        self.assertAlmostEqual(self.value("position"), 10.0)
        self.assertAlmostEqual(self.successResultOf(self.stage.position()), 10.0)
        self.assertNoResult(d)
        self.clock.advance(1.0)
        self.assertEqual(self.successResultOf(d), 20.0)
        self.assertFalse(self.value("moving"))
        self.assertIn(LabEvent(DATA, "stage", "position", 20.0), self.events)
        self.assertIn(LabEvent(CHANGED, "stage", "moving", False), self.events)

    def test_move_rel_and_home(self) -> None:
        """move_rel moves by a step from where the stage is; move_home returns home."""
        d = self.stage.move_rel(-5)
        self.clock.advance(0.5)
        self.assertEqual(self.successResultOf(d), -5.0)
        d = self.stage.move_home()
        self.clock.advance(0.5)
        self.assertEqual(self.successResultOf(d), 0.0)

    def test_stop_mid_move(self) -> None:
        """stop() mid-move fires the pending move with the stopped position."""
        d = self.stage.move_abs(40)
        self.clock.advance(1.5)
        self.assertAlmostEqual(self.successResultOf(self.stage.stop()), 15.0)
        self.assertAlmostEqual(self.successResultOf(d), 15.0)
        self.assertFalse(self.value("moving"))
        self.clock.advance(10)
        self.assertAlmostEqual(self.value("position"), 15.0)
        self.assertFalse(self.clock.getDelayedCalls())

    def test_new_move_interrupts(self) -> None:
        """A new move while moving interrupts the first, which fires where it was."""
        first = self.stage.move_abs(40)
        self.clock.advance(1.0)
        second = self.stage.move_abs(0)
        self.assertAlmostEqual(self.successResultOf(first), 10.0)
        self.clock.advance(1.0)
        self.assertEqual(self.successResultOf(second), 0.0)

    def test_limits(self) -> None:
        """Targets outside the limits fail with InvalidValue naming the range."""
        f = self.failureResultOf(self.stage.move_abs(60), InvalidValue)
        self.assertIn("above the maximum 50", str(f.value))
        self.assertIn("[-50.0, 50.0]", str(f.value))
        f = self.failureResultOf(self.stage.move_rel(-51), InvalidValue)
        self.assertIn("below the minimum", str(f.value))
        self.failureResultOf(self.stage.move_abs(float("nan")), InvalidValue)
        self.assertFalse(self.value("moving"))

    def test_speed_parameter(self) -> None:
        """Writing speed changes how long the next move takes."""
        self.successResultOf(self.stage.set("speed", 40.0))
        d = self.stage.move_abs(40)
        self.clock.advance(1.0)
        self.assertEqual(self.successResultOf(d), 40.0)
        self.failureResultOf(self.stage.set("speed", 0.0), InvalidValue)

    def test_limit_parameters(self) -> None:
        """minimum/maximum are writable but must keep minimum < maximum."""
        self.successResultOf(self.stage.set("maximum", 10.0))
        self.failureResultOf(self.stage.move_abs(20), InvalidValue)
        f = self.failureResultOf(self.stage.set("minimum", 20.0), InvalidValue)
        self.assertIn("must stay below", str(f.value))

    def test_bad_input(self) -> None:
        """Read-only, unknown and wrongly typed parameters give specific errors."""
        f = self.failureResultOf(self.stage.set("position", 3.0), ReadOnly)
        self.assertIn("read-only", str(f.value))
        f = self.failureResultOf(self.stage.get("velocity"), UnknownParameter)
        self.assertIn("speed", str(f.value))
        f = self.failureResultOf(self.stage.set("speed", "fast"), InvalidValue)
        self.assertIn("must be float", str(f.value))
        self.failureResultOf(self.stage.call("jump"), UnknownAction)
        self.failureResultOf(self.stage.call("move_abs", "far"), InvalidValue)

    def test_actions_via_call(self) -> None:
        """Protocols that only know call() can move the stage."""
        d = self.stage.call("move_abs", position=5)
        self.clock.advance(0.5)
        self.assertEqual(self.successResultOf(d), 5.0)
        self.assertEqual(self.successResultOf(self.stage.call("position")), 5.0)

    def test_bad_construction(self) -> None:
        """Inconsistent limits, home or speed are refused."""
        self.assertRaises(InvalidValue, SimulatedStage, "s", self.clock, minimum=1, maximum=0)
        self.assertRaises(InvalidValue, SimulatedStage, "s", self.clock, home=200)
        self.assertRaises(InvalidValue, SimulatedStage, "s", self.clock, speed=0)


class PowerMeterTests(SynchronousTestCase):
    """L{SimulatedPowerMeter} has SCPI-like parameters and 0D data."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.meter = SimulatedPowerMeter("pm", self.clock, seed=1)

    def test_interfaces(self) -> None:
        """The power meter provides IDevice and IDetector and produces Data0D."""
        verifyObject(IDetector, self.meter)
        self.assertEqual(self.meter.dims, ("Data0D",))

    def test_grab(self) -> None:
        """grab fires at once with one 0D signal in W."""
        export = self.successResultOf(self.meter.grab())
        self.assertIsInstance(export, Export)
        self.assertEqual(len(export), 1)
        signal = export[0]
        self.assertEqual((signal.dim, signal.units, signal.labels), ("Data0D", "W", ["POWER"]))
        near(self, signal.value(), 1e-3, 1e-4)

    def test_power_noise_and_wavelength(self) -> None:
        """POWER is noisy around a mean that depends on WAVELENGTH."""
        values = [self.successResultOf(self.meter.get("POWER")) for _ in range(200)]
        near(self, float(np.mean(values)), 1e-3, 2e-5)
        self.assertGreater(float(np.std(values)), 0)
        self.assertLess(float(np.std(values)), 2e-5)
        self.successResultOf(self.meter.set("WAVELENGTH", 900))
        far = [self.successResultOf(self.meter.get("POWER")) for _ in range(50)]
        self.assertLess(float(np.mean(far)), 0.7e-3)

    def test_wavelength_limits(self) -> None:
        """WAVELENGTH outside the sensor's range fails with InvalidValue naming it."""
        f = self.failureResultOf(self.meter.set("WAVELENGTH", 1500), InvalidValue)
        self.assertIn("S120C", str(f.value))
        self.successResultOf(self.meter.set("SENSOR", "S302C"))
        self.successResultOf(self.meter.set("WAVELENGTH", 1500))
        f = self.failureResultOf(self.meter.set("SENSOR", "S121C"), InvalidValue)
        self.assertIn("outside the range", str(f.value))
        self.failureResultOf(self.meter.set("WAVELENGTH", 10), InvalidValue)

    def test_sensor_choices(self) -> None:
        """SENSOR accepts only its choices; POWER is read-only."""
        f = self.failureResultOf(self.meter.set("SENSOR", "X"), InvalidValue)
        self.assertIn("'S120C'", str(f.value))
        self.failureResultOf(self.meter.set("POWER", 1.0), ReadOnly)

    def test_identity(self) -> None:
        """identity answers like *IDN?."""
        idn = self.successResultOf(self.meter.call("identity"))
        self.assertEqual(idn.split(",")[:3], ["twisted_lab", "SimulatedPowerMeter", "pm"])


class SpectrometerTests(SynchronousTestCase):
    """L{SimulatedSpectrometer} gives 1D spectra on a wavelength axis."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.spec = SimulatedSpectrometer("spec", self.clock, pixels=1024, center=600.0,
                                          exposure=0.1, seed=2)

    def test_interfaces(self) -> None:
        """The spectrometer provides IDetector and produces Data1D."""
        verifyObject(IDetector, self.spec)
        self.assertEqual(self.spec.dims, ("Data1D",))

    def test_grab_takes_exposure(self) -> None:
        """A grab fires after the exposure, with a wavelength axis in nm."""
        d = self.spec.grab()
        self.clock.advance(0.099)
        self.assertNoResult(d)
        self.clock.advance(0.002)
        signal = self.successResultOf(d)[0]
        self.assertEqual((signal.dim, signal.shape), ("Data1D", (1024,)))
        axis = signal.axes[0]
        self.assertEqual((axis.label, axis.units, axis.index, axis.size),
                         ("wavelength", "nm", 0, 1024))
        self.assertAlmostEqual(float(axis.data.mean()), 600.0, places=6)
        peak = float(axis.data[int(np.argmax(signal.data[0]))])
        near(self, peak, 632.8, 0.5)

    def test_noise(self) -> None:
        """Two grabs differ by noise; the background is flat with sqrt(counts) noise."""
        self.successResultOf(self.spec.set("exposure", 0.0))
        a = self.successResultOf(self.spec.grab())[0].data[0]
        b = self.successResultOf(self.spec.grab())[0].data[0]
        self.assertFalse(np.array_equal(a, b))
        self.assertGreater(float(np.std(a[:50] - b[:50])), 0)

    def test_center(self) -> None:
        """Changing center shifts the axis; out-of-range centers are refused."""
        self.successResultOf(self.spec.set("center", 700.0))
        self.successResultOf(self.spec.set("exposure", 0.0))
        axis = self.successResultOf(self.spec.grab())[0].axes[0]
        self.assertAlmostEqual(float(axis.data.mean()), 700.0, places=6)
        self.failureResultOf(self.spec.set("center", 5000.0), InvalidValue)
        self.failureResultOf(self.spec.set("exposure", -1.0), InvalidValue)


class CameraTests(SynchronousTestCase):
    """L{SimulatedCamera} gives 2D gaussian spots with noise, fast."""

    def setUp(self) -> None:
        self.clock = Clock()

    def camera(self, **kwargs: Any) -> SimulatedCamera:
        return SimulatedCamera("cam", self.clock, seed=3, **kwargs)

    def test_interfaces(self) -> None:
        """The camera provides IDetector and produces Data2D."""
        verifyObject(IDetector, self.camera())
        self.assertEqual(self.camera().dims, ("Data2D",))

    def test_grab_shape_axes_and_spot(self) -> None:
        """A grab has the configured shape, x/y axes, and its maximum at the spot."""
        cam = self.camera(width=200, height=100, exposure=0.05)
        self.successResultOf(cam.set("spot_x", 150.0))
        self.successResultOf(cam.set("spot_y", 30.0))
        self.successResultOf(cam.set("spot_width", 5.0))
        d = cam.grab()
        self.assertNoResult(d)
        self.clock.advance(0.05)
        signal = self.successResultOf(d)[0]
        self.assertEqual((signal.dim, signal.shape), ("Data2D", (100, 200)))
        self.assertEqual([(a.label, a.index, a.size) for a in signal.axes],
                         [("y", 0, 100), ("x", 1, 200)])
        row, col = np.unravel_index(int(np.argmax(signal.data[0])), signal.shape)
        self.assertLessEqual(abs(int(row) - 30), 1)
        self.assertLessEqual(abs(int(col) - 150), 1)

    def test_noise_shape(self) -> None:
        """Far from the spot, pixels are background plus gaussian noise of the set sigma."""
        cam = self.camera(width=256, height=256)
        self.successResultOf(cam.set("spot_x", 0.0))
        self.successResultOf(cam.set("spot_y", 0.0))
        self.successResultOf(cam.set("spot_width", 2.0))
        self.successResultOf(cam.set("noise", 5.0))
        image = cam.image()
        corner = image[128:, 128:]
        near(self, float(corner.mean()), 100.0, 0.5)
        near(self, float(corner.std()), 5.0, 0.3)
        self.assertFalse(np.array_equal(image, cam.image()))

    def check_large(self, dtype: str) -> None:
        cam = self.camera(width=2048, height=2048, dtype=dtype, exposure=0.0)
        cam.image()  # warm up (first-touch page faults)
        start = time.perf_counter()
        for _ in range(3):
            export = self.successResultOf(cam.grab())
        elapsed = (time.perf_counter() - start) / 3
        data = export[0].data[0]
        self.assertEqual((data.shape, data.dtype), ((2048, 2048), np.dtype(dtype)))
        # generous bound for a shared machine; typically 10-25 ms
        self.assertLess(elapsed, 0.5)

    def test_2048_float64(self) -> None:
        """A 2048x2048 float64 frame is produced quickly (precomputed noise bank)."""
        self.check_large("float64")

    def test_2048_uint16(self) -> None:
        """A 2048x2048 uint16 frame is produced quickly and clipped to 0..65535."""
        self.check_large("uint16")
        cam = self.camera(width=64, height=64, dtype="uint16")
        self.successResultOf(cam.set("amplitude", 1e9))
        self.successResultOf(cam.set("exposure", 1.0))
        self.clock.advance(0)
        image = cam.image()
        self.assertEqual(int(image.max()), 65535)

    def test_bad_construction(self) -> None:
        """Sizes beyond 4096 and unknown dtypes are refused."""
        self.assertRaises(InvalidValue, SimulatedCamera, "c", self.clock, width=5000)
        self.assertRaises(InvalidValue, SimulatedCamera, "c", self.clock, dtype="int8")

    def test_bad_input(self) -> None:
        """Spot outside the frame and writes to read-only sizes are refused."""
        cam = self.camera(width=64, height=64)
        self.failureResultOf(cam.set("spot_x", 64.0), InvalidValue)
        self.failureResultOf(cam.set("width", 128), ReadOnly)


class LA4BoardTests(SynchronousTestCase):
    """L{SimulatedLA4Board} models the LA4 command surface and its state."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.board = SimulatedLA4Board("la4", self.clock)
        self.events: list[LabEvent] = []
        self.board.subscribe(self.events.append)

    def value(self, name: str) -> Any:
        return self.successResultOf(self.board.get(name))

    def messages(self) -> list[str]:
        return [e.value for e in self.events if e.parameter == "last_message"]

    def test_interfaces(self) -> None:
        """The board provides IDevice."""
        verifyObject(IDevice, self.board)

    def test_direct_settings(self) -> None:
        """Model light, fans and polarizer are set by actions or set()."""
        self.successResultOf(self.board.call("set_model_light", 40))
        self.successResultOf(self.board.call("set_fans", True))
        self.successResultOf(self.board.call("set_polarizer", True))
        self.assertEqual((self.value("model_light"), self.value("fans"),
                          self.value("polarizer")), (40, True, True))
        self.successResultOf(self.board.set("model_light", 0))
        self.assertEqual(self.value("model_light"), 0)
        f = self.failureResultOf(self.board.call("set_model_light", 101), InvalidValue)
        self.assertIn("0-100", str(f.value))
        self.failureResultOf(self.board.set("model_light", 150), InvalidValue)

    def test_fire_all_takes_time(self) -> None:
        """ALL_4_CANON lights all four LEDs for the shutter time."""
        d = self.board.call("fire_all", 80, "canon", 100)
        self.assertEqual(self.value("leds"), [80, 80, 80, 80])
        self.clock.advance(0.099)
        self.assertNoResult(d)
        self.clock.advance(0.002)
        shot = self.successResultOf(d)
        self.assertEqual(shot["register"], "ALL_4_CANON")
        self.assertEqual(self.value("leds"), [0, 0, 0, 0])
        self.assertEqual(self.value("shots"), 1)

    def test_fire_all_bad(self) -> None:
        """Unknown cameras and a Nikon shutter time are refused with explanations."""
        f = self.failureResultOf(self.board.call("fire_all", 50, "leica"), InvalidValue)
        self.assertIn("'nikon'", str(f.value))
        f = self.failureResultOf(self.board.call("fire_all", 50, "nikon", 10), InvalidValue)
        self.assertIn("canon", str(f.value))
        f = self.failureResultOf(self.board.call("fire_all", 50, "canon", 200), InvalidValue)
        self.assertIn("0-109", str(f.value))

    def test_olat_four_shots(self) -> None:
        """OLAT fires four shots, one LED each."""
        d = self.board.call("olat", 30, True, "nikon")
        seen = []
        for _ in range(4):
            seen.append(self.value("leds"))
            self.clock.advance(0.05)
        self.successResultOf(d)
        self.assertEqual(seen, [[30, 0, 0, 0], [0, 30, 0, 0], [0, 0, 30, 0], [0, 0, 0, 30]])
        self.assertEqual(self.value("shots"), 4)
        self.assertEqual(self.value("last_shot")["drive"], 1)
        shots = [e.value["led"] for e in self.events if e.parameter == "last_shot"]
        self.assertEqual(shots, [0, 1, 2, 3])

    def test_sequence_file_load_run(self) -> None:
        """write_sequence + boardio uSeq + runSeq: the command-line flow of the spec."""
        path = self.successResultOf(self.board.call(
            "write_sequence", "LED_FAN,1\\nMODEL_LIGHT,100\\nALL_4_NIKON,50"))
        self.assertEqual(path, "/home/rigsters/la4_sequence.csv")
        self.assertEqual(self.value("sequence_file"), "LED_FAN,1\nMODEL_LIGHT,100\nALL_4_NIKON,50")
        self.assertEqual(self.successResultOf(self.board.call("boardio", "uSeq")), "BOARDIO_READY")
        out = self.successResultOf(self.board.call("boardio", "runSeq"))
        self.assertIn("runSeq", out)
        self.assertTrue(self.value("running"))
        self.clock.advance(0)
        self.assertEqual((self.value("fans"), self.value("model_light")), (True, 100))
        for _ in range(5):
            self.clock.advance(0.05)
        self.assertFalse(self.value("running"))
        self.assertEqual(self.value("last_message"), "Sequence complete")
        self.assertIn("Sequence complete", self.messages())

    def test_run_sequence_fires_when_complete(self) -> None:
        """run_sequence fires with the number of rows once the sequence has run."""
        d = self.board.call("run_sequence", ["LED_FAN,1", ["OLAT_4_CANON", 10, 0]])
        self.assertNoResult(d)
        for _ in range(10):
            self.clock.advance(0.05)
        self.assertEqual(self.successResultOf(d), 2)
        self.assertEqual(self.value("loaded"), "LED_FAN,1\nOLAT_4_CANON,10,0")

    def test_busy_and_stop(self) -> None:
        """A second run while running is DeviceBusy; stop_sequence aborts."""
        d = self.board.call("run_sequence", "ALL_4_NIKON,10\nALL_4_NIKON,20\nALL_4_NIKON,30")
        self.clock.advance(0)
        self.failureResultOf(self.board.call("boardio", "runSeq"), DeviceBusy)
        self.clock.advance(0.05)
        self.assertTrue(self.successResultOf(self.board.call("stop_sequence")))
        self.assertEqual(self.successResultOf(d), 1)
        self.assertEqual(self.value("last_message"), "Sequence stopped")
        self.clock.advance(1)
        self.assertEqual(self.value("shots"), 2)  # the shot in progress completed
        self.assertFalse(self.successResultOf(self.board.call("stop_sequence")))

    def test_bad_sequences(self) -> None:
        """Unknown registers, bad counts and out-of-range values are InvalidValue."""
        for rows, expected in [("FOO,1", "unknown register"),
                               ("MODEL_LIGHT,1,2", "takes 1 parameter"),
                               ("MODEL_LIGHT,x", "must be an integer"),
                               ("LED_FAN,1\nOLAT_4_NIKON,50,3", "row 2"),
                               ("MODEL_LIGHT,1; rm -rf /", "must be an integer")]:
            f = self.failureResultOf(self.board.call("run_sequence", rows), InvalidValue)
            self.assertIn(expected, str(f.value))
        self.assertFalse(self.value("running"))

    def test_boardio_errors(self) -> None:
        """Unknown verbs, runSeq before uSeq and empty files give errors and messages."""
        f = self.failureResultOf(self.board.call("boardio", "reboot"), InvalidValue)
        self.assertIn("uSeq", str(f.value))
        self.failureResultOf(self.board.call("boardio", "runSeq"), InvalidValue)
        self.assertTrue(self.value("last_message").startswith("BOARDIO_ERROR"))
        self.failureResultOf(self.board.call("boardio", "uSeq"), InvalidValue)

    def test_standalone_and_boot(self) -> None:
        """store_standalone loads the boot sequence; boot runs it."""
        self.assertEqual(self.successResultOf(self.board.call("boot")), 0)
        self.assertTrue(self.value("last_message").startswith("BOARDIO_ERROR"))
        self.assertEqual(self.successResultOf(self.board.call(
            "store_standalone", "LED_FAN,1\nMODEL_LIGHT,20")), "BOARDIO_READY")
        d = self.board.call("boot")
        self.clock.advance(0)
        self.clock.advance(0)
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(d), 2)
        self.assertEqual(self.value("model_light"), 20)

    def test_registers_table(self) -> None:
        """The register table and parser match the spec's rows."""
        self.assertEqual(set(REGISTERS), {"MODEL_LIGHT", "ALL_4_NIKON", "ALL_4_CANON",
                                          "OLAT_4_NIKON", "OLAT_4_CANON", "LED_FAN",
                                          "DIGITAL_POLARIZER"})
        self.assertEqual(parse_sequence("model_light, 5\n\nALL_4_CANON,1,109"),
                         [Row("MODEL_LIGHT", (5,)), Row("ALL_4_CANON", (1, 109))])
        self.assertEqual(self.successResultOf(self.board.call(
            "validate_sequence", [["LED_FAN", True]])), "LED_FAN,1")

    def test_readonly_state(self) -> None:
        """Observed state (shots, running, files) cannot be written."""
        for name in ("shots", "running", "sequence_file", "last_message", "leds"):
            self.failureResultOf(self.board.set(name, 1), ReadOnly)
