"""
Peer driver (runs in the pymodaq4 venv): PyMoDAQ 4.4.11's own C{TCPClient}
as a GRABBER or ACTUATOR instrument, to test twisted_lab's server role.

Usage: python pymodaq4_client.py GRABBER|ACTUATOR PORT [TITLE]

It connects to 127.0.0.1:PORT, sends its type and its settings (C{Infos}),
then answers like a DAQ_Viewer / DAQ_Move would: C{Send Data *} → C{Done} +
a DataToExport (a 2D DataFromPlugins 3×4 with axes, units C{counts}),
C{move_abs}/C{move_rel}/C{move_home} → C{move_done}, C{get_actuator_value}
→ C{position_is}.  Every command received is printed as a JSON line.
stdin takes JSON lines: C{{"op": "info", "name":…, "value":…}},
C{{"op": "info_xml", "name": "exposure", "value": 2.5}}, C{{"op": "quit"}}.
"""
import json
import queue
import sys
import threading

import numpy as np
from qtpy import QtCore, QtWidgets

CLIENT_TYPE, PORT = sys.argv[1], int(sys.argv[2])
TITLE = sys.argv[3] if len(sys.argv) > 3 else ""
app = QtWidgets.QApplication([])

from pymodaq.utils.daq_utils import ThreadCommand  # noqa: E402
from pymodaq.utils.data import Axis, DataActuator, DataFromPlugins, DataToExport  # noqa: E402
from pymodaq.utils.parameter import Parameter  # noqa: E402
from pymodaq.utils.tcp_ip.tcp_server_client import TCPClient  # noqa: E402

children = [
    {"name": "exposure", "title": "Exposure (s)", "type": "float", "value": 0.1},
    {"name": "mode", "type": "list", "limits": ["fast", "slow"], "value": "fast"},
    {"name": "camera", "type": "group", "children": [
        {"name": "gain", "type": "int", "value": 2},
        {"name": "cooled", "type": "bool", "value": True},
    ]},
]
if TITLE:
    children.insert(0, {"name": "title", "type": "str", "value": TITLE})
if CLIENT_TYPE == "ACTUATOR":
    children.insert(0, {"name": "units", "type": "str", "value": "mm"})
settings = Parameter.create(name="settings", type="group", children=children)

client = TCPClient("127.0.0.1", PORT, params_state=settings, client_type=CLIENT_TYPE)
position = [0.0]
commands: "queue.Queue[dict]" = queue.Queue()


def out(**message):
    sys.stdout.write(json.dumps(message, default=str) + "\n")
    sys.stdout.flush()


def data() -> DataToExport:
    image = np.arange(12.0).reshape(3, 4)
    dwa = DataFromPlugins("peer_image", data=[image], units="counts",
                          axes=[Axis("rows", "mm", np.linspace(0, 2, 3), index=0),
                                Axis("cols", "um", np.linspace(0, 3, 4), index=1)])
    return DataToExport("peer", data=[dwa])


def moved(value: float, reply: str) -> None:
    position[0] = value
    client.queue_command(ThreadCommand(reply, [DataActuator("peer", data=value, units="mm")]))


def on_command(command):
    name = command.command
    attribute = command.attribute
    if "Send Data" in name:
        out(op="grab", command=name)
        client.queue_command(ThreadCommand("data_ready", data()))
    elif name == "move_abs":
        value = float(attribute[0].value())
        out(op="move_abs", value=value, units=str(getattr(attribute[0], "units", "")))
        moved(value, "move_done")
    elif name == "move_rel":
        value = float(attribute[0].value())
        out(op="move_rel", value=value)
        moved(position[0] + value, "move_done")
    elif name == "move_home":
        out(op="move_home")
        moved(0.0, "move_done")
    elif name in ("get_actuator_value", "check_position"):
        out(op=name)
        moved(position[0], "position_is")
    elif name == "set_info":
        out(op="set_info", path=list(attribute[0]), xml=str(attribute[1]))
    else:
        out(op="command", name=name)


client.cmd_signal.connect(on_command)


def tick():
    while True:
        try:
            command = commands.get_nowait()
        except queue.Empty:
            return
        op = command["op"]
        if op == "info":
            client.send_info_string(command["name"], command["value"])
        elif op == "info_xml":
            param = settings.child(*command["name"].split("."))
            param.setValue(command["value"])
            client.queue_command(ThreadCommand("send_info", dict(
                path=["settings"] + command["name"].split("."), param=param)))
        elif op == "quit":
            client.socket.check_sended_with_serializer("Quit")
            client.socket.close()
            out(op="bye")
            QtCore.QTimer.singleShot(0, app.quit)


def read_stdin():
    for line in sys.stdin:
        if line.strip():
            commands.put(json.loads(line))
    commands.put({"op": "quit"})


threading.Thread(target=read_stdin, daemon=True).start()
timer = QtCore.QTimer()
timer.timeout.connect(tick)
timer.start(20)
out(op="connecting", port=PORT)
QtCore.QTimer.singleShot(0, client.init_connection)
app.exec_()
