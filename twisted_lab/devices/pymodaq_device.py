# -*- test-case-name: tests.test_devices_pymodaq -*-
"""
PyMoDAQ 5 instrument plugins (C{DAQ_Move_*}, C{DAQ_xDViewer_*}) hosted
headless, without PyMoDAQ's GUI.

Qt never runs on the reactor thread: one L{QtLoop} thread per process runs
a C{QCoreApplication} event loop (offscreen) and owns every plugin object.
Each device's blocking calls go through its L{DriverRunner} (deadlines,
busy) to that thread and wait for the plugin there:

  - the plugin's settings tree becomes parameters named by their path
    (C{"tau"}, C{"bounds.max_bound"}), with PyMoDAQ's types, limits, choices,
    read-only flags and titles; a write sets the value in the tree and calls
    the plugin's C{commit_settings}, as PyMoDAQ's control modules do;
  - C{ini_stage}/C{ini_detector} run when the lab starts (the device is
    offline until they report success), C{close} when it stops;
  - a C{DAQ_Move} plugin is an L{IActuator}: a move calls C{move_abs} /
    C{move_rel} / C{move_home} and then C{poll_moving}, and completes when
    the plugin emits C{move_done_signal} (PyMoDAQ's own polling timer, on
    the Qt thread); PyMoDAQ's C{RAISE_TIMEOUT} status fails the move;
  - a C{DAQ_Viewer} plugin is an L{IDetector}: a grab calls C{grab_data}
    and returns the C{DataToExport} it emits, mapped to an L{Export} (every
    C{DataWithAxes} to a L{Signal}: class name, name, channels, labels,
    units, axes, source, distribution, navigation indexes, errors, extra
    attributes, origin, timestamp);
  - the plugin's status signals (C{emit_status}) become C{changed} events
    of its read-only C{status} parameter.

PyMoDAQ is an optional extra: C{pip install twisted_lab[pymodaq]}.
"""
from __future__ import annotations

import concurrent.futures
import inspect
import os
import threading
import time
from typing import Any, Callable

from twisted.internet.defer import Deferred, fail, succeed

from twisted_lab.data import SIGNAL_KINDS, Axis, Export, Signal
from twisted_lab.description import Description, Parameter
from twisted_lab.devices.base import BaseActuator, BaseDetector
from twisted_lab.devices.hosted import HostedDriver
from twisted_lab.errors import ConfigError, DeviceTimeout, DriverError

__all__ = ["QtLoop", "QtWorker", "qt_loop", "load_plugin", "check_plugin", "setting_paths",
           "make_pymodaq_device", "PymodaqActuator", "PymodaqDetector", "export_from_pymodaq", "settings_parameters"]

_TYPES = {"int": "int", "float": "float", "slide": "float", "bool": "bool", "led": "bool",
          "bool_push": "bool", "led_push": "bool", "str": "str", "text": "str",
          "browsepath": "str", "list": "any"}
_SKIPPED = ("group", "action", "itemselect", "table", "table_view", "date", "date_time",
            "time", "pixmap", "pixmap_check", "color", "colormap", "text_pb", "numeric")
#: the read-only parameter carrying the plugin's last status message
STATUS = "status"


class QtWorker:
    """
    One Qt thread (a C{QThread} with its own event loop) where one plugin
    lives and runs, so that a plugin that blocks stalls nobody else.
    """

    def __init__(self, invoker: Any, thread: Any) -> None:
        self._invoker = invoker
        self._thread = thread

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        """Run C{fn(*args)} on this Qt thread; a future of its result."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._invoker.call.emit((fn, args, future))
        return future

    def run(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
        """Run C{fn(*args)} on this Qt thread and wait for it (never from the reactor)."""
        return self.submit(fn, *args).result(timeout)

    def quit(self) -> None:
        """Stop the thread's event loop (the thread ends once its current call returns)."""
        self._thread.quit()


def _invoker_class() -> Any:
    from qtpy import QtCore

    class Invoker(QtCore.QObject):  # type: ignore[misc]
        call = QtCore.Signal(object)

        @QtCore.Slot(object)  # type: ignore[untyped-decorator]
        def execute(self, job: Any) -> None:
            fn, args, future = job
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args))
            except BaseException as e:
                future.set_exception(e)

    return Invoker


class QtLoop:
    """
    The process's Qt: a thread running the C{QCoreApplication} event loop
    (offscreen), which makes one L{QtWorker} thread per hosted plugin.
    """

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._main: QtWorker | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the Qt thread (idempotent); raise if Qt cannot start."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="twisted_lab-qt",
                                                daemon=True)
                self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("the Qt thread did not start within 60 s")
        if self._error is not None:
            raise RuntimeError(f"Qt did not start: {self._error}")

    def _run(self) -> None:
        try:
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
            from qtpy import QtCore

            app = QtCore.QCoreApplication.instance() or QtCore.QCoreApplication(["twisted_lab"])
            invoker = _invoker_class()()
            invoker.call.connect(invoker.execute, QtCore.Qt.QueuedConnection)
            self._main = QtWorker(invoker, None)
            self._app = app
        except BaseException as e:
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        app.exec_()

    def worker(self, name: str) -> QtWorker:
        """A new Qt thread of its own (blocking; never call it from the reactor thread)."""
        self.start()
        assert self._main is not None

        def make() -> QtWorker:
            from qtpy import QtCore

            thread = QtCore.QThread()
            thread.setObjectName(f"qt-{name}")
            invoker = _invoker_class()()
            invoker.moveToThread(thread)
            invoker.call.connect(invoker.execute, QtCore.Qt.QueuedConnection)
            thread.start()
            return QtWorker(invoker, thread)

        return self._main.run(make, timeout=60)  # type: ignore[no-any-return]


_LOOP = QtLoop()


def qt_loop() -> QtLoop:
    """The process's L{QtLoop}."""
    return _LOOP


def load_plugin(spec: str) -> type:
    """
    The plugin class of C{"module:Class"}: a PyMoDAQ C{DAQ_Move_base} or
    C{DAQ_Viewer_base} subclass.

    @raise ConfigError: naming the key C{plugin}.
    """
    from twisted_lab.devices.plugins import load_factory

    try:
        cls: Any = load_factory(spec)
    except ConfigError as e:
        raise ConfigError(e.reason, key="plugin") from None
    kind = _kind(cls)
    if kind is None:
        raise ConfigError(f"{spec!r} is not a PyMoDAQ instrument plugin (a DAQ_Move_base or "
                          f"DAQ_Viewer_base subclass)", key="plugin")
    return cls  # type: ignore[no-any-return]


def setting_paths(params: Any, prefix: str = "") -> set[str]:
    """The dotted paths of a plugin's C{params} declaration (no Qt needed)."""
    out: set[str] = set()
    for item in params or []:
        if not isinstance(item, dict) or "name" not in item:
            continue
        path = prefix + str(item["name"])
        if item.get("children") or item.get("type") == "group":
            out |= setting_paths(item.get("children"), path + ".")
        else:
            out.add(path)
    return out


def check_plugin(spec: str, settings: dict[str, Any]) -> None:
    """
    Check a plugin spec and its settings against the plugin's declared
    settings tree.

    @raise ConfigError: naming the key at fault.
    """
    cls = load_plugin(spec)
    known = setting_paths(getattr(cls, "params", []))
    for key in settings:
        if key not in known:
            raise ConfigError(f"{cls.__name__} has no setting {key!r}; its settings are: "
                              f"{', '.join(sorted(known))}", key=f"settings.{key}")


def constructor_arguments(cls: type) -> set[str]:
    """
    The keyword arguments a plugin class's constructor takes, following
    C{**kwargs} up the MRO (C{DAQ_2DViewer_LECODirector} passes C{host} and
    C{port} on to its base), without C{parent} and C{params_state}.
    """
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            break
        names |= {p.name for p in parameters
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return names - {"self", "parent", "params_state"}


def _kind(cls: Any) -> str | None:
    from pymodaq.control_modules.move_utility_classes import DAQ_Move_base
    from pymodaq.control_modules.viewer_utility_classes import DAQ_Viewer_base

    if isinstance(cls, type) and issubclass(cls, DAQ_Move_base):
        return "actuator"
    if isinstance(cls, type) and issubclass(cls, DAQ_Viewer_base):
        return "detector"
    return None


# -- settings ------------------------------------------------------------------------------


def _leaves(settings: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = []
    for child in settings.children():
        here = path + (child.name(),)
        if child.hasChildren() or child.type() == "group":
            out += _leaves(child, here)
        elif child.type() not in _SKIPPED:
            out.append((here, child))
    return out


def plain(value: Any) -> Any:
    """A value from a settings tree as plain data (numbers, strings, lists)."""
    import numpy as np

    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "name") and hasattr(value, "value") and type(value).__module__ == "enum":
        return value.name
    return str(value)


def settings_parameters(settings: Any) -> list[Parameter]:
    """The parameters of a plugin's settings tree (on the Qt thread)."""
    parameters = []
    for path, child in _leaves(settings):
        opts = child.opts
        kind = _TYPES.get(child.type(), "any")
        minimum = maximum = None
        choices = None
        limits = opts.get("limits")
        if child.type() == "list" and limits is not None:
            values = list(limits.values()) if isinstance(limits, dict) else list(limits)
            choices = tuple(plain(v) for v in values)
            if choices and all(isinstance(c, str) for c in choices):
                kind = "str"
        elif kind in ("int", "float"):
            if isinstance(limits, (list, tuple)) and len(limits) == 2:
                minimum, maximum = limits
            minimum = opts.get("min", minimum)
            maximum = opts.get("max", maximum)
        title = str(opts.get("title") or "").rstrip(":").strip()
        tip = str(opts.get("tip") or "").strip()
        doc = title + (f" ({tip})" if tip and tip != title else "")
        parameters.append(Parameter(
            ".".join(path), kind, units=str(opts.get("suffix") or ""),
            readonly=bool(opts.get("readonly")), minimum=_number(minimum),
            maximum=_number(maximum), choices=choices, doc=doc, default=plain(child.value())))
    parameters.append(Parameter(STATUS, "str", readonly=True,
                                doc="The plugin's last status message."))
    return parameters


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


# -- data ----------------------------------------------------------------------------------


def _signal(dwa: Any) -> Signal:
    import numpy as np

    axes = []
    for axis in dwa.axes:
        data = axis.get_data() if hasattr(axis, "get_data") else axis.data
        axes.append(Axis(label=axis.label, units=axis.units, data=np.asarray(data),
                         index=int(axis.index), spread_order=int(getattr(axis, "spread_order",
                                                                               0))))
    errors = [np.asarray(e) for e in (getattr(dwa, "errors", None) or [])]
    extra = {}
    for name in getattr(dwa, "extra_attributes", []) or []:
        extra[name] = plain(getattr(dwa, name, None))
    kind = type(dwa).__name__
    if kind not in SIGNAL_KINDS:
        extra["pymodaq_class"] = kind
        kind = "DataWithAxes"
    return Signal(name=dwa.name, data=[np.asarray(d) for d in dwa.data],
                  labels=list(dwa.labels), units=str(dwa.units), axes=axes,
                  timestamp=float(dwa.timestamp), origin=str(dwa.origin or ""), kind=kind,
                  source=dwa.source.name, distribution=dwa.distribution.name,
                  nav_indexes=tuple(dwa.nav_indexes), errors=errors, extra=extra,
                  dim=dwa.dim.name)


def export_from_pymodaq(dte: Any) -> Export:
    """A PyMoDAQ C{DataToExport} as an L{Export} (see the module docstring)."""
    return Export(name=dte.name, signals=[_signal(dwa) for dwa in dte],
                  timestamp=float(getattr(dte, "timestamp", 0.0)))


# -- the devices ---------------------------------------------------------------------------


class _Hosted(HostedDriver):
    """What hosted actuator and detector plugins share (the plugin lives on the Qt thread)."""

    name: str
    _description: Description
    plugin: Any

    def _setup(self, reactor: Any, cls: type, settings: dict[str, Any], deadline: float,
               retry: float, connect_deadline: float) -> list[Parameter]:
        self.cls = cls
        self.initial_settings = dict(settings)
        self.deadline = deadline
        self.status_text = ""
        self._reactor_ref = reactor
        self.qt = qt_loop().worker(self.name)
        self.plugin, parameters = self.qt.run(self._make_plugin, timeout=60)
        self.init_hosted(reactor, deadline, retry, connect_deadline)
        return parameters  # type: ignore[no-any-return]

    # on the Qt thread
    def _make_plugin(self) -> tuple[Any, list[Parameter]]:
        from qtpy import QtCore

        device = self

        class Parent(QtCore.QObject):  # type: ignore[misc]
            """What a plugin expects of its control module: a title and a status signal."""

            status_sig = QtCore.Signal(object)

            def __init__(self) -> None:
                super().__init__()
                self.title = device.name

        parent = Parent()
        parent.status_sig.connect(self._status)
        # settings that are also constructor arguments (a LECO director
        # plugin's host and port) are given to the constructor as well
        accepted = constructor_arguments(self.cls)
        kwargs = {k: v for k, v in self.initial_settings.items() if k in accepted}
        plugin = self.cls(parent, None, **kwargs)
        plugin._twisted_lab_parent = parent  # the plugin must not outlive its parent
        # the values now; committed to the hardware once initialised
        for key, value in self.initial_settings.items():
            plugin.settings.child(*key.split(".")).setValue(value)
        return plugin, settings_parameters(plugin.settings)

    def _commit_initial(self) -> None:
        # on the Qt thread, after ini_stage/ini_detector
        for key in self.initial_settings:
            self._commit(key)

    def _commit(self, key: str) -> Any:
        # on the Qt thread: what PyMoDAQ's control modules do with a changed
        # setting (the plugin's update_settings: its own side effects, such as
        # an actuator's epsilon, then commit_settings)
        child = self.plugin.settings.child(*key.split("."))
        self.plugin.update_settings({"path": ["settings", *key.split(".")], "param": child,
                                     "change": "value"})
        return plain(child.value())

    def _status(self, command: Any) -> None:
        # on the Qt thread: PyMoDAQ's ThreadCommand
        name = getattr(getattr(command, "command", None), "name", None) or str(
            getattr(command, "command", ""))
        attribute = getattr(command, "attribute", None)
        if isinstance(attribute, (list, tuple)) and attribute:
            text = str(attribute[0])
        else:
            text = "" if attribute is None else str(attribute)
        self._reactor_ref.callFromThread(self._report_status, name, text)
        if name == "RAISE_TIMEOUT":
            self._on_raise_timeout()
        elif name == "MOVE_DONE":
            # plugins that report the end of a move as a status (PyMoDAQ's LECO
            # director plugins) rather than with move_done_signal
            self._on_move_done_status(attribute)

    def _on_raise_timeout(self) -> None:
        pass

    def _on_move_done_status(self, position: Any) -> None:
        pass

    def _report_status(self, name: str, text: str) -> None:
        if name == "UPDATE_SETTINGS":
            return
        self.status_text = f"{name}: {text}" if text else name
        if hasattr(self, "_listeners"):  # not during construction
            getattr(self, "changed")(STATUS, self.status_text)

    def _qt(self, fn: Callable[..., Any], *args: Any) -> Any:
        """From the driver thread: run on the plugin's Qt thread and wait."""
        return self.qt.run(fn, *args)

    # -- parameters --------------------------------------------------------------------

    def read_parameter(self, name: str) -> Deferred[Any]:
        if name == STATUS:
            return self.drive(lambda: self.status_text)

        if not self.connected:
            return self.drive(lambda: None)  # fails with DeviceOffline, naming the reason
        # A read of the settings tree is a dictionary lookup: it is answered
        # at once, without a round trip through the driver and Qt threads
        # (PyMoDAQ's directors wait 0.1 s for get_settings), and even while a
        # plugin call overruns.  Writes go through the plugin's thread.
        try:
            return succeed(plain(self.plugin.settings.child(*name.split(".")).value()))
        except Exception as e:
            return fail(DriverError(f"device {self.name!r}: reading {name!r} failed: "
                                    f"{type(e).__name__}: {e}"))

    def write_parameter(self, name: str, value: Any) -> Deferred[Any]:
        def write() -> Any:
            self.plugin.settings.child(*name.split(".")).setValue(value)
            return self._commit(name)

        write.__name__ = f"write {name}"
        return self.drive(self._qt, write)

    def close_driver(self) -> Any:
        self._qt(self.plugin.close)

    def _signed_in(self, limit: float = 10.0) -> None:
        """
        On the driver thread: a plugin with a LECO communicator (PyMoDAQ's
        LECO director plugins) asks its actor at C{ini_*}, which fails until
        the communicator has signed in to its Coordinator; wait for that.
        """
        communicator = getattr(self.plugin, "communicator", None)
        if communicator is None:
            return
        deadline = time.monotonic() + limit
        while getattr(communicator, "namespace", None) is None:
            if time.monotonic() > deadline:
                raise ConnectionError("the plugin's LECO communicator did not sign in to its "
                                      "Coordinator")
            time.sleep(0.02)


class PymodaqActuator(_Hosted, BaseActuator):
    """A PyMoDAQ C{DAQ_Move} plugin hosted as an actuator."""

    doc = "PyMoDAQ actuator plugin"

    def __init__(self, name: str, reactor: Any, cls: type, settings: dict[str, Any] | None = None,
                 deadline: float = 10.0, retry: float = 5.0,
                 connect_deadline: float = 30.0) -> None:
        self.name = name
        parameters = self._setup(reactor, cls, settings or {}, deadline, retry, connect_deadline)
        BaseActuator.__init__(self, name, "", parameters, (), (cls.__doc__ or "").strip()
                              .split("\n")[0] or self.doc)
        self.online = False
        self._pending: concurrent.futures.Future[Any] | None = None

    def open_driver(self) -> Any:
        def ini() -> Any:
            info, initialized = self.plugin.ini_stage(None)
            self.plugin.move_done_signal.connect(self._move_done)
            if initialized:
                self._commit_initial()
            return info, initialized, self.plugin.axis_unit

        self._signed_in()
        info, initialized, units = self._qt(ini)
        if not initialized:
            raise ConnectionError(f"ini_stage did not initialise the stage: {info}")
        return units

    def opened(self, result: Any) -> None:
        self.units = str(result or "")
        old = self._description
        self._description = Description.build(self.name, list(old.parameters.values()),
                                              list(old.actions.values()), kind=old.kind,
                                              doc=old.doc, units=self.units)

    # on the Qt thread
    def _move_done(self, position: Any) -> None:
        pending = self._pending
        if pending is not None and not pending.done():
            pending.set_result(float(position.value()))

    def _on_move_done_status(self, position: Any) -> None:
        if isinstance(position, (list, tuple)) and position:
            position = position[0]
        if hasattr(position, "value"):
            self._move_done(position)

    def _on_raise_timeout(self) -> None:
        pending = self._pending
        if pending is not None and not pending.done():
            pending.set_exception(DeviceTimeout(
                f"device {self.name!r}: the plugin's own move timeout was reached"))

    def _data(self, value: float) -> Any:
        from pymodaq.utils.data import DataActuator

        return DataActuator(data=float(value), units=self.plugin.axis_unit)

    def _moving(self, start: Callable[[], Any]) -> float:
        # on the driver thread: start on the Qt thread, wait for move_done
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._pending = done

        def begin() -> None:
            self.plugin.move_is_done = False
            start()
            self.plugin.poll_moving()

        self._qt(begin)
        try:
            return float(done.result(self.runner.deadline * 4))
        finally:
            self._pending = None

    def _move(self, start: Callable[[], Any], label: str) -> Deferred[Any]:
        def run() -> float:
            return self._moving(start)

        run.__name__ = label
        return self.drive(run)

    def _move_abs(self, position: float) -> Any:
        return self._move(lambda: self.plugin.move_abs(self._data(position)), "move_abs")

    def _move_rel(self, step: float) -> Any:
        return self._move(lambda: self.plugin.move_rel(self._data(step)), "move_rel")

    def _move_home(self) -> Any:
        return self._move(self.plugin.move_home, "move_home")

    def _stop(self) -> Any:
        def stop() -> float:
            self._qt(self.plugin.stop_motion)
            return self._read_position()

        return self.drive(stop)

    def _read_position(self) -> float:
        return float(self._qt(lambda: self.plugin.get_actuator_value().value()))

    def _position(self) -> Any:
        return self.drive(self._read_position)


class PymodaqDetector(_Hosted, BaseDetector):
    """A PyMoDAQ C{DAQ_Viewer} plugin hosted as a detector."""

    doc = "PyMoDAQ detector plugin"

    def __init__(self, name: str, reactor: Any, cls: type, settings: dict[str, Any] | None = None,
                 deadline: float = 10.0, retry: float = 5.0,
                 connect_deadline: float = 30.0) -> None:
        self.name = name
        parameters = self._setup(reactor, cls, settings or {}, deadline, retry, connect_deadline)
        dims = [d for d in ("0D", "1D", "2D", "ND") if f"_{d}Viewer" in cls.__name__
                or f"{d}Viewer" in cls.__name__]
        BaseDetector.__init__(self, name, parameters, (), (cls.__doc__ or "").strip()
                              .split("\n")[0] or self.doc, dims=["Data" + d for d in dims])
        self.online = False

    def open_driver(self) -> Any:
        def ini() -> Any:
            info, initialized = self.plugin.ini_detector(None)
            if initialized:
                self._commit_initial()
            return info, initialized

        self._signed_in()
        info, initialized = self._qt(ini)
        if not initialized:
            raise ConnectionError(f"ini_detector did not initialise the detector: {info}")
        return None

    def _grab(self) -> Any:
        def grab() -> Export:
            got: concurrent.futures.Future[Any] = concurrent.futures.Future()

            def start() -> None:
                def collect(dte: Any) -> None:
                    if not got.done():
                        got.set_result(dte)

                self.plugin.dte_signal.connect(collect)
                try:
                    self.plugin.grab_data(1)
                finally:
                    if got.done():
                        self.plugin.dte_signal.disconnect(collect)
                    else:
                        got.add_done_callback(
                            lambda _: self.qt.submit(self.plugin.dte_signal.disconnect,
                                                     collect))

            self._qt(start)
            dte = got.result(self.runner.deadline * 4)
            return export_from_pymodaq(dte)

        grab.__name__ = "grab_data"
        return self.drive(grab)


def make_pymodaq_device(name: str, reactor: Any, spec: str, settings: dict[str, Any],
                        deadline: float = 10.0, retry: float = 5.0,
                        connect_deadline: float = 30.0) -> Any:
    """Build the hosted plugin device (an actuator or a detector)."""
    cls = load_plugin(spec)
    kind = PymodaqActuator if _kind(cls) == "actuator" else PymodaqDetector
    try:
        return kind(name, reactor, cls, settings, deadline, retry, connect_deadline)
    except ConfigError:
        raise
    except Exception as e:
        raise DriverError(f"device {name!r}: {spec} could not be made: "
                          f"{type(e).__name__}: {e}") from e
