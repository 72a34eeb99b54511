# -*- test-case-name: tests.test_devices_plugins -*-
"""
The built-in device types, as L{IDevicePlugin} providers.

Each plugin names a type a config file can use (C{type = "sim.stage"}), the
options it accepts (an L{Option} schema) and builds the device.  Devices that
own a worker thread (C{visa}, C{python} with C{threaded = true}) also provide
L{twisted.application.service.IService}: add them to the lab's service tree
so their threads start and stop with it.

L{DEVICE_PLUGINS} lists them; L{SIMULATED_LAB} is the built-in simulated lab.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from twisted.plugin import IPlugin
from zope.interface import implementer

from twisted_lab.errors import ConfigError
from twisted_lab.interfaces import IDevice, IDevicePlugin
from twisted_lab.options import Option

__all__ = ["DevicePlugin", "DEVICE_PLUGINS", "SIMULATED_LAB", "plugin_for", "load_factory"]


@implementer(IPlugin, IDevicePlugin)
@dataclass(frozen=True)
class DevicePlugin:
    """
    A device type: a name, a schema and a builder.

    @ivar type_name: the name used in config files.
    @ivar description: one line.
    @ivar options: option name to L{Option}.
    @ivar builder: C{builder(name, options, reactor) -> IDevice}.
    """

    type_name: str
    description: str
    options: Mapping[str, Option]
    builder: Callable[[str, dict[str, Any], Any], Any] = field(repr=False)
    #: C{""} when the type is usable in this environment, else why not
    #: (a missing package, a Python too old); C{None}: always usable.
    requires: Callable[[], str] | None = field(default=None, repr=False)
    #: checks validated options against the driver (raises L{ConfigError}
    #: naming the key), without connecting to anything.
    checker: Callable[[dict[str, Any]], object] | None = field(default=None, repr=False)

    def make_device(self, name: str, options: dict[str, Any], reactor: Any) -> Any:
        """Build a device from validated options (see L{IDevicePlugin.make_device})."""
        return self.builder(name, options, reactor)

    def unavailable(self) -> str:
        """C{""} when the type can be used here, else the reason it cannot."""
        return self.requires() if self.requires is not None else ""

    def check(self, options: dict[str, Any]) -> None:
        """
        Check validated options against the driver (C{--check}).

        @raise ConfigError: naming the option at fault (or why the type is
            unusable here).
        """
        reason = self.unavailable()
        if reason:
            raise ConfigError(f"device type {self.type_name!r} cannot run here: {reason}",
                              key="type")
        if self.checker is not None:
            self.checker(options)


def _seed() -> Option:
    return Option(int, -1, "Noise generator seed (-1: random).")


def _seed_of(options: Mapping[str, Any]) -> int | None:
    seed = options.get("seed", -1)
    return None if seed is None or seed < 0 else int(seed)


# -- builders (imports are lazy so that loading the plugin list is cheap) ----------


def _stage(name: str, o: dict[str, Any], reactor: Any) -> Any:
    from twisted_lab.devices.simulated import SimulatedStage

    return SimulatedStage(name, reactor, units=o["units"], speed=o["speed"],
                          minimum=o["minimum"], maximum=o["maximum"], home=o["home"])


def _powermeter(name: str, o: dict[str, Any], reactor: Any) -> Any:
    from twisted_lab.devices.simulated import SimulatedPowerMeter

    return SimulatedPowerMeter(name, reactor, wavelength=o["wavelength"], sensor=o["sensor"],
                               seed=_seed_of(o))


def _spectrometer(name: str, o: dict[str, Any], reactor: Any) -> Any:
    from twisted_lab.devices.simulated import SimulatedSpectrometer

    return SimulatedSpectrometer(name, reactor, pixels=o["pixels"], center=o["center"],
                                 exposure=o["exposure"], dispersion=o["dispersion"],
                                 seed=_seed_of(o))


def _camera(name: str, o: dict[str, Any], reactor: Any) -> Any:
    from twisted_lab.devices.simulated import SimulatedCamera

    return SimulatedCamera(name, reactor, width=o["width"], height=o["height"],
                           dtype=o["dtype"], exposure=o["exposure"], seed=_seed_of(o))


def _la4(name: str, o: dict[str, Any], reactor: Any) -> Any:
    from twisted_lab.devices.simulated import SimulatedLA4Board

    return SimulatedLA4Board(name, reactor)


def _visa(name: str, o: dict[str, Any], reactor: Any) -> Any:
    from twisted_lab.devices.visa import SIM_BACKEND, VisaDevice, parse_table

    backend = o["backend"]
    if backend == "sim":
        backend = SIM_BACKEND
    if backend.endswith("@sim") and importlib.util.find_spec("pyvisa_sim") is None:
        raise ConfigError("the simulated VISA backend needs pyvisa-sim, an optional extra: "
                          "pip install 'twisted-lab[sim]'", key=f"devices.{name}.backend")
    return VisaDevice(name, reactor, o["resource"], backend=backend,
                      parameters=parse_table(o["parameters"]), timeout=o["timeout"],
                      read_termination=o["read_termination"],
                      write_termination=o["write_termination"])


def load_factory(spec: str) -> Callable[..., Any]:
    """
    Import C{"package.module:callable"} (never evaluated as code).

    @raise ConfigError: a malformed spec, a missing module or attribute, or
        something that is not callable.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"factory must look like 'package.module:callable', got {spec!r}",
                          key="factory")
    names = attribute.split(".")
    if not all(n.isidentifier() for n in names) or not all(
            p.isidentifier() for p in module_name.split(".")):
        raise ConfigError(f"factory {spec!r} is not a dotted module path and attribute name",
                          key="factory")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"cannot import module {module_name!r}: {e}", key="factory") from None
    for n in names:
        try:
            target = getattr(target, n)
        except AttributeError:
            raise ConfigError(f"module {module_name!r} has no attribute {attribute!r}",
                              key="factory") from None
    if not callable(target):
        raise ConfigError(f"factory {spec!r} is not callable", key="factory")
    return target  # type: ignore[no-any-return]


def _python(name: str, o: dict[str, Any], reactor: Any) -> Any:
    from twisted_lab.devices.wrap import WrappedDevice

    factory = load_factory(o["factory"])
    try:
        obj = factory(**o["kwargs"])
    except Exception as e:
        raise ConfigError(f"{o['factory']}(**kwargs) failed: {type(e).__name__}: {e}",
                          key="kwargs") from None
    if IDevice.providedBy(obj):
        return obj
    return WrappedDevice(name, obj, reactor, threaded=o["threaded"], deadline=o["timeout"],
                         include=o["include"] or None, exclude=o["exclude"],
                         writable=o["writable"])


_SCPI_ITEMS: dict[str, Option] = {
    "name": Option(str, doc="Parameter name."),
    "query": Option(str, doc="Query command, e.g. 'VOLT?'."),
    "type": Option(str, "float", "Value type.", choices=("float", "int", "bool", "str")),
    "write": Option(str, "", "Write template, e.g. 'VOLT {value:.3f}' ('' = read-only)."),
    "units": Option(str, "", "Units."),
    "readonly": Option(bool, False, "Read-only even with a write template."),
    "minimum": Option(float, None, "Lowest value."),
    "maximum": Option(float, None, "Highest value."),
    "choices": Option(list, None, "Allowed values (needed to write a str parameter)."),
    "doc": Option(str, "", "One line."),
}


STAGE = DevicePlugin("sim.stage", "Simulated linear stage (moves take time).", {
    "units": Option(str, "mm", "Position units."),
    "speed": Option(float, 10.0, "Speed in units per second."),
    "minimum": Option(float, -100.0, "Lowest position."),
    "maximum": Option(float, 100.0, "Highest position."),
    "home": Option(float, 0.0, "Home position."),
}, _stage)

POWERMETER = DevicePlugin("sim.powermeter", "Simulated optical power meter (0D).", {
    "wavelength": Option(float, 632.8, "Initial WAVELENGTH in nm."),
    "sensor": Option(str, "S120C", "Sensor head.", choices=("S120C", "S121C", "S302C")),
    "seed": _seed(),
}, _powermeter)

SPECTROMETER = DevicePlugin("sim.spectrometer", "Simulated spectrometer (1D, wavelength axis).", {
    "pixels": Option(int, 1024, "Number of pixels."),
    "center": Option(float, 600.0, "Central wavelength in nm."),
    "exposure": Option(float, 0.01, "Exposure in s."),
    "dispersion": Option(float, 0.25, "nm per pixel."),
    "seed": _seed(),
}, _spectrometer)

CAMERA = DevicePlugin("sim.camera", "Simulated camera (2D gaussian spot with noise).", {
    "width": Option(int, 512, "Image width in pixels (up to 4096)."),
    "height": Option(int, 512, "Image height in pixels (up to 4096)."),
    "dtype": Option(str, "float64", "Pixel type.", choices=("float64", "uint16")),
    "exposure": Option(float, 0.01, "Exposure in s."),
    "seed": _seed(),
}, _camera)

LA4 = DevicePlugin("sim.la4", "Simulated LA4 lighting board (lights, fans, polarizer, "
                   "sequences).", {}, _la4)

VISA = DevicePlugin("visa", "A SCPI instrument through pyvisa, on its own worker thread.", {
    "resource": Option(str, doc="VISA resource name, e.g. 'TCPIP::10.0.0.5::INSTR'."),
    "backend": Option(str, "@py", "pyvisa backend: '@py', '@ivi', 'sim' (the shipped "
                      "simulated instruments) or '<file.yaml>@sim'."),
    "timeout": Option(float, 5.0, "Deadline of each call in s."),
    "read_termination": Option(str, "\n", "Read termination."),
    "write_termination": Option(str, "\n", "Write termination."),
    "parameters": Option(list, [], "SCPI parameter table ([[devices.X.parameters]] tables).",
                         items=_SCPI_ITEMS),
}, _visa)

PYTHON = DevicePlugin("python", "Any Python object, wrapped (attributes, properties, "
                      "methods).", {
    "factory": Option(str, doc="'package.module:callable' returning the object."),
    "kwargs": Option(dict, {}, "Keyword arguments for the factory."),
    "threaded": Option(bool, True, "Run every access on a worker thread, with the timeout "
                                   "(false: on the reactor, for objects that never block)."),
    "timeout": Option(float, 5.0, "Deadline of each call in s (threaded only)."),
    "include": Option(list, [], "Expose only these names (empty: all public names).",
                      items={"*": Option(str)}),
    "exclude": Option(list, [], "Never expose these names.", items={"*": Option(str)}),
    "writable": Option(list, [], "Parameters clients may write (empty: none, every attribute "
                                 "read-only; [\"*\"]: all).", items={"*": Option(str)}),
}, _python)

def _parameter_actuator(name: str, o: dict[str, Any], reactor: Any) -> Any:
    from twisted_lab.devices.adapters import ParameterActuator

    return ParameterActuator(name, o["device"], o["parameter"], o["units"], o["home"])


def _parameter_detector(name: str, o: dict[str, Any], reactor: Any) -> Any:
    from twisted_lab.devices.adapters import ParameterDetector

    return ParameterDetector(name, o["device"], o["parameters"])


PARAMETER_ACTUATOR = DevicePlugin(
    "adapter.actuator", "One parameter of another device, as an actuator (move = write it).", {
        "device": Option(str, doc="The adapted device (any registry device, local or remote)."),
        "parameter": Option(str, doc="The parameter moved."),
        "units": Option(str, "", "Position units."),
        "home": Option(float, 0.0, "Home position."),
    }, _parameter_actuator)

PARAMETER_DETECTOR = DevicePlugin(
    "adapter.detector", "Parameters of another device, as a 0D detector (grab = read them).", {
        "device": Option(str, doc="The adapted device (any registry device, local or remote)."),
        "parameters": Option(list, doc="The parameters read by each grab.",
                             items={"*": Option(str)}),
    }, _parameter_detector)

def _missing(*modules: str, extra: str = "") -> str:
    """C{""} when every module can be found, else what to install."""
    import importlib.util

    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            hint = f" (pip install {extra})" if extra else ""
            return f"the Python package {module!r} is not installed{hint}"
    return ""


def _sim_backend(value: str) -> str:
    if value == "sim":
        from twisted_lab.devices.visa import SIM_BACKEND

        return SIM_BACKEND
    return value


def _pymeasure_kwargs(o: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(o["kwargs"])
    if o["visa_library"]:
        kwargs["visa_library"] = _sim_backend(o["visa_library"])
    return kwargs


def _pymeasure(name: str, o: dict[str, Any], reactor: Any) -> Any:
    from twisted_lab.devices.pymeasure_device import PymeasureDevice, check_instrument

    cls = check_instrument(o["instrument"], o["kwargs"])
    return PymeasureDevice(name, reactor, cls, o["adapter"], _pymeasure_kwargs(o),
                           deadline=o["timeout"], retry=o["retry"])


def _check_pymeasure(o: dict[str, Any]) -> None:
    from twisted_lab.devices.pymeasure_device import check_instrument

    check_instrument(o["instrument"], o["kwargs"])


PYMEASURE = DevicePlugin(
    "pymeasure", "A pymeasure Instrument subclass (properties, validators, channels), on its "
    "own worker thread.", {
        "instrument": Option(str, doc="'package.module:Class', a pymeasure Instrument subclass, "
                             "e.g. 'pymeasure.instruments.keysight:KeysightE36312A'."),
        "adapter": Option(str, doc="The adapter: a VISA resource name, e.g. 'GPIB0::7::INSTR'."),
        "visa_library": Option(str, "", "pyvisa backend: '' (default), '@py', 'sim' (the "
                               "shipped simulated instruments) or '<file.yaml>@sim'."),
        "kwargs": Option(dict, {}, "More constructor arguments (read_termination, ...)."),
        "timeout": Option(float, 5.0, "Deadline of each call in s."),
        "retry": Option(float, 5.0, "Seconds between connection attempts."),
    }, _pymeasure, requires=lambda: _missing("pymeasure", extra="twisted_lab[pymeasure]"),
    checker=_check_pymeasure)

class OpenSchema(dict):  # type: ignore[type-arg]
    """
    An option schema that also accepts keys it does not declare (the driver
    class's own constructor arguments), of any type; C{--check} checks them
    against the class.
    """

    def get(self, key: Any, default: Any = None) -> Any:
        """The declared option, or one that accepts any value."""
        if key in self:
            return self[key]
        return Option(object, None, "An argument of the driver class.")


_PLESTY_OWN = ("package", "class", "timeout", "retry", "connect_timeout")


def _plesty_arguments(o: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in o.items() if k not in _PLESTY_OWN}


def _hosted(check: Callable[[dict[str, Any]], tuple[Any, Any]], make: Callable[[], Any]
            ) -> Callable[[str, dict[str, Any], Any], Any]:
    """
    The factory of a hosted-driver type (PLESTY packages, PyMoDAQ plugins):
    C{make()} imports the maker (and may refuse first, with a
    L{ConfigError}); C{check(options)} loads and checks the driver (what it
    returns is handed to the maker); the maker gets the common
    C{timeout}/C{retry}/C{connect_timeout} options.
    """
    def factory(name: str, o: dict[str, Any], reactor: Any) -> Any:
        maker = make()
        driver, arguments = check(o)
        return maker(name, reactor, driver, arguments, deadline=o["timeout"],
                     retry=o["retry"], connect_deadline=o["connect_timeout"])
    return factory


def _check_plesty(o: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from twisted_lab.devices.plesty_device import check_arguments, load_class

    cls = load_class(o["package"], o["class"])
    check_arguments(cls, _plesty_arguments(o))
    return cls, _plesty_arguments(o)


def _make_plesty() -> Any:
    from twisted_lab.devices.plesty_device import make_plesty_device, python_too_old

    reason = python_too_old()
    if reason:
        raise ConfigError(reason, key="type")
    return make_plesty_device


def _plesty_requires() -> str:
    from twisted_lab.devices.plesty_device import python_too_old

    return python_too_old() or _missing("plesty.lib", extra="plesty-lib")


PLESTY = DevicePlugin(
    "plesty", "A PLESTY device package's driver (schemas → parameters and actions), hosted "
    "on its own worker thread; Python >= 3.12. Every other key is an argument of the "
    "driver class (address = \"mock:PM400\", port = \"mock\", ...).", OpenSchema({
        "package": Option(str, "", "The package, e.g. 'plesty.thorlabs_powermeter' (its "
                          "Device class)."),
        "class": Option(str, "", "Or the class, 'module:Class'."),
        "timeout": Option(float, 10.0, "Deadline of each call in s (an operation's own "
                          "budget, when longer, wins)."),
        "retry": Option(float, 5.0, "Seconds between connection attempts."),
        "connect_timeout": Option(float, 30.0, "Deadline of connect in s."),
    }), _hosted(_check_plesty, _make_plesty), requires=_plesty_requires, checker=_check_plesty)

def _check_pymodaq(o: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    from twisted_lab.devices.pymodaq_device import check_plugin

    check_plugin(o["plugin"], o["settings"])
    return o["plugin"], o["settings"]


def _make_pymodaq() -> Any:
    from twisted_lab.devices.pymodaq_device import make_pymodaq_device

    return make_pymodaq_device


PYMODAQ_PLUGIN = DevicePlugin(
    "pymodaq.plugin", "A PyMoDAQ 5 instrument plugin (DAQ_Move_*, DAQ_xDViewer_*) hosted "
    "headless (Qt on its own thread).", {
        "plugin": Option(str, doc="'module:Class', e.g. 'pymodaq_plugins_mock.daq_move_plugins."
                         "daq_move_Mock:DAQ_Move_Mock'."),
        "settings": Option(dict, {}, "Initial settings by path ('tau', 'bounds.is_bounds').",
                           free_keys=True),
        "timeout": Option(float, 10.0, "Deadline of each call (a whole move, a grab) in s."),
        "retry": Option(float, 5.0, "Seconds between ini_stage/ini_detector attempts."),
        "connect_timeout": Option(float, 30.0, "Deadline of ini_stage/ini_detector in s."),
    }, _hosted(_check_pymodaq, _make_pymodaq),
    requires=lambda: _missing("pymodaq", "qtpy", extra="twisted_lab[pymodaq]"),
    checker=_check_pymodaq)

#: Every built-in device type.
DEVICE_PLUGINS: list[DevicePlugin] = [STAGE, POWERMETER, SPECTROMETER, CAMERA, LA4, VISA, PYTHON,
                                      PARAMETER_ACTUATOR, PARAMETER_DETECTOR, PYMEASURE,
                                      PLESTY, PYMODAQ_PLUGIN]

#: The built-in simulated lab's local devices: device name to (type name, options).
#: Its fifth device, C{la4}, is not here: the C{[la4]} protocol section of the
#: simulated lab runs a simulated LA4 node and coordinates it as the device
#: C{la4}, so the board reaches the registry over its real wire protocol (a
#: local C{sim.la4} model of the same name would clash with it).
SIMULATED_LAB: dict[str, tuple[str, dict[str, Any]]] = {
    "stage": ("sim.stage", {}),
    "powermeter": ("sim.powermeter", {}),
    "spectrometer": ("sim.spectrometer", {}),
    "camera": ("sim.camera", {"width": 512, "height": 512, "dtype": "float64"}),
}


def plugin_for(type_name: str) -> DevicePlugin:
    """
    The built-in plugin of a type.

    @raise ConfigError: unknown type (naming the known ones).
    """
    for plugin in DEVICE_PLUGINS:
        if plugin.type_name == type_name:
            return plugin
    raise ConfigError(f"unknown device type {type_name!r}; known types: "
                      f"{', '.join(p.type_name for p in DEVICE_PLUGINS)}", key="type")
