"""
Run a pyleco 0.6.0.post1 Coordinator bound to 127.0.0.1 (peer side of
tests/test_leco_interop*.py), inside the pyleco venv:

    python pyleco_coordinator.py NAMESPACE [--federate host:port ...] [--expiration S] [--cleaning S]

Prints ``PORT <n>`` once bound, then routes until stdin closes (or a line
``quit`` arrives).
"""
from __future__ import annotations

import argparse
import sys
import threading

import zmq
from pyleco.coordinators.coordinator import Coordinator
from pyleco.utils.coordinator_utils import ZmqMultiSocket


class LoopbackMultiSocket(ZmqMultiSocket):
    """The Coordinator's ROUTER, bound to 127.0.0.1 only."""

    port: int

    def bind(self, host: str = "127.0.0.1", port: "int | str" = "*") -> None:
        self._sock.bind(f"tcp://127.0.0.1:{port}")
        endpoint = self._sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.port = int(endpoint.rsplit(":", 1)[1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("namespace")
    parser.add_argument("--port", default="*")
    parser.add_argument("--federate", action="append", default=[])
    parser.add_argument("--expiration", type=float, default=15)
    parser.add_argument("--cleaning", type=float, default=5)
    args = parser.parse_args()
    ms = LoopbackMultiSocket()
    coordinator = Coordinator(namespace=args.namespace, host="127.0.0.1", port=args.port,
                              multi_socket=ms, expiration_time=args.expiration,
                              cleaning_interval=args.cleaning)
    coordinator.address = f"127.0.0.1:{ms.port}"
    coordinator.directory._address = coordinator.address  # advertise the real port
    stop = threading.Event()

    def route() -> None:
        try:
            coordinator.routing(coordinators=args.federate or None, stop_event=stop)
        finally:
            coordinator.close()

    thread = threading.Thread(target=route, daemon=True)
    thread.start()
    print(f"PORT {ms.port}", flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
    stop.set()
    thread.join(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
