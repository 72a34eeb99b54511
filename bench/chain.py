"""
Camera frames through the lab, with the lab's neighbours in processes of
their own, as on a lab's computers (run from the repo root):

    python bench/chain.py [--frames 5] [--rounds 6]

Three processes on this machine, 2048x2048 float64 frames (32 MiB):

  - C{instrument}: a PyMoDAQ 4 instrument: our PyMoDAQ client role (a
    GRABBER) exporting a fixed frame to the lab;
  - C{lab} (this process): our PyMoDAQ server role (which imports the
    instrument as C{cam}), our LECO Coordinator, and three actors with the
    PyMoDAQ 5 method set, in memory as in the lab: one for C{cam}, and two
    for local cameras holding the same frame: C{direct}, whose frame has
    room around it (C{twisted_lab.headroom.empty}, as the lab's simulated
    camera's frames and every large array it reads from PyMoDAQ 4 have), and
    C{plain}, whose frame numpy allocated (as most drivers' are);
  - C{director}: a PyMoDAQ 5 director: our LECO director, over ZeroMQ.

Each runs the lab's memory policy (C{twisted_lab.memory}), as C{twistd -n
lab} does; C{--glibc-defaults} leaves glibc's allocator as it is, to compare.

Legs, in frames per second:

  - C{pymodaq}: the lab grabs C{cam} (instrument -> lab over PyMoDAQ 4 TCP);
  - C{leco}: the director grabs C{direct} (lab -> director over LECO: the
    message is laid out around the frame);
  - C{leco-copy}: the director grabs C{plain} (the same, but the message is
    a copy of the frame);
  - C{chained}: the director grabs C{cam}: instrument -> lab -> director,
    one grab after another;
  - C{continuous}: the same chain as a PyMoDAQ 5 viewer's continuous grab
    uses it: the director sends C{send_data_grab} once and counts the
    C{set_data} frames it receives, from the first on (the actor acquires
    the next frame while the last one travels, so the two hops overlap);
  - C{pyzmq}: the anchor of the LECO leg: the same 32 MiB as one frame from
    a plain pyzmq ROUTER in the lab process to a plain DEALER in the
    director process (blocking, zero-copy send), what libzmq alone takes.

The legs are interleaved: each of R rounds runs F grabs on every leg, the
order rotating from round to round, so other load on the machine falls on
all legs alike.  It prints each leg's median frames/s with its range, and
the per-round ratios to the C{pymodaq} leg as a median with their range
(issue 12's targets: LECO >= 0.7x, chained >= 0.6x), and the CPU time
each process spent per frame on each leg (all its threads: ZeroMQ's I/O
thread and the kernel's copies included; for C{continuous}, over the whole
leg, divided by the frames the director received) against the wall time
per frame,
which tells a leg bound by this 2-core machine from one that waits.
C{bench/bridge.py} measures the same legs with all three parts in one
process.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SHAPE = (2048, 2048)
LEGS = ("pymodaq", "leco", "leco-copy", "chained", "continuous", "pyzmq")
ROLES = ("instrument", "lab", "director")


def _frame() -> Any:
    """The camera frame: the same in every process."""
    import numpy as np
    return np.random.default_rng(1).random(SHAPE)


def _export(frame: Any) -> Any:
    from twisted_lab.data import Export, Signal
    return Export("frame", [Signal("frame", [frame], kind="DataFromPlugins")])


def _check(got: Any, frame: Any) -> None:
    """Fail unless C{got} (an export or a signal) holds C{frame} whole."""
    import numpy as np

    from twisted_lab.data import Export
    got = got if isinstance(got, Export) else Export("x", [got])
    data = np.asarray(got.signals[0].data[0])
    if data.shape != SHAPE or not np.array_equal(data, frame):
        raise AssertionError("frame altered on the way")


async def _stdin_lines() -> Any:
    """Lines from standard input (read in a thread), until it closes."""
    from twisted.internet.threads import deferToThread
    while True:
        line = await deferToThread(sys.stdin.readline)
        if not line:
            return
        yield line.split()


def _memory_policy(reactor: Any, glibc_defaults: bool) -> None:
    """The lab's memory policy, as C{twistd -n lab} runs it (unless told not to)."""
    if glibc_defaults:
        return
    from twisted_lab.memory import TrimService, reuse_large_buffers
    reuse_large_buffers()
    TrimService(reactor).startService()


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of process C{pid}, all its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _say(value: Any) -> None:
    print(json.dumps(value), flush=True)


async def instrument(reactor: Any, port: int) -> None:
    """The instrument process: export the frame to the lab until stdin closes."""
    from twisted_lab.protocols.pymodaq.export import PyMoDAQClientFactory, PyMoDAQExportService
    from twisted_lab.registry import DeviceRegistry
    from twisted_lab.testing import FakeDetector

    registry = DeviceRegistry(reactor)
    registry.register(FakeDetector("frame", _export(_frame())))
    service = PyMoDAQExportService(reactor, f"tcp:127.0.0.1:{port}",
                                   PyMoDAQClientFactory(registry, "frame", "GRABBER"))
    service.startService()
    async for _ in _stdin_lines():
        pass
    await service.stopService()


async def director(reactor: Any, endpoint: str) -> None:
    """
    The director process.  Each stdin line (C{seq NAME N}, C{cont N}, C{zmq
    ADDRESS N}) runs one round and answers C{[frames/s, frames moved]} on
    stdout.
    """
    import numpy as np
    from twisted.internet.defer import Deferred
    from twisted.internet.threads import deferToThread

    from twisted_lab.events import DATA
    from twisted_lab.protocols.leco.imports import DirectorService
    from twisted_lab.registry import DeviceRegistry

    frame = _frame()
    far = DeviceRegistry(reactor)
    service = DirectorService(far, [
        {"name": name, "actor": name, "kind": "pymodaq_detector", "parameters": [],
         "actions": []} for name in ("cam", "direct", "plain")], endpoint, reactor,
        "bench_chain", 60.0)
    service.startService()
    devices = {name: await far.when_registered(name) for name in ("cam", "direct", "plain")}
    for device in devices.values():  # warm up, and check the frame arrives whole
        _check(await device.grab(), frame)

    # a viewer shows each frame and lets it go: keep the count and the last
    received: dict[str, Any] = {"count": 0, "last": None}
    counting: dict[str, Any] = {"on": False, "want": 0, "waiter": None}

    def on_event(event: Any) -> None:
        if event.kind != DATA or not counting["on"]:
            return
        received["count"] += 1
        received["last"] = event.value
        waiter = counting["waiter"]
        if waiter is not None and received["count"] >= counting["want"]:
            counting["waiter"] = None
            waiter.callback(None)

    async def until(count: int) -> None:
        counting["want"] = count
        if received["count"] < count:
            counting["waiter"] = Deferred()
            await counting["waiter"]

    def plain(address: str, count: int) -> float:
        import zmq
        context = zmq.Context()
        dealer = context.socket(zmq.DEALER)
        dealer.connect(address)
        start = time.perf_counter()
        for _ in range(count):
            dealer.send(b"grab")
            got = dealer.recv(copy=False)
        took = time.perf_counter() - start
        if np.frombuffer(got.buffer, dtype=frame.dtype).reshape(SHAPE)[-1, -1] != frame[-1, -1]:
            raise AssertionError("frame altered on the way")
        dealer.close(0)
        context.term()
        return count / took

    devices["cam"].subscribe(on_event)
    _say("ready")
    async for words in _stdin_lines():
        if words[0] == "zmq":
            _say([await deferToThread(plain, words[1], int(words[2])), int(words[2])])
            continue
        if words[0] == "seq":
            device, count = devices[words[1]], int(words[2])
            start = time.perf_counter()
            for _ in range(count):
                got = await device.grab()
            took = time.perf_counter() - start
            _check(got, frame)
            moved = count
        else:
            count = int(words[1])
            received.update(count=0, last=None)
            counting["on"] = True
            await service.component.ask("cam", "send_data_grab")
            await until(1)  # from the first frame on: the pipeline is full
            start = time.perf_counter()
            await until(count + 1)
            took = time.perf_counter() - start
            await service.component.ask("cam", "stop_grab")
            counting["on"] = False
            _check(received["last"], frame)
            moved = received["count"]  # the first, and any sent before stop_grab
        _say([count / took, moved])
    await service.stopService()


class _Child:
    """A role of this script in a subprocess, spoken to line by line."""

    def __init__(self, *args: str) -> None:
        self.name = " ".join(args[:2])
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), *args], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    async def ask(self, line: str | None = None) -> Any:
        from twisted.internet.threads import deferToThread
        assert self.process.stdin is not None and self.process.stdout is not None
        if line is not None:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        answer = await deferToThread(self.process.stdout.readline)
        if not answer:
            raise RuntimeError(f"{self.name} ended early")
        return json.loads(answer)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def lab(reactor: Any, count: int, rounds: int, only: tuple[str, ...] = LEGS,
              glibc_defaults: bool = False) -> dict[str, list[float]]:
    """
    The lab process: serve, and time the rounds.

    @return: frames/s per round for each leg (by its name), and the CPU
        seconds per frame of each process on it (by C{"leg role"}).
    """
    from twisted.internet.endpoints import TCP4ServerEndpoint
    from twisted.internet.task import deferLater
    from twisted.internet.threads import deferToThread

    from twisted_lab.protocols.leco.coordinator import CoordinatorService
    from twisted_lab.protocols.leco.export import DeviceActor
    from twisted_lab.protocols.pymodaq.imports import PyMoDAQServerFactory
    from twisted_lab.registry import DeviceRegistry
    from twisted_lab.testing import FakeDetector

    from twisted_lab import headroom

    frame = _frame()
    roomy = headroom.empty(frame.shape, frame.dtype)
    roomy[...] = frame
    registry = DeviceRegistry(reactor)
    registry.register(FakeDetector("direct", _export(roomy)))
    registry.register(FakeDetector("plain", _export(frame)))
    server = PyMoDAQServerFactory(registry, reactor, call_timeout=60.0, rules=[{"name": "cam"}])
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(server)
    policy = ["--glibc-defaults"] if glibc_defaults else []
    source = _Child("--role", "instrument", "--port", str(port.getHost().port), *policy)
    cam = await registry.when_registered("cam")
    while not cam.online:
        await deferLater(reactor, 0.02, lambda: None)
    _check(await cam.grab(), frame)
    coordinator = CoordinatorService("BF", "tcp://127.0.0.1:*", reactor)
    coordinator.startService()
    endpoint = coordinator.endpoint
    assert endpoint is not None
    actors = [DeviceActor(registry, name, endpoint, reactor, timeout=60.0,
                          hub=coordinator.local_hub) for name in ("cam", "direct", "plain")]
    for actor in actors:
        actor.startService()
        await actor.when_signed_in()
    far = _Child("--role", "director", "--endpoint", endpoint, *policy)
    if await far.ask() != "ready":
        raise RuntimeError("the director did not start")

    async def pymodaq() -> tuple[float, int]:
        start = time.perf_counter()
        for _ in range(count):
            got = await cam.grab()
        took = time.perf_counter() - start
        _check(got, frame)
        return count / took, count

    async def pyzmq() -> tuple[float, int]:
        import zmq
        context = zmq.Context()
        router = context.socket(zmq.ROUTER)
        port = router.bind_to_random_port("tcp://127.0.0.1")

        def serve() -> None:
            for _ in range(count):
                who, _request = router.recv_multipart()
                router.send_multipart([who, frame], copy=False)

        serving = deferToThread(serve)
        fps, moved = await far.ask(f"zmq tcp://127.0.0.1:{port} {count}")
        await serving
        router.close(0)
        context.term()
        return fps, moved

    async def continuous() -> tuple[float, int]:
        fps, moved = await far.ask(f"cont {count}")
        methods = actors[0].pymodaq
        assert methods is not None
        while methods.grabbing:  # the last frame in flight is done
            await deferLater(reactor, 0.01, lambda: None)
        return fps, moved

    legs = {"pymodaq": pymodaq,
            "leco": lambda: far.ask(f"seq direct {count}"),
            "leco-copy": lambda: far.ask(f"seq plain {count}"),
            "chained": lambda: far.ask(f"seq cam {count}"),
            "continuous": continuous, "pyzmq": pyzmq}
    names = [name for name in legs if name in only]
    result: dict[str, list[float]] = {name: [] for name in names}
    pids = {"instrument": source.process.pid, "lab": os.getpid(), "director": far.process.pid}
    for name in names:
        for role in ROLES:
            result[f"{name} {role}"] = []
    try:
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                cpu = {role: _cpu_seconds(pid) for role, pid in pids.items()}
                fps, moved = await legs[name]()
                result[name].append(fps)
                for role, pid in pids.items():  # CPU seconds per frame moved
                    result[f"{name} {role}"].append((_cpu_seconds(pid) - cpu[role]) / moved)
    finally:
        far.close()
        for actor in actors:
            await actor.stopService()
        await coordinator.stopService()
        source.close()
        server.stop()
        await port.stopListening()
    return result


def _spread(values: list[float]) -> str:
    """Median and range, as C{median (low-high)}."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


DESCRIBE = {
    "pymodaq": "instrument -> lab (PyMoDAQ 4 TCP)",
    "leco": "lab -> director (LECO, PyMoDAQ 5 methods)",
    "leco-copy": "the same, a frame without room (one copy)",
    "chained": "instrument -> lab -> director, grab by grab",
    "continuous": "the same chain, send_data_grab",
    "pyzmq": "anchor: plain pyzmq, lab -> director process",
}


def _report(fps: dict[str, list[float]], args: Any) -> None:
    """Print the frames/s, the ratios and the CPU time per frame."""
    legs = [name for name in LEGS if name in fps]
    policy = "glibc's defaults" if args.glibc_defaults else "the lab's memory policy"
    print(f"2048x2048 float64 frames (32 MiB); instrument, lab and director in three "
          f"processes ({policy}); {args.rounds} interleaved rounds of {args.frames} frames "
          f"per leg")
    print(f"   {'leg':<11} {'':<45} {'frames/s, median (range)':<25} CPU ms per frame: "
          f"instrument / lab / director (wall)")
    for name in legs:
        cpu = " / ".join(f"{statistics.median(fps[f'{name} {role}']) * 1e3:.0f}"
                         for role in ROLES)
        wall = 1e3 / statistics.median(fps[name])
        print(f"   {name:<11} {DESCRIBE[name]:<45} {_spread(fps[name]):<25} {cpu} ({wall:.0f})")
    ratios = [("leco", "pymodaq", "target >= 0.7x"), ("leco-copy", "pymodaq", ""),
              ("chained", "pymodaq", ""),
              ("continuous", "pymodaq", "target >= 0.6x"),
              ("leco", "pyzmq", "what our LECO path adds to libzmq's own transfer")]
    for name, anchor, say in ratios:
        if name in fps and anchor in fps:
            ratio = [a / b for a, b in zip(fps[name], fps[anchor])]
            print(f"   {name} / {anchor}, per round: {_spread(ratio)}x" + (f"  ({say})" if say else ""))
    if "pymodaq" in fps and "leco" in fps:
        bound = [1 / (1 / p + 1 / q) / p for p, q in zip(fps["pymodaq"], fps["leco"])]
        print(f"   serial bound of grab by grab, 1/(1/P+1/L) / P: {_spread(bound)}x")
    with open("/proc/loadavg") as f:
        print(f"   load average at the end: {f.read().split()[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=5, help="grabs per leg per round")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds")
    parser.add_argument("--legs", default=",".join(LEGS),
                        help="the legs to run, comma-separated (default: all)")
    parser.add_argument("--glibc-defaults", action="store_true",
                        help="leave glibc's allocator as it is (not the lab's memory policy)")
    parser.add_argument("--role", choices=("lab", "instrument", "director"), default="lab",
                        help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from twisted.internet import defer, task

    async def run(reactor: Any) -> None:
        _memory_policy(reactor, args.glibc_defaults)
        if args.role == "instrument":
            await instrument(reactor, args.port)
            return
        if args.role == "director":
            await director(reactor, args.endpoint)
            return
        only = tuple(args.legs.split(","))
        fps = await lab(reactor, args.frames, args.rounds, only, args.glibc_defaults)
        _report(fps, args)
    task.react(lambda reactor: defer.Deferred.fromCoroutine(run(reactor)))


if __name__ == "__main__":
    main()
