"""
Generate serializall test vectors with the real serializall / pymodaq_data 5.x.

Run inside the pymodaq5 peer venv (env: ``peer_env("pymodaq5")``)::

    .peers/pymodaq5/bin/python tests/peers/pymodaq5_serializall_vectors.py tests/data/serializall

Writes one ``<name>.bin`` (or ``<name>.bin.gz`` for the large ones) per
vector and ``manifest.json`` describing what each one holds (class, names,
units, labels, shapes, dtypes, axes, a few values and a SHA-256 of every
array), so that tests/test_leco_pymodaq_serializall.py can check both the
decoded content and the byte-exact re-encoding.  The vectors are stored in
the repository; rerun this script only to refresh them.
"""
import gzip
import hashlib
import json
import pathlib
import sys

import numpy as np
from serializall import SerializableFactory

from pymodaq.utils.data import DataActuator, DataFromPlugins  # registers them
from pymodaq_data.data import Axis, DataCalculated, DataRaw, DataToExport, DataWithAxes
from pymodaq_gui.parameter import Parameter
from pymodaq_gui.parameter.utils import ParameterWithPath

ser = SerializableFactory()


def digest(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def describe(obj):
    """A JSON summary of a decoded object, to compare with ours."""
    if isinstance(obj, DataToExport):
        return {"class": "DataToExport", "name": obj.name, "timestamp": obj.timestamp,
                "extra": {k: describe(getattr(obj, k)) for k in obj.extra_attributes},
                "data": [describe(d) for d in obj.data]}
    if isinstance(obj, DataWithAxes):
        return {
            "class": type(obj).__name__, "name": obj.name, "timestamp": obj.timestamp,
            "source": obj.source.name, "dim": obj.dim.name,
            "distribution": obj.distribution.name, "units": obj.units,
            "labels": list(obj.labels), "origin": obj.origin,
            "nav_indexes": list(obj.nav_indexes),
            "data": [describe(a) for a in obj.data],
            "axes": [describe(a) for a in obj.axes],
            "errors": [describe(a) for a in (obj.errors or [])],
            "extra": {k: describe(getattr(obj, k)) for k in obj.extra_attributes},
        }
    if isinstance(obj, Axis):
        return {"class": "Axis", "label": obj.label, "units": obj.units,
                "index": obj.index, "spread_order": obj.spread_order,
                "data": describe(obj.get_data())}
    if isinstance(obj, np.ndarray):
        return {"class": "ndarray", "dtype": obj.dtype.str, "shape": list(obj.shape),
                "sha256": digest(obj),
                "first": obj.reshape(-1)[:3].tolist() if obj.dtype.kind in "biuf" else None}
    if isinstance(obj, ParameterWithPath):
        return {"class": "ParameterWithPath", "path": obj.path, "name": obj.parameter.name(),
                "value": obj.parameter.value()}
    if isinstance(obj, (bool, int, float, str)) or obj is None:
        return obj
    return {"class": type(obj).__name__, "repr": repr(obj)}


def vectors():
    yield "data_actuator", DataActuator(data=1.5, units="mm")
    yield "data_actuator_named", DataActuator("stage", data=-0.25, units="um")
    yield "dfp_0d", DataFromPlugins(
        "powermeter", data=[np.array([1.25]), np.array([-3.0])], labels=["P", "Q"],
        units="W", do_plot=True, do_save=False)
    wl = Axis("wavelength", units="nm", data=np.linspace(400.0, 800.0, 256), index=0)
    yield "dfp_1d_axis", DataFromPlugins(
        "spectrometer", data=[np.sin(np.linspace(0, 6, 256))], labels=["spectrum"],
        units="counts", axes=[wl], do_plot=True, do_save=True)
    x = Axis("x", units="um", data=np.arange(64) * 0.5, index=1)
    y = Axis("y", units="um", data=np.arange(48) * 0.25 + 10.0, index=0)
    yield "dfp_2d_axes", DataFromPlugins(
        "camera", data=[np.arange(48 * 64, dtype=np.uint16).reshape(48, 64)],
        labels=["frame"], units="", axes=[y, x], do_plot=True, do_save=True)
    yield "dwa_nav_errors", DataRaw(
        "scan", data=[np.arange(24, dtype=np.float64).reshape(2, 3, 4)], units="V",
        nav_indexes=(0,), errors=[np.full((2, 3, 4), 0.1)], origin="tester",
        axes=[Axis("t", "s", np.array([0.0, 1.0]), index=0)])
    dte = DataToExport("lab", data=[
        DataFromPlugins("det0D", data=[np.array([3.5])], units="V", do_plot=True, do_save=True),
        DataFromPlugins("det1D", data=[np.arange(10, dtype=np.int32), np.ones(10, dtype=np.int32)],
                        labels=["a", "b"], axes=[Axis("pixel", "", np.arange(10.0), index=0)],
                        do_plot=False, do_save=True),
        DataCalculated("roi", data=[np.array([0.5 + 0.25j])], units="a.u."),
        DataActuator("stage", data=2.0, units="mm"),
    ], comment="several signals", run=3)
    yield "dte_several", dte
    frame16 = (np.arange(2048 * 2048, dtype=np.uint32) % 4093).astype(np.uint16).reshape(2048, 2048)
    yield "dfp_2d_uint16_2048", DataToExport("camera", data=[DataFromPlugins(
        "camera", data=[frame16], labels=["frame"], units="counts", do_plot=True, do_save=True)])
    frame64 = ((np.arange(2048 * 2048) % 1000) * 0.125).reshape(2048, 2048)
    yield "dfp_2d_float64_2048", DataFromPlugins(
        "camera", data=[frame64], labels=["frame"], units="W",
        axes=[Axis("y", "px", np.arange(2048.0), index=0),
              Axis("x", "px", np.arange(2048.0), index=1)])
    yield "primitives", {"none": None, "t": True, "f": False, "i": -7, "big": 2**40,
                         "x": 2.5, "z": 1 - 2j, "s": "h\u00e9llo", "b": b"\x00\xff",
                         "l": [1, "a", [2.0]], "tu": (1, 2), "a": np.array([[1, 2], [3, 4]], dtype="<i4"),
                         "be": np.array([1.0, 2.0], dtype=">f8"), "bools": np.array([True, False])}
    p = Parameter.create(name="settings", type="group", children=[
        dict(name="exposure", type="float", value=0.125, suffix="s", title="Exposure:")])
    yield "parameter_with_path", ParameterWithPath(p.child("exposure"), ["settings", "exposure"])


def main(out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for name, obj in vectors():
        frame = ser.get_apply_serializer(obj)
        back = ser.get_apply_deserializer(frame)
        if name == "primitives":
            summary = {"class": "dict", "keys": list(back)}
        else:
            summary = describe(back)
        big = len(frame) > 1_000_000
        filename = name + (".bin.gz" if big else ".bin")
        data = gzip.compress(frame, 9, mtime=0) if big else frame
        (out / filename).write_bytes(data)
        manifest[name] = {"file": filename, "size": len(frame),
                          "sha256": hashlib.sha256(frame).hexdigest(), "object": summary}
        print(name, len(frame), "bytes ->", filename, len(data))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/serializall")
