"""
LA4 pycom benchmark: commands per second and command → output latency.

Runs, in the same process and the same run:

  - baseline: a plain-socket JSON request/callback loop (a thread plays the
    node: accept, read the JSON to EOF, parse it, connect back to the
    requester's port and send a JSON output event; the client sends a
    command on a new connection and waits for the callback);
  - twisted_lab: our coordinator's node device (global reactor) driving our
    simulated node (its own reactor in a thread, like the baseline's node),
    C{set_model_light} per call: fixed-template rendering, grammar check,
    board update, the output event, plus the three boardio message events
    (BOARDIO_READY x2, Sequence complete) our node sends after it, each on
    its own connection as pycom does.

Prints commands/s and p50/p99 latency of each, and the ratios.
Usage: PYTHONPATH=. python bench/la4.py [count]
"""
from __future__ import annotations

import json
import socket
import statistics
import sys
import multiprocessing
import time
from typing import Any

#: Each node runs in its own process (fork: no shell, no exec), so that
#: neither side competes with the client for one interpreter lock.
_CONTEXT = multiprocessing.get_context("fork")

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
BASE = {"id": "7756f193", "name": "bench", "ip": "127.0.0.1", "version": "0.1.0"}


def _read_all(conn: socket.socket) -> bytes:
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data


def _baseline_node(node: socket.socket, count: int) -> None:
    """The baseline node: read a JSON request to EOF, answer on a new connection."""
    node_port = node.getsockname()[1]
    for _ in range(count):
        conn, (host, _port) = node.accept()
        with conn:
            request = json.loads(_read_all(conn))
        event = dict(BASE, port=node_port, coordinator=False, type_="output",
                     output='BOARDIO_CLI: Sent: "uSeq" to FIFO file\n')
        with socket.create_connection((host, request["port"])) as out:
            out.sendall(json.dumps(event).encode())


def baseline(count: int) -> tuple[float, list[float]]:
    """Plain blocking sockets, one connection per message, both directions."""
    node = socket.socket()
    node.bind(("127.0.0.1", 0))
    node.listen(64)
    node_port = node.getsockname()[1]
    callback = socket.socket()
    callback.bind(("127.0.0.1", 0))
    callback.listen(64)
    callback_port = callback.getsockname()[1]

    process = _CONTEXT.Process(target=_baseline_node, args=(node, count), daemon=True)
    process.start()
    command = dict(BASE, port=callback_port, coordinator=True, type_="cmd",
                   command='echo "MODEL_LIGHT,50" > /home/rigsters/la4_sequence.csv && '
                           "boardiocli uSeq && boardiocli runSeq")
    latencies = []
    start = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        with socket.create_connection(("127.0.0.1", node_port)) as out:
            out.sendall(json.dumps(command).encode())
        conn, _ = callback.accept()
        with conn:
            json.loads(_read_all(conn))
        latencies.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    process.join(10)
    node.close()
    callback.close()
    return count / total, latencies


def _our_node(ready: Any, messages: bool) -> None:
    """Our simulated node, on its own reactor in its own process."""
    from twisted.internet import reactor

    from twisted_lab.protocols.la4.node import SimulatedNode

    node = SimulatedNode(reactor, port=0, events_per_second=0,
                         boardio_messages=messages)
    node.startService()
    node.when_listening().addCallback(ready.send)
    reactor.run()  # type: ignore[attr-defined]


def start_node(messages: bool) -> tuple[Any, int]:
    """Fork one simulated node process (before this process runs its reactor)."""
    parent, child = _CONTEXT.Pipe()
    process = _CONTEXT.Process(target=_our_node, args=(child, messages), daemon=True)
    process.start()
    return process, parent.recv()


def ours(count: int, ports: list[int]) -> list[tuple[float, list[float]]]:
    """
    Our coordinator (this process) driving each simulated node (each in its
    own process, like the baseline's node), one after the other.
    """
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred
    from twisted.internet.task import deferLater

    from twisted_lab.protocols.la4.coordinator import CoordinatorService, NodeConfig
    from twisted_lab.registry import DeviceRegistry

    results: list[tuple[float, list[float]]] = []
    errors: list[Any] = []

    async def measure(port: int) -> None:
        registry = DeviceRegistry(reactor)
        service = CoordinatorService(registry, reactor, [NodeConfig("la4", "127.0.0.1", port)],
                                     "tcp:0:interface=127.0.0.1")
        service.startService()
        await service.when_listening()
        device = registry.lookup("la4")
        while not device.online:
            await deferLater(reactor, 0.01)
        for i in range(50):  # warm up
            await device.call("set_model_light", i % 101)
        latencies = []
        start = time.perf_counter()
        for i in range(count):
            t0 = time.perf_counter()
            await device.call("set_model_light", i % 101)
            latencies.append(time.perf_counter() - t0)
        total = time.perf_counter() - start
        results.append((count / total, latencies))
        await service.stopService()

    async def run() -> None:
        for port in ports:
            await measure(port)

    def main() -> None:
        d = Deferred.fromCoroutine(run())
        d.addErrback(errors.append)
        d.addBoth(lambda _: reactor.stop())  # type: ignore[attr-defined]

    reactor.callWhenRunning(main)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    if errors:
        errors[0].raiseException()
    return results


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1e3


def main() -> None:
    base_rate, base_lat = baseline(COUNT)
    nodes = [start_node(False), start_node(True)]
    measured = ours(COUNT, [port for _process, port in nodes])
    for process, _port in nodes:
        process.terminate()
        process.join(5)
    rows = [("plain-socket baseline", base_rate, base_lat),
            ("twisted_lab, output only", *measured[0]),
            ("twisted_lab, + boardio msgs", *measured[1])]
    print(f"LA4 pycom, {COUNT} commands each, one connection per message, loopback")
    print(f"{'':30}{'cmd/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'ratio':>8}")
    for name, rate, lat in rows:
        print(f"{name:30}{rate:10.0f}{_pct(lat, 50):10.3f}{_pct(lat, 99):10.3f}"
              f"{rate / base_rate:8.2f}")
    print("ratio = commands/s against the baseline in this run (target >= 0.5 for the "
          "same message count: 'output only').")


if __name__ == "__main__":
    main()
