"""
Bridge benchmark: what one bridge hop costs, in one run.

    python bench/bridge.py [--calls N] [--frames F] [--rounds R] [--frames-only]

1. Latency of one bridge hop (a pyleco 0.6 Actor in a subprocess, pyleco venv,
   signed in to our Coordinator; mean of N sequential reads of its C{value}):
     direct   pyleco Director.get_parameters (subprocess) -> pyleco actor
     bridged  our PlestyClient.query -> our PLESTY server -> our LECO director
              (RemoteActorDevice) -> the same pyleco actor
   The added latency is bridged - direct (the two clients differ: a blocking
   pyleco Communicator vs our Twisted PLESTY client, both on loopback).
2. 2048x2048 float64 frames (32 MiB) through PyMoDAQ -> LECO, one process
   (under the lab's memory policy, C{twisted_lab.memory}, as C{twistd -n
   lab} runs it; C{--glibc-defaults} leaves glibc's allocator as it is;
   C{bench/chain.py} runs the same legs in three processes):
     PyMoDAQ leg  instrument (our PyMoDAQ 4 client role, GRABBER) -> our
                  PyMoDAQ server role: grab() on the imported device
     LECO leg     our actor over a local camera holding the same frame ->
                  our LECO director (PyMoDAQ 5 method set, send_data_grab):
                  grab(); the actor reaches our Coordinator in memory (as in
                  the lab), the director over ZeroMQ (as another process's
                  would); the frame has room around it
                  (C{twisted_lab.headroom.empty}, as the simulated camera's
                  frames and the arrays our server role reads have), so the
                  message is laid out around it
     LECO, copy   the same over the instrument's own frame, which numpy
                  allocated (as most drivers' frames are): the actor copies
                  it into its message
     chained      instrument -> PyMoDAQ server role -> our actor -> LECO
                  director: grab() on the director's device
     chained, continuous
                  the same chain as a PyMoDAQ 5 viewer's continuous grab uses
                  it: the director sends send_data_grab once and counts the
                  set_data frames it receives (the actor acquires the next
                  frame while the last one travels: the two hops overlap)
     pyzmq        anchor: the same 32 MiB as one frame, a plain pyzmq DEALER
                  -> ROUTER over TCP in this process (blocking, zero-copy
                  send), then an empty reply: what libzmq alone takes
   Frames per second, sequential grabs (frames received per second for
   the continuous leg).  The legs are interleaved:
   each of R rounds times F grabs on every leg (the order rotating from one
   round to the next), so load from other work on the machine falls on all
   legs alike.  It prints each leg's median frames/s (and range over the
   rounds), and the per-round ratios LECO/PyMoDAQ and chained/PyMoDAQ as a
   median with their range (targets: >= 0.7x and >= 0.6x, issue 12).
   Sequential grabs through the chain cross both hops in turn: their rate
   is at most 1/(1/P + 1/L) (P, L: the PyMoDAQ and LECO legs); it is
   printed as "serial bound".
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

PYLECO_DIRECT = r"""
import json, sys, time
from pyleco.directors.director import Director
port, actor, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
d = Director(actor=actor, host="127.0.0.1", port=port, name="bench_direct", timeout=5)
for _ in range(20):
    d.get_parameters(["value"])
t = time.perf_counter()
for _ in range(n):
    d.get_parameters(["value"])
print(json.dumps({"mean": (time.perf_counter() - t) / n}))
d.communicator.close()
"""


def _mean_time(samples: list[float]) -> float:
    return sum(samples) / len(samples)


async def latency(reactor: Any, calls: int) -> dict[str, float]:
    from twisted.internet.threads import deferToThread

    from tests.peers import peer_env, peer_python
    from twisted_lab.protocols.leco.coordinator import CoordinatorService
    from twisted_lab.protocols.leco.imports import DirectorService
    from twisted_lab.protocols.plesty.imports import PlestyClient
    from twisted_lab.protocols.plesty.export import PlestyServerService
    from twisted_lab.registry import DeviceRegistry

    coordinator = CoordinatorService("BB", "tcp://127.0.0.1:*", reactor)
    coordinator.startService()
    port = coordinator.endpoint.rsplit(":", 1)[1]
    py, env = str(peer_python("pyleco")), peer_env("pyleco")
    actor = subprocess.Popen([py, os.path.join(ROOT, "tests", "peers", "pyleco_driver.py"),
                              "actor", port, "bactor"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        line = await deferToThread(actor.stdout.readline)  # type: ignore[union-attr]
        if not line.startswith("READY"):
            raise RuntimeError(f"pyleco actor did not start: {line!r}")
        out = await deferToThread(subprocess.run, [py, "-c", PYLECO_DIRECT, port, "bactor",
                                                   str(calls)],
                                  capture_output=True, text=True, env=env, timeout=300)
        import json
        if out.returncode:
            raise RuntimeError(out.stderr[-2000:])
        direct = json.loads(out.stdout.strip().splitlines()[-1])["mean"]

        registry = DeviceRegistry(reactor)
        director = DirectorService(registry, [{"name": "remote", "actor": "bactor",
                                               "kind": "generic", "parameters": ["value"],
                                               "actions": []}],
                                   coordinator.endpoint, reactor, "bench_director", 5.0)
        director.startService()
        device = await registry.when_registered("remote")
        server = PlestyServerService(registry, "remote", "tcp://127.0.0.1:*", reactor)
        server.startService()
        client = PlestyClient(reactor, server.address, timeout=5.0)
        await client.connect()
        for _ in range(20):
            await client.query("value")
        t = time.perf_counter()
        for _ in range(calls):
            await client.query("value")
        bridged = (time.perf_counter() - t) / calls
        # the director leg alone (our RemoteActorDevice.get, no PLESTY)
        t = time.perf_counter()
        for _ in range(calls):
            await device.get("value")
        director_only = (time.perf_counter() - t) / calls
        await client.close()
        server.stopService()
        await director.stopService()
    finally:
        actor.stdin.close()  # type: ignore[union-attr]
        try:
            actor.wait(10)
        except subprocess.TimeoutExpired:
            actor.kill()
        await coordinator.stopService()
    return {"direct": direct, "bridged": bridged, "director_only": director_only}


async def frames(reactor: Any, count: int, rounds: int,
                 only: tuple[str, ...] = ("pymodaq", "leco", "leco-copy", "chained",
                                          "continuous", "pyzmq")
                 ) -> dict[str, list[float]]:
    import numpy as np
    from twisted.internet.endpoints import TCP4ServerEndpoint

    from twisted_lab import headroom
    from twisted_lab.data import Export, Signal
    from twisted_lab.protocols.leco.export import DeviceActor
    from twisted_lab.protocols.leco.coordinator import CoordinatorService
    from twisted_lab.protocols.leco.imports import DirectorService
    from twisted_lab.protocols.pymodaq.export import PyMoDAQClientFactory, PyMoDAQExportService
    from twisted_lab.protocols.pymodaq.imports import PyMoDAQServerFactory
    from twisted_lab.registry import DeviceRegistry
    from twisted_lab.testing import FakeDetector

    frame = np.random.default_rng(1).random((2048, 2048))
    export = Export("frame", [Signal("frame", [frame], kind="DataFromPlugins")])
    roomy = headroom.empty(frame.shape, frame.dtype)
    roomy[...] = frame
    instrument = DeviceRegistry(reactor)
    instrument.register(FakeDetector("frame", export))
    instrument.register(FakeDetector("local", Export("frame", [
        Signal("frame", [roomy], kind="DataFromPlugins")])))
    # PyMoDAQ: the instrument's client role -> our server role
    lab = DeviceRegistry(reactor)
    server = PyMoDAQServerFactory(lab, reactor, call_timeout=60.0, rules=[{"name": "cam"}])
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(server)
    export_service = PyMoDAQExportService(
        reactor, f"tcp:127.0.0.1:{port.getHost().port}",
        PyMoDAQClientFactory(instrument, "frame", "GRABBER"))
    export_service.startService()
    cam = await lab.when_registered("cam")
    while not cam.online:
        from twisted.internet.task import deferLater
        await deferLater(reactor, 0.02, lambda: None)
    # LECO: actors for the imported camera and for the instrument directly
    coordinator = CoordinatorService("BF", "tcp://127.0.0.1:*", reactor)
    coordinator.startService()
    # the actors reach the Coordinator in memory, as the lab's do; the director
    # goes through ZeroMQ, as another process's would: one network hop, as on
    # the PyMoDAQ leg
    hub = coordinator.local_hub
    actors = [DeviceActor(lab, "cam", coordinator.endpoint, reactor, timeout=60.0, hub=hub),
              DeviceActor(instrument, "local", coordinator.endpoint, reactor, name="direct",
                          timeout=60.0, hub=hub),
              DeviceActor(instrument, "frame", coordinator.endpoint, reactor,
                          name="direct_copy", timeout=60.0, hub=hub)]
    for a in actors:
        a.startService()
        await a.when_signed_in()
    far = DeviceRegistry(reactor)
    director = DirectorService(far, [
        {"name": "chained", "actor": "cam", "kind": "pymodaq_detector",
         "parameters": [], "actions": []},
        {"name": "leco_only", "actor": "direct", "kind": "pymodaq_detector",
         "parameters": [], "actions": []},
        {"name": "leco_copy", "actor": "direct_copy", "kind": "pymodaq_detector",
         "parameters": [], "actions": []}], coordinator.endpoint, reactor, "bench_far", 60.0)
    director.startService()

    def check(got: Any) -> None:
        got = got if isinstance(got, Export) else Export("x", [got])
        data = np.asarray(got.signals[0].data[0])
        assert data.shape == (2048, 2048) and np.array_equal(data, frame), "frame altered"

    async def rate(device: Any) -> float:
        t = time.perf_counter()
        for _ in range(count):
            await device.grab()
        return count / (time.perf_counter() - t)

    class PlainZmq:
        """The anchor: 32 MiB, one frame, DEALER -> ROUTER and an empty reply."""

        def __init__(self) -> None:
            import zmq
            self.context = zmq.Context()
            self.router = self.context.socket(zmq.ROUTER)
            port = self.router.bind_to_random_port("tcp://127.0.0.1")
            self.dealer = self.context.socket(zmq.DEALER)
            self.dealer.connect(f"tcp://127.0.0.1:{port}")

        async def grab(self) -> Export:
            self.dealer.send(b"grab")
            who, _ = self.router.recv_multipart()
            self.router.send_multipart([who, frame], copy=False)
            got = self.dealer.recv(copy=False)
            data = np.frombuffer(got.buffer, dtype=frame.dtype).reshape(frame.shape)
            return Export("x", [Signal("frame", [data], kind="DataFromPlugins")])

        def close(self) -> None:
            self.dealer.close(0)
            self.router.close(0)
            self.context.term()

    class Continuous:
        """The chain in a continuous grab: C{send_data_grab}, count C{set_data}."""

        def __init__(self, device: Any) -> None:
            self.device = device
            self.actor = actors[0].pymodaq
            # a viewer shows each frame and lets it go: the count and the last
            self.count = 0
            self.last: Any = None
            self.waiter: Any = None
            self.want = 0
            self.device.subscribe(self._event)

        def _event(self, event: Any) -> None:
            from twisted_lab.events import DATA
            if event.kind == DATA:
                self.count += 1
                self.last = event.value
                if self.waiter is not None and self.count >= self.want:
                    waiter, self.waiter = self.waiter, None
                    waiter.callback(None)

        async def until(self, count: int) -> None:
            from twisted.internet.defer import Deferred
            self.want = count
            if self.count < count:
                self.waiter = Deferred()
                await self.waiter

        async def rate(self) -> float:
            from twisted.internet.task import deferLater
            self.count, self.last = 0, None
            await director.component.ask("cam", "send_data_grab")
            await self.until(1)  # from the first frame on: the pipeline is full
            t = time.perf_counter()
            await self.until(count + 1)
            took = time.perf_counter() - t
            await director.component.ask("cam", "stop_grab")
            while self.actor.grabbing:
                await deferLater(reactor, 0.01, lambda: None)
            check(self.last)
            return count / took

    plain = PlainZmq()
    chained_device = await far.when_registered("chained")
    legs = {"pymodaq": cam, "leco": await far.when_registered("leco_only"),
            "leco-copy": await far.when_registered("leco_copy"),
            "chained": chained_device, "pyzmq": plain}
    for device in legs.values():  # warm up, and check the frame arrives whole
        check(await device.grab())
    continuous = Continuous(chained_device)
    names = [name for name in [*legs, "continuous"] if name in only]
    result: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            if name == "continuous":
                result[name].append(await continuous.rate())
            else:
                result[name].append(await rate(legs[name]))
    plain.close()
    await director.stopService()
    for a in actors:
        await a.stopService()
    await coordinator.stopService()
    await export_service.stopService()
    server.stop()
    await port.stopListening()
    return result


def _spread(values: list[float]) -> str:
    """Median and range, as C{median (low-high)}."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--frames", type=int, default=5, help="grabs per leg per round")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds")
    parser.add_argument("--frames-only", action="store_true",
                        help="skip part 1 (the bridge hop latency)")
    parser.add_argument("--glibc-defaults", action="store_true",
                        help="leave glibc's allocator as it is (not the lab's memory policy)")
    args = parser.parse_args()
    from twisted.internet import defer, task

    async def run(reactor: Any) -> None:
        if not args.glibc_defaults:
            from twisted_lab.memory import TrimService, reuse_large_buffers
            reuse_large_buffers()
            TrimService(reactor).startService()
        if not args.frames_only:
            lat = await latency(reactor, args.calls)
            ms = {k: v * 1e3 for k, v in lat.items()}
            print(f"1. one bridge hop, mean of {args.calls} sequential reads of a pyleco "
                  f"actor's 'value' (pyleco actor in a subprocess, our Coordinator):")
            print(f"   direct   pyleco Director -> pyleco actor:                       "
                  f"{ms['direct']:7.3f} ms")
            print(f"   bridged  PLESTY query -> our PLESTY server -> our LECO director "
                  f"-> pyleco actor: {ms['bridged']:7.3f} ms  "
                  f"({ms['bridged'] / ms['direct']:.2f}x)")
            print(f"   (our LECO director -> pyleco actor alone, in process:            "
                  f"{ms['director_only']:7.3f} ms)")
            print(f"   added by the bridge hop: {ms['bridged'] - ms['direct']:+.3f} ms per call")
        fps = await frames(reactor, args.frames, args.rounds)
        print(f"2. 2048x2048 float64 frames (32 MiB), one process, {args.rounds} interleaved "
              f"rounds of {args.frames} sequential grabs per leg; frames/s, median (range):")
        print(f"   PyMoDAQ leg  instrument -> our PyMoDAQ server role:          "
              f"{_spread(fps['pymodaq'])}")
        print(f"   LECO leg     our actor -> our LECO director (PyMoDAQ 5):     "
              f"{_spread(fps['leco'])}")
        print(f"   LECO, copy   the same, a frame without room (one copy):    "
              f"{_spread(fps['leco-copy'])}")
        print(f"   chained      instrument -> server role -> actor -> director: "
              f"{_spread(fps['chained'])}")
        print(f"   chained, continuous grab (send_data_grab):                 "
              f"{_spread(fps['continuous'])}")
        print(f"   anchor       plain pyzmq DEALER -> ROUTER, 32 MiB frame:   "
              f"{_spread(fps['pyzmq'])}")
        leco = [a / b for a, b in zip(fps["leco"], fps["pymodaq"])]
        chained = [a / b for a, b in zip(fps["chained"], fps["pymodaq"])]
        bound = [1 / (1 / p + 1 / q) / p for p, q in zip(fps["pymodaq"], fps["leco"])]
        continuous = [a / b for a, b in zip(fps["continuous"], fps["pymodaq"])]
        copied = [a / b for a, b in zip(fps["leco-copy"], fps["pymodaq"])]
        print(f"   LECO / PyMoDAQ, per round:    {_spread(leco)}x  (target >= 0.7x)")
        print(f"   LECO, copy / PyMoDAQ, per round: {_spread(copied)}x")
        print(f"   chained / PyMoDAQ, per round: {_spread(chained)}x  (serial bound "
              f"1/(1/P+1/L) / P: {_spread(bound)}x)")
        print(f"   chained continuous / PyMoDAQ, per round: {_spread(continuous)}x  "
              f"(target >= 0.6x)")
        zmq_only = [a / b for a, b in zip(fps["leco"], fps["pyzmq"])]
        print(f"   LECO / plain pyzmq, per round: {_spread(zmq_only)}x  (what our LECO path "
              f"adds to libzmq's own transfer)")
        with open("/proc/loadavg") as f:
            print(f"   load average at the end: {f.read().split()[0]}")

    task.react(lambda reactor: defer.Deferred.fromCoroutine(run(reactor)))


if __name__ == "__main__":
    main()
