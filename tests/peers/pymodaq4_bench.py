"""
Peer benchmark (runs in the pymodaq4 venv): PyMoDAQ 4.4.11's own socket code
on both ends over loopback, as the anchor of C{bench/pymodaq.py}.

Usage: python pymodaq4_bench.py frames|array N SIZE...

A thread plays the instrument (answers each C{Send Data} with C{Done} + a
DataToExport, exactly as C{TCPClient.send_data}); the main thread plays the
main computer (sends the command, reads C{Done} and the DataToExport with
C{DeSerializer}).  Prints one JSON line: C{{"seconds": s, "count": N, "bytes": b}}.
"""
import json
import socket
import sys
import threading
import time

import numpy as np

from pymodaq.utils.data import DataFromPlugins, DataToExport
from pymodaq.utils.tcp_ip.mysocket import Socket
from pymodaq.utils.tcp_ip.serializer import DeSerializer

MODE, COUNT = sys.argv[1], int(sys.argv[2])
SHAPE = tuple(int(n) for n in sys.argv[3:])
data = np.random.default_rng(0).random(SHAPE)
dte = DataToExport("bench", data=[DataFromPlugins("bench", data=[data])])

listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.bind(("127.0.0.1", 0))
listener.listen(1)
port = listener.getsockname()[1]


def instrument():
    sock = Socket(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    sock.connect(("127.0.0.1", port))
    for _ in range(COUNT):
        command = DeSerializer(sock).string_deserialization()
        assert command.startswith("Send Data"), command
        sock.check_sended_with_serializer("Done")
        sock.check_sended_with_serializer(dte)
    sock.close()


thread = threading.Thread(target=instrument, daemon=True)
thread.start()
raw, _ = listener.accept()
server = Socket(raw)
start = time.perf_counter()
for _ in range(COUNT):
    server.check_sended_with_serializer("Send Data 2D")
    assert DeSerializer(server).string_deserialization() == "Done"
    got = DeSerializer(server).dte_deserialization()
seconds = time.perf_counter() - start
assert got[0].data[0].shape == data.shape
print(json.dumps({"seconds": seconds, "count": COUNT, "bytes": int(data.nbytes)}))
