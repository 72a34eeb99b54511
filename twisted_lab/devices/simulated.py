# -*- test-case-name: tests.test_devices_simulated -*-
"""
Simulated instruments: the built-in simulated lab.

Every simulated device takes the reactor (a L{twisted.internet.task.Clock}
in tests): whatever "takes time" (a stage move, an exposure, a lighting
sequence) is scheduled with C{callLater}/C{deferLater} on it, never by
sleeping.  Noise comes from a per-device C{numpy.random.Generator} (give
C{seed} for reproducible data).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import deferLater

from twisted_lab import __version__, headroom
from twisted_lab.bigjson import BIG, shared_pool
from twisted_lab.data import Axis, Export, Signal
from twisted_lab.description import Action, Argument, Parameter
from twisted_lab.devices.base import BaseActuator, BaseDetector, BaseDevice
from twisted_lab.errors import DeviceBusy, InvalidValue
from twisted_lab.formats.la4.board import Shot, effect
from twisted_lab.formats.la4.registers import SEQUENCE_FILE, STANDALONE_FILE, VERBS, Row, row_from

__all__ = [
    "SimulatedStage",
    "SimulatedPowerMeter",
    "SimulatedSpectrometer",
    "SimulatedCamera",
    "SimulatedLA4Board",
    "parse_sequence",
]


def _now(reactor: Any) -> float:
    return float(reactor.seconds())


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise InvalidValue(f"{what} must be a finite number, got {value!r}")
    return value


def _exposed(reactor: Any, exposure: float, make: Any) -> Deferred[Any]:
    """Call C{make()} after C{exposure} seconds of the clock (at once when 0)."""
    if exposure <= 0:
        return succeed(make())
    return deferLater(reactor, exposure, make)


# -- stage ------------------------------------------------------------------------


class SimulatedStage(BaseActuator):
    """
    A linear stage: moves take C{|distance| / speed} seconds of the clock.

    The position is interpolated during a move, so reading it mid-move gives
    where the stage is now.  A new move while moving interrupts the earlier
    one (whose L{Deferred} fires with the position where it was interrupted);
    L{stop} interrupts it too.  Targets outside C{[minimum, maximum]} fail
    with L{InvalidValue}.
    """

    doc = "Simulated linear stage"

    def __init__(self, name: str, reactor: Any, units: str = "mm", speed: float = 10.0,
                 minimum: float = -100.0, maximum: float = 100.0, home: float = 0.0) -> None:
        """
        @param units: position units.
        @param speed: speed in units per second.
        @param minimum: the lowest reachable position.
        @param maximum: the highest reachable position.
        @param home: the home position.
        """
        if not minimum < maximum:
            raise InvalidValue(f"stage {name!r}: minimum {minimum!r} must be below "
                               f"maximum {maximum!r}")
        if not minimum <= home <= maximum:
            raise InvalidValue(f"stage {name!r}: home {home!r} is outside "
                               f"[{minimum!r}, {maximum!r}]")
        if speed <= 0:
            raise InvalidValue(f"stage {name!r}: speed must be positive, got {speed!r}")
        self._reactor = reactor
        self.home = float(home)
        self._start = self.home
        self._target = self.home
        self._t0 = _now(reactor)
        self._duration = 0.0
        self._timer: IDelayedCall | None = None
        self._pending: Deferred[float] | None = None
        parameters = [
            Parameter("speed", "float", f"{units}/s", minimum=1e-9, default=float(speed),
                      doc="Speed of moves."),
            Parameter("minimum", "float", units, default=float(minimum),
                      doc="Lowest reachable position."),
            Parameter("maximum", "float", units, default=float(maximum),
                      doc="Highest reachable position."),
            Parameter("home", "float", units, readonly=True, default=float(home),
                      doc="Home position."),
            Parameter("position", "float", units, readonly=True, default=float(home),
                      doc="Current position (interpolated during a move)."),
            Parameter("moving", "bool", readonly=True, default=False,
                      doc="True while a move is in progress."),
        ]
        super().__init__(name, units, parameters)

    # parameters

    def read_parameter(self, name: str) -> Any:
        if name == "position":
            return self._current()
        if name == "moving":
            return self._moving
        return super().read_parameter(name)

    def write_parameter(self, name: str, value: Any) -> Any:
        low = value if name == "minimum" else self._values["minimum"]
        high = value if name == "maximum" else self._values["maximum"]
        if name in ("minimum", "maximum") and not low < high:
            raise InvalidValue(
                f"{self.name}.{name} = {value!r}: minimum ({low!r}) must stay below "
                f"maximum ({high!r})")
        return super().write_parameter(name, value)

    # motion

    @property
    def _moving(self) -> bool:
        return self._timer is not None

    def _current(self) -> float:
        if self._timer is None or self._duration <= 0:
            return self._target
        fraction = min(1.0, max(0.0, (_now(self._reactor) - self._t0) / self._duration))
        return self._start + (self._target - self._start) * fraction

    def _move_abs(self, position: float) -> Deferred[float]:
        _finite(position, f"{self.name}.move_abs(position)")
        low, high = self._values["minimum"], self._values["maximum"]
        unit = f" {self.units}" if self.units else ""
        if position < low:
            raise InvalidValue(f"{self.name}: target {position!r}{unit} is below the minimum "
                               f"{low!r}{unit}; choose a position in [{low!r}, {high!r}]")
        if position > high:
            raise InvalidValue(f"{self.name}: target {position!r}{unit} is above the maximum "
                               f"{high!r}{unit}; choose a position in [{low!r}, {high!r}]")
        here = self._interrupt()
        self._start, self._target = here, float(position)
        self._t0 = _now(self._reactor)
        self._duration = abs(self._target - here) / self._values["speed"]
        d: Deferred[float] = Deferred()
        if self._duration <= 0:
            return succeed(self._target)
        self._pending = d
        self._timer = self._reactor.callLater(self._duration, self._arrived)
        self.changed("moving", True)
        return d

    def _interrupt(self) -> float:
        """Stop where we are; fire a pending move with that position."""
        here = self._current()
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
            self._target = here
            self.changed("moving", False)
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.callback(here)
        return here

    def _arrived(self) -> None:
        self._timer = None
        pending, self._pending = self._pending, None
        self.changed("moving", False)
        if pending is not None:
            pending.callback(self._target)

    def _stop(self) -> float:
        return self._interrupt()

    def _position(self) -> float:
        return self._current()


# -- power meter ------------------------------------------------------------------


#: Sensor name to (lowest, highest) wavelength in nm and relative noise.
POWERMETER_SENSORS: dict[str, tuple[float, float, float]] = {
    "S120C": (400.0, 1100.0, 0.005),
    "S121C": (400.0, 1100.0, 0.003),
    "S302C": (190.0, 25000.0, 0.02),
}


class SimulatedPowerMeter(BaseDetector):
    """
    A 0D optical power meter with SCPI-like parameters.

    C{WAVELENGTH} (nm) sets the calibration wavelength; C{POWER} (W) reads
    a noisy power whose mean depends on the wavelength (a laser line at
    632.8 nm seen through a sensor response curve); C{SENSOR} chooses the
    sensor head (its noise level).  C{grab} returns an L{Export} holding one
    0D signal in W.
    """

    doc = "Simulated optical power meter"
    dims = ("Data0D",)

    def __init__(self, name: str, reactor: Any, wavelength: float = 632.8,
                 sensor: str = "S120C", seed: int | None = None) -> None:
        """
        @param wavelength: the initial WAVELENGTH in nm.
        @param sensor: the initial SENSOR.
        @param seed: the noise generator's seed.
        """
        self._reactor = reactor
        self._rng = np.random.default_rng(seed)
        parameters = [
            Parameter("WAVELENGTH", "float", "nm", minimum=190.0, maximum=25000.0,
                      default=float(wavelength), doc="Calibration wavelength."),
            Parameter("POWER", "float", "W", readonly=True, default=0.0,
                      doc="Measured optical power (noisy)."),
            Parameter("SENSOR", "str", choices=tuple(POWERMETER_SENSORS), default=sensor,
                      doc="Sensor head."),
        ]
        actions = [
            Action("identity", (), "The *IDN? string.", mutating=False),
        ]
        super().__init__(name, parameters, actions)
        self._parameter("SENSOR").validate(sensor, name)
        self._check_wavelength(float(wavelength), sensor)

    def _check_wavelength(self, wavelength: float, sensor: str) -> None:
        low, high, _ = POWERMETER_SENSORS[sensor]
        if not low <= wavelength <= high:
            raise InvalidValue(
                f"{self.name}.WAVELENGTH = {wavelength!r} nm is outside the range of sensor "
                f"{sensor} ({low:g}-{high:g} nm)")

    def write_parameter(self, name: str, value: Any) -> Any:
        if name == "WAVELENGTH":
            self._check_wavelength(value, self._values["SENSOR"])
        elif name == "SENSOR":
            self._check_wavelength(self._values["WAVELENGTH"], value)
        return super().write_parameter(name, value)

    def read_parameter(self, name: str) -> Any:
        if name == "POWER":
            return self.measure()
        return super().read_parameter(name)

    def mean_power(self) -> float:
        """The noiseless power (W) at the current wavelength."""
        wavelength = self._values["WAVELENGTH"]
        # a 1 mW laser line at 632.8 nm seen with a calibration error growing
        # with the distance between the set wavelength and the line
        response = math.exp(-(((wavelength - 632.8) / 300.0) ** 2))
        return 1e-3 * response

    def measure(self) -> float:
        """One noisy reading (W)."""
        noise = POWERMETER_SENSORS[self._values["SENSOR"]][2]
        return float(self.mean_power() * (1.0 + noise * self._rng.standard_normal()))

    def action_identity(self) -> str:
        return f"twisted_lab,SimulatedPowerMeter,{self.name},{__version__}"

    def _grab(self) -> Export:
        value = self.measure()
        signal = Signal(self.name, [np.array([value])], labels=["POWER"], units="W",
                        kind="DataFromPlugins", origin=self.name)
        return Export(self.name, [signal])


# -- spectrometer -----------------------------------------------------------------


#: Emission lines of the simulated source: (wavelength nm, counts per second, FWHM nm).
SPECTRUM_LINES: tuple[tuple[float, float, float], ...] = (
    (532.0, 40000.0, 0.8),
    (585.2, 12000.0, 0.5),
    (632.8, 60000.0, 0.6),
    (640.2, 15000.0, 0.5),
    (703.2, 8000.0, 0.5),
)


class SimulatedSpectrometer(BaseDetector):
    """
    A 1D spectrometer: C{pixels} values along a wavelength axis (nm).

    The spectrum holds a few emission lines plus a dark level and shot-like
    noise; counts scale with C{exposure}, and a grab takes C{exposure}
    seconds of the clock.  C{center} sets the central wavelength; the
    dispersion is C{dispersion} nm per pixel.
    """

    doc = "Simulated spectrometer"
    dims = ("Data1D",)

    def __init__(self, name: str, reactor: Any, pixels: int = 1024, center: float = 600.0,
                 exposure: float = 0.01, dispersion: float = 0.25,
                 seed: int | None = None) -> None:
        if pixels < 2:
            raise InvalidValue(f"spectrometer {name!r}: pixels must be at least 2, got {pixels!r}")
        self._reactor = reactor
        self._rng = np.random.default_rng(seed)
        self.pixels = int(pixels)
        self.dispersion = float(dispersion)
        parameters = [
            Parameter("exposure", "float", "s", minimum=0.0, maximum=60.0,
                      default=float(exposure), doc="Integration time of one grab."),
            Parameter("center", "float", "nm", minimum=200.0, maximum=1100.0,
                      default=float(center), doc="Central wavelength."),
            Parameter("pixels", "int", readonly=True, default=self.pixels,
                      doc="Number of pixels."),
        ]
        super().__init__(name, parameters)
        self._parameter("center").validate(float(center), name)
        self._parameter("exposure").validate(float(exposure), name)

    def wavelengths(self) -> npt.NDArray[np.float64]:
        """The wavelength (nm) of each pixel."""
        center = float(self._values["center"])
        offset = center - self.dispersion * (self.pixels - 1) / 2.0
        out: npt.NDArray[np.float64] = offset + self.dispersion * np.arange(
            self.pixels, dtype=np.float64)
        return out

    def spectrum(self, wavelengths: npt.NDArray[np.float64], exposure: float) -> npt.NDArray[Any]:
        """A noisy spectrum (counts) for these wavelengths and exposure."""
        rate = np.full(wavelengths.shape, 500.0)
        for line, strength, fwhm in SPECTRUM_LINES:
            sigma = fwhm / 2.3548
            rate += strength * np.exp(-0.5 * ((wavelengths - line) / sigma) ** 2)
        counts = rate * exposure + 100.0
        noise = np.sqrt(counts) * self._rng.standard_normal(wavelengths.shape)
        out: npt.NDArray[Any] = counts + noise
        return out

    def _grab(self) -> Deferred[Export]:
        exposure = self._values["exposure"]
        axis_values = self.wavelengths()

        def acquired() -> Export:
            data = self.spectrum(axis_values, exposure)
            signal = Signal(self.name, [data], labels=["intensity"], units="counts",
                            axes=[Axis("wavelength", "nm", axis_values, 0)],
                            kind="DataFromPlugins", origin=self.name)
            return Export(self.name, [signal])

        return _exposed(self._reactor, exposure, acquired)


# -- camera -----------------------------------------------------------------------


class SimulatedCamera(BaseDetector):
    """
    A 2D camera: a gaussian spot on a background with noise.

    Images are C{height} x C{width} (up to 4096 x 4096), C{float64} or
    C{uint16}.  The spot is separable, so an image is one outer product plus
    a slice of a noise bank precomputed at construction: a 2048 x 2048 grab
    costs a few tens of ms.  A grab takes C{exposure} seconds of the clock.
    """

    doc = "Simulated camera"
    dims = ("Data2D",)
    MAX_SIZE = 4096

    def __init__(self, name: str, reactor: Any, width: int = 512, height: int = 512,
                 dtype: str = "float64", exposure: float = 0.01, seed: int | None = None) -> None:
        for what, size in (("width", width), ("height", height)):
            if not 1 <= size <= self.MAX_SIZE:
                raise InvalidValue(f"camera {name!r}: {what} must be in 1..{self.MAX_SIZE}, "
                                   f"got {size!r}")
        if dtype not in ("float64", "uint16"):
            raise InvalidValue(f"camera {name!r}: dtype must be 'float64' or 'uint16', "
                               f"got {dtype!r}")
        self._reactor = reactor
        self._rng = np.random.default_rng(seed)
        self.width, self.height, self.dtype = int(width), int(height), dtype
        size = self.width * self.height
        # A bank of unit gaussian noise, a little longer than one image, so
        # each grab takes a view at a random offset instead of drawing anew.
        self._extra = max(4096, size // 16)
        self._noise = self._rng.standard_normal(size + self._extra, dtype=np.float32)
        self._x = np.arange(self.width, dtype=np.float64)
        self._y = np.arange(self.height, dtype=np.float64)
        parameters = [
            Parameter("exposure", "float", "s", minimum=0.0, maximum=60.0,
                      default=float(exposure), doc="Integration time of one grab."),
            Parameter("spot_x", "float", "px", minimum=0.0, maximum=float(self.width - 1),
                      default=(self.width - 1) / 2.0, doc="Spot centre, column."),
            Parameter("spot_y", "float", "px", minimum=0.0, maximum=float(self.height - 1),
                      default=(self.height - 1) / 2.0, doc="Spot centre, row."),
            Parameter("spot_width", "float", "px", minimum=0.5,
                      maximum=float(max(self.width, self.height)),
                      default=max(1.0, min(self.width, self.height) / 10.0),
                      doc="Spot standard deviation."),
            Parameter("amplitude", "float", "counts/s", minimum=0.0, maximum=1e9,
                      default=3.0e6, doc="Spot peak rate."),
            Parameter("background", "float", "counts", minimum=0.0, maximum=60000.0,
                      default=100.0, doc="Dark level."),
            Parameter("noise", "float", "counts", minimum=0.0, maximum=10000.0,
                      default=10.0, doc="Noise standard deviation."),
            Parameter("width", "int", "px", readonly=True, default=self.width),
            Parameter("height", "int", "px", readonly=True, default=self.height),
            Parameter("dtype", "str", readonly=True, default=self.dtype),
        ]
        super().__init__(name, parameters)
        self._parameter("exposure").validate(float(exposure), name)
        self._x_axis = Axis("x", "px", self._x, index=1)
        self._y_axis = Axis("y", "px", self._y, index=0)

    def image(self) -> npt.NDArray[Any]:
        """One image with the current parameters (no clock involved)."""
        v = self._values
        work = np.float64 if self.dtype == "float64" else np.float32
        sigma = v["spot_width"]
        gx = np.exp(-0.5 * ((self._x - v["spot_x"]) / sigma) ** 2).astype(work)
        gy = np.exp(-0.5 * ((self._y - v["spot_y"]) / sigma) ** 2)
        gy = (gy * (v["amplitude"] * v["exposure"])).astype(work)
        # frames in room (twisted_lab.headroom): the PyMoDAQ 5 LECO path
        # sends them without copying
        out = headroom.empty((self.height, self.width), dtype=work)
        np.multiply.outer(gy, gx, out=out)
        size = self.width * self.height
        start = int(self._rng.integers(0, self._extra + 1))
        noise = self._noise[start:start + size].reshape(self.height, self.width)
        if v["noise"] != 1.0:
            out += noise * work(v["noise"])
        else:
            out += noise
        out += work(v["background"])
        if self.dtype == "uint16":
            np.clip(out, 0, 65535, out=out)
            counts = headroom.empty(out.shape, dtype=np.uint16)
            np.copyto(counts, out, casting="unsafe")
            return counts
        return out

    def _grab(self) -> Deferred[Export]:
        def package(image: npt.NDArray[Any]) -> Export:
            signal = Signal(self.name, [image], labels=["image"], units="counts",
                            axes=[self._y_axis, self._x_axis], kind="DataFromPlugins",
                            origin=self.name)
            return Export(self.name, [signal])

        if self.width * self.height < BIG:
            return _exposed(self._reactor, self._values["exposure"],
                            lambda: package(self.image()))
        # a large image (tens of ms of numpy) is computed on the shared worker
        # pool, so the reactor keeps answering other requests meanwhile
        pool = shared_pool(self._reactor)
        d: Deferred[Any] = _exposed(self._reactor, self._values["exposure"], lambda: None)
        d.addCallback(lambda _: pool.run(self.image))
        return d.addCallback(package)


# -- LA4 board ----------------------------------------------------------------------


def parse_row(row: Any, where: str = "row") -> Row:
    """
    Validate one sequence row (L{row_from}), naming C{where} it stands.

    @raise InvalidValue: a row the register table refuses.
    """
    try:
        return row_from(row)
    except InvalidValue as e:
        raise InvalidValue(f"{where}: {e.message}") from None


def parse_sequence(rows: Any) -> list[Row]:
    """
    Validate a whole sequence.

    @param rows: CSV text (rows separated by newlines or by a literal
        C{\\n}, as written by C{echo "..."}), or a list of rows (text or lists).
    @return: the validated rows.
    @raise InvalidValue: on the first bad row, naming it.
    """
    if isinstance(rows, str):
        text = rows.replace("\\n", "\n")
        rows = [line for line in text.splitlines() if line.strip()]
    if not isinstance(rows, (list, tuple)):
        raise InvalidValue(f"a sequence is CSV text or a list of rows, got {rows!r}")
    return [parse_row(row, f"sequence row {i + 1}") for i, row in enumerate(rows)]


def format_sequence(rows: Sequence[Row]) -> str:
    """CSV text of validated rows (one per line)."""
    return "\n".join(row.render() for row in rows)


class SimulatedLA4Board(BaseDevice):
    """
    A model of the LA4 lighting board's state behind its C{boardiocli}
    command surface (specs/la4-pycom.md §5).

    State (parameters): C{model_light} (0-100 %), C{fans}, C{polarizer},
    the sequence file and standalone file contents, what is loaded in the
    firmware, C{running}, C{shots} and the C{last_shot}, and C{last_message}
    (the boardio message pycom would send: C{BOARDIO_READY},
    C{BOARDIO_ERROR: ...}, C{Sequence complete}).  Every change is sent to
    subscribers as a C{changed} event, so a node can forward messages.

    Actions follow the command forms: C{write_sequence(rows, standalone)}
    is C{echo "rows" > ~/la4_sequence.csv}; C{boardio(verb)} is
    C{boardiocli uSeq|runSeq|uSeqStandalone}; and the typed operations
    C{set_model_light}, C{set_fans}, C{set_polarizer}, C{fire_all},
    C{olat}, C{run_sequence}, C{store_standalone}, C{stop_sequence},
    C{boot}.  Shots take time on the clock.
    """

    doc = "Simulated LA4 (LightArray4) lighting board"

    SEQUENCE_FILE = SEQUENCE_FILE
    STANDALONE_FILE = STANDALONE_FILE

    def __init__(self, name: str, reactor: Any) -> None:
        self._reactor = reactor
        self._timer: IDelayedCall | None = None
        self._run_done: Deferred[int] | None = None
        self._rows_done = 0
        parameters = [
            Parameter("model_light", "int", "%", minimum=0, maximum=100, default=0,
                      doc="Model light power (0 = off)."),
            Parameter("fans", "bool", default=False, doc="LED fans on."),
            Parameter("polarizer", "bool", default=False, doc="Digital polarizer on."),
            Parameter("leds", "list", readonly=True, default=[0, 0, 0, 0],
                      doc="Power (%) of the four LED heads during the current shot."),
            Parameter("sequence_file", "str", readonly=True, default="",
                      doc="Contents of " + self.SEQUENCE_FILE + "."),
            Parameter("standalone_file", "str", readonly=True, default="",
                      doc="Contents of " + self.STANDALONE_FILE + "."),
            Parameter("loaded", "str", readonly=True, default="",
                      doc="The sequence loaded in the firmware (by uSeq)."),
            Parameter("standalone_loaded", "str", readonly=True, default="",
                      doc="The standalone sequence loaded (by uSeqStandalone)."),
            Parameter("running", "bool", readonly=True, default=False,
                      doc="True while a sequence runs."),
            Parameter("shots", "int", readonly=True, default=0, doc="LED shots fired."),
            Parameter("last_shot", "dict", readonly=True, default={},
                      doc="The last shot: register, power, leds, shutter_ms, drive."),
            Parameter("last_message", "str", readonly=True, default="",
                      doc="The last boardio message (BOARDIO_READY, BOARDIO_ERROR: ...)."),
        ]
        rows = Argument("rows", "any")
        actions = [
            Action("set_model_light", (Argument("power", "int", units="%"),),
                   "MODEL_LIGHT,power: model light power 0-100 %."),
            Action("set_fans", (Argument("on", "bool"),), "LED_FAN,0|1."),
            Action("set_polarizer", (Argument("on", "bool"),), "DIGITAL_POLARIZER,0|1."),
            Action("fire_all", (Argument("power", "int", units="%"),
                                Argument("camera", "str", "nikon"),
                                Argument("shutter_ms", "int", 0, "ms")),
                   "ALL_4_NIKON,power or ALL_4_CANON,power,shutter_ms: one shot, all LEDs."),
            Action("olat", (Argument("power", "int", units="%"),
                            Argument("continuous", "bool", False),
                            Argument("camera", "str", "nikon")),
                   "OLAT_4_NIKON|CANON,power,drive: four shots, one LED each."),
            Action("execute_row", (rows,), "Apply one 'REGISTER,params' row now."),
            Action("write_sequence", (rows, Argument("standalone", "bool", False)),
                   "echo \"rows\" > ~/la4_sequence.csv (or the standalone file)."),
            Action("boardio", (Argument("verb", "str"),),
                   "boardiocli uSeq | runSeq | uSeqStandalone."),
            Action("run_sequence", (rows,),
                   "Write, load (uSeq) and run (runSeq) a sequence; fires when complete."),
            Action("store_standalone", (rows,),
                   "Write the standalone file and load it (uSeqStandalone)."),
            Action("stop_sequence", (), "Abort a running sequence."),
            Action("boot", (), "Simulate a boardio boot: run the standalone sequence."),
            Action("validate_sequence", (rows,), "Check rows; return them as CSV text.",
                   mutating=False),
        ]
        super().__init__(name, parameters, actions)
        self._values["leds"] = [0, 0, 0, 0]
        self._values["last_shot"] = {}

    # -- helpers

    def _set(self, name: str, value: Any) -> None:
        if self._values.get(name) != value:
            self._values[name] = value
            self.changed(name, value)

    def _message(self, text: str) -> str:
        self._values["last_message"] = text
        self.changed("last_message", text)
        return text

    def write_parameter(self, name: str, value: Any) -> Any:
        # set("model_light", 50) is the same as MODEL_LIGHT,50
        self._values[name] = value
        return None

    def read_parameter(self, name: str) -> Any:
        value = super().read_parameter(name)
        return list(value) if isinstance(value, list) else (
            dict(value) if isinstance(value, dict) else value)

    def _shot(self, shot: Shot) -> Deferred[dict[str, Any]]:
        report = shot.report()
        self._set("leds", list(shot.leds))

        def done() -> dict[str, Any]:
            self._set("leds", [0, 0, 0, 0])
            self._values["shots"] += 1
            self.changed("shots", self._values["shots"])
            self._values["last_shot"] = report
            self.changed("last_shot", report)
            return report

        return deferLater(self._reactor, shot.duration, done)

    def _apply(self, row: Row) -> Deferred[Any]:
        """Apply one validated row (L{twisted_lab.formats.la4.board}); fires when it is over."""
        done = effect(row)
        if done.setting is not None:
            name, value = done.setting
            self._set(name, value)
            return succeed(value)
        d: Deferred[Any] = succeed(None)
        for shot in done.shots:
            d = d.addCallback(self._next_shot, shot)
        return d

    def _next_shot(self, _: object, shot: Shot) -> Deferred[dict[str, Any]]:
        return self._shot(shot)

    # -- actions

    def action_set_model_light(self, power: int) -> Deferred[Any]:
        return self._apply(parse_row(["MODEL_LIGHT", power], "set_model_light"))

    def action_set_fans(self, on: bool) -> Deferred[Any]:
        return self._apply(Row.build("LED_FAN", int(on)))

    def action_set_polarizer(self, on: bool) -> Deferred[Any]:
        return self._apply(Row.build("DIGITAL_POLARIZER", int(on)))

    def _camera(self, camera: str) -> str:
        brand = camera.strip().lower()
        if brand not in ("nikon", "canon"):
            raise InvalidValue(f"{self.name}: camera must be 'nikon' (Nikon/Sony) or 'canon' "
                               f"(Canon/other brands), got {camera!r}")
        return brand.upper()

    def action_fire_all(self, power: int, camera: str = "nikon",
                        shutter_ms: int = 0) -> Deferred[Any]:
        brand = self._camera(camera)
        if brand == "NIKON":
            if shutter_ms:
                raise InvalidValue(f"{self.name}: shutter_ms is only for camera='canon' "
                                   f"(ALL_4_CANON); ALL_4_NIKON takes the power only")
            row = parse_row(["ALL_4_NIKON", power], "fire_all")
        else:
            row = parse_row(["ALL_4_CANON", power, shutter_ms], "fire_all")
        return self._apply(row)

    def action_olat(self, power: int, continuous: bool = False,
                    camera: str = "nikon") -> Deferred[Any]:
        brand = self._camera(camera)
        return self._apply(parse_row([f"OLAT_4_{brand}", power, int(continuous)], "olat"))

    def action_execute_row(self, rows: Any) -> Deferred[Any]:
        return self._apply(parse_row(rows, "execute_row"))

    def action_validate_sequence(self, rows: Any) -> str:
        return format_sequence(parse_sequence(rows))

    def action_write_sequence(self, rows: Any, standalone: bool = False) -> str:
        text = format_sequence(parse_sequence(rows))
        self._set("standalone_file" if standalone else "sequence_file", text)
        return self.STANDALONE_FILE if standalone else self.SEQUENCE_FILE

    def action_boardio(self, verb: str) -> Any:
        if verb not in VERBS:
            raise InvalidValue(f"{self.name}: boardiocli verb must be one of "
                               f"{', '.join(VERBS)}, got {verb!r}")
        if verb == "uSeq":
            return self._load("sequence_file", "loaded")
        if verb == "uSeqStandalone":
            return self._load("standalone_file", "standalone_loaded")
        if not self._values["loaded"]:
            self._message("BOARDIO_ERROR: no sequence loaded (run uSeq first)")
            raise InvalidValue(f"{self.name}: runSeq with no sequence loaded; "
                               f"write a sequence and run uSeq first")
        self._start(self._values["loaded"])
        return f'BOARDIO_CLI: Sent: "{verb}" to FIFO file'

    def _load(self, source: str, target: str) -> str:
        text = self._values[source]
        if not text:
            self._message(f"BOARDIO_ERROR: {source.replace('_', ' ')} is empty")
            raise InvalidValue(f"{self.name}: the {source.replace('_', ' ')} is empty; "
                               f"write a sequence first")
        parse_sequence(text)
        self._set(target, text)
        self._message("BOARDIO_READY")
        return "BOARDIO_READY"

    def _start(self, text: str) -> Deferred[int]:
        if self._values["running"]:
            raise DeviceBusy(f"{self.name}: a sequence is already running; "
                             f"stop_sequence first or wait for 'Sequence complete'")
        rows = parse_sequence(text)
        done: Deferred[int] = Deferred()
        self._run_done = done
        self._rows_done = 0
        self._set("running", True)
        self._message("BOARDIO_READY")

        def step(index: int) -> None:
            self._timer = None
            if not self._values["running"]:
                return
            if index >= len(rows):
                self._finish(len(rows), "Sequence complete")
                return
            d = self._apply(rows[index])

            def next_row(_: Any) -> None:
                if self._run_done is done:
                    self._rows_done += 1
                if self._values["running"] and self._run_done is done:
                    self._timer = self._reactor.callLater(0, step, index + 1)

            d.addCallback(next_row)

        self._timer = self._reactor.callLater(0, step, 0)
        return done

    def _finish(self, count: int, message: str) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._set("running", False)
        self._message(message)
        done, self._run_done = self._run_done, None
        if done is not None:
            done.callback(count)

    def action_run_sequence(self, rows: Any) -> Deferred[int]:
        self.action_write_sequence(rows)
        self.action_boardio("uSeq")
        return self._start(self._values["loaded"])

    def action_store_standalone(self, rows: Any) -> str:
        self.action_write_sequence(rows, standalone=True)
        return str(self.action_boardio("uSeqStandalone"))

    def action_stop_sequence(self) -> bool:
        if not self._values["running"]:
            return False
        self._finish(self._rows_done, "Sequence stopped")
        return True

    def action_boot(self) -> Deferred[int]:
        text = self._values["standalone_loaded"]
        if not text:
            self._message("BOARDIO_ERROR: standalone sequence file is empty or missing")
            return succeed(0)
        return self._start(text)
