"""
PyMoDAQ 5's own LECODirector plugins (pymodaq_plugins_mock 5.3.0) inside
PyMoDAQ 5.3.8's control modules, ``DAQ_Move`` (actuator ``LECODirector``)
and ``DAQ_Viewer`` (2D detector ``LECODirector``), headless (offscreen Qt,
no UI), directing twisted_lab actors through a LECO Coordinator on
127.0.0.1 (peer side of tests/test_leco_pymodaq_plugins.py), inside the
pymodaq5 venv::

    python pymodaq5_modules.py PORT STAGE CAMERA

The director plugin is chosen and configured as a user does it in the
module's settings (actor name, host, port), then ``init_hardware``; moves and
grabs go through the module's own methods and signals.  Prints ``CHECK
<label> ok`` per check, ``SET speed 30.0`` when it changes a setting in the
module's tree, and ``DONE``; exits non-zero on the first mismatch.
"""
import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qtpy.QtWidgets import QApplication  # noqa: E402

from pymodaq.control_modules.daq_move import DAQ_Move  # noqa: E402
from pymodaq.control_modules.daq_viewer import DAQ_Viewer  # noqa: E402
from pymodaq.utils.data import DataActuator  # noqa: E402


def check(label, ok, detail=""):
    print(f"CHECK {label} {'ok' if ok else 'FAILED'} {detail}", flush=True)
    if not ok:
        raise SystemExit(f"{label} failed: {detail}")


def wait_for(app, predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.01)


def configure(module, actor, port):
    hw = module.settings.child(module._hw_settings_name)
    hw.child("actor_name").setValue(actor)
    hw.child("host").setValue("127.0.0.1")
    hw.child("port").setValue(port)
    return hw


def run_move(app, port, stage):
    move = DAQ_Move(None, title="stage_director")
    move.actuator = "LECODirector"
    hw = configure(move, stage, port)
    move.init_hardware(True)
    wait_for(app, lambda: move.initialized_state, 30, "ini_stage")
    check("module_ini_stage", move.initialized_state)
    wait_for(app, lambda: move.units == "mm", 10, "units")
    check("module_units", move.units == "mm", move.units)
    done = []
    move.move_done_signal.connect(done.append)

    def moved(what, target):
        wait_for(app, lambda: done, 15, what)
        value = done.pop().value()
        check(what, abs(value - target) < 1e-9, value)

    move.move_abs(DataActuator(data=5.0, units="mm"))
    moved("module_move_abs", 5.0)
    move.move_rel(DataActuator(data=2.5, units="mm"))
    moved("module_move_rel", 7.5)
    move.move_home()
    moved("module_move_home", 0.0)
    speed = hw.child("settings_client", "speed")
    speed.setValue(30.0)
    print("SET speed 30.0", flush=True)
    end = time.monotonic() + 2.0
    while time.monotonic() < end:  # let the module hand the change to its plugin
        app.processEvents()
        time.sleep(0.01)
    return move


def run_viewer(app, port, camera):
    viewer = DAQ_Viewer(None, title="camera_director")
    viewer.daq_type = "DAQ2D"
    viewer.detector = "LECODirector"
    configure(viewer, camera, port)
    viewer.init_hardware(True)
    wait_for(app, lambda: viewer.initialized_state, 30, "ini_detector")
    check("module_ini_detector", viewer.initialized_state)
    grabbed = []
    viewer.grab_done_signal.connect(grabbed.append)
    viewer.snap()
    dte = wait_for(app, lambda: grabbed and grabbed[0], 20, "frame")
    dwa = dte.get_data_from_dim("Data2D")[0]
    axes = sorted((a.index, a.label, a.units, a.size) for a in dwa.axes)
    check("module_frame", dwa.data[0].shape == (48, 64) and dwa.units == "counts",
          f"{dwa.data[0].shape} {dwa.units}")
    check("module_axes", [(i, u, n) for i, _, u, n in axes] == [(0, "px", 48), (1, "px", 64)],
          axes)
    return viewer


def main(port, stage, camera):
    app = QApplication([])
    modules = [run_move(app, int(port), stage), run_viewer(app, int(port), camera)]
    for module in modules:
        try:
            module.quit_fun()
        except Exception as e:  # closing is best effort
            print("close:", e, flush=True)
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)
    print("DONE", flush=True)
    os._exit(0)  # the modules' Qt threads are done with; do not wait on their teardown


if __name__ == "__main__":
    main(*sys.argv[1:4])
