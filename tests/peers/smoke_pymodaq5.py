"""
Smoke test of the PyMoDAQ 5.3.8 LECO peer, run inside its venv with
peer_env("pymodaq5") (QT_QPA_PLATFORM=offscreen, scratch HOME):

    .peers/pymodaq5/bin/python tests/peers/smoke_pymodaq5.py

It starts a loopback pyleco Coordinator (tests/peers/leco_coordinator.py), a
real PyMoDAQ ``ActorListener`` (the remote-controlled instrument side, what a
DAQ_Viewer/DAQ_Move with "LECO" connectivity runs) and drives it with the real
``DetectorDirector`` and ``ActuatorDirector``, answering the actor's
callbacks like the DAQ_*_LECODirector plugins do.  Verified snippets:

Modules (exact paths)
---------------------
- ``pymodaq.utils.leco.director_utils``: ``GenericDirector``, ``DetectorDirector``,
  ``ActuatorDirector`` (subclasses of ``pyleco.directors.director.Director``)
- ``pymodaq.utils.leco.pymodaq_listener``: ``ActorListener`` (= ``ViewerActorListener``
  = ``MoveActorListener``), ``ActorHandler``, ``PymodaqListener``,
  ``LECOCommands``, ``LECOViewerCommands``, ``LECOMoveCommands``
- ``pymodaq.utils.leco.rpc_method_definitions``: method names on the wire
  (GenericMethods set_info/get_settings/set_remote_name; ViewerMethods
  send_data_grab/send_data_snap/stop_grab; MoveMethods move_abs/move_rel/
  move_home/stop_motion/get_actuator_value; director callbacks
  set_data, set_move_done, send_position, set_units, set_director_settings,
  set_director_info)
- ``pymodaq.utils.leco.utils``: ``binary_serialization_to_kwargs``
- the DAQ plugins: ``pymodaq.utils.leco.daq_xDviewer_LECODirector.DAQ_xDViewer_LECODirector``,
  ``pymodaq.utils.leco.daq_move_LECODirector.DAQ_Move_LECODirector``
- ``serializall.SerializableFactory``: ``get_apply_serializer(obj) -> bytes``,
  ``get_apply_deserializer(bytes) -> obj``; importing ``pymodaq.utils.data``
  (or ``pymodaq_data``) registers DataWithAxes / DataToExport / DataActuator.
  ``ThreadCommand`` is ``pymodaq_utils.utils.ThreadCommand``.

Binary arguments: ``binary_serialization_to_kwargs(obj, data_key="position")``
returns ``{"position": None, "additional_payload": [serializall bytes]}`` for
a PyMoDAQ object (or ``{"position": 1.5, "additional_payload": None}`` for a
JSON type); passed to ``ask_rpc`` the bytes travel as an extra ZMQ frame after
the JSON-RPC frame.

A director needs its own *listening* LECO component for the callbacks
---------------------------------------------------------------------
The actor answers asynchronously by calling RPC methods on every name given
to it with ``set_remote_name``; a Director alone (Communicator, no listening
thread) cannot receive them.  Do what ``LECODirector`` does: a Listener,
register the callbacks, and build the Director on its communicator::

    from pyleco.utils.listener import Listener
    from serializall import SerializableFactory
    from pymodaq.utils import data  # registers the pymodaq types with serializall
    from pymodaq.utils.leco.director_utils import DetectorDirector, ActuatorDirector

    got = []
    def set_data(data=None, additional_payload=None):          # viewer callback
        got.append(SerializableFactory().get_apply_deserializer(additional_payload[0])
                   if additional_payload else data)           # -> DataToExport
    def set_move_done(data=None, additional_payload=None): ...  # DataActuator (binary) or
    def send_position(data=None, additional_payload=None): ...  # {"position": ...} (JSON)
    def set_units(units, additional_payload=None): ...
    def set_director_settings(settings): ...                   # XML string of actor settings
    def set_director_info(parameter=None, additional_payload=None): ...  # ParameterWithPath

    listener = Listener(name="director5", host="127.0.0.1", port=port)
    listener.start_listen()
    for m in (set_data, set_move_done, send_position, set_director_info):
        listener.register_binary_rpc_method(m, accept_binary_input=True)
    for m in (set_units, set_director_settings):
        listener.register_rpc_method(m)
    communicator = listener.get_communicator()          # CommunicatorPipe
    detector = DetectorDirector(actor="viewer5", communicator=communicator)
    detector.set_remote_name(communicator.full_name)    # "N1.director5": where answers go
    detector.send_data_snap()      # -> actor emits "snap"; it answers set_data(...)
    detector.send_data_grab()      # -> "grab" (live), detector.stop_grab() -> "stop_grab"
    detector.get_settings()        # -> "get_settings"; a real DAQ_Viewer answers set_director_settings
    mover = ActuatorDirector(actor="move5", communicator=communicator)
    mover.set_remote_name(communicator.full_name)
    mover.move_abs(1.5)            # float -> JSON position=1.5; DataActuator -> binary frame
    mover.move_rel(DataActuator(data=0.5)); mover.move_home(); mover.stop_motion()
    mover.get_actuator_value()     # -> actor answers send_position(...)
    ...
    listener.stop_listen()

Each Director call is a synchronous ``ask_rpc`` whose reply is just "null"
(the actor only emits a Qt signal); the real answer comes later as a call of
one of the callbacks above.  The Communicator's default timeout is that of the
Listener (1 s) here; a bare ``Director(...)`` defaults to 0.1 s.

The actor side (what our LECO code talks to)::

    from qtpy.QtCore import QCoreApplication
    from pymodaq.utils.leco.pymodaq_listener import ActorListener
    from pymodaq_utils.utils import ThreadCommand
    app = QCoreApplication([])                # keep a reference; cmd_signal is queued to
                                              # this thread, so pump app.processEvents()
    actor = ActorListener(name="viewer5", host="127.0.0.1", port=port)
    actor.cmd_signal.connect(on_cmd)          # ThreadCommand("snap" | "grab" | "stop_grab" |
                                              # "move_abs" [DataActuator or float] | "move_rel" |
                                              # "move_home" | "get_actuator_value" | "stop_motion" |
                                              # "get_settings" | "set_info" [ParameterWithPath] |
                                              # "leco_connected" | "leco_disconnected")
    actor.start_listen()                      # signs in; registers set_remote_name
    # answers, from the Qt thread:
    actor.queue_command(ThreadCommand("data_ready", dte))           # -> remote.set_data
    actor.queue_command(ThreadCommand("move_done", DataActuator(data=x)))   # -> set_move_done
    actor.queue_command(ThreadCommand("position_is", DataActuator(data=x))) # -> send_position
    actor.queue_command(ThreadCommand("set_director_settings", xml_bytes))   # -> set_director_settings
    actor.queue_command(ThreadCommand("quit"))                      # stop_listen()

Exit status 0 and a last line ``pymodaq5 smoke OK`` mean all of this worked.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import sys
import threading
import time
from typing import Any, Callable, List, Optional

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from qtpy.QtCore import QCoreApplication  # noqa: E402

from pyleco.utils.listener import Listener  # noqa: E402
from serializall import SerializableFactory  # noqa: E402

from pymodaq.utils.data import DataActuator, DataFromPlugins, DataToExport  # noqa: E402
from pymodaq.utils.leco.director_utils import ActuatorDirector, DetectorDirector  # noqa: E402
from pymodaq.utils.leco.pymodaq_listener import ActorListener  # noqa: E402
from pymodaq.utils.leco.utils import binary_serialization_to_kwargs  # noqa: E402
from pymodaq_utils.utils import ThreadCommand  # noqa: E402

from leco_coordinator import start_coordinator  # noqa: E402  (tests/peers/)

_APP: Optional[QCoreApplication] = None


def app() -> QCoreApplication:
    global _APP
    if _APP is None:
        _APP = QCoreApplication.instance() or QCoreApplication([])
    return _APP


def pump_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout}s waiting for {what}")
        app().processEvents()
        time.sleep(0.005)


def versions() -> None:
    names = ["pymodaq", "pymodaq_utils", "pymodaq_data", "pymodaq_gui", "pyleco",
             "serializall", "pymodaq_plugins_mock", "numpy", "PyQt5", "pyzmq"]
    print("versions:", ", ".join(f"{n} {md.version(n)}" for n in names), flush=True)


def make_dte() -> DataToExport:
    return DataToExport("actor", data=[DataFromPlugins("ch", data=[np.arange(6, dtype=float)])])


def main() -> int:
    app()
    versions()
    kw = binary_serialization_to_kwargs(DataActuator(data=2.5), data_key="position")
    assert kw["position"] is None and isinstance(kw["additional_payload"][0], bytes)
    assert binary_serialization_to_kwargs(1.5, data_key="position") == {
        "position": 1.5, "additional_payload": None}
    back = SerializableFactory().get_apply_deserializer(kw["additional_payload"][0])
    print(f"serializall: DataActuator(2.5) -> {len(kw['additional_payload'][0])} bytes -> "
          f"{type(back).__name__} {back.value()}", flush=True)

    port, stop_coordinator = start_coordinator("N1")
    print("coordinator on 127.0.0.1:%d" % port, flush=True)

    # -- actor side: a real PyMoDAQ ActorListener for a viewer and one for a stage
    commands: List[tuple] = []
    position = [0.0]
    viewer = ActorListener(name="viewer5", host="127.0.0.1", port=port)
    mover_actor = ActorListener(name="move5", host="127.0.0.1", port=port)

    def on_viewer(cmd: ThreadCommand) -> None:
        commands.append(("viewer", cmd.command, cmd.attribute))
        if cmd.command in ("snap", "grab"):
            viewer.queue_command(ThreadCommand("data_ready", make_dte()))
        elif cmd.command == "get_settings":
            viewer.queue_command(ThreadCommand("set_director_settings", b"<settings/>"))

    def on_mover(cmd: ThreadCommand) -> None:
        commands.append(("move", cmd.command, cmd.attribute))
        c = cmd.command
        if c in ("move_abs", "move_rel"):
            value = cmd.attribute
            value = float(value.value()) if hasattr(value, "value") else float(value)
            position[0] = value if c == "move_abs" else position[0] + value
            mover_actor.queue_command(ThreadCommand("move_done", DataActuator(data=position[0])))
        elif c == "move_home":
            position[0] = 0.0
            mover_actor.queue_command(ThreadCommand("move_done", DataActuator(data=0.0)))
        elif c == "get_actuator_value":
            mover_actor.queue_command(ThreadCommand("position_is", DataActuator(data=position[0])))

    viewer.cmd_signal.connect(on_viewer)
    mover_actor.cmd_signal.connect(on_mover)
    viewer.start_listen()
    mover_actor.start_listen()

    # -- director side: listener + callbacks + the real Directors
    received: List[tuple] = []
    lock = threading.Lock()

    def record(kind: str, data: Any, additional_payload: Optional[List[bytes]]) -> None:
        obj = (SerializableFactory().get_apply_deserializer(additional_payload[0])
               if additional_payload else data)
        with lock:
            received.append((kind, obj))

    def set_data(data=None, additional_payload=None) -> None:
        record("set_data", data, additional_payload)

    def set_move_done(data=None, additional_payload=None) -> None:
        record("set_move_done", data, additional_payload)

    def send_position(data=None, additional_payload=None) -> None:
        record("send_position", data, additional_payload)

    def set_director_info(parameter=None, additional_payload=None) -> None:
        record("set_director_info", parameter, additional_payload)

    def set_units(units, additional_payload=None) -> None:
        record("set_units", units, None)

    def set_director_settings(settings) -> None:
        record("set_director_settings", settings, None)

    listener = Listener(name="director5", host="127.0.0.1", port=port)
    listener.start_listen()
    for m in (set_data, set_move_done, send_position, set_director_info):
        listener.register_binary_rpc_method(m, accept_binary_input=True)
    for m in (set_units, set_director_settings):
        listener.register_rpc_method(m)
    communicator = listener.get_communicator()
    print("director listener full name:", communicator.full_name, flush=True)

    def wait_for(kind: str):
        def find():
            with lock:
                for k, obj in received:
                    if k == kind:
                        received.remove((k, obj))
                        return (k, obj)
            return None
        box: List[Any] = []
        pump_until(lambda: box.append(find()) or box[-1], what=kind)
        return box[-1][1]

    try:
        detector = DetectorDirector(actor="viewer5", communicator=communicator)
        detector.set_remote_name(communicator.full_name)
        t0 = time.monotonic()
        detector.send_data_snap()
        dte = wait_for("set_data")
        dt = time.monotonic() - t0
        assert isinstance(dte, DataToExport), type(dte)
        assert np.array_equal(dte[0].data[0], np.arange(6, dtype=float))
        print(f"DetectorDirector.send_data_snap -> set_data {type(dte).__name__} "
              f"{dte.name}/{dte[0].name} {dte[0].data[0].tolist()} in {dt * 1000:.0f} ms", flush=True)
        detector.get_settings()
        print("get_settings -> set_director_settings", repr(wait_for("set_director_settings")), flush=True)

        mover = ActuatorDirector(actor="move5", communicator=communicator)
        mover.set_remote_name(communicator.full_name)
        mover.move_abs(DataActuator(data=1.5))
        done = wait_for("set_move_done")
        print(f"ActuatorDirector.move_abs(DataActuator 1.5) -> set_move_done "
              f"{type(done).__name__} {done.value()}", flush=True)
        assert done.value() == 1.5
        mover.move_abs(2.0)  # JSON float
        assert wait_for("set_move_done").value() == 2.0
        mover.move_rel(DataActuator(data=0.5))
        assert wait_for("set_move_done").value() == 2.5
        mover.get_actuator_value()
        pos = wait_for("send_position")
        print(f"get_actuator_value -> send_position {pos.value()}", flush=True)
        assert pos.value() == 2.5
        seen = [f"{who}:{str(c)}({type(a).__name__})" for who, c, a in commands]
        print("actor cmd_signal saw:", seen, flush=True)
    finally:
        listener.stop_listen()
        viewer.queue_command(ThreadCommand("quit"))
        mover_actor.queue_command(ThreadCommand("quit"))
        stop_coordinator()
    print("pymodaq5 smoke OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
