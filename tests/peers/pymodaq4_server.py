"""
Peer driver (runs in the pymodaq4 venv): PyMoDAQ 4.4.11's own C{TCPServer}
plugins (the mock package's 0D/1D/2D viewer and move servers), driven over
stdin/stdout with JSON lines, to test twisted_lab's client role.

Usage: python pymodaq4_server.py 0D|1D|2D|move

Prints C{{"op": "port", "port": N}} once listening on 127.0.0.1 (ephemeral
port), then one JSON line per event or reply.  Commands (one JSON object a
line): C{wait_client}, C{settings}, C{grab}, C{move_abs}/C{move_rel}
(C{value}), C{move_home}, C{get_actuator_value}, C{stop_motion},
C{set_info} (C{path}, C{value}), C{quit}.
"""
import json
import queue
import sys
import threading
import traceback

import numpy as np
from qtpy import QtCore, QtWidgets

KIND = sys.argv[1]
app = QtWidgets.QApplication([])

from pymodaq.utils.data import DataActuator  # noqa: E402

if KIND == "move":
    from pymodaq_plugins_mock.daq_move_plugins.daq_move_TCPServer import DAQ_Move_TCPServer
    plugin = DAQ_Move_TCPServer()
else:
    module = __import__(f"pymodaq_plugins_mock.daq_viewer_plugins.plugins_{KIND}."
                        f"daq_{KIND}viewer_TCPServer", fromlist=["x"])
    plugin = getattr(module, f"DAQ_{KIND}Viewer_TCPServer")()

commands: "queue.Queue[dict]" = queue.Queue()
pending: list = []


def out(**message):
    sys.stdout.write(json.dumps(message, default=str) + "\n")
    sys.stdout.flush()


def statuses(status):
    command = getattr(status, "command", "")
    attribute = getattr(status, "attribute", None)
    if command in ("move_done", "get_actuator_value") and attribute:
        position = attribute[0]
        # (data carry no units before 4.4)
        out(op=command, value=float(position.value()), units=str(getattr(position, "units", "")))
    elif command == "Update_Status":
        out(op="status", text=str(attribute))


plugin.emit_status = statuses
_process_cmds = plugin.process_cmds


def process_cmds(*args, **kwargs):
    try:
        return _process_cmds(*args, **kwargs)
    except Exception:
        out(op="server_error", text=traceback.format_exc())
        raise


plugin.process_cmds = process_cmds


def data_received(dte):
    signals = []
    for dwa in dte:
        signals.append(dict(
            name=dwa.name, kind=type(dwa).__name__, dim=str(dwa.dim.name),
            units=getattr(dwa, "units", ""),
            labels=list(dwa.labels), shape=list(dwa.data[0].shape),
            dtype=str(dwa.data[0].dtype), sum=float(np.sum(dwa.data[0])),
            first=float(dwa.data[0].flat[0]),
            axes=[dict(label=a.label, units=a.units, size=int(a.size), index=int(a.index))
                  for a in dwa.axes]))
    out(op="data", name=dte.name, signals=signals)


if KIND != "move":
    plugin.dte_signal.connect(data_received)

plugin.settings.child("socket_ip").setValue("127.0.0.1")
plugin.settings.child("port_id").setValue(0)
if KIND == "move":
    plugin.ini_stage()
else:
    plugin.ini_detector()
out(op="port", port=plugin.serversocket.socket.getsockname()[1])


def settings_client():
    values = {}
    for child in plugin.settings.child("settings_client").children():
        if child.type() != "group":
            values[child.name()] = child.value()
        else:
            for sub in child.children():
                values[child.name() + "." + sub.name()] = sub.value()
    return values


def clients():
    return [c["type"] for c in plugin.connected_clients if c["type"] != "server"]


def handle(command):
    op = command["op"]
    if op == "wait_client":
        if clients() and settings_client():
            out(op="client", types=clients(), settings=settings_client(),
                axis_unit=getattr(plugin, "axis_unit", ""))
        else:
            pending.append(command)
    elif op == "settings":
        out(op="settings", settings=settings_client(), types=clients())
    elif op == "grab":
        plugin.grab_data()
    elif op in ("move_abs", "move_rel"):
        units = getattr(plugin, "axis_unit", "") or ""
        getattr(plugin, op)(DataActuator("x", data=float(command["value"]), units=units))
    elif op == "move_home":
        plugin.move_home()
    elif op == "get_actuator_value":
        plugin.get_actuator_value()
    elif op == "stop_motion":
        plugin.stop_motion()
    elif op == "set_info":
        param = plugin.settings.child("settings_client", *command["path"])
        param.setValue(command["value"])
        plugin.commit_settings(param)
        out(op="set_info_sent")
    elif op == "quit":
        plugin.close()
        out(op="bye")
        app.quit()


def tick():
    for command in list(pending):
        pending.remove(command)
        handle(command)
    while True:
        try:
            command = commands.get_nowait()
        except queue.Empty:
            return
        try:
            handle(command)
        except Exception:
            out(op="error", text=traceback.format_exc())


def read_stdin():
    for line in sys.stdin:
        if line.strip():
            commands.put(json.loads(line))
    commands.put({"op": "quit"})


threading.Thread(target=read_stdin, daemon=True).start()
timer = QtCore.QTimer()
timer.timeout.connect(tick)
timer.start(20)
app.exec_()
