#!/usr/bin/env python
"""
Web console load benchmark: does a browser watching the 2048x2048 camera
slow the lab's other clients?

One lab process (127.0.0.1, ephemeral ports) runs the simulated stage and a
2048x2048 uint16 camera, a PLESTY server for the stage, and two [web]
consoles on the same registry: one with the default frame cap (30 fps) and
one uncapped (max_fps 1000: as fast as the client acknowledges).  In this
process a PLESTY client (a pyzmq DEALER, as plesty-lib) reads the stage
position every 10 ms and records each round trip.  Phases, interleaved over
several rounds in the same run:

  idle      no browser (the anchor)
  grab only no browser; the lab grabs the camera back to back itself (what
            the camera costs the reactor without any web work: the anchor of
            "ws max")
  ws 30fps  a browser-like WebSocket client (autobahn, its own process)
            watching the camera on the capped console, acking each frame at once
  ws max    the same client on the uncapped console (the camera flat out)

It prints, per phase, the PLESTY p50/p99/max latency (median and range over
the rounds), the p99 ratio against idle, requests lost, and the frames/s
and MB/s the WebSocket client received.  The big-data issue's limit for
other clients under camera load is p99 <= 20 ms and max <= 100 ms.

Usage (from the repo root):  python bench/web_load.py [--seconds 4] [--rounds 3]
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUERY = json.dumps({"type": "query", "param": "position", "timeout": None}).encode()


# -- the lab (child process) -----------------------------------------------------------

def serve_lab() -> None:
    """The lab: stage, 2048^2 camera, PLESTY for the stage, two web consoles."""
    from twisted.internet import reactor

    from twisted_lab.devices.simulated import SimulatedCamera, SimulatedStage
    from twisted_lab.options import validate
    from twisted_lab.protocols.plesty.export import PlestyServerService
    from twisted_lab.protocols.web.plugin import plugin
    from twisted_lab.registry import DeviceRegistry

    registry = DeviceRegistry(reactor)
    registry.register(SimulatedStage("stage", reactor))
    registry.register(SimulatedCamera("camera", reactor, width=2048, height=2048,
                                      dtype="uint16"))
    plesty = PlestyServerService(registry, "stage", "tcp://127.0.0.1:*", reactor)
    plesty.startService()
    ports = {}
    for name, fps in (("capped", 30.0), ("max", 1000.0)):
        section = validate(plugin.options, {"listen": "tcp:0:interface=127.0.0.1",
                                            "max_fps": fps})
        web = plugin.make_service(registry, section, reactor)
        web.startService()
        ports[name] = web.listener.port.getHost().port
    from twisted.internet.stdio import StandardIO
    from twisted.protocols.basic import LineOnlyReceiver

    camera = registry.lookup("camera")
    looping: dict[str, Any] = {"on": False, "grabs": 0}

    def grab_again(_: Any = None) -> None:
        if looping["on"]:
            looping["grabs"] += 1
            camera.grab().addBoth(lambda _: reactor.callLater(0, grab_again))

    class Control(LineOnlyReceiver):
        """'grab on' / 'grab off' (answers the grabs done): the no-web anchor of ws max."""

        delimiter = b"\n"

        def lineReceived(self, line: bytes) -> None:
            if line == b"grab on":
                looping.update(on=True, grabs=0, start=time.perf_counter())
                grab_again()
            elif line == b"grab off":
                looping["on"] = False
                span = time.perf_counter() - looping["start"]
                self.sendLine(json.dumps({"fps": looping["grabs"] / span}).encode())

    StandardIO(Control(), reactor=reactor)
    print(json.dumps({"plesty": plesty.address, "web": ports}), flush=True)
    reactor.run()


# -- the browser-like client (child process) -------------------------------------------

def browse(url: str, seconds: float) -> None:
    """Watch the camera, ack each frame at once; print 'ready', then a JSON summary."""
    from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
    from twisted.internet import reactor
    from twisted.internet.endpoints import clientFromString

    stats = {"frames": 0, "bytes": 0, "first": 0.0, "last": 0.0}

    class Browser(WebSocketClientProtocol):
        def onOpen(self) -> None:
            self.sendMessage(json.dumps({"op": "watch", "device": "camera"}).encode())

        def onMessage(self, payload: bytes, isBinary: bool) -> None:
            if not isBinary:
                return
            now = time.perf_counter()
            if stats["frames"] == 0:
                stats["first"] = now
                print("ready", flush=True)
                reactor.callLater(seconds, reactor.stop)
            stats["frames"] += 1
            stats["bytes"] += len(payload)
            stats["last"] = now
            self.sendMessage(b'{"op": "ack", "device": "camera"}')

    factory = WebSocketClientFactory(url)
    factory.protocol = Browser
    factory.setProtocolOptions(maxMessagePayloadSize=0, maxFramePayloadSize=0)
    port = url.rsplit(":", 1)[1].split("/")[0]
    clientFromString(reactor, f"tcp:127.0.0.1:{port}").connect(factory)
    reactor.run()
    span = max(1e-9, stats["last"] - stats["first"])
    print(json.dumps({"fps": (stats["frames"] - 1) / span,
                      "mbps": stats["bytes"] / span / 1e6}), flush=True)


# -- the measuring side ------------------------------------------------------------------

def poll_stage(address: str, seconds: float) -> dict[str, Any]:
    """Read the stage position every 10 ms for C{seconds}; latencies in ms."""
    import zmq

    context: zmq.Context[Any] = zmq.Context.instance()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(address)
    latencies, lost = [], 0
    start = time.perf_counter()
    tick = start
    while time.perf_counter() - start < seconds:
        sent = time.perf_counter()
        socket.send(QUERY)
        if socket.poll(2000):
            socket.recv()
            latencies.append((time.perf_counter() - sent) * 1000)
        else:
            lost += 1
        tick += 0.010
        time.sleep(max(0.0, tick - time.perf_counter()))
    socket.close()
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    return {"p50": pct(0.50), "p99": pct(0.99), "max": latencies[-1], "n": len(latencies),
            "lost": lost}


def phase(kind: str, lab: dict[str, Any], seconds: float,
          control: subprocess.Popen[str]) -> dict[str, Any]:
    if kind == "idle":
        return poll_stage(lab["plesty"], seconds)
    if kind == "grab only":
        assert control.stdin is not None and control.stdout is not None
        control.stdin.write("grab on\n")
        control.stdin.flush()
        result = poll_stage(lab["plesty"], seconds)
        control.stdin.write("grab off\n")
        control.stdin.flush()
        result.update(json.loads(control.stdout.readline()))
        return result
    port = lab["web"]["capped" if kind == "ws 30fps" else "max"]
    client = subprocess.Popen([sys.executable, __file__, "--browse",
                               f"ws://127.0.0.1:{port}/ws", "--seconds", str(seconds + 0.5)],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert client.stdout is not None
    if client.stdout.readline().strip() != "ready":
        raise SystemExit("the WebSocket client got no frame")
    result = poll_stage(lab["plesty"], seconds)
    out, _ = client.communicate(timeout=60)
    result.update(json.loads(out.strip().splitlines()[-1]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--browse", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_lab()
        return
    if args.browse:
        browse(args.browse, args.seconds)
        return
    lab_process = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE,
                                   stdin=subprocess.PIPE, text=True, cwd=ROOT,
                                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert lab_process.stdout is not None
        lab = json.loads(lab_process.stdout.readline())
        poll_stage(lab["plesty"], 0.5)  # warm up
        kinds = ["idle", "grab only", "ws 30fps", "ws max"]
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
        for r in range(args.rounds):
            for kind in kinds if r % 2 == 0 else list(reversed(kinds)):
                runs[kind].append(phase(kind, lab, args.seconds, lab_process))
    finally:
        if lab_process.stdin is not None:
            lab_process.stdin.close()
        lab_process.terminate()
        lab_process.wait(10)

    def med(kind: str, key: str) -> str:
        values = [run[key] for run in runs[kind]]
        return f"{statistics.median(values):6.2f} [{min(values):.2f}-{max(values):.2f}]"

    idle_p99 = statistics.median(run["p99"] for run in runs["idle"])
    print(f"PLESTY stage position every 10 ms while a WebSocket client watches the 2048x2048 "
          f"uint16 camera ({args.rounds} rounds x {args.seconds:g} s; median [range]):")
    print(f"  {'phase':9} {'p50 ms':>22} {'p99 ms':>22} {'max ms':>24}  p99/idle  lost  "
          f"{'frames/s':>10} {'MB/s':>8}")
    for kind in kinds:
        ratio = statistics.median(run["p99"] for run in runs[kind]) / idle_p99
        lost = sum(run["lost"] for run in runs[kind])
        fps = statistics.median(run.get("fps", 0.0) for run in runs[kind])
        mbps = statistics.median(run.get("mbps", 0.0) for run in runs[kind])
        print(f"  {kind:9} {med(kind, 'p50'):>22} {med(kind, 'p99'):>22} {med(kind, 'max'):>24}"
              f"  {ratio:7.1f}x  {lost:4d}  {fps:10.1f} {mbps:8.1f}")
    print("limit (big-data issue): p99 <= 20 ms, max <= 100 ms, no request lost")


if __name__ == "__main__":
    main()
