"""
A real pyleco Coordinator bound to 127.0.0.1 only, for the pyleco and
pymodaq5 peer venvs (both have pyleco 0.6.0.post1).

``python -m pyleco.coordinators.coordinator`` binds every interface
(``ZmqMultiSocket.bind`` defaults to host ``"*"`` and ``Coordinator.__init__``
calls ``self.sock.bind(port=port)`` without a host).  Passing a multi-socket
whose ``bind`` forces the host keeps it on loopback.

As a library (inside the peer venv, e.g. from a smoke script)::

    from leco_coordinator import start_coordinator
    port, stop = start_coordinator(namespace="N1")   # free port, routing thread
    ...
    stop()                                            # stops routing, closes

As a process (from our tests; blocking until stdin closes or SIGTERM)::

    .peers/pyleco/bin/python tests/peers/leco_coordinator.py [--namespace N1] [--port 0]
    # first stdout line: "LISTENING 127.0.0.1 <port>"
    # stops when its stdin closes (so give it a pipe, not /dev/null, or pass
    # --ignore-stdin) or on SIGTERM/SIGINT

e.g. from the test suite::

    proc = subprocess.Popen([str(peer_python("pyleco")), str(HERE / "leco_coordinator.py")],
                            env=peer_env("pyleco"), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline().split()[2])
    ...
    proc.stdin.close(); proc.wait(5)
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Callable, Tuple, Union

import zmq
from pyleco.coordinators.coordinator import Coordinator
from pyleco.utils.coordinator_utils import ZmqMultiSocket


class LoopbackMultiSocket(ZmqMultiSocket):
    """The Coordinator's ROUTER socket, bound to 127.0.0.1 only."""

    port: int

    def bind(self, host: str = "127.0.0.1", port: Union[int, str] = "*") -> None:
        if port in (0, "0"):
            port = "*"
        self._sock.bind(f"tcp://127.0.0.1:{port}")
        endpoint = self._sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.port = int(endpoint.rsplit(":", 1)[1])


def start_coordinator(
    namespace: str = "N1", port: Union[int, str] = "*"
) -> Tuple[int, Callable[[], None]]:
    """
    Start a Coordinator routing in a daemon thread; return its port and a
    function that stops it (and waits for the socket to be closed).
    """
    multi_socket = LoopbackMultiSocket()
    coordinator = Coordinator(
        namespace=namespace, host="127.0.0.1", port=port, multi_socket=multi_socket
    )
    # Advertise the real port (it was "*"); only other Coordinators see it.
    coordinator.address = f"127.0.0.1:{multi_socket.port}"
    coordinator.directory._address = coordinator.address
    stop_event = threading.Event()

    def route() -> None:
        try:
            coordinator.routing(stop_event=stop_event)
        finally:
            coordinator.close()  # in the routing thread: zmq sockets are not thread-safe

    thread = threading.Thread(target=route, name="leco-coordinator", daemon=True)
    thread.start()

    def stop() -> None:
        stop_event.set()
        thread.join(5)

    return multi_socket.port, stop


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespace", default="N1")
    parser.add_argument("--port", default="0", help="0 (default) picks a free port")
    parser.add_argument(
        "--ignore-stdin", action="store_true",
        help="run until SIGTERM/SIGINT only (default: also stop when stdin closes)",
    )
    options = parser.parse_args(argv)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    port, stop = start_coordinator(options.namespace, options.port)
    print(f"LISTENING 127.0.0.1 {port}", flush=True)
    if not options.ignore_stdin:
        threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait()
    stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
