"""
The whole lab under camera load (run from the repo root):

    python bench/load.py [--seconds 5] [--width 2048] [--height 2048]
                         [--dtype uint16] [--paths leco-json,leco-binary,...]

One process runs the simulated lab (a stage, and a camera of the given shape
with no exposure time) with our LECO Coordinator, actors and data proxy,
PLESTY servers for the stage and the camera, and the simulated LA4 node,
under the lab's memory policy (C{twisted_lab.memory}: camera-sized buffers
reused, free memory trimmed every 5 s), as C{twistd -n lab} runs it.
Then, phase after phase, for C{--seconds} each:

  - probes, one process per protocol, make one small request every 10 ms:
    LECO: a plain pyleco 0.6 Director C{get_parameters(["position"])} of the
    stage, in the pyleco venv; PLESTY: a plain pyzmq DEALER C{query} of the
    stage position; PyMoDAQ 4 TCP: our server role, the PyMoDAQ
    main-computer side, to which the lab exports the stage as an ACTUATOR:
    C{get_actuator_value}; LA4: a plain-socket pycom client (the protocol's
    own shape: one JSON document per connection, the answer on a new
    connection to the client's callback port) sends C{set_model_light} to
    the lab's simulated node and waits for its C{output} event;
  - in every phase but the first (C{idle}), one client pulls camera frames
    as fast as it can over one path:

      - C{leco-json}: pyleco Director C{call_action("grab")} (JSON);
      - C{leco-binary}: pyleco Director C{ask_rpc("call_action_binary",
        action="grab", extract_additional_payload=True)};
      - C{pymodaq5-load}: the PyMoDAQ 5 method set over LECO
        (C{send_data_grab}, the frame in a serializall binary frame), from our
        LECO director in another process;
      - C{plesty-json}, C{plesty-binary}: pyzmq DEALER C{call grab} without
        and with C{"binary": true};
      - C{pymodaq-load}: PyMoDAQ 4 TCP, the lab exporting the camera as a
        GRABBER to our server role in another process (C{Send Data 2D});
      - C{leco-data}: the LECO data protocol.  The camera runs live in the
        lab (grab after grab, as a camera's continuous acquisition does),
        each frame is published by our data publisher (the pyleco data
        message: JSON header, one binary frame per channel) through our
        XSUB/XPUB proxy; a pyleco-style subscriber (a pyzmq SUB parsing
        each message with pyleco's C{DataMessage}, in the pyleco venv)
        takes them as fast as they come.  frames/s is what it received;
        frames published but not received (PUB/SUB drops, not losses of a
        request) are printed below the table;
      - C{leco-slow}: a slow reader of small LECO messages: a pyzmq DEALER
        signs in (pyleco's C{Message} frames), then sends C{get_parameters}
        requests to the stage, C{--slow-rate} a second (default 1000, ten
        times a probe; 0: as fast as it can), and never reads a reply (its
        receive high-water mark small).  Our Coordinator's ROUTER keeps at most its
        send high-water mark (messages, not bytes) for it and drops the
        rest; frames/s is the requests it sent per second.  The lab's memory
        (C{rss} column) shows what it held meanwhile.

It prints, per phase, frames/s and per protocol the probe's p50/p99/max
latency (ms) and lost requests (no answer within 1 s), the lab's reactor
lag while the probes ran (the worst lateness of a 10 ms tick: wall clock,
and bounded by the lab's CPU time; it tells the lab's own stalls from a
busy machine's scheduling), the lab process's resident memory at the end of
the phase (MiB), and the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PATHS = ("leco-json", "leco-binary", "pymodaq5-load", "plesty-json", "plesty-binary",
         "pymodaq-load", "leco-data", "leco-slow")
KINDS = ("leco", "plesty", "pymodaq", "la4")
PERIOD = 0.010
DEADLINE = 1.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the lab -----------------------------------------------------------------------

class ReactorLag:
    """
    How late a 10 ms tick on the lab's reactor ran: C{wall} is clock time
    (it includes time the lab was not scheduled at all: the clients, the
    probes and the rest of the machine); C{held} is bounded by the CPU time
    the lab process used meanwhile, the part its own work can account for.
    """

    interval = 0.010

    def __init__(self) -> None:
        self.last = self.cpu = 0.0
        self.wall = self.held = 0.0

    def tick(self) -> None:
        now, cpu = time.monotonic(), time.process_time()
        if self.last:
            late = now - self.last - self.interval
            self.wall = max(self.wall, late)
            self.held = max(self.held, min(late, cpu - self.cpu))
        self.last, self.cpu = now, cpu

    def take(self) -> dict[str, float]:
        """The worst lag so far, in ms, and start afresh."""
        out = {"lag_ms": self.wall * 1000, "held_ms": self.held * 1000}
        self.wall = self.held = 0.0
        return out


def serve(leco_port: int, stage_port: int, camera_port: int, pymodaq_stage: int,
          pymodaq_camera: int, xsub_port: int, xpub_port: int, la4_port: int,
          width: int, height: int, dtype: str) -> None:
    """
    The simulated lab in this process, until stdin closes.  A stdin line
    C{live <seconds>} runs the camera live (grab after grab) for that long,
    then prints C{{"frames": n, "seconds": t}}; C{lag 0} prints the lab's
    reactor lag since the last C{lag} (L{ReactorLag}) and starts afresh.
    """
    sys.path.insert(0, ROOT)
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred
    from twisted.internet.task import LoopingCall

    from twisted_lab.config import parse_config
    from twisted_lab.memory import TrimService, reuse_large_buffers
    from twisted_lab.registry import DeviceRegistry
    from twisted_lab.service import build_service

    config = parse_config({
        "lab": {"name": "load"},
        "devices": {
            "stage": {"type": "sim.stage"},
            "camera": {"type": "sim.camera", "width": width, "height": height,
                       "dtype": dtype, "exposure": 0.0},
        },
        "leco": {"port": leco_port, "namespace": "load", "export": ["stage", "camera"],
                 "data_proxy": True, "data_publish": True,
                 "data_publish_port": xsub_port, "data_subscribe_port": xpub_port},
        "plesty": {"serve": [
            {"device": "stage", "address": f"tcp://127.0.0.1:{stage_port}"},
            {"device": "camera", "address": f"tcp://127.0.0.1:{camera_port}"},
        ]},
        "pymodaq": {"listen": [], "export": [
            {"device": "stage", "server": f"tcp:host=127.0.0.1:port={pymodaq_stage}",
             "role": "ACTUATOR"},
            {"device": "camera", "server": f"tcp:host=127.0.0.1:port={pymodaq_camera}",
             "role": "GRABBER"},
        ]},
        # the simulated node alone (no coordinator role): the probe is its client;
        # no event rate limit and no boardio messages: one output event per command
        "la4": {"node": {"enabled": True, "port": la4_port, "interface": "127.0.0.1",
                         "events_per_second": 0.0, "boardio_messages": False}},
    })
    reuse_large_buffers()  # the lab's memory policy, as twistd -n lab runs it
    registry = DeviceRegistry(reactor)
    service = build_service(registry, config, reactor)
    TrimService(reactor, freeze=True).setServiceParent(service)
    service.startService()
    reactor.addSystemEventTrigger(  # type: ignore[attr-defined]
        "before", "shutdown", service.stopService)
    lag = ReactorLag()
    LoopingCall(lag.tick).start(lag.interval)

    async def live(seconds: float) -> None:
        camera = await registry.when_registered("camera")
        count = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            await camera.grab()
            count += 1
        elapsed = time.perf_counter() - started
        print(json.dumps({"frames": count, "seconds": elapsed}), flush=True)

    class StdinWatch:
        buffer = b""

        def fileno(self) -> int:
            return 0

        def logPrefix(self) -> str:
            return "stdin"

        def doRead(self) -> None:
            data = os.read(0, 4096)
            if not data:
                reactor.removeReader(self)  # type: ignore[attr-defined]
                reactor.stop()  # type: ignore[attr-defined]
                return
            self.buffer += data
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                word, _, arg = line.decode().partition(" ")
                if word == "live":
                    Deferred.fromCoroutine(live(float(arg))).addErrback(
                        lambda f: print(json.dumps({"error": str(f.value)}), flush=True))
                elif word == "lag":
                    print(json.dumps(lag.take()), flush=True)

        def connectionLost(self, reason: object) -> None:
            # stdin hung up without a last read
            if reactor.running:  # type: ignore[attr-defined]
                reactor.stop()  # type: ignore[attr-defined]

    reactor.addReader(StdinWatch())  # type: ignore[attr-defined]
    reactor.callLater(1.0, print, "READY", flush=True)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


# -- clients (each its own process) --------------------------------------------------

def _director(leco_port: int, actor: str, timeout: float) -> Any:
    from pyleco.directors.director import Director
    return Director(actor=actor, name=f"bench{os.getpid()}", host="127.0.0.1",
                    port=leco_port, timeout=timeout)


def _dealer(port: int) -> Any:
    import zmq
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(f"tcp://127.0.0.1:{port}")
    return s


def probe(kind: str, port: int, seconds: float) -> None:
    """Read the stage position every 10 ms; print the latencies (JSON)."""
    latencies: list[float] = []
    lost = 0
    if kind == "leco":
        director = _director(port, "load.stage", DEADLINE)

        def ask() -> bool:
            try:
                director.get_parameters(["position"])
                return True
            except Exception:
                return False
    elif kind == "la4":
        ask = _la4_client(port)
    else:
        import zmq
        s = _dealer(port)
        poller = zmq.Poller()
        poller.register(s, zmq.POLLIN)
        rid = 0

        def ask() -> bool:
            nonlocal rid
            rid += 1
            s.send(json.dumps({"type": "query", "param": "position", "rid": rid}).encode())
            end = time.perf_counter() + DEADLINE
            while True:
                left = end - time.perf_counter()
                if left <= 0 or not poller.poll(left * 1000):
                    return False
                reply = json.loads(s.recv())
                if reply.get("rid") == rid:
                    return reply.get("status") == "ok"
    ask()  # warm up (sign in, connect)
    print("STARTED", flush=True)
    end = time.perf_counter() + seconds
    tick = time.perf_counter()
    while tick < end:
        started = time.perf_counter()
        if ask():
            latencies.append(time.perf_counter() - started)
        else:
            lost += 1
        tick += PERIOD
        pause = tick - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        else:
            tick = time.perf_counter()
    print(json.dumps({"latencies": latencies, "lost": lost}), flush=True)


def _la4_client(port: int) -> Any:
    """
    A pycom client of the node at C{port}: C{ask()} sends C{set_model_light}
    (one JSON document on a new connection) and waits for the C{output}
    event on its callback listener (skipping heartbeats and unit info).
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    base = {"id": f"{os.getpid() & 0xFFFFFFFF:08x}", "name": "loadprobe", "ip": "127.0.0.1",
            "version": "0.1.0", "port": listener.getsockname()[1], "coordinator": False,
            "type_": "cmd"}
    count = 0

    def ask() -> bool:
        nonlocal count
        count += 1
        command = dict(base, command=f'echo "MODEL_LIGHT,{count % 101}" > '
                                     "/home/rigsters/la4_sequence.csv && boardiocli uSeq "
                                     "&& boardiocli runSeq")
        end = time.perf_counter() + DEADLINE
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as out:
                out.sendall(json.dumps(command).encode())
            while True:
                listener.settimeout(max(end - time.perf_counter(), 0.001))
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(max(end - time.perf_counter(), 0.001))
                    data = b""
                    while chunk := conn.recv(65536):
                        data += chunk
                event = json.loads(data)
                if event.get("type_") == "output":
                    return not str(event.get("output", "")).startswith("LA4_SIM_ERROR")
        except OSError:  # socket.timeout included
            return False

    return ask


def load(path: str, port: int, seconds: float, slow_rate: float = 0.0) -> None:
    """Pull frames flat out over one path; print frames and seconds (JSON).

    The pyleco venv has no numpy: a JSON image stays nested lists, a binary
    one is checked by its byte count (C{numpy.frombuffer} would not copy).
    """
    def checked(ref: dict[str, Any], frame: bytes) -> tuple[int, ...]:
        count = 1
        for n in ref["shape"]:
            count *= n
        if len(frame) != count * int(ref["dtype"][2:]):
            raise ValueError("frame size does not match its shape")
        return tuple(ref["shape"])

    if path == "leco-data":
        import zmq
        from pyleco.core.data_message import DataMessage
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVTIMEO, 10_000)
        sub.setsockopt(zmq.SUBSCRIBE, b"load.camera")
        sub.connect(f"tcp://127.0.0.1:{port}")
        time.sleep(0.5)  # the subscription reaches the publisher through the proxy
        print("SUBSCRIBED", flush=True)

        def grab() -> tuple[int, ...]:
            frames = sub.recv_multipart()
            message = DataMessage.from_frames(*frames)
            data: Any = message.data
            channel = data["camera"]["signals"][0]["channels"][0]
            return checked(channel, message.payload[1 + channel["frame"]])
    elif path == "leco-slow":
        _slow_reader(port, seconds, slow_rate)
        return
    elif path.startswith("leco"):
        director = _director(port, "load.camera", 30.0)
        if path == "leco-json":
            def grab() -> tuple[int, ...]:
                export = director.call_action("grab")
                image = export["signals"][0]["data"][0]
                return (len(image), len(image[0]))
        else:
            def grab() -> tuple[int, ...]:
                result, frames = director.ask_rpc("call_action_binary", action="grab",
                                                  extract_additional_payload=True)
                ref = result["signals"][0]["data"][0]
                return checked(ref, frames[ref["__array__"]])
    else:
        s = _dealer(port)
        binary = path == "plesty-binary"

        def grab() -> tuple[int, ...]:
            s.send(json.dumps({"type": "call", "func": "grab", "binary": binary}).encode())
            frames = s.recv_multipart()
            reply = json.loads(frames[0])
            data = reply["result"]["signals"][0]["data"][0]
            if binary:
                return checked(data, frames[data["__array__"]])
            return (len(data), len(data[0]))
    shape = grab()
    print("STARTED", flush=True)
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        grab()
        count += 1
    elapsed = time.perf_counter() - started
    print(json.dumps({"frames": count, "seconds": elapsed, "shape": list(shape)}), flush=True)


def _slow_reader(port: int, seconds: float, rate: float) -> None:
    """
    Sign in to the Coordinator at C{port}, then send C{get_parameters} to
    the stage, C{rate} a second (0: as fast as possible) for C{seconds},
    never reading a reply.
    """
    import zmq
    from pyleco.core.message import Message, MessageTypes
    name = f"slow{os.getpid()}"
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVHWM, 10)
    s.setsockopt(zmq.RCVBUF, 4096)
    s.connect(f"tcp://127.0.0.1:{port}")
    s.send_multipart(Message(b"COORDINATOR", name, data={"jsonrpc": "2.0", "id": 0,
                                                         "method": "sign_in"},
                             message_type=MessageTypes.JSON).to_frames())
    if not s.poll(5000):
        raise RuntimeError("no answer to sign_in")
    s.recv_multipart()
    print("STARTED", flush=True)
    sent = 0
    started = time.perf_counter()
    while (now := time.perf_counter()) - started < seconds:
        if rate and sent >= (now - started) * rate:
            time.sleep(0.001)
            continue
        request = Message(b"load.stage", name, message_type=MessageTypes.JSON,
                          data={"jsonrpc": "2.0", "id": sent, "method": "get_parameters",
                                "params": {"parameters": ["position"]}})
        try:
            s.send_multipart(request.to_frames(), zmq.NOBLOCK)
            sent += 1
        except zmq.Again:
            time.sleep(0.001)
    elapsed = time.perf_counter() - started
    print(json.dumps({"frames": sent, "seconds": elapsed}), flush=True)


def twisted_helper(kind: str, port: int) -> None:
    """
    A client of our own stack, driven by stdin lines C{run <seconds>}:

      - C{pymodaq-probe}, C{pymodaq-load}: a PyMoDAQ 4 TCP server (the
        main-computer side, our server role) listening on C{port}, to which the
        lab exports the stage (ACTUATOR) or the camera (GRABBER); reads the
        position every 10 ms, or grabs flat out;
      - C{pymodaq5-load}: our LECO director with the PyMoDAQ 5 method set
        (C{send_data_grab}, serializall frames) on C{load.camera}, through
        the lab's Coordinator at C{port}; grabs flat out.
    """
    sys.path.insert(0, ROOT)
    from twisted.internet import reactor, stdio
    from twisted.internet.defer import Deferred
    from twisted.internet.endpoints import TCP4ServerEndpoint
    from twisted.internet.task import deferLater
    from twisted.protocols.basic import LineReceiver

    from twisted_lab.registry import DeviceRegistry

    registry = DeviceRegistry(reactor)
    if kind.startswith("pymodaq-"):
        from twisted_lab.protocols.pymodaq.imports import PyMoDAQServerFactory
        factory = PyMoDAQServerFactory(registry, reactor, call_timeout=60.0,
                                       rules=[{"name": "dev"}])
        TCP4ServerEndpoint(reactor, port, interface="127.0.0.1").listen(factory)
    else:
        from twisted_lab.protocols.leco.imports import DirectorService
        DirectorService(registry, [{"name": "dev", "actor": "camera",
                                    "kind": "pymodaq_detector", "parameters": [],
                                    "actions": []}],
                        f"tcp://127.0.0.1:{port}", reactor, f"pm5load{os.getpid()}",
                        60.0).startService()

    async def run(seconds: float) -> dict[str, Any]:
        device = await registry.when_registered("dev")
        while not device.online:
            await deferLater(reactor, 0.05, lambda: None)
        if kind == "pymodaq-probe":
            latencies: list[float] = []
            lost = 0
            end = time.perf_counter() + seconds
            tick = time.perf_counter()
            while tick < end:
                started = time.perf_counter()
                d = device.position()
                d.addTimeout(DEADLINE, reactor)
                try:
                    await d
                    latencies.append(time.perf_counter() - started)
                except Exception:
                    lost += 1
                tick += PERIOD
                pause = tick - time.perf_counter()
                if pause > 0:
                    await deferLater(reactor, pause, lambda: None)
                else:
                    tick = time.perf_counter()
            return {"latencies": latencies, "lost": lost}
        await device.grab()
        count = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            await device.grab()
            count += 1
        return {"frames": count, "seconds": time.perf_counter() - started}

    class Commands(LineReceiver):
        delimiter = b"\n"

        def connectionMade(self) -> None:
            reactor.callLater(0, self.sendLine, b"READY")  # type: ignore[attr-defined]

        def lineReceived(self, line: bytes) -> None:
            word, _, arg = line.decode().partition(" ")
            if word == "run":
                d = Deferred.fromCoroutine(run(float(arg)))
                d.addCallback(lambda r: self.sendLine(json.dumps(r).encode()))
                d.addErrback(lambda f: self.sendLine(json.dumps(
                    {"error": str(f.value)}).encode()))

        def connectionLost(self, reason: object = None) -> None:
            if reactor.running:  # type: ignore[attr-defined]
                reactor.stop()  # type: ignore[attr-defined]

    stdio.StandardIO(Commands())
    reactor.run()  # type: ignore[attr-defined]


def _ask(helper: subprocess.Popen[str], seconds: float, word: str = "run") -> None:
    assert helper.stdin is not None
    helper.stdin.write(f"{word} {seconds}\n")
    helper.stdin.flush()


def _answer(helper: subprocess.Popen[str]) -> dict[str, Any]:
    assert helper.stdout is not None
    while True:
        line = helper.stdout.readline()
        if not line:
            raise RuntimeError(f"{helper.args} ended")
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            if "error" in result:
                raise RuntimeError(f"{helper.args}: {result['error']}")
            return result


# -- the driver ------------------------------------------------------------------------

def _spawn(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)


def _wait_line(proc: subprocess.Popen[str], word: str) -> None:
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{proc.args} ended before {word}")
        if line.strip() == word:
            return


def _last_json(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=120)
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return json.loads(line)  # type: ignore[no-any-return]
    raise RuntimeError(f"no result from {proc.args}")


def _stats(latencies: list[float]) -> tuple[float, float, float]:
    import numpy as np
    if not latencies:
        return float("nan"), float("nan"), float("nan")
    a = np.array(latencies) * 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 99)), float(a.max())


def _rss_mib(pid: int) -> float:
    """Resident memory of process C{pid} (MiB), from /proc."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--height", type=int, default=2048)
    parser.add_argument("--dtype", default="uint16", choices=("uint16", "float64"))
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--slow-rate", type=float, default=1000.0,
                        help="requests/s of the leco-slow reader (0: as fast as it can)")
    parser.add_argument("role", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        role, *rest = args.role
        if role == "serve":
            serve(*(int(x) for x in rest[:10]), rest[10])  # type: ignore[call-arg]
        elif role == "probe":
            probe(rest[0], int(rest[1]), float(rest[2]))
        elif role == "load":
            load(rest[0], int(rest[1]), float(rest[2]), float(rest[3]) if rest[3:] else 0.0)
        elif role == "helper":
            twisted_helper(rest[0], int(rest[1]))
        return

    sys.path.insert(0, ROOT)
    from tests.peers import peer_env, peer_python
    pyleco, pyleco_env = str(peer_python("pyleco")), peer_env("pyleco")
    me = os.path.abspath(__file__)
    leco_port, stage_port, camera_port = _free_port(), _free_port(), _free_port()
    pm_stage, pm_camera = _free_port(), _free_port()
    xsub_port, xpub_port, la4_port = _free_port(), _free_port(), _free_port()
    helpers = {
        "pymodaq-probe": _spawn([sys.executable, me, "helper", "pymodaq-probe",
                                 str(pm_stage)]),
        "pymodaq-load": _spawn([sys.executable, me, "helper", "pymodaq-load",
                                str(pm_camera)]),
    }
    for helper in helpers.values():
        _wait_line(helper, "READY")
    server = _spawn([sys.executable, me, "serve", str(leco_port), str(stage_port),
                     str(camera_port), str(pm_stage), str(pm_camera), str(xsub_port),
                     str(xpub_port), str(la4_port), str(args.width), str(args.height),
                     args.dtype])
    print(f"lab: {args.width}x{args.height} {args.dtype} camera; probes every "
          f"{PERIOD * 1e3:.0f} ms; {args.seconds:.0f} s per phase")
    # a probe process per protocol (the PyMoDAQ 4 probe is the helper above)
    probe_cmds = {
        "leco": ([pyleco, me, "probe", "leco", str(leco_port)], pyleco_env),
        "plesty": ([sys.executable, me, "probe", "plesty", str(stage_port)], None),
        "la4": ([sys.executable, me, "probe", "la4", str(la4_port)], None),
    }
    rows = []
    notes = []
    try:
        _wait_line(server, "READY")
        helpers["pymodaq5-load"] = _spawn([sys.executable, me, "helper", "pymodaq5-load",
                                           str(leco_port)])
        _wait_line(helpers["pymodaq5-load"], "READY")
        for phase in ("idle", *[p for p in args.paths.split(",") if p]):
            probes = {k: _spawn([*cmd, "0"], env) for k, (cmd, env) in probe_cmds.items()}
            for p in probes.values():
                _last_json(p)  # warm-up run (sign-in, imports)
            _ask(helpers["pymodaq-probe"], 0.1)
            _answer(helpers["pymodaq-probe"])
            loader = None
            helper = None
            if phase in helpers:
                helper = helpers[phase]
                _ask(helper, args.seconds + 1)
                time.sleep(0.5)
            elif phase == "leco-data":
                loader = _spawn([pyleco, me, "load", phase, str(xpub_port),
                                 str(args.seconds)], pyleco_env)
                _wait_line(loader, "SUBSCRIBED")
                _ask(server, args.seconds + 2, "live")  # the camera runs live
                _wait_line(loader, "STARTED")
            elif phase != "idle":
                port = leco_port if phase.startswith("leco") else camera_port
                py, env = (pyleco, pyleco_env) if phase.startswith("leco") else \
                    (sys.executable, None)
                loader = _spawn([py, me, "load", phase, str(port), str(args.seconds + 1),
                                 str(args.slow_rate)], env)
                _wait_line(loader, "STARTED")
            _ask(server, 0, "lag")
            _answer(server)  # the lag of the probes' start-up, dropped
            probes = {k: _spawn([*cmd, str(args.seconds)], env)
                      for k, (cmd, env) in probe_cmds.items()}
            _ask(helpers["pymodaq-probe"], args.seconds)
            results = {k: _last_json(p) for k, p in probes.items()}
            results["pymodaq"] = _answer(helpers["pymodaq-probe"])
            _ask(server, 0, "lag")
            lag = _answer(server)
            rss = _rss_mib(server.pid)
            rate = ""
            done = None
            if loader is not None:
                done = _last_json(loader)
            elif helper is not None:
                done = _answer(helper)
            if done is not None:
                rate = f"{done['frames'] / done['seconds']:.2f}"
            if phase == "leco-data":
                live = _answer(server)
                notes.append(f"leco-data: the camera published {live['frames']} frames in "
                             f"{live['seconds']:.1f} s ({live['frames'] / live['seconds']:.2f}"
                             f"/s); the subscriber received {done['frames']} in "  # type: ignore[index]
                             f"{done['seconds']:.1f} s")  # type: ignore[index]
            load_avg = os.getloadavg()[0]
            row = [phase, rate]
            for kind in KINDS:
                p50, p99, worst = _stats(results[kind]["latencies"])
                row += [f"{p50:.1f}", f"{p99:.1f}", f"{worst:.1f}", str(results[kind]["lost"])]
            row += [f"{lag['lag_ms']:.0f}/{lag['held_ms']:.0f}", f"{rss:.0f}",
                    f"{load_avg:.1f}"]
            rows.append(row)
            print("  ".join(row), flush=True)
    finally:
        for proc in (server, *helpers.values()):
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in (server, *helpers.values()):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    head = ["path", "frames/s"]
    for kind in KINDS:
        head += [f"{kind} p50", "p99", "max", "lost"]
    head += ["lab lag", "rss", "load"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    print()
    print("  ".join(h.rjust(w) for h, w in zip(head, widths)))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    print("(latencies in ms of a small request every 10 ms on each protocol; lost: no "
          "answer within 1 s; lab lag: the worst lateness of a 10 ms tick on the lab's "
          "reactor while the probes ran, ms: wall clock / bounded by the lab's CPU time; "
          "rss: the lab's resident memory at the end of the phase, MiB; "
          "load: 1-min load average; leco-slow's frames/s: requests it sent per second)")
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
