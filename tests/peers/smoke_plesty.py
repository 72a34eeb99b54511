"""
Smoke test of the PLESTY peer (plesty-lib 0.6.0, Python 3.12.1), run inside
its venv with peer_env("plesty"), from a scratch cwd (the device writes
``./logs/``; run_peer_script/run_smoke use ``.peers/``):

    .peers/plesty/bin/python tests/peers/smoke_plesty.py              # everything
    .peers/plesty/bin/python tests/peers/smoke_plesty.py serve        # a real server:
        # prints "LISTENING tcp://127.0.0.1:<port>", serves a DemoDevice until
        # stdin closes (use a pipe, not /dev/null) or SIGTERM/SIGINT
    .peers/plesty/bin/python tests/peers/smoke_plesty.py client tcp://127.0.0.1:<port>
        # a real client: runs the sequence of ``client_sequence`` against the
        # address and prints one JSON line per step ("STEP {...}"); exit 0 if
        # every step answered

Verified snippets
-----------------
Imports, and keep everything on loopback: the device constructor
(``BaseDeviceSyncModel.__init__``: ``self.id = f"{get_local_ip()}:{id}"``) and
``DeviceTCPIPServer.__init__`` (``self.host = get_local_ip()``, for logging)
call ``get_local_ip()``, which ``connect()``s a UDP socket to 8.8.8.8:80 to
learn the outward address (no packet is sent, but it needs a default route and
is not loopback).  Patch the three module-level names before building::

    import plesty.lib.utils.registry, plesty.lib.device.base_device_sync, \
        plesty.lib.service.tcp_ip_server as srv
    for m in (plesty.lib.utils.registry, plesty.lib.device.base_device_sync, srv):
        m.get_local_ip = lambda: "127.0.0.1"
    from plesty.lib.service import build_server, build_client
    from plesty.lib.sim.demo_device import DemoDevice

Signatures::

    build_server(device, fixed_threading=True, address="tcp://*:5555") -> DeviceTCPIPServer
    build_client(address="tcp://localhost:5555", timeout=5000, resources=None,
                 client_id=None, connect_kwargs=None) -> DeviceTCPIPClient

The server binds in its constructor (ROUTER, ROUTER_MANDATORY); give it
``"tcp://127.0.0.1:*"`` (never the default ``*``) and read the real endpoint
from ``server.address`` (LAST_ENDPOINT; ``server.port`` is just the string
after the last colon, ``"*"``).  ``server.run()`` is a coroutine (zmq.asyncio,
polls every 200 ms) that opens the device (``__enter__``: init + connect) and
serves until cancelled::

    async def main():
        server = build_server(DemoDevice(), address="tcp://127.0.0.1:*")
        task = asyncio.create_task(server.run())
        address = server.address                  # "tcp://127.0.0.1:PORT"
        result = await asyncio.to_thread(client_work, address)   # the client blocks
        task.cancel()          # clean stop: run() catches CancelledError, then
        await task             # shutdown(): device __exit__, socket.close(), ctx.term()
        assert not server.is_running
    asyncio.run(main())

The client is synchronous (a DEALER; its constructor connects and sends the
``connect`` handshake then ``describe``, and binds each described method as a
proxy attribute)::

    c = build_client(address, timeout=3000)       # ms; TimeoutError if no answer
    c.connection_info    -> {"client_id": "client-<hex>", "resources": [], "metadata": {}}
    c.describe()         -> {"methods": [...], "budgets": {}, "doc": {...}, ...}
    c.query("wavelength")           -> 532.0
    c.write("wavelength", 633.0)    -> True
    c.query("MOTOR.position")       -> 0.0   (grouped: "position" alone is a KeyError)
    c.call("measure_power", samples=5) -> {"power": 0.005}
    c.measure_power(samples=5)      -> same, via the bound proxy
    c.call("identity")              -> "PLESTY,DemoDevice,DEMO-0001,1.0.0"
    c.query("nope")   raises RuntimeError('KeyError: "Config parameter \\'nope\\' is not registered."')
    c.close()            # sends "disconnect" (waits up to 30 s), then closes, LINGER 0

Wire format (verified with a raw pyzmq DEALER): one frame each way, UTF-8
JSON.  Requests: ``{"type": "connect", "resources": [...], ...}``,
``{"type": "describe"}``, ``{"type": "query", "param": p, "timeout": null}``,
``{"type": "write", "param": p, "value": v, "timeout": null}``,
``{"type": "call", "func": f, "args": [...], "kwargs": {...}, "timeout": null}``,
``{"type": "disconnect", "timeout": 30.0}``.  Replies:
``{"status": "ok", "result": ...}`` or
``{"status": "error", "error": "...", "type": "KeyError"}``.

Fragility (verified here, see ``check_fragility``): a REQ-shaped message (an
empty delimiter frame, so the ROUTER sees 3 frames) or a non-UTF-8 frame makes
``run()`` log "[SERVER] Error: ..." and shut the server down for good.

Exit status 0 and a last line ``plesty smoke OK`` mean all of this worked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import threading
import time
from typing import Any, List

import plesty.lib.device.base_device_sync as _bds
import plesty.lib.service.tcp_ip_server as _srv
import plesty.lib.utils.registry as _registry

for _module in (_registry, _bds, _srv):
    _module.get_local_ip = lambda: "127.0.0.1"

import zmq  # noqa: E402

from importlib.metadata import version  # noqa: E402
from plesty.lib.service import build_client, build_server  # noqa: E402
from plesty.lib.sim.demo_device import DemoDevice  # noqa: E402

LOOPBACK = "tcp://127.0.0.1:*"


def client_sequence(address: str) -> List[dict]:
    """Drive a server with the real client; one dict per step."""
    steps: List[dict] = []

    def step(name: str, fn, expected: Any = ...) -> Any:
        t0 = time.perf_counter()
        try:
            result = fn()
            outcome = {"step": name, "ok": True, "result": result}
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            outcome = {"step": name, "ok": False, "error": f"{exc.__class__.__name__}: {exc}"}
            result = exc
        outcome["ms"] = round((time.perf_counter() - t0) * 1000, 2)
        if expected is not ...:
            outcome["expected"] = expected
            outcome["match"] = outcome.get("result") == expected
        steps.append(outcome)
        print("STEP " + json.dumps(outcome, default=repr), flush=True)
        return result

    client = build_client(address, timeout=3000)
    try:
        step("connection_info", lambda: client.connection_info)
        step("describe.methods", lambda: client.describe()["methods"])
        step("query wavelength", lambda: client.query("wavelength"), 532.0)
        step("write wavelength", lambda: client.write("wavelength", 633.0), True)
        step("query wavelength", lambda: client.query("wavelength"), 633.0)
        step("query MOTOR.position", lambda: client.query("MOTOR.position"), 0.0)
        step("call measure_power", lambda: client.call("measure_power", samples=5), {"power": 0.005})
        step("proxy measure_power", lambda: client.measure_power(samples=7), {"power": 0.007})
        step("call identity", lambda: client.call("identity"), "PLESTY,DemoDevice,DEMO-0001,1.0.0")
        step("query nope (error)", lambda: client.query("nope"))
    finally:
        client.close()
    return steps


def raw_exchange(address: str) -> None:
    """The wire format, with a bare DEALER."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 3000)
    s.connect(address)
    try:
        for request in (
            {"type": "connect", "resources": []},
            {"type": "query", "param": "averaging", "timeout": None},
            {"type": "call", "func": "measure_power", "args": [], "kwargs": {"samples": 2}, "timeout": None},
            {"type": "query", "param": "nope", "timeout": None},
            {"type": "disconnect", "timeout": 30.0},
        ):
            s.send(json.dumps(request).encode())
            frames = s.recv_multipart()
            assert len(frames) == 1, frames
            print(f"raw {json.dumps(request)} -> {frames[0].decode()}", flush=True)
    finally:
        s.close()
        ctx.term()


async def _fragile(payload: List[bytes]) -> bool:
    """Whether one bad message stops a fresh server."""
    server = build_server(DemoDevice(), address=LOOPBACK)
    task = asyncio.create_task(server.run())
    address = server.address

    def send() -> None:
        ctx = zmq.Context()
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(address)
        s.send_multipart(payload)
        time.sleep(0.1)
        s.close()
        ctx.term()

    await asyncio.to_thread(send)
    try:
        await asyncio.wait_for(asyncio.shield(task), 2.0)
        died = True
    except asyncio.TimeoutError:
        died = False
        task.cancel()
        await task
    return died


def check_fragility() -> None:
    req_shaped = asyncio.run(_fragile([b"", b'{"type": "describe"}']))
    bad_utf8 = asyncio.run(_fragile([b"\xff\xfe"]))
    print(f"server stops on REQ-shaped message: {req_shaped}; on bad UTF-8: {bad_utf8}", flush=True)


async def smoke() -> None:
    server = build_server(DemoDevice(), address=LOOPBACK)
    task = asyncio.create_task(server.run())
    address = server.address
    assert address.startswith("tcp://127.0.0.1:"), address
    print(f"server {type(server).__name__} at {address}", flush=True)
    steps = await asyncio.to_thread(client_sequence, address)
    bad = [s for s in steps if s.get("match") is False or (not s["ok"] and "nope" not in s["step"])]
    if bad:
        raise SystemExit(f"unexpected steps: {bad}")
    await asyncio.to_thread(raw_exchange, address)
    task.cancel()
    await task
    assert not server.is_running
    print("server stopped cleanly (task.cancel(); await task)", flush=True)


def serve() -> int:
    async def main() -> None:
        server = build_server(DemoDevice(), address=LOOPBACK)
        task = asyncio.create_task(server.run())
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, done.set)
        print(f"LISTENING {server.address}", flush=True)
        threading.Thread(
            target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(done.set)), daemon=True
        ).start()
        waiter = asyncio.create_task(done.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not task.done():
            task.cancel()
        await task

    asyncio.run(main())
    return 0


def main(argv: List[str]) -> int:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("plesty.server.traffic").setLevel(logging.WARNING)
    if argv[:1] == ["serve"]:
        return serve()
    if argv[:1] == ["client"] and len(argv) == 2:
        steps = client_sequence(argv[1])
        return 0 if all(s["ok"] or "nope" in s["step"] for s in steps) else 1
    print(f"plesty-lib {version('plesty-lib')}, pyzmq {zmq.__version__}, "
          f"Python {sys.version.split()[0]}", flush=True)
    asyncio.run(smoke())
    check_fragility()
    print("plesty smoke OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
