"""
Smoke test of the PyMoDAQ 4.4.11 TCP peer (pymodaq_plugins_mock 4.4.5), run
inside its venv with peer_env("pymodaq4") (QT_QPA_PLATFORM=offscreen, scratch
HOME):

    .peers/pymodaq4/bin/python tests/peers/smoke_pymodaq4.py            # everything
    .peers/pymodaq4/bin/python tests/peers/smoke_pymodaq4.py client GRABBER 127.0.0.1 PORT [--dim 1D]
    .peers/pymodaq4/bin/python tests/peers/smoke_pymodaq4.py client ACTUATOR 127.0.0.1 PORT

    .peers/pymodaq4/bin/python tests/peers/smoke_pymodaq4.py serve viewer [--dim 1D]
    .peers/pymodaq4/bin/python tests/peers/smoke_pymodaq4.py serve move

The first form runs each mock TCPServer plugin on 127.0.0.1 (free port) in
this process and a real TCPClient (the ``client`` form) in a child process
against it.  The ``client`` form is a ready-made instrument-side peer for our
*server* tests (it answers every command, see ``run_client``; exit 0 after
the server sent "Quit").  The ``serve`` form is a ready-made main-computer
side for our *client* tests (see ``serve``): it prints
``LISTENING 127.0.0.1 <port>``, then ``CONNECTED GRABBER|ACTUATOR``, then
one JSON line per event (``DATA {...}`` for each DataToExport,
``STATUS {...}`` for move_done / get_actuator_value), and takes commands,
one per stdin line: ``grab`` | ``move_abs X`` | ``move_rel X`` |
``move_home`` | ``get_actuator_value`` | ``stop_motion`` | ``quit``
(sends "Quit" to the client, closes, exits; stdin EOF does the same).
Everything below was verified by running it.

Real module names
-----------------
- ``pymodaq.utils.tcp_ip.serializer``: ``Serializer``, ``DeSerializer``
- ``pymodaq.utils.tcp_ip.tcp_server_client``: ``TCPClient``, ``TCPServer``
  (also ``MockServer``), ``tcp_parameters``
- ``pymodaq.utils.tcp_ip.mysocket``: ``Socket`` (wraps socket.socket)
- ``pymodaq_plugins_mock.daq_move_plugins.daq_move_TCPServer.DAQ_Move_TCPServer``
- ``pymodaq_plugins_mock.daq_viewer_plugins.plugins_0D.daq_0Dviewer_TCPServer.DAQ_0DViewer_TCPServer``
- ``pymodaq_plugins_mock.daq_viewer_plugins.plugins_1D.daq_1Dviewer_TCPServer.DAQ_1DViewer_TCPServer``
- ``pymodaq_plugins_mock.daq_viewer_plugins.plugins_2D.daq_2Dviewer_TCPServer.DAQ_2DViewer_TCPServer``
  (base classes ``pymodaq.control_modules.viewer_utility_classes.DAQ_Viewer_TCP_server``
  and ``pymodaq.control_modules.move_utility_classes.DAQ_Move_TCP_server``)
- data: ``pymodaq.utils.data``: ``DataToExport``, ``DataFromPlugins``,
  ``DataRaw``, ``DataActuator``; commands: ``pymodaq.utils.daq_utils.ThreadCommand``

Wire format (Serializer): every item is length-prefixed big-endian; a string
is ``>I len`` + utf-8 (``Serializer("Done").to_bytes() ==
b"\\x00\\x00\\x00\\x04Done"``).  The connecting client first sends its type
string ("GRABBER" or "ACTUATOR"), then "Infos" + an XML string of its
settings.

Driving a viewer TCPServer plugin (the main-computer side; it is the server)
---------------------------------------------------------------------------
::

    from qtpy import QtWidgets
    from qtpy.QtCore import QObject, Signal
    from pymodaq.utils.daq_utils import ThreadCommand
    from pymodaq_plugins_mock.daq_viewer_plugins.plugins_1D.daq_1Dviewer_TCPServer \
        import DAQ_1DViewer_TCPServer

    app = QtWidgets.QApplication([])              # offscreen; KEEP this reference alive,
                                                  # else the plugin's QTimer silently dies

    class Parent(QObject):                        # what DAQ_Viewer/DAQ_Move would be
        status_sig = Signal(ThreadCommand)
        def __init__(self, title):
            super().__init__(); self.title = title

    parent = Parent("viewer")
    statuses = []; parent.status_sig.connect(statuses.append)
    plugin = DAQ_1DViewer_TCPServer(parent)       # or the 0D / 2D class
    plugin.settings.child("socket_ip").setValue("127.0.0.1")   # default is 10.47.0.39!
    plugin.settings.child("port_id").setValue(0)  # 0 = free port
    info, ok = plugin.ini_detector()              # ("Server ready", True); binds + listen(1)
    port = plugin.serversocket.getsockname()[1]
    received = []; plugin.dte_signal.connect(received.append)   # DataToExport objects

    # pump Qt: a 100 ms QTimer (plugin.timerEvent -> listen_client) does all socket I/O
    # and it sleeps 100 ms per readable socket; wait until the GRABBER is connected:
    while plugin.find_socket_within_connected_clients("GRABBER") is None:
        app.processEvents(); time.sleep(0.01)
    plugin.grab_data()          # sends "Send Data 1D" ("Send Data {grabber_type}") to the client
    while not received:         # client answers "Done" + DataToExport; dte_signal emits it
        app.processEvents(); time.sleep(0.01)
    dte = received[0]; dte[0].data[0]     # the numpy array

    # without a connected client grab_data() emits mock data on dte_signal at once
    # (DataToExport 'mocktcp' holding DataRaw 'mock').
    # shutdown: tell the client to quit first (else the client spins on a dead socket)
    sock = plugin.find_socket_within_connected_clients("GRABBER")
    plugin.send_command(sock, "Quit")     # client answers "Quit" and closes
    ... pump until find_socket_within_connected_clients("GRABBER") is None ...
    plugin.close()                        # closes the listening socket

Driving a move TCPServer plugin
-------------------------------
::

    from pymodaq.utils.data import DataActuator
    from pymodaq_plugins_mock.daq_move_plugins.daq_move_TCPServer import DAQ_Move_TCPServer
    parent = Parent("stage"); statuses = []; parent.status_sig.connect(statuses.append)
    plugin = DAQ_Move_TCPServer(parent)
    plugin.settings.child("socket_ip").setValue("127.0.0.1"); plugin.settings.child("port_id").setValue(0)
    info, ok = plugin.ini_stage()                 # ("TCP Server actuator", True)
    port = plugin.serversocket.getsockname()[1]
    ... pump until find_socket_within_connected_clients("ACTUATOR") is not None ...
    plugin.move_abs(DataActuator(data=1.5))       # sends "move_abs" + DataActuator
    # the client answers "move_done" + DataActuator -> parent.status_sig emits
    # ThreadCommand("move_done", [DataActuator]); statuses[-1].attribute[0].value() == 1.5
    plugin.get_actuator_value()                   # sends "get_actuator_value"; returns the
    # *cached* value; the client answers "position_is" + DataActuator ->
    # ThreadCommand("get_actuator_value", [DataActuator]) on parent.status_sig
    # also: move_rel(DataActuator), move_home(), stop_motion()
    (Quit and close as above, with "ACTUATOR")

    Other statuses on status_sig are ThreadCommand("Update_Status", [text, "log"])
    and parameter updates from settings changes; filter on .command.

Running TCPClient (the instrument side; it connects) -- see ``run_client``
-------------------------------------------------------------------------
::

    from pymodaq.utils.tcp_ip.tcp_server_client import TCPClient
    client = TCPClient(ipaddress="127.0.0.1", port=port, client_type="GRABBER")  # or "ACTUATOR"
    client.cmd_signal.connect(on_command)     # gets ThreadCommand(message[, attribute])
    client.init_connection()                  # connects, sends type + Infos, then BLOCKS in
                                              # poll_connection() (a busy select loop that also
                                              # calls QApplication.processEvents()) until a socket
                                              # error; run it in its own process.
    def on_command(cmd):                      # called synchronously in that loop
        if cmd.command.startswith("Send Data"):          # GRABBER
            client.queue_command(ThreadCommand("data_ready", dte))  # sends "Done" + DataToExport
        elif cmd.command in ("move_abs", "move_rel"):   # ACTUATOR, attribute [DataActuator]
            client.queue_command(ThreadCommand("move_done", [DataActuator(data=pos)]))
        elif cmd.command == "get_actuator_value":
            client.queue_command(ThreadCommand("position_is", [DataActuator(data=pos)]))
        elif cmd.command == "Quit":           # server asks us to stop
            client.socket.check_sended_with_serializer("Quit"); client.socket.close()
            # -> the next select() fails and init_connection() returns
    Also emitted: "connected", "disconnected", "Update_Status"; "set_info" has
    attribute [path, param_xml]; "move_home", "stop_motion" have none.

Pitfalls verified here: TCPClient.init_connection never returns while the
socket is open; DeSerializer loops forever on EOF (recv() == b"") -- both
ends must send "Quit" before closing; the server handles one socket per
100 ms tick plus a 100 ms sleep, so each request/answer costs ~0.1-0.3 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Callable, List

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from qtpy import QtWidgets  # noqa: E402
from qtpy.QtCore import QObject, Signal  # noqa: E402

import pymodaq  # noqa: E402
from pymodaq.utils.daq_utils import ThreadCommand  # noqa: E402
from pymodaq.utils.data import DataActuator, DataFromPlugins, DataToExport  # noqa: E402
from pymodaq.utils.tcp_ip.serializer import DeSerializer, Serializer  # noqa: E402
from pymodaq.utils.tcp_ip.tcp_server_client import TCPClient  # noqa: E402


_APP: "QtWidgets.QApplication | None" = None


def _app() -> QtWidgets.QApplication:
    # Keep a reference: a QApplication that is garbage-collected silently
    # stops every QTimer ("Timers can only be used with threads started
    # with QThread") and the plugin never accepts its client.
    global _APP
    if _APP is None:
        _APP = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    return _APP


class Parent(QObject):
    """The minimal parent a TCPServer plugin needs (title and status_sig)."""

    status_sig = Signal(ThreadCommand)

    def __init__(self, title: str) -> None:
        super().__init__()
        self.title = title


def pump_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    app = _app()
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout}s waiting for {what}")
        app.processEvents()
        time.sleep(0.005)


def make_dte(dim: str) -> DataToExport:
    if dim == "0D":
        arrays = [np.array([1.25])]
    elif dim == "1D":
        arrays = [np.arange(10, dtype=float)]
    else:
        arrays = [np.arange(12, dtype=float).reshape(3, 4)]
    return DataToExport("peer", data=[DataFromPlugins("peerdata", data=arrays)])


# ----------------------------------------------------------------------------
# instrument side: TCPClient


def run_client(client_type: str, host: str, port: int, dim: str = "1D") -> int:
    _app()
    client = TCPClient(ipaddress=host, port=port, client_type=client_type)
    position = [0.0]
    log: List[str] = []

    def on_command(cmd: ThreadCommand) -> None:
        c = cmd.command
        log.append(c)
        print(f"client got {c} {cmd.attribute!r:.600}", flush=True)
        if c.startswith("Send Data"):
            client.queue_command(ThreadCommand("data_ready", make_dte(c.split()[-1])))
        elif c == "move_abs":
            position[0] = float(cmd.attribute[0].value())
            client.queue_command(ThreadCommand("move_done", [DataActuator(data=position[0])]))
        elif c == "move_rel":
            position[0] += float(cmd.attribute[0].value())
            client.queue_command(ThreadCommand("move_done", [DataActuator(data=position[0])]))
        elif c == "move_home":
            position[0] = 0.0
            client.queue_command(ThreadCommand("move_done", [DataActuator(data=0.0)]))
        elif c in ("get_actuator_value", "stop_motion"):
            client.queue_command(ThreadCommand("position_is", [DataActuator(data=position[0])]))
        elif c == "Quit":
            client.socket.check_sended_with_serializer("Quit")
            client.socket.close()

    client.cmd_signal.connect(on_command)
    client.init_connection()  # blocks until the socket is closed or fails
    print("client done:", log, flush=True)
    return 0 if "connected" in log else 1


# ----------------------------------------------------------------------------
# main-computer side: the mock TCPServer plugins


def start_plugin(cls, title: str, init: str):
    parent = Parent(title)
    statuses: List[ThreadCommand] = []
    parent.status_sig.connect(statuses.append)
    plugin = cls(parent)
    plugin.settings.child("socket_ip").setValue("127.0.0.1")
    plugin.settings.child("port_id").setValue(0)
    info, ok = getattr(plugin, init)()
    assert ok, info
    host, port = plugin.serversocket.getsockname()
    assert host == "127.0.0.1", host
    print(f"{cls.__name__}: {init}() -> {info!r}; listening on {host}:{port}", flush=True)
    return parent, plugin, statuses, port


def spawn_client(client_type: str, port: int, dim: str = "1D") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, "client", client_type, "127.0.0.1", str(port), "--dim", dim],
        stdin=subprocess.DEVNULL,
    )


def connect_client(plugin, client_type: str, port: int, dim: str = "1D") -> subprocess.Popen:
    """Spawn a TCPClient and wait until the plugin lists it.

    Retried (with a warning): on this loaded 2-core machine a connect to the
    plugin's listening port was twice refused (ECONNREFUSED) while the socket
    was listening, and the real TCPClient does not retry by itself.
    """
    for attempt in range(3):
        proc = spawn_client(client_type, port, dim)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if plugin.find_socket_within_connected_clients(client_type) is not None:
                return proc
            if proc.poll() is not None:
                break
            _app().processEvents()
            time.sleep(0.005)
        proc.kill()
        proc.wait()
        print(f"WARNING: {client_type} client did not connect (attempt {attempt + 1}, "
              f"rc={proc.returncode}); retrying", flush=True)
    raise SystemExit(f"{client_type} client never connected")


def stop_client(plugin, client_type: str, proc: subprocess.Popen) -> None:
    sock = plugin.find_socket_within_connected_clients(client_type)
    plugin.send_command(sock, "Quit")
    pump_until(
        lambda: plugin.find_socket_within_connected_clients(client_type) is None,
        what=f"{client_type} to quit",
    )
    rc = proc.wait(10)
    assert rc == 0, rc
    plugin.close()


def check_serializer() -> None:
    assert Serializer("Done").to_bytes() == b"\x00\x00\x00\x04Done"
    dte = make_dte("1D")
    raw = Serializer(dte).to_bytes()
    back = DeSerializer(raw).dte_deserialization()
    assert np.array_equal(back[0].data[0], dte[0].data[0])
    pos = DeSerializer(Serializer(DataActuator(data=2.5)).to_bytes()).dwa_deserialization()
    assert pos.value() == 2.5
    print(f"serializer ok: 'Done' -> {Serializer('Done').to_bytes()!r}; "
          f"1D dte = {len(raw)} bytes", flush=True)


def check_viewer(dim: str) -> None:
    module = __import__(
        f"pymodaq_plugins_mock.daq_viewer_plugins.plugins_{dim}.daq_{dim}viewer_TCPServer",
        fromlist=["x"],
    )
    cls = getattr(module, f"DAQ_{dim}Viewer_TCPServer")
    parent, plugin, statuses, port = start_plugin(cls, f"viewer{dim}", "ini_detector")
    received: List[DataToExport] = []
    plugin.dte_signal.connect(received.append)

    plugin.grab_data()  # no client yet: mock data is emitted synchronously
    pump_until(lambda: received, what="mock data")
    print(f"  mock grab without client: {received[-1].name} {received[-1][0].name} "
          f"shape {received[-1][0].data[0].shape}", flush=True)
    received.clear()

    proc = connect_client(plugin, "GRABBER", port, dim)
    t0 = time.monotonic()
    plugin.grab_data()
    pump_until(lambda: received, what="grabbed data")
    dt = time.monotonic() - t0
    got = received[-1][0].data[0]
    assert np.array_equal(got, make_dte(dim)[0].data[0]), got
    print(f"  grab through TCPClient: {received[-1].name}/{received[-1][0].name} "
          f"{got.shape} in {dt:.2f}s", flush=True)
    stop_client(plugin, "GRABBER", proc)


def check_move() -> None:
    from pymodaq_plugins_mock.daq_move_plugins.daq_move_TCPServer import DAQ_Move_TCPServer

    parent, plugin, statuses, port = start_plugin(DAQ_Move_TCPServer, "stage", "ini_stage")
    proc = connect_client(plugin, "ACTUATOR", port)

    def last(command: str):
        for s in reversed(statuses):
            if s.command == command:
                return s
        return None

    plugin.move_abs(DataActuator(data=1.5))
    pump_until(lambda: last("move_done"), what="move_done")
    print(f"  move_abs(1.5) -> move_done {last('move_done').attribute[0].value()}", flush=True)
    assert last("move_done").attribute[0].value() == 1.5

    cached = plugin.get_actuator_value()
    pump_until(lambda: last("get_actuator_value"), what="position_is")
    value = last("get_actuator_value").attribute[0].value()
    print(f"  get_actuator_value() returned cached {cached.value()}; "
          f"status get_actuator_value {value}", flush=True)
    assert value == 1.5

    statuses.clear()
    plugin.move_rel(DataActuator(data=0.5))
    pump_until(lambda: last("move_done"), what="move_done (rel)")
    assert last("move_done").attribute[0].value() == 2.0
    print("  move_rel(0.5) -> move_done 2.0", flush=True)
    stop_client(plugin, "ACTUATOR", proc)


def _dwa_json(dwa) -> dict:
    return {
        "name": dwa.name,
        "dim": str(dwa.dim),
        "units": getattr(dwa, "units", ""),
        "data": [np.asarray(a).tolist() for a in dwa.data],
        "shape": list(np.asarray(dwa.data[0]).shape),
        "dtype": str(np.asarray(dwa.data[0]).dtype),
    }


def serve(kind: str, dim: str) -> int:
    """A real TCPServer plugin scripted through stdin, for our client tests."""
    import json
    import queue
    import threading

    _app()
    if kind == "viewer":
        module = __import__(
            f"pymodaq_plugins_mock.daq_viewer_plugins.plugins_{dim}.daq_{dim}viewer_TCPServer",
            fromlist=["x"],
        )
        cls, init, client_type = getattr(module, f"DAQ_{dim}Viewer_TCPServer"), "ini_detector", "GRABBER"
    else:
        from pymodaq_plugins_mock.daq_move_plugins.daq_move_TCPServer import DAQ_Move_TCPServer
        cls, init, client_type = DAQ_Move_TCPServer, "ini_stage", "ACTUATOR"

    parent = Parent(kind)
    plugin = cls(parent)
    plugin.settings.child("socket_ip").setValue("127.0.0.1")
    plugin.settings.child("port_id").setValue(0)
    getattr(plugin, init)()
    port = plugin.serversocket.getsockname()[1]

    def out(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def on_status(cmd: ThreadCommand) -> None:
        if cmd.command in ("move_done", "get_actuator_value"):
            value = cmd.attribute[0] if isinstance(cmd.attribute, list) else cmd.attribute
            out("STATUS " + json.dumps({"command": cmd.command, "value": _dwa_json(value)}))

    def on_data(dte: DataToExport) -> None:
        out("DATA " + json.dumps({"name": dte.name, "data": [_dwa_json(d) for d in dte]}))

    parent.status_sig.connect(on_status)
    if kind == "viewer":
        plugin.dte_signal.connect(on_data)
    commands: "queue.Queue[str | None]" = queue.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            commands.put(line.strip())
        commands.put(None)

    threading.Thread(target=read_stdin, daemon=True).start()
    out(f"LISTENING 127.0.0.1 {port}")
    app = _app()
    connected = False
    while True:
        app.processEvents()
        if not connected and plugin.find_socket_within_connected_clients(client_type) is not None:
            connected = True
            out(f"CONNECTED {client_type}")
        try:
            line = commands.get(timeout=0.005)
        except queue.Empty:
            continue
        words = (line or "quit").split()
        if not words:
            continue
        verb, args = words[0], words[1:]
        if verb == "quit":
            sock = plugin.find_socket_within_connected_clients(client_type)
            if sock is not None:
                plugin.send_command(sock, "Quit")
                deadline = time.monotonic() + 3
                while (plugin.find_socket_within_connected_clients(client_type) is not None
                       and time.monotonic() < deadline):
                    app.processEvents()
                    time.sleep(0.005)
            plugin.close()
            out("CLOSED")
            return 0
        if verb == "grab":
            plugin.grab_data()
        elif verb in ("move_abs", "move_rel"):
            getattr(plugin, verb)(DataActuator(data=float(args[0])))
        elif verb in ("move_home", "get_actuator_value", "stop_motion"):
            getattr(plugin, verb)()
        else:
            out("ERROR " + json.dumps({"unknown command": line}))


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode")
    c = sub.add_parser("client")
    c.add_argument("client_type", choices=["GRABBER", "ACTUATOR"])
    c.add_argument("host")
    c.add_argument("port", type=int)
    c.add_argument("--dim", default="1D", choices=["0D", "1D", "2D"])
    sv = sub.add_parser("serve")
    sv.add_argument("kind", choices=["viewer", "move"])
    sv.add_argument("--dim", default="1D", choices=["0D", "1D", "2D"])
    options = parser.parse_args(argv)
    if options.mode == "serve":
        return serve(options.kind, options.dim)
    if options.mode == "client":
        return run_client(options.client_type, options.host, options.port, options.dim)

    _app()
    print("pymodaq", pymodaq.__version__, flush=True)
    check_serializer()
    for dim in ("0D", "1D", "2D"):
        check_viewer(dim)
    check_move()
    print("pymodaq4 smoke OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
