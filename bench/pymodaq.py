"""
Benchmark of the PyMoDAQ TCP/IP protocol (run from the repo root):

    python bench/pymodaq.py [--frames 20] [--round-trips 3000] [--no-pymodaq]
                            [--only commands]
    python bench/pymodaq.py --only targets [--rounds 6] [--frames 5]
                            [--round-trips 1000]

C{--no-pymodaq} skips the slow PyMoDAQ-own-code anchor (about 110 s per
frame); C{--only commands} runs only part 3 (small command round trips
against the echo anchor, interleaved C{--repeats} times).

In one run, over 127.0.0.1, each side in its own process:

  1. 2048×2048 float64 frames (C{Send Data 2D} → C{Done} + DataToExport),
     our server role ↔ our client role, against raw blocking sockets moving
     the same bytes, and against PyMoDAQ 4.4.11's own socket code on both
     ends (in the pymodaq4 venv; see C{tests/peers/pymodaq4_bench.py});
  2. 1000-point float64 array round trips (C{Send Data 1D} → C{Done} + DTE):
     ours against raw sockets and against PyMoDAQ's own code;
  3. small command round trips (C{get_actuator_value} ↔ C{position_is}),
     ours against a plain Twisted C{Int32StringReceiver} echo.

It prints each figure and the ratios.

C{--only targets} measures just the two targets (32 MiB frames >= 0.4x raw
sockets, small round trips >= 0.7x the echo), interleaved: every stack is
started once, then each of C{--rounds} rounds times, in turn (the order
rotating), our frames, raw-socket frames, our round trips and the echo's.
It prints medians with their range and the per-round ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SHAPE = (2048, 2048)
POINTS = 1000


# -- children ------------------------------------------------------------------


def child_ours(kind: str, port: int, *shape: int) -> None:
    """Our client role exporting a detector (of C{shape}) or an actuator."""
    import numpy as np
    from twisted.internet import reactor

    from twisted_lab.data import Export, Signal
    from twisted_lab.protocols.pymodaq.export import PyMoDAQClientFactory, PyMoDAQExportService
    from twisted_lab.registry import DeviceRegistry
    from twisted_lab.testing import FakeActuator, FakeDetector

    registry = DeviceRegistry(reactor)
    if kind == "camera":
        image = np.random.default_rng(0).random(shape)
        registry.register(FakeDetector("dev", Export("dev", [Signal("dev", [image])])))
    else:
        registry.register(FakeActuator("dev", units="mm"))
    factory = PyMoDAQClientFactory(registry, "dev")
    PyMoDAQExportService(reactor, f"tcp:host=127.0.0.1:port={port}", factory).startService()
    seen = [False]

    def check() -> None:
        if factory.connections:
            seen[0] = True
        elif seen[0] and reactor.running:
            reactor.stop()

    from twisted.internet.task import LoopingCall
    LoopingCall(check).start(0.1)
    reactor.run()


def child_raw(port: int, size: int) -> None:
    """Answer each 16-byte request with C{size} bytes, blocking sockets."""
    payload = os.urandom(size)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        request = b""
        while len(request) < 16:
            chunk = sock.recv(16 - len(request))
            if not chunk:
                return
            request += chunk
        sock.sendall(payload)


def child_echo(port: int) -> None:
    """A plain Twisted Int32StringReceiver echo, connecting to C{port}."""
    from twisted.internet import reactor
    from twisted.internet.protocol import ClientFactory
    from twisted.protocols.basic import Int32StringReceiver

    class Echo(Int32StringReceiver):
        def connectionMade(self) -> None:
            self.transport.setTcpNoDelay(True)

        def stringReceived(self, data: bytes) -> None:
            self.sendString(data)

        def connectionLost(self, reason: Any) -> None:
            if reactor.running:
                reactor.stop()

    factory = ClientFactory()
    factory.protocol = Echo
    reactor.connectTCP("127.0.0.1", port, factory)
    reactor.run()


def spawn(*args: Any) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child",
                             *map(str, args)], env=env)

async def start_echo(reactor: Any) -> tuple[Any, list[Any], Any, subprocess.Popen[bytes]]:
    """
    The Int32 echo anchor: a listener, the C{echo} child connected to it.

    @return: the sending protocol (C{sendString}), the list the caller
        appends one Deferred to per request (each fires on its echo), the
        listening port and the child process.
    """
    from twisted.internet.defer import Deferred
    from twisted.internet.endpoints import TCP4ServerEndpoint
    from twisted.internet.protocol import Factory
    from twisted.protocols.basic import Int32StringReceiver

    got: list[Deferred[None]] = []
    connected: Deferred[Any] = Deferred()

    class Sender(Int32StringReceiver):
        def connectionMade(self) -> None:
            self.transport.setTcpNoDelay(True)
            connected.callback(self)

        def stringReceived(self, data: bytes) -> None:
            got.pop(0).callback(None)

    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        Factory.forProtocol(Sender))
    child = spawn("echo", port.getHost().port)
    return await connected, got, port, child



# -- anchors ---------------------------------------------------------------------


def raw_round_trips(size: int, count: int) -> float:
    """Seconds for C{count} request → C{size}-byte reply exchanges, raw sockets."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    child = spawn("raw", listener.getsockname()[1], size)
    sock, _ = listener.accept()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray(size)
    view = memoryview(buffer)
    start = time.perf_counter()
    for _ in range(count):
        sock.sendall(b"x" * 16)
        got = 0
        while got < size:
            got += sock.recv_into(view[got:], size - got)
    seconds = time.perf_counter() - start
    sock.close()
    listener.close()
    child.wait()
    return seconds


class RawAnchor:
    """L{raw_round_trips}'s child, kept for several timings."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.child = spawn("raw", self.listener.getsockname()[1], size)
        self.sock, _ = self.listener.accept()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.view = memoryview(bytearray(size))

    def time(self, count: int) -> float:
        """Seconds for C{count} request -> reply exchanges (blocking)."""
        sock, view, size = self.sock, self.view, self.size
        start = time.perf_counter()
        for _ in range(count):
            sock.sendall(b"x" * 16)
            got = 0
            while got < size:
                got += sock.recv_into(view[got:], size - got)
        return time.perf_counter() - start

    def close(self) -> None:
        self.sock.close()
        self.listener.close()
        self.child.wait()


def run_targets(frames: int, round_trips: int, rounds: int) -> dict[str, list[float]]:
    """
    The two target ratios, interleaved: C{rounds} rounds of our frames, raw
    frames, our round trips and the echo's, every stack started once.

    @return: per round, seconds of each (keys C{frames}, C{raw}, C{position},
        C{echo}).
    """
    from twisted.internet import reactor, task
    from twisted.internet.defer import Deferred, ensureDeferred
    from twisted.internet.endpoints import TCP4ServerEndpoint

    from twisted_lab.protocols.pymodaq.imports import PyMoDAQServerFactory
    from twisted_lab.registry import DeviceRegistry

    results: dict[str, list[float]] = {"frames": [], "raw": [], "position": [], "echo": []}
    cleanup: list[Any] = []

    async def imported(kind: str, *shape: int) -> Any:
        registry = DeviceRegistry(reactor)
        factory = PyMoDAQServerFactory(registry, reactor, call_timeout=60)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        child = spawn(kind, port.getHost().port, *shape)
        while not registry.names():
            await task.deferLater(reactor, 0.02)
        device = await registry.get(registry.names()[0])
        while not device.online:
            await task.deferLater(reactor, 0.02)
        cleanup.append((port, factory, child))
        return device

    async def main() -> None:
        camera = await imported("camera", *SHAPE)
        stage = await imported("stage")
        raw = RawAnchor(SHAPE[0] * SHAPE[1] * 8)
        sender, got, echo_port, echo_child = await start_echo(reactor)

        async def ours_frames() -> float:
            start = time.perf_counter()
            for _ in range(frames):
                export = await camera.grab()
            assert export[0].shape == SHAPE
            return time.perf_counter() - start

        async def raw_frames() -> float:
            return raw.time(frames)

        async def position() -> float:
            start = time.perf_counter()
            for _ in range(round_trips):
                await stage.position()
            return time.perf_counter() - start

        async def echo() -> float:
            start = time.perf_counter()
            for _ in range(round_trips):
                d: Deferred[None] = Deferred()
                got.append(d)
                sender.sendString(b"get_actuator_val")
                await d
            return time.perf_counter() - start

        legs = {"frames": ours_frames, "raw": raw_frames, "position": position, "echo": echo}
        for leg in legs.values():  # warm up
            await leg()
        names = list(legs)
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                results[name].append(await legs[name]())
        sender.transport.loseConnection()
        await echo_port.stopListening()
        raw.close()
        for port, factory, child in cleanup + [(None, None, echo_child)]:
            if factory is not None:
                factory.stop()
                await port.stopListening()
            for _ in range(200):
                if child.poll() is not None:
                    break
                await task.deferLater(reactor, 0.05)
            else:
                child.kill()

    def done(result: Any) -> Any:
        reactor.stop()
        return result

    ensureDeferred(main()).addBoth(done).addErrback(lambda f: f.printTraceback())
    reactor.run()
    return results


def _spread(values: list[float]) -> str:
    """Median and range, as C{median (low-high)}."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def print_targets(frames: int, round_trips: int, rounds: int,
                  results: dict[str, list[float]]) -> None:
    """Print the interleaved target figures."""
    frame_bytes = SHAPE[0] * SHAPE[1] * 8
    ours = [frames * frame_bytes / t / 1e9 for t in results["frames"]]
    raw = [frames * frame_bytes / t / 1e9 for t in results["raw"]]
    position = [round_trips / t for t in results["position"]]
    echo = [round_trips / t for t in results["echo"]]
    print(f"PyMoDAQ targets, {rounds} interleaved rounds; median (range over the rounds), "
          "ratios per round:")
    print(f"2048x2048 float64 frames, {frames} per round, GB/s:")
    print(f"  ours (server <-> client role): {_spread(ours)}")
    print(f"  raw blocking sockets:          {_spread(raw)}")
    print(f"  ratio ours/raw: {_spread([a / b for a, b in zip(ours, raw)])}x (target >= 0.4x)")
    print(f"small command round trips, {round_trips} per round, /s:")
    print(f"  ours (get_actuator_value <-> position_is): {_spread(position)}")
    print(f"  Twisted Int32StringReceiver echo:          {_spread(echo)}")
    print(f"  ratio ours/echo: {_spread([a / b for a, b in zip(position, echo)])}x "
          "(target >= 0.7x)")
    with open("/proc/loadavg") as f:
        print(f"load average at the end: {f.read().split()[0]}")


def pymodaq_round_trips(mode: str, count: int, *shape: int) -> dict[str, Any] | None:
    """PyMoDAQ's own socket code on both ends (None when the peer is missing)."""
    try:
        from tests.peers import PeerMissing, peer_env, peer_python
        python = str(peer_python("pymodaq4"))
    except PeerMissing as e:
        print(f"  (PyMoDAQ anchor unavailable: {e})")
        return None
    script = os.path.join(ROOT, "tests", "peers", "pymodaq4_bench.py")
    out = subprocess.run([python, script, mode, str(count), *map(str, shape)],
                         env=peer_env("pymodaq4"), capture_output=True, text=True,
                         timeout=600)
    if out.returncode:
        print(f"  (PyMoDAQ anchor failed: {out.stderr[-500:]})")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- ours ----------------------------------------------------------------------


def run_ours(frames: int, round_trips: int, commands_only: bool = False,
             repeats: int = 1) -> dict[str, float]:
    """Every measurement that needs our reactor, in one reactor run."""
    from twisted.internet import reactor, task
    from twisted.internet.defer import Deferred, ensureDeferred
    from twisted.internet.endpoints import TCP4ServerEndpoint

    from twisted_lab.protocols.pymodaq.imports import PyMoDAQServerFactory
    from twisted_lab.registry import DeviceRegistry

    results: dict[str, float] = {}

    async def imported(kind: str, *shape: int) -> Any:
        registry = DeviceRegistry(reactor)
        factory = PyMoDAQServerFactory(registry, reactor, call_timeout=60)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        child = spawn(kind, port.getHost().port, *shape)
        while not registry.names():
            await task.deferLater(reactor, 0.02)
        device = await registry.get(registry.names()[0])
        while not device.online:
            await task.deferLater(reactor, 0.02)
        return device, port, factory, child

    async def close(port: Any, factory: Any, child: subprocess.Popen[bytes]) -> None:
        factory.stop()
        await port.stopListening()
        await reap(child)

    async def reap(child: subprocess.Popen[bytes]) -> None:
        for _ in range(200):
            if child.poll() is not None:
                return
            await task.deferLater(reactor, 0.05)
        child.kill()

    async def echo_anchor() -> float:
        sender, got, port, child = await start_echo(reactor)
        start = time.perf_counter()
        for _ in range(round_trips):
            d: Deferred[None] = Deferred()
            got.append(d)
            sender.sendString(b"get_actuator_val")
            await d
        seconds = time.perf_counter() - start
        sender.transport.loseConnection()
        await port.stopListening()
        await reap(child)
        return seconds

    async def commands() -> None:
        device, port, factory, child = await imported("stage")
        await device.position()
        start = time.perf_counter()
        for _ in range(round_trips):
            await device.position()
        seconds = time.perf_counter() - start
        results["position"] = min(results.get("position", seconds), seconds)
        await close(port, factory, child)
        seconds = await echo_anchor()
        results["echo"] = min(results.get("echo", seconds), seconds)

    async def main() -> None:
        if commands_only:
            for _ in range(repeats):
                await commands()
            return
        device, port, factory, child = await imported("camera", *SHAPE)
        await device.grab()
        start = time.perf_counter()
        for _ in range(frames):
            export = await device.grab()
        results["frames"] = time.perf_counter() - start
        assert export[0].shape == SHAPE
        await close(port, factory, child)

        device, port, factory, child = await imported("camera", POINTS)
        await device.grab()
        start = time.perf_counter()
        for _ in range(round_trips):
            await device.grab()
        results["array"] = time.perf_counter() - start
        await close(port, factory, child)

        for _ in range(repeats):
            await commands()

    def done(result: Any) -> Any:
        reactor.stop()
        return result

    ensureDeferred(main()).addBoth(done).addErrback(lambda f: f.printTraceback())
    reactor.run()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--round-trips", type=int, default=3000)
    parser.add_argument("--pymodaq-frames", type=int, default=1)
    parser.add_argument("--pymodaq-round-trips", type=int, default=50)
    parser.add_argument("--no-pymodaq", action="store_true",
                        help="skip the (slow) PyMoDAQ-own-code anchors")
    parser.add_argument("--only", choices=["commands", "targets"],
                        help="run only the small command round trips, or only the two "
                             "target ratios (interleaved)")
    parser.add_argument("--rounds", type=int, default=6,
                        help="interleaved rounds (--only targets)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="interleaved runs of ours and the echo (best of each kept)")
    options = parser.parse_args()
    frame_bytes = SHAPE[0] * SHAPE[1] * 8
    array_bytes = POINTS * 8
    n = options.round_trips
    if options.only == "targets":
        results = run_targets(options.frames, n, options.rounds)
        print_targets(options.frames, n, options.rounds, results)
        return

    ours = run_ours(options.frames, options.round_trips, options.only == "commands",
                    options.repeats)
    if options.only == "commands":
        print_commands(n, ours)
        return
    raw_frames = raw_round_trips(frame_bytes, options.frames)
    raw_array = raw_round_trips(array_bytes + 260, options.round_trips)
    pmd_frames = pmd_array = None
    if not options.no_pymodaq:
        pmd_frames = pymodaq_round_trips("frames", options.pymodaq_frames, *SHAPE)
        pmd_array = pymodaq_round_trips("array", options.pymodaq_round_trips, POINTS)

    def gbps(seconds: float, count: int) -> float:
        return frame_bytes * count / seconds / 1e9

    ours_gbps = gbps(ours["frames"], options.frames)
    raw_gbps = gbps(raw_frames, options.frames)
    print(f"2048x2048 float64 frames ({frame_bytes / 2**20:.0f} MiB each):")
    print(f"  ours (server <-> client role): {options.frames / ours['frames']:8.1f} frames/s "
          f"{ours_gbps:6.2f} GB/s")
    print(f"  raw blocking sockets:          {options.frames / raw_frames:8.1f} frames/s "
          f"{raw_gbps:6.2f} GB/s")
    print(f"  ratio ours/raw: {ours_gbps / raw_gbps:.2f}x (target >= 0.3x)")
    if pmd_frames:
        pmd_gbps = gbps(pmd_frames["seconds"], pmd_frames["count"])
        print(f"  PyMoDAQ 4.4.11 socket code:    "
              f"{pmd_frames['count'] / pmd_frames['seconds']:8.2f} frames/s "
              f"{pmd_gbps * 1000:6.1f} MB/s")
        print(f"  ratio ours/PyMoDAQ: {ours_gbps / pmd_gbps:.0f}x (target >= 100x)")

    print(f"{POINTS}-point float64 array round trips (Send Data 1D -> Done + DTE):")
    print(f"  ours:                 {n / ours['array']:9.0f} /s")
    print(f"  raw blocking sockets: {n / raw_array:9.0f} /s   ratio ours/raw "
          f"{raw_array / ours['array']:.2f}x")
    if pmd_array:
        rate = pmd_array["count"] / pmd_array["seconds"]
        print(f"  PyMoDAQ 4.4.11 code:  {rate:9.1f} /s   ratio ours/PyMoDAQ "
              f"{n / ours['array'] / rate:.0f}x")
    print_commands(n, ours)


def print_commands(n: int, ours: dict[str, float]) -> None:
    """Print the small command round trip figures."""
    print("small command round trips (get_actuator_value <-> position_is):")
    print(f"  ours:                         {n / ours['position']:9.0f} /s")
    print(f"  Twisted Int32StringReceiver echo: {n / ours['echo']:9.0f} /s   ratio ours/echo "
          f"{ours['echo'] / ours['position']:.2f}x (target >= 0.7x)")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        role, rest = sys.argv[2], [int(a) for a in sys.argv[3:]]
        if role in ("camera", "stage"):
            child_ours(role, *rest)
        elif role == "raw":
            child_raw(*rest)
        elif role == "echo":
            child_echo(*rest)
    else:
        main()
