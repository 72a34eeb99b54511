"""
pyleco side of bench/leco.py (runs inside the pyleco venv).

    python pyleco_bench.py serve [PORT]     Coordinator (127.0.0.1) + Listener "bench" with
                                            add(a, b) and blob (binary); prints PORT n;
                                            serves until stdin closes.
    python pyleco_bench.py call PORT ACTOR N MIB DEPTH
                                            a Communicator: N ask_rpc add() round trips,
                                            N add() requests with DEPTH in flight
                                            (send_message/read_message: pyleco's
                                            Director cannot have more than one), then
                                            8 MiB blob calls; prints one JSON line.
"""
from __future__ import annotations

import json
import sys
import threading
import time

import zmq


def serve(port: str) -> None:
    from pyleco.coordinators.coordinator import Coordinator
    from pyleco.utils.coordinator_utils import ZmqMultiSocket
    from pyleco.utils.listener import Listener

    class LoopbackMultiSocket(ZmqMultiSocket):
        def bind(self, host: str = "127.0.0.1", port: "int | str" = "*") -> None:
            self._sock.bind(f"tcp://127.0.0.1:{port}")
            self.port = int(self._sock.getsockopt(zmq.LAST_ENDPOINT).decode().rsplit(":", 1)[1])

    ms = LoopbackMultiSocket()
    coordinator = Coordinator(namespace="PB", host="127.0.0.1", port=port, multi_socket=ms)
    stop = threading.Event()

    def route() -> None:
        try:
            coordinator.routing(stop_event=stop)
        finally:
            coordinator.close()

    threading.Thread(target=route, daemon=True).start()
    listener = Listener(name="bench", host="127.0.0.1", port=ms.port)
    listener.start_listen()
    listener.register_rpc_method(lambda a, b: a + b, name="add")

    def blob(additional_payload=None):
        return len(additional_payload[0]), [b"ok"]

    listener.message_handler.register_binary_rpc_method(
        blob, accept_binary_input=True, return_binary_output=True)
    print(f"PORT {ms.port}", flush=True)
    for _ in sys.stdin:
        pass
    listener.stop_listen()
    stop.set()


def call(port: int, actor: str, n: int, mib: int, depth: int) -> None:
    from pyleco.core.message import Message, MessageTypes
    from pyleco.json_utils.rpc_generator import RPCGenerator
    from pyleco.utils.communicator import Communicator

    generator = RPCGenerator()

    with Communicator(name="benchdirector", host="127.0.0.1", port=port, timeout=10) as com:
        com.ask_rpc(actor, "add", a=1, b=2)
        lat = []
        t0 = time.perf_counter()
        for i in range(n):
            t = time.perf_counter()
            com.ask_rpc(actor, "add", a=i, b=1)
            lat.append(time.perf_counter() - t)
        total = time.perf_counter() - t0
        lat.sort()
        # the same calls with `depth` requests in flight, answers matched by conversation id
        started: dict[bytes, float] = {}
        concurrent = []

        def send(i: int) -> None:
            message = Message(actor, message_type=MessageTypes.JSON,
                              data=generator.build_request_str("add", a=i, b=1))
            started[message.conversation_id] = time.perf_counter()
            com.send_message(message)

        t0 = time.perf_counter()
        sent = 0
        while sent < min(depth, n):
            send(sent)
            sent += 1
        for _ in range(n):
            answer = com.read_message()
            if generator.get_result_from_response(answer.payload[0]) is None:
                raise SystemExit(f"bad answer {answer.payload!r}")
            concurrent.append(time.perf_counter() - started.pop(answer.conversation_id))
            if sent < n:
                send(sent)
                sent += 1
        concurrent_total = time.perf_counter() - t0
        concurrent.sort()
        payload = b"\x01" * (8 << 20)
        reps = max(1, mib // 8)
        t0 = time.perf_counter()
        for _ in range(reps):
            com.ask_rpc(actor, "blob", additional_payload=[payload],
                        extract_additional_payload=True)
        big = time.perf_counter() - t0
    print(json.dumps({"calls_per_s": n / total, "p50_us": lat[n // 2] * 1e6,
                      "p99_us": lat[int(n * 0.99)] * 1e6,
                      "concurrent_calls_per_s": n / concurrent_total,
                      "concurrent_p50_us": concurrent[n // 2] * 1e6,
                      "concurrent_p99_us": concurrent[int(n * 0.99)] * 1e6,
                      "gb_per_s": reps * len(payload) / big / 1e9}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2] if len(sys.argv) > 2 else "*")
    else:
        call(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]),
             int(sys.argv[6]))
