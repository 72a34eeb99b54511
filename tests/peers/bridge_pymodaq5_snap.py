"""
PyMoDAQ 5's own C{DetectorDirector} snaps one frame from a LECO actor and
prints it (peer side of tests/test_bridge_e2e.py), inside the pymodaq5 venv::

    python bridge_pymodaq5_snap.py PORT ACTOR [digest]

The director component is a C{PymodaqListener} signed in to the Coordinator
on 127.0.0.1:PORT; the C{set_data} callback frame is decoded by the real
serializall into a real C{DataToExport}.  Prints one JSON line
C{{"name", "signals": [{"name", "kind", "dim", "units", "labels", "shape",
"dtype", "data": [nested list], "axes": [{"label", "units", "index",
"values"}]}]}} and exits 0, or exits non-zero with the reason.  With
C{digest}, each signal's C{data} is the SHA-256 of its first array's bytes
(C order) instead of the nested list (for camera-sized frames).
"""
import hashlib
import json
import sys
import time

from pymodaq.utils.leco.director_utils import DetectorDirector
from pymodaq.utils.leco.pymodaq_listener import PymodaqListener
from pymodaq_data.data import DataToExport

from pymodaq5_director import Callbacks


def describe(dte, digest=False):
    signals = []
    for dwa in dte:
        axes = []
        for axis in dwa.axes:
            axes.append(dict(label=axis.label, units=axis.units, index=int(axis.index),
                             values=[float(v) for v in axis.get_data()]))
        signals.append(dict(
            name=dwa.name, kind=type(dwa).__name__, dim=dwa.dim.name, units=dwa.units,
            labels=list(dwa.labels), shape=list(dwa.data[0].shape),
            dtype=str(dwa.data[0].dtype), axes=axes,
            data=(hashlib.sha256(dwa.data[0].tobytes()).hexdigest() if digest
                  else dwa.data[0].tolist())))
    return dict(name=dte.name, signals=signals)


def main(port, actor, digest=False):
    listener = PymodaqListener(name="bridge_pmd5_director", host="127.0.0.1", port=port)
    listener.start_listen()
    cb = Callbacks()
    for method in (cb.set_move_done, cb.send_position, cb.set_data, cb.set_director_info):
        listener.register_binary_rpc_method(method, accept_binary_input=True)
    listener.register_rpc_method(cb.set_director_settings)
    communicator = listener.get_communicator()
    deadline = time.time() + 10
    while communicator.namespace is None and time.time() < deadline:
        time.sleep(0.05)
    if communicator.namespace is None:
        raise SystemExit("director did not sign in")
    try:
        det = DetectorDirector(actor=actor, communicator=communicator)
        det.set_remote_name(communicator.full_name)
        det.send_data_snap()
        dte = cb.wait("set_data", 20.0)
        if not isinstance(dte, DataToExport):
            raise SystemExit(f"set_data is not a DataToExport: {dte!r}")
        print(json.dumps(describe(dte, digest)), flush=True)
    finally:
        listener.stop_listen()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3:] == ["digest"])
