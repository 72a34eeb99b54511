"""
LECO benchmark: twisted_lab against pyleco 0.6.0.post1, in the same run.

    python bench/leco.py [--calls N] [--mib M] [--depth D]

Topology (the same for every stack): a server process runs the Coordinator
and the actor; a second process is the director, making JSON-RPC calls
actor.add(a, b) one at a time, then with D calls in flight, then 8 MiB
binary-payload calls.  Our actor reaches our Coordinator in memory (its
C{hub}), as the lab's actors do; every call still crosses ZeroMQ between
the director's process and the Coordinator's.

  1. pyleco Coordinator + pyleco Listener  <-  pyleco Communicator   (anchor)
  2. our Coordinator + our actor           <-  our Component
  3. pyleco Coordinator + our actor        <-  our Component

Prints calls/s, p50/p99 latency and GB/s, with ratios to the anchor.  For
the concurrent calls the anchor is given twice: pyleco's C{ask_rpc} (its
Director and Communicator wait for each answer, so that is what a pyleco
director does) and pyleco driven below that API with D requests in flight.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def serve_ours(coordinator_port: str | None) -> None:
    """Our Coordinator (unless given one) + our actor 'bench' in this process."""
    from twisted.internet import reactor

    from twisted_lab.protocols.leco.component import Component
    from twisted_lab.protocols.leco.coordinator import CoordinatorService

    hub = None
    if coordinator_port is None:
        # as the lab does: the actor reaches the Coordinator of its process in memory
        coordinator = CoordinatorService("TB", "tcp://127.0.0.1:*", reactor)
        coordinator.startService()
        address = coordinator.endpoint
        port = coordinator.port
        hub = coordinator.local_hub
    else:
        address = f"tcp://127.0.0.1:{coordinator_port}"
        port = int(coordinator_port)
    actor = Component("bench", address, reactor, hub=hub)
    actor.register_method("add", lambda p, f: p["a"] + p["b"])
    actor.register_method("blob", lambda p, f: (len(f[0]), [b"ok"]))
    actor.startService()

    def ready(_: object) -> None:
        print(f"PORT {port}", flush=True)

    actor.when_signed_in().addCallback(ready)
    reactor.addReader(_StdinWatch(reactor))  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


class _StdinWatch:
    def __init__(self, reactor: object) -> None:
        self.reactor = reactor

    def fileno(self) -> int:
        return 0

    def logPrefix(self) -> str:
        return "stdin"

    def doRead(self) -> None:
        if not os.read(0, 4096):
            self.reactor.removeReader(self)  # type: ignore[attr-defined]
            self.reactor.stop()  # type: ignore[attr-defined]

    def connectionLost(self, reason: object) -> None:
        if self.reactor.running:  # type: ignore[attr-defined]
            self.reactor.stop()  # type: ignore[attr-defined]


def call_ours(port: int, actor: str, n: int, mib: int, depth: int) -> None:
    """Our Component as the director; prints one JSON line."""
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    from twisted_lab.protocols.leco.component import Component

    async def run() -> None:
        me = Component("benchdirector", f"tcp://127.0.0.1:{port}", reactor, timeout=10)
        me.startService()
        await me.when_signed_in()
        await me.ask(actor, "add", {"a": 1, "b": 2})
        lat = []
        t0 = time.perf_counter()
        for i in range(n):
            t = time.perf_counter()
            await me.ask(actor, "add", {"a": i, "b": 1})
            lat.append(time.perf_counter() - t)
        total = time.perf_counter() - t0
        lat.sort()
        # the same calls with `depth` in flight (what a Deferred-based director does
        # when several devices or callers use it at once)
        concurrent: list[float] = []
        finished: Deferred[None] = Deferred()
        sent = 0

        def send() -> None:
            nonlocal sent
            sent += 1
            started = time.perf_counter()
            d = me.ask(actor, "add", {"a": sent, "b": 1})
            d.addCallbacks(answered, finished.errback, (started, sent + 1))

        def answered(result: tuple[object, list[bytes]], started: float, expected: int
                     ) -> None:
            concurrent.append(time.perf_counter() - started)
            if result[0] != expected:
                finished.errback(ValueError(f"answer {result[0]!r}, expected {expected}"))
            elif len(concurrent) == n:
                finished.callback(None)
            elif sent < n:
                send()

        t0 = time.perf_counter()
        for _ in range(min(depth, n)):
            send()
        await finished
        concurrent_total = time.perf_counter() - t0
        concurrent.sort()
        payload = b"\x01" * (8 << 20)
        reps = max(1, mib // 8)
        t0 = time.perf_counter()
        for _ in range(reps):
            await me.ask(actor, "blob", None, [payload])
        big = time.perf_counter() - t0
        await me.stopService()
        print(json.dumps({"calls_per_s": n / total, "p50_us": lat[n // 2] * 1e6,
                          "p99_us": lat[int(n * 0.99)] * 1e6,
                          "concurrent_calls_per_s": n / concurrent_total,
                          "concurrent_p50_us": concurrent[n // 2] * 1e6,
                          "concurrent_p99_us": concurrent[int(n * 0.99)] * 1e6,
                          "gb_per_s": reps * len(payload) / big / 1e9}), flush=True)

    d = Deferred.fromCoroutine(run())
    d.addErrback(lambda f: f.printTraceback())
    d.addBoth(lambda _: reactor.stop())  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


def serve_floor() -> None:
    """Plain pyzmq ROUTER sending every message straight back (no Twisted, no JSON)."""
    import zmq

    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.bind("tcp://127.0.0.1:*")
    port = int(router.getsockopt(zmq.LAST_ENDPOINT).decode().rsplit(":", 1)[1])
    print(f"PORT {port}", flush=True)
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    poller.register(0, zmq.POLLIN)
    while True:
        events = dict(poller.poll())
        if 0 in events and not os.read(0, 4096):
            break
        while router.poll(0):
            router.send_multipart(router.recv_multipart(copy=True))
    router.close(0)
    context.term()


def call_floor(port: int, n: int) -> None:
    """Plain pyzmq DEALER: n sequential round trips of a LECO-sized message."""
    import zmq

    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.connect(f"tcp://127.0.0.1:{port}")
    message = [b"\x00", b"TB.bench", b"TB.benchdirector", bytes(20),
               b'{"id": 1, "method": "add", "params": {"a": 1, "b": 2}, "jsonrpc": "2.0"}']
    dealer.send_multipart(message)
    dealer.recv_multipart()
    lat = []
    t0 = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        dealer.send_multipart(message)
        dealer.recv_multipart()
        lat.append(time.perf_counter() - t)
    total = time.perf_counter() - t0
    lat.sort()
    dealer.close(0)
    context.term()
    print(json.dumps({"calls_per_s": n / total, "p50_us": lat[n // 2] * 1e6,
                      "p99_us": lat[int(n * 0.99)] * 1e6}), flush=True)


def _start(cmd: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if not line.startswith("PORT"):
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, int(line.split()[1])


def _run(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--mib", type=int, default=160)
    parser.add_argument("--depth", type=int, default=64,
                        help="calls in flight in the concurrent measurement")
    parser.add_argument("--serve-ours", nargs="?", const="", default=None)
    parser.add_argument("--call-ours", nargs=2)
    parser.add_argument("--serve-floor", action="store_true")
    parser.add_argument("--call-floor", type=int)
    args = parser.parse_args()
    if args.serve_ours is not None:
        serve_ours(args.serve_ours or None)
        return
    if args.serve_floor:
        serve_floor()
        return
    if args.call_floor:
        call_floor(args.call_floor, args.calls)
        return
    if args.call_ours:
        call_ours(int(args.call_ours[0]), args.call_ours[1], args.calls, args.mib, args.depth)
        return

    from tests.peers import peer_env, peer_python
    py = str(peer_python("pyleco"))
    env = peer_env("pyleco")
    peer = os.path.join(ROOT, "tests", "peers", "pyleco_bench.py")
    me = [sys.executable, os.path.abspath(__file__), "--calls", str(args.calls),
          "--mib", str(args.mib), "--depth", str(args.depth)]
    results = {}

    server, port = _start([py, peer, "serve"], env)
    try:
        results["pyleco Coordinator + pyleco actor <- pyleco Communicator"] = _run(
            [py, peer, "call", str(port), "PB.bench", str(args.calls), str(args.mib),
             str(args.depth)], env)
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(10)

    ours, port = _start(me + ["--serve-ours"])
    try:
        results["our Coordinator + our actor <- our Component"] = _run(
            me + ["--call-ours", str(port), "TB.bench"])
    finally:
        ours.stdin.close()  # type: ignore[union-attr]
        ours.wait(10)

    coordinator = os.path.join(ROOT, "tests", "peers", "pyleco_coordinator.py")
    server, port = _start([py, coordinator, "PB"], env)
    try:
        ours, _ = _start(me + ["--serve-ours", str(port)])
        try:
            results["pyleco Coordinator + our actor <- our Component"] = _run(
                me + ["--call-ours", str(port), "PB.bench"])
        finally:
            ours.stdin.close()  # type: ignore[union-attr]
            ours.wait(10)
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(10)

    floor_server, port = _start(me + ["--serve-floor"])
    try:
        floor = _run(me + ["--call-floor", str(port)])
    finally:
        floor_server.stdin.close()  # type: ignore[union-attr]
        floor_server.wait(10)

    anchor = next(iter(results.values()))
    print(f"topology: rows 1-2: one server process runs the Coordinator and the actor (ours: "
          f"the actor reaches our Coordinator in memory, as in the lab), a separate caller "
          f"process makes the calls; row 3: pyleco's Coordinator and our actor are two "
          f"processes (different venvs), so one more process than the anchor; pyleco's "
          f"Communicator waits in zmq poll (no sleeps). {args.calls} add() calls each way.")
    print("\nsequential: one call at a time (pyleco's Director/Communicator ask_rpc can "
          "only do this)")
    print(f"{'stack':58s} {'calls/s':>9s} {'p50 us':>8s} {'p99 us':>8s}   vs pyleco")
    for name, r in results.items():
        print(f"{name:58s} {r['calls_per_s']:9.0f} {r['p50_us']:8.0f} {r['p99_us']:8.0f}   "
              f"x{r['calls_per_s'] / anchor['calls_per_s']:.2f}")
    print(f"{'floor: plain pyzmq echo (no actor hop, no JSON)':58s} "
          f"{floor['calls_per_s']:9.0f} {floor['p50_us']:8.0f} {floor['p99_us']:8.0f}   "
          f"x{floor['calls_per_s'] / anchor['calls_per_s']:.2f}  (the most any stack "
          f"can do one call at a time over ZeroMQ between two processes here)")
    print(f"\nconcurrent: {args.depth} calls in flight (ours: Deferreds from one Component; "
          f"pyleco: send_message/read_message below its Director API)")
    print(f"{'stack':58s} {'calls/s':>9s} {'p50 us':>8s} {'p99 us':>8s}   "
          f"vs pyleco ask_rpc   vs pyleco concurrent")
    for name, r in results.items():
        print(f"{name:58s} {r['concurrent_calls_per_s']:9.0f} {r['concurrent_p50_us']:8.0f} "
              f"{r['concurrent_p99_us']:8.0f}   "
              f"x{r['concurrent_calls_per_s'] / anchor['calls_per_s']:<16.2f}"
              f"x{r['concurrent_calls_per_s'] / anchor['concurrent_calls_per_s']:.2f}")
    print("\n8 MiB binary payload, sequential")
    print(f"{'stack':58s} {'GB/s':>9s}   vs pyleco")
    for name, r in results.items():
        print(f"{name:58s} {r['gb_per_s']:9.3f}   x{r['gb_per_s'] / anchor['gb_per_s']:.1f}")

if __name__ == "__main__":
    main()
