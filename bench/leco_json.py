"""
Where the time of a camera grab over LECO JSON goes (run from the repo root):

    python bench/leco_json.py [--rounds 15] [--cameras u16,f64]

One process runs the simulated lab (under its memory policy, as C{twistd -n
lab} runs it): our LECO Coordinator and actors, and two cameras with no
exposure time, C{u16} (2048x2048 uint16) and C{f64} (512x512
float64).  Another process, in the pyleco venv (plain pyleco 0.6, no numpy,
its Python), measures for each camera, interleaved round after round (the
order of the stacks alternating), so that load from other users of the
machine falls on all alike:

  1. C{pyleco}: the full call a user makes, C{Director(actor=...)
     .call_action("grab")}, the image as nested lists;
  2. C{server}: our side alone: a plain pyzmq DEALER, signed in, sends the
     same request text (built by pyleco's own generator) and receives the
     whole reply without copying it (C{copy=False}): the time to the reply's
     last byte, camera image included;
  3. C{parse}: the client-side floor: C{json.loads} of that same reply text
     in the pyleco venv's Python, which is what pyleco does with it.

It prints per camera the median and range (min-max) of each, in ms, the
reply's size, and C{pyleco - server - parse} (of the medians): what pyleco
adds besides the parse (its receive copy, decoding, checks).  Then, per
camera, C{json.loads} of the image alone written in other ways (see
L{_formats}): whether a different text of the same values would parse
faster.  The issue's targets: 2048x2048
uint16 in 0.5 s and 512x512 float64 in 60 ms for the full pyleco call.
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

CAMERAS = {"u16": (2048, 2048, "uint16"), "f64": (512, 512, "float64")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(port: int, cameras: list[str]) -> None:
    """The simulated lab in this process, until stdin closes."""
    sys.path.insert(0, ROOT)
    from twisted.internet import reactor, stdio
    from twisted.internet.protocol import Protocol

    from twisted_lab.config import parse_config
    from twisted_lab.memory import TrimService, reuse_large_buffers
    from twisted_lab.registry import DeviceRegistry
    from twisted_lab.service import build_service

    reuse_large_buffers()  # the lab's memory policy, as twistd -n lab runs it
    devices = {name: {"type": "sim.camera", "width": CAMERAS[name][0],
                      "height": CAMERAS[name][1], "dtype": CAMERAS[name][2], "exposure": 0.0}
               for name in cameras}
    config = parse_config({
        "lab": {"name": "leco_json"},
        "devices": devices,
        "leco": {"port": port, "namespace": "lj", "export": list(devices),
                 "data_proxy": False, "data_publish": False},
    })
    registry = DeviceRegistry(reactor)
    service = build_service(registry, config, reactor)
    TrimService(reactor, freeze=True).setServiceParent(service)
    service.startService()
    reactor.addSystemEventTrigger(  # type: ignore[attr-defined]
        "before", "shutdown", service.stopService)

    class Stdin(Protocol):
        def connectionLost(self, reason: object = None) -> None:
            if reactor.running:  # type: ignore[attr-defined]
                reactor.stop()  # type: ignore[attr-defined]

    stdio.StandardIO(Stdin())
    reactor.callLater(1.0, print, "READY", flush=True)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


def client(port: int, rounds: int, cameras: list[str]) -> None:
    """In the pyleco venv: the three measures, interleaved; prints JSON."""
    import zmq
    from pyleco.core.message import Message, MessageTypes
    from pyleco.directors.director import Director

    director = Director(name=f"ljd{os.getpid()}", host="127.0.0.1", port=port, timeout=30)
    generator = director.communicator.rpc_generator
    name = f"ljraw{os.getpid()}"
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(f"tcp://127.0.0.1:{port}")
    raw.send_multipart(Message(b"COORDINATOR", name, message_type=MessageTypes.JSON,
                               data=generator.build_request_str(method="sign_in")).to_frames())
    if not raw.poll(10_000):
        raise RuntimeError("no answer to sign_in")
    raw.recv_multipart()

    def full(actor: str) -> tuple[float, Any]:
        started = time.perf_counter()
        export = director.call_action("grab", actor=actor)
        return time.perf_counter() - started, export

    def server(actor: str) -> tuple[float, bytes]:
        request = Message(actor, name, message_type=MessageTypes.JSON,
                          data=generator.build_request_str(method="call_action",
                                                           action="grab"))
        frames = request.to_frames()
        started = time.perf_counter()
        raw.send_multipart(frames)
        reply = raw.recv_multipart(copy=False)
        elapsed = time.perf_counter() - started
        return elapsed, reply[-1].bytes

    def parse(text: bytes) -> tuple[float, Any]:
        started = time.perf_counter()
        value = json.loads(text)
        return time.perf_counter() - started, value

    results: dict[str, dict[str, Any]] = {c: {"pyleco": [], "server": [], "parse": []}
                                          for c in cameras}
    for camera in cameras:  # warm up; check that both ways give the same image
        actor = f"lj.{camera}"
        _, export = full(actor)
        _, text = server(actor)
        _, reply = parse(text)
        image = export["signals"][0]["data"][0]
        other = reply["result"]["signals"][0]["data"][0]
        if (len(image), len(image[0])) != (len(other), len(other[0])):
            raise RuntimeError("the two ways gave images of different shapes")
        results[camera]["bytes"] = len(text)
    for r in range(rounds):
        for camera in cameras:
            actor = f"lj.{camera}"
            stacks = ("pyleco", "server") if r % 2 == 0 else ("server", "pyleco")
            for stack in stacks:
                if stack == "pyleco":
                    results[camera]["pyleco"].append(full(actor)[0])
                else:
                    elapsed, text = server(actor)
                    results[camera]["server"].append(elapsed)
                    results[camera]["parse"].append(parse(text)[0])
    for camera in cameras:
        results[camera]["formats"] = _formats(server(f"lj.{camera}")[1], parse)
    print(json.dumps(results), flush=True)
    director.close()


def _formats(text: bytes, parse: Any) -> dict[str, Any]:
    """
    Parse times of the image of one reply written in other ways (the image
    alone, interleaved, median of 5): as Python's C{json.dumps} writes it
    (and whether our reply holds exactly that text), and for floats with 17
    significant digits in exponent form (the same values), and rounded to
    integers (not the same values: what parsing costs per number).
    """
    image = json.loads(text)["result"]["signals"][0]["data"][0]
    python = json.dumps(image, separators=(",", ":")).encode()
    variants = {"python json.dumps": python}
    if isinstance(image[0][0], float):
        variants["exponent, 17 digits"] = ("[" + ",".join(
            "[" + ",".join("%.16e" % x for x in row) + "]" for row in image) + "]").encode()
        variants["rounded to ints (not equal)"] = json.dumps(
            [[round(x) for x in row] for row in image], separators=(",", ":")).encode()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(5):
        for name, variant in variants.items():
            elapsed, value = parse(variant)
            times[name].append(elapsed)
            if "not equal" not in name and value != image:
                raise RuntimeError(f"{name}: values differ")
    return {"same_as_python": python in text,
            "variants": {k: {"bytes": len(variants[k]), "seconds": v}
                         for k, v in times.items()}}


def _spread(values: list[float]) -> str:
    ms = [v * 1e3 for v in values]
    return f"{statistics.median(ms):.0f} [{min(ms):.0f}-{max(ms):.0f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--cameras", default="u16,f64")
    parser.add_argument("role", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cameras = [c for c in args.cameras.split(",") if c]
    if args.role:
        role, port = args.role[0], int(args.role[1])
        if role == "serve":
            serve(port, cameras)
        else:
            client(port, args.rounds, cameras)
        return

    sys.path.insert(0, ROOT)
    from tests.peers import peer_env, peer_python
    me = os.path.abspath(__file__)
    port = _free_port()
    server = subprocess.Popen([sys.executable, me, "--cameras", args.cameras, "serve",
                               str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=ROOT)
    try:
        assert server.stdout is not None
        while (line := server.stdout.readline()).strip() != "READY":
            if not line:
                raise RuntimeError("the lab ended before READY")
        load_before = os.getloadavg()[0]
        out = subprocess.run([str(peer_python("pyleco")), me, "--rounds", str(args.rounds),
                              "--cameras", args.cameras, "client", str(port)],
                             env=peer_env("pyleco"), cwd=ROOT, capture_output=True,
                             text=True, timeout=1800, check=True).stdout
        load_after = os.getloadavg()[0]
    finally:
        assert server.stdin is not None
        server.stdin.close()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    results = json.loads(out.strip().splitlines()[-1])
    print(f"{args.rounds} interleaved rounds; load average {load_before:.1f} -> "
          f"{load_after:.1f}; ms, median [min-max]")
    head = ("camera", "reply MiB", "pyleco call", "server (last byte)", "parse (json.loads)",
            "pyleco - server - parse")
    rows = []
    for camera in cameras:
        r = results[camera]
        rest = (statistics.median(r["pyleco"]) - statistics.median(r["server"])
                - statistics.median(r["parse"])) * 1e3
        w, h, dtype = CAMERAS[camera]
        rows.append((f"{w}x{h} {dtype}", f"{r['bytes'] / 2**20:.1f}", _spread(r["pyleco"]),
                     _spread(r["server"]), _spread(r["parse"]), f"{rest:.0f}"))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    print("(pyleco - server - parse: of the medians; targets for the pyleco call: "
          "2048x2048 uint16 <= 500 ms, 512x512 float64 <= 60 ms)")
    print()
    print("json.loads of the image alone, written in other ways (ms, median [min-max] of 5):")
    for camera in cameras:
        formats = results[camera]["formats"]
        w, h, dtype = CAMERAS[camera]
        print(f"  {w}x{h} {dtype}: our reply holds exactly Python's own text of it: "
              f"{formats['same_as_python']}")
        for name, v in formats["variants"].items():
            print(f"    {name:28s} {v['bytes'] / 2**20:6.1f} MiB  {_spread(v['seconds'])}")


if __name__ == "__main__":
    main()
