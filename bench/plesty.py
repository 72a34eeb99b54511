#!/usr/bin/env python
"""
PLESTY benchmark: query round trips per second and 8 MiB array replies.

One run starts, each in its own process on 127.0.0.1 (ephemeral ports):
  - plain:   a plain pyzmq ROUTER loop (JSON in, JSON out; arrays zero-copy),
  - ours:    twisted_lab's PLESTY server (own ZMQ reader on the reactor),
  - txzmq:   only with --txzmq (txzmq installed by hand; it is not a
             dependency): the same handler behind a txzmq ROUTER connection,
             the measurement behind choosing our reader over txzmq,
  - plesty:  plesty-lib 0.6.0's own server with its DemoDevice (its venv),
and drives each with the same blocking pyzmq DEALER client in this process,
then prints the ratios (targets: ours >= 0.5x plain, >= 2x plesty-lib; the
8 MiB array replies are compared with plain pyzmq zero-copy, target >= 0.9x).
All servers run for the whole run and the measurements are interleaved:
each round times every server in turn (the order rotating), and the script
prints medians with their range and the per-round ratios.

Usage (from the repo root):
    python bench/plesty.py [--seconds 0.5] [--rounds 10] [--txzmq]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import zmq

ROOT = Path(__file__).resolve().parent.parent
ARRAY_BYTES = 8 * 1024 * 1024
QUERY = json.dumps({"type": "query", "param": "wavelength", "timeout": None}).encode()
ARRAY_QUERY = json.dumps({"type": "query", "param": "frame", "timeout": None,
                          "binary": True}).encode()


# -- servers (run as child processes) ---------------------------------------------------

def serve_plain() -> None:
    """A plain pyzmq ROUTER doing the same JSON work per request."""
    context = zmq.Context()
    socket = context.socket(zmq.ROUTER)
    socket.bind("tcp://127.0.0.1:*")
    print(socket.getsockopt(zmq.LAST_ENDPOINT).decode(), flush=True)
    values = {"wavelength": 532.0}
    frame = np.arange(ARRAY_BYTES // 8, dtype=np.float64)
    while True:
        identity, body = socket.recv_multipart()
        request = json.loads(body)
        if request["param"] == "frame":
            header = {"status": "ok", "result": {"__array__": 1, "dtype": frame.dtype.str,
                                                 "shape": list(frame.shape)}}
            socket.send_multipart([identity, json.dumps(header).encode(), frame], copy=False)
        else:
            reply = {"status": "ok", "result": values[request["param"]]}
            socket.send_multipart([identity, json.dumps(reply).encode()])


def _registry():  # type: ignore[no-untyped-def]
    from twisted.internet import reactor

    from twisted_lab.description import Parameter
    from twisted_lab.devices.base import BaseDevice
    from twisted_lab.registry import DeviceRegistry

    frame = np.arange(ARRAY_BYTES // 8, dtype=np.float64)
    device = BaseDevice("powermeter", [Parameter("wavelength", "float", "nm", default=532.0),
                                       Parameter("frame", "array", readonly=True,
                                                 default=frame)])
    registry = DeviceRegistry(reactor)
    registry.register(device)
    return reactor, registry


def serve_ours() -> None:
    """twisted_lab's PLESTY server."""
    from twisted_lab.protocols.plesty.export import PlestyServerService

    reactor, registry = _registry()
    service = PlestyServerService(registry, "powermeter", "tcp://127.0.0.1:*", reactor)
    service.startService()
    print(service.address, flush=True)
    reactor.run()


def serve_txzmq() -> None:
    """The same handler behind txzmq's ROUTER connection."""
    from twisted.internet.defer import Deferred
    from txzmq import ZmqEndpoint, ZmqFactory, ZmqRouterConnection

    from twisted_lab.protocols.plesty.handler import PlestyHandler

    reactor, registry = _registry()
    handler = PlestyHandler(registry, "powermeter", reactor)

    class Router(ZmqRouterConnection):  # type: ignore[misc]
        def gotMessage(self, sender, *frames):  # type: ignore[no-untyped-def]
            d = Deferred.fromCoroutine(handler.handle([sender, *frames]))
            d.addCallback(lambda out: out and self.send([bytes(f) if not isinstance(f, bytes)
                                                         else f for f in out]))

    router = Router(ZmqFactory(), ZmqEndpoint("bind", "tcp://127.0.0.1:*"))
    print(router.socket.getsockopt(zmq.LAST_ENDPOINT).decode(), flush=True)
    reactor.run()


# -- the client -------------------------------------------------------------------------

def start(argv: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env=env, cwd=str(ROOT))
    assert process.stdout is not None
    address = process.stdout.readline().strip()
    if not address:
        process.kill()
        raise RuntimeError(f"{argv} did not start")
    return process, address


def round_trips(address: str, seconds: float) -> float:
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(address)
    for _ in range(200):  # warm up (and connect)
        socket.send(QUERY)
        socket.recv()
    count, start_time = 0, time.perf_counter()
    deadline = start_time + seconds
    while True:
        for _ in range(100):
            socket.send(QUERY)
            reply = socket.recv()
        count += 100
        now = time.perf_counter()
        if now >= deadline:
            break
    assert json.loads(reply)["result"] == 532.0
    socket.close(0)
    context.term()
    return count / (now - start_time)


def arrays(address: str, seconds: float) -> float:
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(address)
    socket.send(ARRAY_QUERY)
    socket.recv_multipart()
    count, start_time = 0, time.perf_counter()
    while True:
        socket.send(ARRAY_QUERY)
        frames = socket.recv_multipart(copy=False)
        header = json.loads(frames[0].bytes)["result"]
        array = np.frombuffer(frames[header["__array__"]].buffer, dtype=header["dtype"])
        count += 1
        now = time.perf_counter()
        if now - start_time >= seconds:
            break
    assert array.nbytes == ARRAY_BYTES and array[-1] == ARRAY_BYTES // 8 - 1
    socket.close(0)
    context.term()
    return count * ARRAY_BYTES / (now - start_time) / 1e9


def _spread(values: list[float], digits: int = 2) -> str:
    """Median and range, as C{median (low-high)}."""
    return (f"{statistics.median(values):.{digits}f} "
            f"({min(values):.{digits}f}-{max(values):.{digits}f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--seconds", type=float, default=0.5,
                        help="seconds per measurement per round")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--txzmq", action="store_true",
                        help="also time the handler on txzmq (pip install txzmq first)")
    parser.add_argument("--serve", choices=["plain", "ours", "txzmq"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        {"plain": serve_plain, "ours": serve_ours, "txzmq": serve_txzmq}[args.serve]()
        return
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    me = [sys.executable, str(Path(__file__).resolve())]
    processes = []
    names = ["plain", "ours", "txzmq"] if args.txzmq else ["plain", "ours"]
    rt: dict[str, list[float]] = {name: [] for name in names + ["plesty"]}
    gbs: dict[str, list[float]] = {name: [] for name in names}
    try:
        addresses = {}
        for name in names:
            process, addresses[name] = start(me + ["--serve", name], env)
            processes.append(process)
        sys.path.insert(0, str(ROOT))
        from tests.peers import peer_env, peer_python

        process, addresses["plesty"] = start([str(peer_python("plesty")),
                                              str(ROOT / "tests" / "peers" / "plesty_server.py")],
                                             peer_env("plesty"))
        processes.append(process)
        # every server is up before the first round; then rounds alternate
        # the servers (the order rotating), so load swings fall on all alike
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                rt[name].append(round_trips(addresses[name], args.seconds))
            rt["plesty"].append(round_trips(addresses["plesty"], args.seconds))
            for name in reversed(order):
                gbs[name].append(arrays(addresses[name], args.seconds))
    finally:
        for process in processes:
            process.kill()
            process.wait()

    def ratio(a: list[float], b: list[float]) -> str:
        return _spread([x / y for x, y in zip(a, b)])

    print(f"PLESTY, {args.rounds} interleaved rounds of {args.seconds:g} s per measurement; "
          "median (range over the rounds); ratios are per round")
    print("query round trips/s (one DEALER client):")
    print(f"  plain pyzmq ROUTER       {_spread(rt['plain'], 0)}")
    print(f"  twisted_lab (own reader) {_spread(rt['ours'], 0)}   "
          f"{ratio(rt['ours'], rt['plain'])}x plain (target >= 0.5x), "
          f"{ratio(rt['ours'], rt['plesty'])}x plesty-lib (target >= 2x)")
    if args.txzmq:
        print(f"  same handler on txzmq    {_spread(rt['txzmq'], 0)}   "
              f"{ratio(rt['txzmq'], rt['plain'])}x plain")
    print(f"  plesty-lib 0.6.0 server  {_spread(rt['plesty'], 0)}   "
          f"{ratio(rt['plesty'], rt['plain'])}x plain")
    print("8 MiB float64 array replies, GB/s:")
    print(f"  plain pyzmq zero-copy    {_spread(gbs['plain'])}")
    print(f"  twisted_lab (binary)     {_spread(gbs['ours'])}   "
          f"{ratio(gbs['ours'], gbs['plain'])}x plain (target >= 0.9x)")
    if args.txzmq:
        print(f"  same handler on txzmq    {_spread(gbs['txzmq'])}   "
              f"{ratio(gbs['txzmq'], gbs['plain'])}x plain")
    print("  plesty-lib 0.6.0         cannot: an ndarray result is a SerializationError")
    with open("/proc/loadavg") as f:
        print(f"load average at the end: {f.read().split()[0]}")


if __name__ == "__main__":
    main()
