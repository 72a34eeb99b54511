"""
PyMoDAQ 5's own LECODirector instrument plugins from pymodaq_plugins_mock
5.3.0 (``DAQ_Move_LECODirector`` and the 2D ``DAQ_2DViewer_LECODirector``)
directing twisted_lab actors through a LECO Coordinator on 127.0.0.1 (peer
side of tests/test_leco_pymodaq_plugins.py), inside the pymodaq5 venv,
headless (QT_QPA_PLATFORM=offscreen)::

    python pymodaq5_plugins.py PORT STAGE CAMERA

Each plugin runs as its control module's worker runs it: a parent object
with ``title`` and ``status_sig`` receives its status commands (MOVE_DONE,
GET_ACTUATOR_VALUE, UNITS...), and the viewer's ``dte_signal`` carries its
data.  Prints ``CHECK <label> ok`` per check, ``SET <name> <value>`` for the
setting it changes through the director, and ``DONE``; exits non-zero on the
first mismatch.
"""
import sys
import threading
import time

import numpy as np
from qtpy import QtCore, QtWidgets

from pymodaq.control_modules.thread_commands import ThreadStatusMove
from pymodaq.utils.data import DataActuator
from pymodaq_plugins_mock.daq_move_plugins.daq_move_LECODirector import DAQ_Move_LECODirector
from pymodaq_plugins_mock.daq_viewer_plugins.plugins_2D.daq_2Dviewer_LECODirector import (
    DAQ_2DViewer_LECODirector,
)


def check(label, ok, detail=""):
    print(f"CHECK {label} {'ok' if ok else 'FAILED'} {detail}", flush=True)
    if not ok:
        raise SystemExit(f"{label} failed: {detail}")


def pump(seconds):
    """Run the Qt event loop for a while (the plugins' timers and signals)."""
    end = time.monotonic() + seconds
    app = QtWidgets.QApplication.instance()
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def until(condition, seconds, label):
    end = time.monotonic() + seconds
    app = QtWidgets.QApplication.instance()
    while time.monotonic() < end:
        app.processEvents()
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise SystemExit(f"timed out waiting for {label}")


class StatusSignal:
    """Stands for the worker's ``status_sig``: records every ThreadCommand."""

    def __init__(self):
        self.lock = threading.Lock()
        self.commands = []

    def emit(self, status):
        with self.lock:
            self.commands.append(status)

    def take(self, command, seconds=10.0):
        def found():
            with self.lock:
                for i, status in enumerate(self.commands):
                    if status.command == command:
                        return [self.commands.pop(i)]
            return None
        return until(found, seconds, f"status {command}")[0]


class Parent:
    """What a control module's worker gives its plugin: a title and a status signal."""

    def __init__(self, title):
        self.title = title
        self.status_sig = StatusSignal()


def value_of(position):
    return float(np.asarray(position.data[0]).ravel()[0])


def run_move(port, stage):
    parent = Parent("stage_director")
    plugin = DAQ_Move_LECODirector(parent=parent, host="127.0.0.1", port=port)
    plugin.settings["actor_name"] = stage
    info, initialized = plugin.ini_stage()
    check("ini_stage", initialized, info)
    until(lambda: plugin.settings.child("settings_client").children(), 10, "director settings")
    client = plugin.settings.child("settings_client")
    names = [child.name() for child in client.children()]
    check("settings_tree", names[:5] == ["units", "epsilon", "timeout", "bounds", "scaling"]
          and "speed" in names, names)
    until(lambda: plugin.axis_unit == "mm", 10, "units")
    check("units", plugin.axis_unit == "mm" and client["units"] == "mm",
          f"{plugin.axis_unit} {client['units']}")
    check("bounds", client["bounds", "is_bounds"] and
          (client["bounds", "min_bound"], client["bounds", "max_bound"]) == (-100.0, 100.0),
          [client["bounds", c] for c in ("is_bounds", "min_bound", "max_bound")])
    check("set_units_sent", plugin.axis_unit in plugin.axis_units, plugin.axis_units)

    plugin.move_abs(DataActuator(data=1.5, units="mm"))
    done = parent.status_sig.take(ThreadStatusMove.MOVE_DONE)
    check("move_abs", abs(value_of(done.attribute) - 1.5) < 1e-9, done.attribute)
    plugin.move_rel(DataActuator(data=0.25, units="mm"))
    done = parent.status_sig.take(ThreadStatusMove.MOVE_DONE)
    check("move_rel", abs(value_of(done.attribute) - 1.75) < 1e-9, done.attribute)
    plugin.move_home()
    done = parent.status_sig.take(ThreadStatusMove.MOVE_DONE)
    check("move_home", abs(value_of(done.attribute)) < 1e-9, done.attribute)
    plugin.stop_motion()
    here = parent.status_sig.take(ThreadStatusMove.GET_ACTUATOR_VALUE)
    check("stop_motion", abs(value_of(here.attribute)) < 1e-9, here.attribute)
    plugin.get_actuator_value()
    here = parent.status_sig.take(ThreadStatusMove.GET_ACTUATOR_VALUE)
    check("get_actuator_value", abs(value_of(here.attribute)) < 1e-9
          and here.attribute.units == "mm", f"{here.attribute} {here.attribute.units}")

    # a setting changed through the director: as DAQ_Move commits a changed child
    speed = client.child("speed")
    speed.setValue(25.0)
    plugin.commit_settings(speed)
    print("SET speed 25.0", flush=True)
    until(lambda: client["speed"] == 25.0, 5, "speed echoed")
    pump(0.3)
    plugin.close()


def run_viewer(port, camera):
    parent = Parent("camera_director")
    plugin = DAQ_2DViewer_LECODirector(parent=parent, host="127.0.0.1", port=port)
    plugin.settings["actor_name"] = camera
    received = []
    plugin.dte_signal.connect(received.append, QtCore.Qt.DirectConnection)
    info, initialized = plugin.ini_detector()
    check("ini_detector", initialized, info)
    until(lambda: plugin.settings.child("settings_client").children(), 10, "detector settings")
    names = [c.name() for c in plugin.settings.child("settings_client").children()]
    check("detector_settings", "exposure" in names and "width" in names, names)
    plugin.grab_data(1)
    dte = until(lambda: received and received[0], 15, "camera frame")
    (dwa,) = dte.data
    axes = sorted((axis.index, axis.label, axis.units, axis.size) for axis in dwa.axes)
    check("frame", dwa.dim.name == "Data2D" and dwa.units == "counts" and dwa.name == camera
          and dwa.labels == ["image"], f"{dwa.dim} {dwa.units} {dwa.name} {dwa.labels}")
    check("frame_shape", dwa.data[0].shape == (48, 64), dwa.data[0].shape)
    check("axes", [(i, u, n) for i, _, u, n in axes] == [(0, "px", 48), (1, "px", 64)], axes)
    plugin.close()


def main(port, stage, camera):
    app = QtWidgets.QApplication([])  # noqa: F841  (kept alive: the plugins need it)
    run_move(int(port), stage)
    run_viewer(int(port), camera)
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
