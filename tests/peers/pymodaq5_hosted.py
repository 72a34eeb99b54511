"""
PyMoDAQ 5's own directors (``ActuatorDirector``/``DetectorDirector`` of
``pymodaq.utils.leco.director_utils``, over a ``PymodaqListener`` as PyMoDAQ's
LECO director plugins use) driving hosted PyMoDAQ plugins (DAQ_Move_Mock,
DAQ_2DViewer_Mock) through the lab's LECO actors, inside the pymodaq5 venv::

    python pymodaq5_hosted.py PORT ACTUATOR DETECTOR

Prints one JSON object with what came back, decoded by the real serializall
into real PyMoDAQ objects.
"""
import json
import sys
import threading
import time

from serializall import SerializableFactory

from pymodaq.utils.data import DataActuator, DataFromPlugins  # noqa: F401  (registers them)
from pymodaq.utils.leco.director_utils import ActuatorDirector, DetectorDirector
from pymodaq.utils.leco.pymodaq_listener import PymodaqListener
from pymodaq_data.data import DataToExport
from pymodaq_gui.parameter import ioxml

ser = SerializableFactory()


class Callbacks:
    def __init__(self):
        self.lock = threading.Lock()
        self.got = {}
        self.events = {}

    def _put(self, name, value):
        with self.lock:
            self.got.setdefault(name, []).append(value)
            self.events.setdefault(name, threading.Event()).set()

    def wait(self, name, timeout=20.0):
        with self.lock:
            event = self.events.setdefault(name, threading.Event())
        if not event.wait(timeout):
            raise SystemExit(f"no {name} callback within {timeout} s")
        with self.lock:
            value = self.got[name].pop(0)
            if not self.got[name]:
                event.clear()
            return value

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
    listener = PymodaqListener(name="pmd5_hosted_director", host="127.0.0.1", port=port)
    listener.start_listen()
    cb = Callbacks()
    for method in (cb.set_move_done, cb.send_position, cb.set_data, cb.set_director_info):
        listener.register_binary_rpc_method(method, accept_binary_input=True)
    listener.register_rpc_method(cb.set_director_settings)
    communicator = listener.get_communicator()
    deadline = time.time() + 5
    while communicator.namespace is None and time.time() < deadline:
        time.sleep(0.05)
    out = {}
    try:
        act = ActuatorDirector(actor=actuator, communicator=communicator)
        act.set_remote_name(communicator.full_name)
        act.move_abs(DataActuator(data=1.5, units="µm"))
        done = cb.wait("set_move_done")
        out["move_done"] = {"class": type(done).__name__, "value": float(done.value()),
                            "units": done.units}
        act.move_rel(DataActuator(data=-0.5, units="µm"))
        out["move_rel_done"] = float(cb.wait("set_move_done").value())
        act.get_actuator_value()
        out["position"] = float(cb.wait("send_position").value())
        act.get_settings()
        names = [p["name"] for p in ioxml.XML_string_to_parameter(
            cb.wait("set_director_settings"))]
        out["actuator_settings"] = names

        det = DetectorDirector(actor=detector, communicator=communicator)
        det.set_remote_name(communicator.full_name)
        det.send_data_snap()
        dte = cb.wait("set_data")
        out["data"] = {"class": type(dte).__name__, "name": dte.name,
                       "signals": [{"class": type(d).__name__, "name": d.name,
                                    "dim": d.dim.name, "shape": list(d.shape),
                                    "axes": [a.label for a in d.axes],
                                    "finite": bool((d.data[0] == d.data[0]).all())}
                                   for d in dte]}
        out["is_dte"] = isinstance(dte, DataToExport)
    finally:
        listener.stop_listen()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
