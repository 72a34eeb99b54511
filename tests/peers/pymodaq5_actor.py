"""
Real PyMoDAQ 5 modules as LECO actors (peer side of
tests/test_leco_pymodaq_interop.py), inside the pymodaq5 venv::

    python pymodaq5_actor.py PORT

Runs, headless (offscreen Qt, no UI), a ``DAQ_Move`` with the ``Mock``
actuator of pymodaq_plugins_mock named ``pmd5_move`` and a ``DAQ_Viewer``
with the ``Mock`` 1D detector named ``pmd5_viewer``, each connected to the
LECO Coordinator on 127.0.0.1:PORT the way PyMoDAQ does it (the module's
"LECO options" settings, then ``connect_leco(True)``, which starts its
``ActorListener``).  The Qt event loop delivers the listener's signals.
Prints ``READY`` once both are initialised and signed in, then runs until
stdin says ``quit`` or closes.
"""
import os
import sys
import threading
import types

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# pymodaq 5.3.8's module UIs import pymodaq_plugin_manager (its plugin
# manager window), which the PEERS.md install (--no-deps) leaves out; the
# headless modules never use it, so a stub module is enough.
_manager = types.ModuleType("pymodaq_plugin_manager.manager")
_manager.PluginManager = type("PluginManager", (), {})
_package = types.ModuleType("pymodaq_plugin_manager")
_package.manager = _manager
sys.modules.setdefault("pymodaq_plugin_manager", _package)
sys.modules.setdefault("pymodaq_plugin_manager.manager", _manager)

from qtpy.QtCore import QTimer  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

from pymodaq.control_modules.daq_move import DAQ_Move  # noqa: E402
from pymodaq.control_modules.daq_viewer import DAQ_Viewer  # noqa: E402


def wait_for(app, predicate, timeout, what):
    import time
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.01)


def connect(module, name, port):
    leco = module.settings.child("main_settings", "leco")
    leco.child("leco_name").setValue(name)
    leco.child("host").setValue("127.0.0.1")
    leco.child("port").setValue(port)
    module.connect_leco(True)


def main(port):
    app = QApplication.instance() or QApplication([])
    move = DAQ_Move(None, title="pmd5_move")
    move.actuator = "Mock"
    move.init_hardware(True)
    viewer = DAQ_Viewer(None, title="pmd5_viewer")
    viewer.daq_type = "DAQ1D"
    viewer.detector = "Mock"
    viewer.init_hardware(True)
    wait_for(app, lambda: move.initialized_state and viewer.initialized_state, 60, "init")
    connect(move, "pmd5_move", port)
    connect(viewer, "pmd5_viewer", port)
    wait_for(app, lambda: move.settings["main_settings", "leco", "leco_connected"]
             and viewer.settings["main_settings", "leco", "leco_connected"], 30, "LECO sign-in")
    print("READY", flush=True)

    stop = threading.Event()

    def read_stdin():
        for line in sys.stdin:
            if line.strip() == "quit":
                break
        stop.set()

    threading.Thread(target=read_stdin, daemon=True).start()
    timer = QTimer()
    timer.timeout.connect(lambda: app.quit() if stop.is_set() else None)
    timer.start(100)
    app.exec_()
    for module in (move, viewer):
        try:
            module.connect_leco(False)
            module.quit_fun()
        except Exception as e:  # closing is best effort
            print("close:", e, flush=True)
    print("BYE", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
