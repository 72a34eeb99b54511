"""
A hostile client against a running lab: every listener, on loopback.

    python bench/hostile.py            # short run (minutes)
    python bench/hostile.py --long     # >= 100k inputs per parser

It starts a lab (``twistd -n lab``, a generated config on free loopback
ports: PyMoDAQ server, LECO Coordinator and data proxy, a PLESTY server, the
LA4 callback listener and simulated node, the web API) in a subprocess, with
a reactor lag probe inside it (a LoopingCall every 10 ms printing the worst
lateness as ``HOSTILE-PROBE`` lines: the wall-clock lateness, and the same
bounded by the CPU time the lab process used meanwhile, which leaves out the
time the lab was not scheduled at all on a shared machine).  Connection
floods come from attacker processes of their own, several connections in
flight each.  Then, listener by listener, it fires
batches of hostile input: random and malformed frames, oversized lengths,
floods of names / titles / identities / subscriptions, silent and
half-finished connections, slow readers and peers that vanish.  After each
batch it checks that every protocol still answers a valid request.  It
records per listener: inputs tried, crashes (the lab process died), hangs
(a valid request not answered in 5 s), replies lost under 200 clients x 50
requests (PLESTY and LECO clients pipeline all 50 before reading), the
worst reactor stall per batch and under that load, RSS before and after
(from /proc, the peer gone and 6 s given: the lab trims its heap every 5 s), and at the end whether the log
holds a traceback.  Loopback only; nothing leaves the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = "127.0.0.1"
PROBE = "HOSTILE-PROBE"


# -- the lab under test --------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def lab_config(ports: dict[str, int], states: str) -> str:
    return f"""
[lab]
name = "hostile"
simulated = true

[pymodaq]
listen = ["tcp:{ports['pymodaq']}:interface={HOST}"]

[leco]
namespace = "hostile"
export = ["stage", "camera"]
port = {ports['leco']}
data_publish_port = {ports['xsub']}
data_subscribe_port = {ports['xpub']}
states_file = "{states}"

[plesty]
serve = [{{ device = "stage", address = "tcp://{HOST}:{ports['plesty']}" }}]

[la4]
nodes = [{{ name = "la4", host = "{HOST}", port = {ports['node']} }}]
callback = "tcp:{ports['callback']}:interface={HOST}"
node = {{ enabled = true, port = {ports['node']}, coordinator = "{HOST}:{ports['callback']}" }}

[web]
listen = "tcp:{ports['web']}:interface={HOST}"
"""


def serve(config: str) -> None:
    """Run the lab (the child process): twistd plus the lag probe."""
    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall

    import gc

    state = {"last": 0.0, "cpu": 0.0, "worst": 0.0, "held": 0.0, "gc": 0.0, "gc_at": 0.0}
    interval = 0.01

    def collected(phase: str, info: dict[str, Any]) -> None:
        # the longest garbage collection (a pause of the whole process)
        if phase == "start":
            state["gc_at"] = time.monotonic()
        else:
            state["gc"] = max(state["gc"], time.monotonic() - state["gc_at"])

    gc.callbacks.append(collected)

    def tick() -> None:
        # lateness of a 10 ms tick: "worst" is wall clock (it includes the time
        # the lab was not scheduled at all: other processes, the bench's own
        # clients, on a shared machine); "held" is bounded by the CPU time the
        # lab process (all its threads) used meanwhile, i.e. the part of the
        # delay that the lab's own work can account for
        now, cpu = time.monotonic(), time.process_time()
        if state["last"]:
            late = now - state["last"] - interval
            state["worst"] = max(state["worst"], late)
            state["held"] = max(state["held"], min(late, cpu - state["cpu"]))
        state["last"], state["cpu"] = now, cpu

    def report() -> None:
        sys.__stdout__.write(f"{PROBE} " + json.dumps(
            {"worst_ms": state["worst"] * 1000, "held_ms": state["held"] * 1000,
             "gc_ms": state["gc"] * 1000}) + "\n")
        sys.__stdout__.flush()
        state["worst"] = state["held"] = state["gc"] = 0.0

    def start() -> None:
        LoopingCall(tick).start(interval)
        LoopingCall(report).start(0.25, now=False)

    reactor.callWhenRunning(start)  # type: ignore[attr-defined]
    from twisted.scripts.twistd import run
    sys.argv = ["twistd", "-n", "--pidfile=", "lab", "--config", config]
    run()


class Lab:
    """The lab subprocess: its ports, log, probe and memory."""

    def __init__(self) -> None:
        self.ports = {k: free_port() for k in
                      ("pymodaq", "leco", "xsub", "xpub", "plesty", "node", "callback", "web")}
        self.dir = tempfile.mkdtemp(prefix="hostile-")
        self.config = os.path.join(self.dir, "lab.toml")
        with open(self.config, "w") as f:
            f.write(lab_config(self.ports, os.path.join(self.dir, "states.json")))
        self.log: list[str] = []
        self.worst_ms = 0.0
        self.held_ms = 0.0
        self.gc_ms = 0.0
        self.last_gc_ms = 0.0
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve", self.config],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONPATH": ROOT})
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(PROBE):
                probe = json.loads(line[len(PROBE):])
                with self._lock:
                    self.worst_ms = max(self.worst_ms, probe["worst_ms"])
                    self.held_ms = max(self.held_ms, probe["held_ms"])
                    self.gc_ms = max(self.gc_ms, probe["gc_ms"])
            else:
                self.log.append(line)

    def take_stall(self) -> tuple[float, float]:
        """The worst tick lateness since the last call: (wall, bounded by the lab's CPU)."""
        time.sleep(0.3)  # one more probe report
        with self._lock:
            worst, self.worst_ms = self.worst_ms, 0.0
            held, self.held_ms = self.held_ms, 0.0
            self.last_gc_ms, self.gc_ms = self.gc_ms, 0.0
        return worst, held

    def rss_mb(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as f:
            kb = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))  # type: ignore[union-attr]
        return kb / 1024

    def alive(self) -> bool:
        return self.process.poll() is None

    def tracebacks(self) -> list[str]:
        return [line for line in self.log if "Traceback" in line]

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def web(self, path: str) -> Any:
        url = f"http://{HOST}:{self.ports['web']}{path}"
        with urllib.request.urlopen(url, timeout=5) as reply:
            return json.loads(reply.read())


# -- valid requests (each protocol answers) ------------------------------------

CTX: zmq.Context[Any] = zmq.Context()


def pmq_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">i", len(data)) + data


def pymodaq_valid(lab: Lab, title: str = "probe") -> bool:
    """A GRABBER client with a title becomes a registry device (web API sees it)."""
    xml = (f'<settings type="group" title="settings"><title type="str" title="t">{title}'
           '</title></settings>')
    with socket.create_connection((HOST, lab.ports["pymodaq"]), timeout=5) as s:
        s.sendall(pmq_string("GRABBER") + pmq_string("Infos") + pmq_string(xml))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            names = [d["name"] for d in lab.web("/api/devices")["devices"]]
            if any(n.startswith(title) for n in names):
                return True
            time.sleep(0.05)
    return False


def leco_frames(receiver: bytes, sender: bytes, payload: dict[str, Any]) -> list[bytes]:
    from twisted_lab.protocols.leco.message import JSON, conversation_id, header
    return [b"\x00", receiver, sender, header(conversation_id(), JSON),
            json.dumps(payload).encode()]


def leco_ask(lab: Lab, name: bytes, receiver: bytes, method: str, params: Any = None,
             sign_in: bool = True, timeout: float = 5.0) -> Any:
    """Sign in as C{name} (a DEALER), ask C{receiver} C{method}; the result or None."""
    sock = CTX.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://{HOST}:{lab.ports['leco']}")
    try:
        if sign_in:
            sock.send_multipart(leco_frames(b"COORDINATOR", name,
                                            {"id": 1, "method": "sign_in", "jsonrpc": "2.0"}))
            if not sock.poll(int(timeout * 1000)):
                return None
            sock.recv_multipart()
        body: dict[str, Any] = {"id": 2, "method": method, "jsonrpc": "2.0"}
        if params is not None:
            body["params"] = params
        sock.send_multipart(leco_frames(receiver, name, body))
        if not sock.poll(int(timeout * 1000)):
            return None
        reply = json.loads(sock.recv_multipart()[4])
        if sign_in:
            sock.send_multipart(leco_frames(b"COORDINATOR", name,
                                            {"id": 3, "method": "sign_out", "jsonrpc": "2.0"}))
        return reply
    finally:
        sock.close(0)


def leco_valid(lab: Lab) -> bool:
    reply = leco_ask(lab, b"probe%d" % random.getrandbits(32), b"hostile.stage",
                     "get_parameters", {"parameters": ["position"]})
    return reply is not None and "result" in reply


def plesty_ask(lab: Lab, request: dict[str, Any], identity: bytes | None = None,
               timeout: float = 5.0) -> Any:
    sock = CTX.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if identity:
        sock.setsockopt(zmq.IDENTITY, identity)
    sock.connect(f"tcp://{HOST}:{lab.ports['plesty']}")
    try:
        sock.send(json.dumps(request).encode())
        if not sock.poll(int(timeout * 1000)):
            return None
        return json.loads(sock.recv_multipart()[-1])
    finally:
        sock.close(0)


def plesty_valid(lab: Lab) -> bool:
    reply = plesty_ask(lab, {"type": "query", "param": "position"})
    return reply is not None and reply.get("status") == "ok"


def la4_valid(lab: Lab) -> bool:
    """The la4 device (fed by the callback listener) is online and answers a read."""
    try:
        devices = {d["name"]: d for d in lab.web("/api/devices")["devices"]}
        return bool(devices.get("la4", {}).get("online")) and \
            "value" in lab.web("/api/devices/la4/parameters/node_version")
    except OSError:
        return False


def web_valid(lab: Lab) -> bool:
    try:
        return "devices" in lab.web("/api/devices")
    except OSError:
        return False


VALID: dict[str, Callable[[Lab], bool]] = {
    "pymodaq": pymodaq_valid, "leco": leco_valid, "plesty": plesty_valid, "la4": la4_valid,
    "web": web_valid,
}


# -- hostile input, per listener ------------------------------------------------

def _random_burst(job: tuple[int, int, int, int]) -> int:
    """
    One attacker process: C{count} connections of random bytes (1..C{longest}),
    L{IN_FLIGHT} at a time: a connect now and then waits 1 s for a SYN to be
    sent again (the lab closes first, so its side keeps TIME_WAIT entries that
    a reused client port runs into), and one at a time that, not the lab,
    would set the pace.
    """
    port, seed, count, longest = job

    def one(i: int) -> int:
        rng = random.Random(seed * 1000 + i)
        share = count // IN_FLIGHT + (i < count % IN_FLIGHT)
        return tcp_burst(port, (rng.randbytes(rng.randrange(1, longest)) for _ in range(share)))

    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        return sum(pool.map(one, range(IN_FLIGHT)))


#: connections in flight per attacker process
IN_FLIGHT = 8


def parallel_burst(port: int, count: int, longest: int, seed: int) -> int:
    """C{count} connections of random bytes from attacker processes of their own
    (not threads of the bench: the lab's stall is then not our GIL's)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    jobs = [(port, seed * 100 + i, count // ATTACKERS + (i < count % ATTACKERS), longest)
            for i in range(ATTACKERS)]
    with ProcessPoolExecutor(ATTACKERS, mp_context=get_context("spawn")) as pool:
        return sum(pool.map(_random_burst, jobs))


#: attacker processes for connection floods
ATTACKERS = 3


def tcp_burst(port: int, payloads: Any, linger_rst: bool = False) -> int:
    """One connection per payload; the number really sent."""
    sent = 0
    for payload in payloads:
        try:
            with socket.create_connection((HOST, port), timeout=2) as s:
                if linger_rst:  # vanish: RST instead of FIN
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.sendall(payload)
                sent += 1
        except OSError:
            pass
    return sent


def held_connections(port: int, count: int, seconds: float, first: bytes = b"") -> int:
    """Open C{count} connections (silent, or a first partial write), hold them."""
    socks = []
    for _ in range(count):
        try:
            s = socket.create_connection((HOST, port), timeout=2)
            if first:
                s.sendall(first)
            socks.append(s)
        except OSError:
            break
    time.sleep(seconds)
    for s in socks:
        s.close()
    return len(socks)


def delivered(sock: zmq.Socket[Any], messages: list[list[bytes]],
              marker: Callable[[int], tuple[list[bytes], bytes]], chunk: int = 500,
              timeout: float = 30.0) -> int:
    """
    Send C{messages} in chunks, each followed by a valid request (C{marker(k)}
    gives its frames and a token its reply carries), and wait for that reply:
    ZeroMQ keeps one peer's messages in order, so the lab has then read the
    whole chunk.  Replies to the messages themselves are read and dropped.

    @return: how many messages the lab is known to have read (a chunk whose
        marker is not answered within C{timeout} is not counted).
    """
    done = 0
    for start in range(0, len(messages), chunk):
        part = messages[start:start + chunk]
        for frames in part:
            sock.send_multipart(frames)
        frames, token = marker(start)
        sock.send_multipart(frames)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(int(left * 1000)):
                return done
            if any(token in bytes(f) for f in sock.recv_multipart()):
                break
        done += len(part)
    return done


def pymodaq_batches(lab: Lab, n: int) -> list[tuple[str, Callable[[], int]]]:
    port = lab.ports["pymodaq"]
    rng = random.Random(1)

    def garbage() -> int:
        # one input per connection (the first error closes it): in the long run
        # a fifth of n; "framed" below gives the parser its n inputs, many per
        # connection
        return parallel_burst(port, n if n <= 10_000 else n // 5, 64, 1)

    def framed() -> int:
        """Well-framed messages with random strings, many per connection (the
        parser reads each; unknown commands close the connection)."""
        sent = 0
        per_connection = 10_000
        while sent < n:
            count = min(per_connection, n - sent)
            messages = b"".join(
                pmq_string("Info") + pmq_string(rng.randbytes(rng.randrange(0, 24)).hex())
                + pmq_string(rng.randbytes(rng.randrange(0, 40)).hex())
                for _ in range(count))
            with socket.create_connection((HOST, port)) as s:
                s.sendall(pmq_string("GRABBER") + messages)
                s.shutdown(socket.SHUT_WR)
                s.settimeout(30)
                try:
                    while s.recv(65536):
                        pass
                except OSError:
                    pass
            sent += count
        return sent

    def oversize() -> int:
        return tcp_burst(port, [struct.pack(">i", 0x7FFFFFF0) + b"x" * 100] * (n // 10))

    def info_names() -> int:
        count = max(4000, n // 10)
        with socket.create_connection((HOST, port)) as s:
            s.sendall(pmq_string("GRABBER") + b"".join(
                pmq_string("Info") + pmq_string(f"name{i}") + pmq_string("v")
                for i in range(count)))
            time.sleep(1)
        return count

    def big_infos() -> int:
        xml = ('<settings type="group" title="settings">' + "".join(
            f'<p{i} type="str" title="t">{"v" * 200}</p{i}>' for i in range(20000))
            + "</settings>")
        with socket.create_connection((HOST, port)) as s:
            s.sendall(pmq_string("GRABBER") + pmq_string("Infos") + pmq_string(xml))
            time.sleep(2)
        return 1

    def titles() -> int:
        count = min(300, n)
        return tcp_burst(port, (
            pmq_string("GRABBER") + pmq_string("Infos") + pmq_string(
                f'<settings type="group" title="s"><title type="str" title="t">t{i}'
                '</title></settings>') for i in range(count)))

    def idle() -> int:
        return held_connections(port, 300, 1.0)

    def vanish() -> int:
        return tcp_burst(port, [pmq_string("GRABBER")] * min(n, 500), linger_rst=True)

    return [("garbage", garbage), ("framed Info messages", framed),
            ("oversized length", oversize), ("Info name flood", info_names),
            ("4 MB Infos tree", big_infos), ("distinct titles", titles),
            ("idle connections", idle), ("vanishing peers", vanish)]


def leco_batches(lab: Lab, n: int) -> list[tuple[str, Callable[[], int]]]:
    address = f"tcp://{HOST}:{lab.ports['leco']}"
    rng = random.Random(2)

    def raw(frames_list: list[list[bytes]]) -> None:
        sock = CTX.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.connect(address)
        for frames in frames_list:
            sock.send_multipart(frames)
        time.sleep(0.5)
        sock.close(0)

    def read_by_lab(messages: list[list[bytes]]) -> int:
        from twisted_lab.protocols.leco.message import JSON, conversation_id, header

        def marker(k: int) -> tuple[list[bytes], bytes]:
            cid = conversation_id()
            return ([b"\x00", b"COORDINATOR", b"hostile-raw", header(cid, JSON),
                     json.dumps({"id": k, "method": "pong", "jsonrpc": "2.0"}).encode()], cid)

        sock = CTX.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(address)
        try:
            return delivered(sock, messages, marker)
        finally:
            sock.close(0)

    def garbage() -> int:
        return read_by_lab([[rng.randbytes(rng.randrange(0, 40))
                             for _ in range(rng.randrange(1, 7))] for _ in range(n)])

    def bad_json() -> int:
        bodies = [b"{" * 100000, b'{"id": 1, "method": ', b"[]", b'{"method": 5}']
        return read_by_lab([leco_frames(b"COORDINATOR", b"x", {})[:4] + [bodies[i % 4]]
                            for i in range(n // 10)])

    def oversize() -> int:
        raw([[b"\x00", b"COORDINATOR", b"x", b"h" * 17, b"x" * (80 << 20)]])
        return 1

    def sign_in_flood() -> int:
        count = min(n, 2000)
        sock = CTX.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(address)
        for i in range(count):
            sock.send_multipart(leco_frames(b"COORDINATOR", b"flood%d" % i,
                                            {"id": i, "method": "sign_in", "jsonrpc": "2.0"}))
        time.sleep(1)
        sock.close(0)
        return count

    def subscriptions() -> int:
        count = min(n, 20000)
        sub = CTX.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.connect(f"tcp://{HOST}:{lab.ports['xpub']}")
        for i in range(count):
            sub.setsockopt(zmq.SUBSCRIBE, b"t%d." % i + b"x" * 200)
        time.sleep(1)
        sub.close(0)
        # a 2 MB subscription overflows libzmq's own stack in the subscriber
        # (its trie recurses per byte): sent from a process of its own
        subprocess.run([sys.executable, "-c", (
            "import zmq, time; s = zmq.Context().socket(zmq.SUB); "
            f"s.connect('tcp://{HOST}:{lab.ports['xpub']}'); "
            "s.setsockopt(zmq.SUBSCRIBE, b'y' * (2 << 20)); time.sleep(1)")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        return count + 1

    def slow_reader() -> int:
        """Ask for camera grabs and never read the replies."""
        sock = CTX.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 1)
        sock.connect(address)
        sock.send_multipart(leco_frames(b"COORDINATOR", b"slow",
                                        {"id": 0, "method": "sign_in", "jsonrpc": "2.0"}))
        for i in range(40):
            sock.send_multipart(leco_frames(b"hostile.camera", b"slow", {
                "id": i + 1, "method": "call_action", "params": {"action": "grab"},
                "jsonrpc": "2.0"}))
        time.sleep(2)
        sock.close(0)
        return 40

    return [("garbage frames", garbage), ("bad/deep JSON", bad_json),
            ("80 MiB frame", oversize), ("sign-in flood", sign_in_flood),
            ("subscription flood", subscriptions), ("slow reader", slow_reader)]


def plesty_batches(lab: Lab, n: int) -> list[tuple[str, Callable[[], int]]]:
    address = f"tcp://{HOST}:{lab.ports['plesty']}"
    rng = random.Random(3)

    def raw(messages: list[list[bytes]], wait: float = 0.5) -> None:
        sock = CTX.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.connect(address)
        for frames in messages:
            sock.send_multipart(frames)
        time.sleep(wait)
        sock.close(0)

    def garbage() -> int:
        sock = CTX.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(address)
        try:
            return delivered(sock, [[rng.randbytes(rng.randrange(0, 60))] for _ in range(n)],
                             lambda k: ([json.dumps({"type": "ping", "rid": f"mark{k}"})
                                         .encode()], f"mark{k}".encode()))
        finally:
            sock.close(0)

    def oversize() -> int:
        raw([[b"{" + b" " * (17 << 20) + b"}"]], wait=1.0)
        raw([[b"x" * (40 << 20)]], wait=1.0)
        return 2

    def identities() -> int:
        count = 200
        for i in range(count):
            sock = CTX.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.IDENTITY, b"id%d" % i)
            sock.connect(address)
            sock.send(json.dumps({"type": "connect", "note": "x" * (1 << 20)}).encode())
            sock.poll(2000)
            sock.close(0)
        return count

    return [("garbage", garbage), ("oversize requests", oversize),
            ("200 identities x 1 MiB metadata", identities)]


def la4_batches(lab: Lab, n: int) -> list[tuple[str, Callable[[], int]]]:
    port = lab.ports["callback"]

    def garbage() -> int:
        return parallel_burst(port, n, 80, 4)

    def oversize() -> int:
        return tcp_burst(port, [b'{"a": "' + b"x" * (1 << 20)] * 10)

    def partial() -> int:
        return held_connections(port, 64, 3.0, first=b'{"event": ')

    def silent() -> int:
        return held_connections(port, 64, 3.0)

    return [("garbage", garbage), ("oversize", oversize), ("partial documents", partial),
            ("silent connections", silent)]


# -- load: 200 clients x 50 requests --------------------------------------------

def load(lab: Lab, protocol: str, clients: int, requests: int) -> int | None:
    """Replies lost when C{clients} clients each send C{requests} requests."""
    if protocol == "plesty":
        def one(i: int) -> int:
            sock = CTX.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(f"tcp://{HOST}:{lab.ports['plesty']}")
            # pipelined: every request sent before any reply is read
            for r in range(requests):
                sock.send(json.dumps({"type": "query", "param": "position", "rid": r}).encode())
            got = 0
            while got < requests and sock.poll(10000):
                sock.recv_multipart()
                got += 1
            sock.close(0)
            return requests - got
    elif protocol == "leco":
        def one(i: int) -> int:
            name = b"load%d" % i
            sock = CTX.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(f"tcp://{HOST}:{lab.ports['leco']}")
            sock.send_multipart(leco_frames(b"COORDINATOR", name,
                                            {"id": 0, "method": "sign_in", "jsonrpc": "2.0"}))
            if not sock.poll(10000):
                sock.close(0)
                return requests
            sock.recv_multipart()
            for r in range(requests):
                sock.send_multipart(leco_frames(b"hostile.stage", name, {
                    "id": r + 1, "method": "get_parameters",
                    "params": {"parameters": ["position"]}, "jsonrpc": "2.0"}))
            got = 0
            while got < requests and sock.poll(10000):
                sock.recv_multipart()
                got += 1
            sock.send_multipart(leco_frames(b"COORDINATOR", name,
                                            {"id": -1, "method": "sign_out", "jsonrpc": "2.0"}))
            sock.close(0)
            return requests - got
    else:
        return None
    with ThreadPoolExecutor(clients) as pool:
        return sum(pool.map(one, range(clients)))


# -- the run ------------------------------------------------------------------

def answers(check: Callable[[Lab], bool], lab: Lab) -> bool:
    """A valid request is answered (an error or a timeout counts as a hang)."""
    try:
        return check(lab)
    except (OSError, ValueError, KeyError, zmq.ZMQError):
        return False


def wait_ready(lab: Lab) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not lab.alive():
            sys.exit("the lab did not start:\n" + "".join(lab.log[-30:]))
        try:
            if all(check(lab) for check in VALID.values()):
                return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit("the lab did not answer every protocol in 60 s:\n" + "".join(lab.log[-30:]))


def run(long: bool, only: list[str] | None = None) -> list[dict[str, Any]]:
    n = 100_000 if long else 2_000
    lab = Lab()
    rows: list[dict[str, Any]] = []
    try:
        wait_ready(lab)
        lab.take_stall()
        for name, batches in (("pymodaq", pymodaq_batches), ("leco", leco_batches),
                              ("plesty", plesty_batches), ("la4", la4_batches)):
            if only and name not in only:
                continue
            row: dict[str, Any] = {"listener": name, "inputs": 0, "crashes": 0, "hangs": 0,
                                   "stall_ms": 0.0, "held_ms": 0.0, "rss_before": lab.rss_mb(),
                                   "batches": []}
            for label, batch in batches(lab, n):
                started = time.monotonic()
                count = batch()
                row["inputs"] += count
                stall, held = lab.take_stall()
                row["stall_ms"] = max(row["stall_ms"], stall)
                row["held_ms"] = max(row["held_ms"], held)
                if not lab.alive():
                    row["crashes"] += 1
                    rows.append(row)
                    return rows
                answered = {p: answers(check, lab) for p, check in VALID.items()}
                hung = [p for p, ok in answered.items() if not ok]
                row["hangs"] += len(hung)
                row["batches"].append((label, round(time.monotonic() - started, 1),
                                       round(stall, 1), hung))
                print(f"  {name:8} {label:34} {count:7} inputs {time.monotonic() - started:6.1f} s "
                      f"stall {stall:7.1f} ms (lab CPU-bounded {held:6.1f} ms, longest GC "
                      f"{lab.last_gc_ms:5.1f} ms)  "
                      f"{'all answer' if not hung else 'NO ANSWER: ' + ', '.join(hung)}",
                      flush=True)
            time.sleep(6)  # the lab trims its heap every 5 s (twisted_lab.memory)
            row["rss_after"] = lab.rss_mb()
            row["lost"] = load(lab, name, 200, 50)
            stall, held = lab.take_stall()
            row["load_stall_ms"], row["load_held_ms"] = stall, held
            rows.append(row)
        rows.append({"listener": "(log)", "tracebacks": len(lab.tracebacks())})
        for line in lab.tracebacks()[:5]:
            print("  traceback in the log:", line.strip())
    finally:
        lab.stop()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    out = ["| listener | inputs | crashes | hangs | replies lost (200 x 50) | max stall per "
           "batch: wall / lab-CPU-bounded | stall under load: wall / lab-CPU-bounded | "
           "RSS before → after |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if "inputs" not in row:
            continue
        lost = "n/a" if row.get("lost") is None else str(row["lost"])
        after = row.get("rss_after")
        load_stall = (f"{row['load_stall_ms']:.0f} / {row['load_held_ms']:.0f} ms"
                      if "load_stall_ms" in row else "?")
        rss = (f"{row['rss_before']:.0f} → {after:.0f} MB" if after is not None
               else f"{row['rss_before']:.0f} → ?")
        out.append(f"| {row['listener']} | {row['inputs']} | {row['crashes']} | {row['hangs']} "
                   f"| {lost} | {row['stall_ms']:.0f} / {row['held_ms']:.0f} ms | {load_stall} "
                   f"| {rss} |")
    logs = [r for r in rows if r.get("listener") == "(log)"]
    if logs:
        out.append(f"\nTracebacks in the lab's log: {logs[0]['tracebacks']}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long", action="store_true", help=">= 100k inputs per parser")
    parser.add_argument("--only", metavar="LISTENERS",
                        help="comma-separated: pymodaq, leco, plesty, la4 (default: all)")
    parser.add_argument("--serve", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    started = time.monotonic()
    rows = run(args.long, args.only.split(",") if args.only else None)
    print()
    print(table(rows))
    print(f"\n({'long' if args.long else 'short'} run, {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
