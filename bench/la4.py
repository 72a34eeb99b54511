"""
LA4 pycom benchmark: commands per second and command → output latency.

Three loops, measured in the same run and interleaved (round 1 of each,
then round 2 of each, ...), so that load from other users of the machine
falls on all of them alike:

  - baseline: a plain-socket JSON request/callback loop.  A process plays
    the node: accept, read the JSON to EOF, parse it, connect back to the
    requester's port and send a JSON output event.  The client (this
    process) sends a command on a new connection and waits for the callback
    on its listener, reading it to EOF and parsing it;
  - twisted_lab, output only: our coordinator's node device (this process,
    global reactor) driving our simulated node (its own process and
    reactor, like the baseline's node), C{set_model_light} per call:
    action validation, fixed-template rendering, grammar check, board
    update, and the output event.  The same connections and JSON as the
    baseline;
  - twisted_lab, + boardio msgs: the same, plus the three boardio message
    events (BOARDIO_READY x2, Sequence complete) our node sends after the
    output, each on its own connection as pycom does (four callbacks per
    command, so not comparable one for one with the baseline).

Prints commands/s and p50/p99 latency of each, and the ratio of commands/s
to the baseline's (target: >= 0.5 for 'output only').
Usage: PYTHONPATH=. python bench/la4.py [count] [rounds]
"""
from __future__ import annotations

import json
import multiprocessing
import socket
import statistics
import sys
import time
from typing import Any

#: Each node runs in its own process (fork: no shell, no exec), so that
#: neither side competes with the client for one interpreter lock.
_CONTEXT = multiprocessing.get_context("fork")

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 4
WARMUP = 50
BASE = {"id": "7756f193", "name": "bench", "ip": "127.0.0.1", "version": "0.1.0"}


def _connect(host: str, port: int) -> socket.socket:
    """A blocking connection to an IP literal (no name lookup, like ours)."""
    sock = socket.socket()
    sock.connect((host, port))
    return sock


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
        with _connect(host, request["port"]) as out:
            out.sendall(json.dumps(event).encode())


class Baseline:
    """Plain blocking sockets, one connection per message, both directions."""

    def __init__(self, total: int) -> None:
        self.node = socket.socket()
        self.node.bind(("127.0.0.1", 0))
        self.node.listen(64)
        self.node_port = self.node.getsockname()[1]
        self.callback = socket.socket()
        self.callback.bind(("127.0.0.1", 0))
        self.callback.listen(64)
        self.command = dict(BASE, port=self.callback.getsockname()[1], coordinator=True,
                            type_="cmd",
                            command='echo "MODEL_LIGHT,50" > /home/rigsters/la4_sequence.csv'
                                    " && boardiocli uSeq && boardiocli runSeq")
        self.process = _CONTEXT.Process(target=_baseline_node, args=(self.node, total),
                                        daemon=True)
        self.process.start()

    def run(self, count: int) -> tuple[float, list[float]]:
        """C{count} round trips (blocking); @return: elapsed seconds, latencies."""
        latencies = []
        start = time.perf_counter()
        for _ in range(count):
            t0 = time.perf_counter()
            with _connect("127.0.0.1", self.node_port) as out:
                out.sendall(json.dumps(self.command).encode())
            conn, _ = self.callback.accept()
            with conn:
                json.loads(_read_all(conn))
            latencies.append(time.perf_counter() - t0)
        return time.perf_counter() - start, latencies

    def close(self) -> None:
        self.process.join(10)
        self.node.close()
        self.callback.close()


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


def measure(base: Baseline, ports: list[int], count: int,
            rounds: int) -> list[tuple[float, list[float]]]:
    """
    Interleave C{rounds} rounds of: the baseline (blocking, inside a reactor
    turn: nothing else runs meanwhile), then our coordinator (this process)
    driving each simulated node.  @return: (commands/s, latencies) of each.
    """
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred
    from twisted.internet.task import deferLater

    from twisted_lab.protocols.la4.imports import LA4CoordinatorService, NodeConfig
    from twisted_lab.registry import DeviceRegistry

    elapsed = [0.0] * (1 + len(ports))
    latencies: list[list[float]] = [[] for _ in elapsed]
    errors: list[Any] = []

    async def ours(device: Any, n: int) -> tuple[float, list[float]]:
        lat = []
        start = time.perf_counter()
        for i in range(n):
            t0 = time.perf_counter()
            await device.call("set_model_light", i % 101)
            lat.append(time.perf_counter() - t0)
        return time.perf_counter() - start, lat

    async def run() -> None:
        registry = DeviceRegistry(reactor)
        nodes = [NodeConfig(f"la4_{i}", "127.0.0.1", port) for i, port in enumerate(ports)]
        service = LA4CoordinatorService(registry, reactor, nodes, "tcp:0:interface=127.0.0.1")
        service.startService()
        await service.when_listening()
        devices = [registry.lookup(n.name) for n in nodes]
        while not all(d.online for d in devices):
            await deferLater(reactor, 0.01)
        for device in devices:
            await ours(device, WARMUP)
        base.run(WARMUP)
        for r in range(rounds):
            n = count // rounds + (1 if r < count % rounds else 0)
            results = [base.run(n)]
            for device in devices:
                results.append(await ours(device, n))
            for i, (t, lat) in enumerate(results):
                elapsed[i] += t
                latencies[i].extend(lat)
        await service.stopService()

    def main() -> None:
        d = Deferred.fromCoroutine(run())
        d.addErrback(errors.append)
        d.addBoth(lambda _: reactor.stop())  # type: ignore[attr-defined]

    reactor.callWhenRunning(main)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    if errors:
        errors[0].raiseException()
    return [(len(lat) / t, lat) for t, lat in zip(elapsed, latencies)]


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1e3


def main() -> None:
    base = Baseline(COUNT + WARMUP)
    nodes = [start_node(False), start_node(True)]
    measured = measure(base, [port for _process, port in nodes], COUNT, ROUNDS)
    base.close()
    for process, _port in nodes:
        process.terminate()
        process.join(5)
    base_rate = measured[0][0]
    rows = [("plain-socket baseline", *measured[0]),
            ("twisted_lab, output only", *measured[1]),
            ("twisted_lab, + boardio msgs", *measured[2])]
    print(f"LA4 pycom, {COUNT} commands each in {ROUNDS} interleaved rounds, "
          "one connection per message, loopback")
    print(f"{'':30}{'cmd/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'ratio':>8}")
    for name, rate, lat in rows:
        print(f"{name:30}{rate:10.0f}{_pct(lat, 50):10.3f}{_pct(lat, 99):10.3f}"
              f"{rate / base_rate:8.2f}")
    print("ratio = commands/s against the baseline in this run (target >= 0.5 for the "
          "same message count: 'output only').")
    with open("/proc/loadavg") as f:
        print(f"load average at the end: {f.read().split()[0]}")


if __name__ == "__main__":
    main()
