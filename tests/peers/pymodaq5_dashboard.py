"""
PyMoDAQ 5.3.8's dashboard methods (``pymodaq.utils.leco.rpc_method_definitions``)
asked of twisted_lab's dashboard Component, by a director built from PyMoDAQ's
own ``PymodaqListener`` (peer side of tests/test_leco_dashboard.py), inside
the pymodaq5 venv::

    python pymodaq5_dashboard.py PORT STATE

The listener answers the dashboard's callbacks (``send_devices``,
``send_states``, ``applied_state_done``, ``send_experiments``,
``applied_experiment_done``: ``DashboardDirectorMethods``) as a director of a
PyMoDAQ dashboard must; the devices frame is decoded by the real serializall.
Prints ``CHECK <label> ok`` per check and ``DONE``; exits non-zero on the
first mismatch.
"""
import sys
import threading
import time

from serializall import SerializableFactory

from pymodaq.utils.leco.pymodaq_listener import PymodaqListener
from pymodaq.utils.leco.rpc_method_definitions import (DashboardDirectorMethods,
                                                       DashboardMethods, GenericMethods)

ser = SerializableFactory()


def check(label, ok, detail=""):
    print(f"CHECK {label} {'ok' if ok else 'FAILED'} {detail}", flush=True)
    if not ok:
        raise SystemExit(f"{label} failed: {detail}")


class Callbacks:
    def __init__(self):
        self.lock = threading.Lock()
        self.got = {}
        self.events = {}

    def put(self, name, value):
        with self.lock:
            self.got.setdefault(name, []).append(value)
            self.events.setdefault(name, threading.Event()).set()

    def wait(self, name, timeout=10.0):
        with self.lock:
            event = self.events.setdefault(name, threading.Event())
        if not event.wait(timeout):
            raise SystemExit(f"no {name} callback within {timeout} s")
        with self.lock:
            event.clear()
            return self.got[name].pop(0)

    def send_devices(self, data=None, additional_payload=None):
        if data is None and additional_payload:
            data = ser.get_apply_deserializer(additional_payload[0])
        self.put(DashboardDirectorMethods.SEND_DEVICES, data)

    def send_states(self, states):
        self.put(DashboardDirectorMethods.SEND_CONFIGURATIONS, states)

    def applied_state_done(self, done):
        self.put(DashboardDirectorMethods.APPLIED_CONFIGURATION_DONE, done)

    def send_experiments(self, experiments):
        self.put(DashboardDirectorMethods.SEND_EXPERIMENTS, experiments)

    def applied_experiment_done(self, done):
        self.put(DashboardDirectorMethods.APPLIED_EXPERIMENT_DONE, done)


def main(port, state):
    listener = PymodaqListener(name="pmd5_dashboard_director", host="127.0.0.1", port=int(port))
    listener.start_listen()
    cb = Callbacks()
    listener.register_binary_rpc_method(cb.send_devices, accept_binary_input=True,
                                        name=DashboardDirectorMethods.SEND_DEVICES)
    listener.register_rpc_method(cb.send_states,
                                 name=DashboardDirectorMethods.SEND_CONFIGURATIONS)
    listener.register_rpc_method(cb.applied_state_done,
                                 name=DashboardDirectorMethods.APPLIED_CONFIGURATION_DONE)
    listener.register_rpc_method(cb.send_experiments,
                                 name=DashboardDirectorMethods.SEND_EXPERIMENTS)
    listener.register_rpc_method(cb.applied_experiment_done,
                                 name=DashboardDirectorMethods.APPLIED_EXPERIMENT_DONE)
    communicator = listener.get_communicator()
    deadline = time.time() + 5
    while communicator.namespace is None and time.time() < deadline:
        time.sleep(0.05)
    try:
        ask = communicator.ask_rpc
        ask("dashboard", GenericMethods.SET_REMOTE_NAME, name=communicator.full_name)
        ask("dashboard", DashboardMethods.GET_DEVICES)
        devices = cb.wait(DashboardDirectorMethods.SEND_DEVICES)
        check("devices", devices == {"actuators": ["stage"], "detectors": ["camera"]}, devices)
        ask("dashboard", DashboardMethods.GET_STATES)
        states = cb.wait(DashboardDirectorMethods.SEND_CONFIGURATIONS)
        check("states", states == [state], states)
        ask("dashboard", DashboardMethods.APPLY_STATE, state=state)
        done = cb.wait(DashboardDirectorMethods.APPLIED_CONFIGURATION_DONE)
        check("apply_state", done is True, done)
        print("APPLIED", flush=True)
        ask("dashboard", DashboardMethods.APPLY_STATE, state="no such state")
        check("apply_unknown_state",
              cb.wait(DashboardDirectorMethods.APPLIED_CONFIGURATION_DONE) is False)
        ask("dashboard", DashboardMethods.GET_EXPERIMENTS)
        experiments = cb.wait(DashboardDirectorMethods.SEND_EXPERIMENTS)
        check("experiments", experiments == [], experiments)
        ask("dashboard", DashboardMethods.APPLY_EXPERIMENT, experiment="scan")
        check("apply_experiment",
              cb.wait(DashboardDirectorMethods.APPLIED_EXPERIMENT_DONE) is False)
    finally:
        listener.stop_listen()
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
