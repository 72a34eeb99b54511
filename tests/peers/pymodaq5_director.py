"""
PyMoDAQ 5's own directors (``ActuatorDirector``/``DetectorDirector``) driving
twisted_lab actors over a LECO Coordinator on 127.0.0.1 (peer side of
tests/test_leco_pymodaq_interop.py), inside the pymodaq5 venv::

    python pymodaq5_director.py PORT ACTUATOR DETECTOR

The director component is a ``PymodaqListener`` (as PyMoDAQ's LECO director
modules use), which answers the actor's callbacks ``set_move_done``,
``send_position``, ``set_data``, ``set_director_settings`` and
``set_director_info``; the binary frames are decoded by the real serializall
into real ``DataActuator``/``DataToExport``/``ParameterWithPath`` objects and
checked (values, units, axes, shapes).  Prints ``CHECK <label> ok`` per
check and ``DONE`` at the end; exits non-zero on the first mismatch.
"""
import sys
import threading
import time

import numpy as np
from serializall import SerializableFactory

from pymodaq.utils.data import DataActuator, DataFromPlugins  # noqa: F401  (registers them)
from pymodaq.utils.leco.director_utils import ActuatorDirector, DetectorDirector
from pymodaq.utils.leco.pymodaq_listener import PymodaqListener
from pymodaq_data.data import DataToExport, DataWithAxes
from pymodaq_gui.parameter import Parameter, ioxml
from pymodaq_gui.parameter.utils import ParameterWithPath

ser = SerializableFactory()


def check(label, ok, detail=""):
    print(f"CHECK {label} {'ok' if ok else 'FAILED'} {detail}", flush=True)
    if not ok:
        raise SystemExit(f"{label} failed: {detail}")


class Callbacks:
    """The director side: records every callback, decoded."""

    def __init__(self):
        self.lock = threading.Lock()
        self.got = {}
        self.events = {}

    def _put(self, name, value):
        with self.lock:
            self.got.setdefault(name, []).append(value)
            self.events.setdefault(name, threading.Event()).set()

    def wait(self, name, timeout=5.0):
        with self.lock:
            event = self.events.setdefault(name, threading.Event())
        if not event.wait(timeout):
            raise SystemExit(f"no {name} callback within {timeout} s")
        with self.lock:
            event.clear()
            return self.got[name].pop(0)

    def decode(self, value, additional_payload):
        if value is None and additional_payload:
            return ser.get_apply_deserializer(additional_payload[0])
        return value

    def set_move_done(self, data=None, additional_payload=None):
        self._put("set_move_done", self.decode(data, additional_payload))

    def send_position(self, data=None, additional_payload=None):
        self._put("send_position", self.decode(data, additional_payload))

    def set_data(self, data=None, additional_payload=None):
        self._put("set_data", self.decode(data, additional_payload))

    def set_director_info(self, parameter=None, additional_payload=None):
        self._put("set_director_info", self.decode(parameter, additional_payload))

    def set_director_settings(self, settings):
        self._put("set_director_settings", settings)


def main(port, actuator, detector):
    listener = PymodaqListener(name="pmd5_director", host="127.0.0.1", port=port)
    listener.start_listen()
    cb = Callbacks()
    for method in (cb.set_move_done, cb.send_position, cb.set_data, cb.set_director_info):
        listener.register_binary_rpc_method(method, accept_binary_input=True)
    listener.register_rpc_method(cb.set_director_settings)
    communicator = listener.get_communicator()
    deadline = time.time() + 5
    while communicator.namespace is None and time.time() < deadline:
        time.sleep(0.05)
    full_name = communicator.full_name
    check("director signed in", "." in full_name, full_name)
    try:
        run(communicator, cb, actuator, detector, full_name)
    finally:
        listener.stop_listen()
    print("DONE", flush=True)


def run(communicator, cb, actuator, detector, full_name):
    act = ActuatorDirector(actor=actuator, communicator=communicator)
    act.set_remote_name(full_name)

    # move_abs with a DataActuator (binary frame) -> set_move_done(DataActuator)
    act.move_abs(DataActuator(data=2.5, units="mm"))
    done = cb.wait("set_move_done")
    check("move_done is a DataActuator", isinstance(done, DataActuator), repr(done))
    check("move_done value", abs(done.value() - 2.5) < 1e-12, repr(done.value()))
    check("move_done units", done.units == "mm", repr(done.units))
    check("move_done dim", done.dim.name == "Data0D", done.dim.name)

    act.move_rel(DataActuator(data=-0.5, units="mm"))
    check("move_rel done", abs(cb.wait("set_move_done").value() - 2.0) < 1e-12)

    act.move_abs(1.25)  # the deprecated JSON form
    check("move_abs JSON form", abs(cb.wait("set_move_done").value() - 1.25) < 1e-12)

    act.get_actuator_value()
    position = cb.wait("send_position")
    check("send_position", isinstance(position, DataActuator) and
          abs(position.value() - 1.25) < 1e-12, repr(position))

    act.move_home()
    check("move_home", abs(cb.wait("set_move_done").value()) < 1e-12)
    act.stop_motion()
    cb.wait("send_position")

    act.get_settings()
    xml = cb.wait("set_director_settings")
    params = ioxml.XML_string_to_parameter(xml)
    check("actuator settings parse", isinstance(params, list), xml[:80])

    det = DetectorDirector(actor=detector, communicator=communicator)
    det.set_remote_name(full_name)
    det.send_data_snap()
    dte = cb.wait("set_data")
    check("set_data is a DataToExport", isinstance(dte, DataToExport), repr(dte))
    check("set_data name", dte.name == detector, dte.name)
    check("signal count", len(dte) == 2, str(len(dte)))
    spectrum = dte.get_data_from_name("spectrum")
    check("1D class", isinstance(spectrum, DataFromPlugins), type(spectrum).__name__)
    check("1D shape", spectrum.shape == (128,), str(spectrum.shape))
    check("1D dim", spectrum.dim.name == "Data1D", spectrum.dim.name)
    check("1D units", spectrum.units == "counts", spectrum.units)
    check("1D values", np.allclose(spectrum.data[0], np.linspace(0, 1, 128)))
    axis = spectrum.get_axis_from_index(0)[0]
    check("1D axis label/units", (axis.label, axis.units) == ("wavelength", "nm"),
          f"{axis.label} {axis.units}")
    check("1D axis values", np.allclose(axis.get_data(), np.linspace(400, 800, 128)))
    check("1D extras", spectrum.do_plot is True and spectrum.do_save is False)
    frame = dte.get_data_from_name("frame")
    check("2D shape/dtype", frame.shape == (16, 32) and frame.data[0].dtype == np.uint16,
          f"{frame.shape} {frame.data[0].dtype}")
    check("2D dim", frame.dim.name == "Data2D", frame.dim.name)
    check("2D labels", frame.labels == ["image"], str(frame.labels))
    check("2D values", int(frame.data[0][3, 5]) == 3 * 32 + 5)
    check("2D axes", [a.label for a in frame.axes] == ["y", "x"], str(frame.axes))
    check("is DataWithAxes", isinstance(frame, DataWithAxes))

    det.send_data_grab()
    first = cb.wait("set_data")
    second = cb.wait("set_data")
    det.stop_grab()
    check("continuous grab", isinstance(first, DataToExport) and isinstance(second, DataToExport))
    time.sleep(0.3)
    with cb.lock:
        cb.got.pop("set_data", None)

    det.get_settings()
    xml = cb.wait("set_director_settings")
    params = ioxml.XML_string_to_parameter(xml)
    names = [p["name"] for p in params]
    check("detector settings", "exposure" in names, str(names))
    tree = Parameter.create(name="root", type="group", children=[
        dict(name="settings_client", type="group", children=params)])
    exposure = tree.child("settings_client", "exposure")
    check("exposure value", abs(exposure.value() - 0.1) < 1e-12, repr(exposure.value()))
    exposure.setValue(0.5)
    det.set_info(exposure)
    info = cb.wait("set_director_info")
    check("set_director_info", isinstance(info, ParameterWithPath) and
          abs(info.value() - 0.5) < 1e-12, repr(info))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
