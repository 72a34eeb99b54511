"""
Get camera frames from a twisted_lab PLESTY server with plain pyzmq.

    python docs/examples/camera_plesty.py [address]

(default tcp://127.0.0.1:5555; serve the camera with
``[plesty] serve = [{ device = "camera", address = "tcp://127.0.0.1:5555" }]``).
Needs pyzmq and numpy.  With ``"binary": true`` each array of the result
comes in a frame of its own, referenced from the JSON by
``{"__array__": n, "dtype": ..., "shape": [...]}`` (n counts from the JSON
frame, 0).
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np
import zmq


def grab(socket: zmq.Socket, binary: bool) -> np.ndarray:
    socket.send(json.dumps({"type": "call", "func": "grab", "binary": binary}).encode())
    frames = socket.recv_multipart(copy=False)
    reply = json.loads(frames[0].bytes)
    if reply.get("status") != "ok":
        raise RuntimeError(reply)
    data = reply["result"]["signals"][0]["data"][0]
    if binary:  # the fast way: a view on the received frame, no copy
        return np.frombuffer(frames[data["__array__"]].buffer,
                             dtype=data["dtype"]).reshape(data["shape"])
    return np.asarray(data)


def main() -> None:
    address = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:5555"
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(address)
    try:
        for binary in (True, False):
            started = time.perf_counter()
            image = grab(socket, binary)
            print(f"binary={binary}: {image.shape} {image.dtype} in "
                  f"{time.perf_counter() - started:.3f} s, mean {image.mean():.1f}")
    finally:
        socket.close()


if __name__ == "__main__":
    main()
