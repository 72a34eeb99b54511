# -*- test-case-name: tests.test_startup_process -*-
"""
Helpers for tests that run the lab as a real process (C{twistd lab}).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: A config with every listener on a free port (0): nothing can clash.
FREE_PORTS_LAB = """\
[lab]
simulated = true

[pymodaq]
listen = ["tcp:0:interface=127.0.0.1"]

[leco]
port = 0
data_publish_port = 0
data_subscribe_port = 0
export = ["stage", "camera"]

[plesty]
serve = [{device = "powermeter", address = "tcp://127.0.0.1:*"}]
"""

TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def env() -> dict[str, str]:
    """The environment of a lab process: this checkout first on the path."""
    return dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def run_twistd(args: list[str], cwd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run twistd to completion."""
    return subprocess.run(TWISTD + args, cwd=cwd, env=env(), capture_output=True, text=True,
                          timeout=timeout)


def start_twistd(args: list[str], cwd: str, **kwargs: Any) -> subprocess.Popen[str]:
    """Start twistd in the background."""
    return subprocess.Popen(TWISTD + args, cwd=cwd, env=env(), text=True, **kwargs)


class HeldPort:
    """A loopback TCP port held (listening) by this process."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen()
        self.port: int = self.socket.getsockname()[1]

    def close(self) -> None:
        self.socket.close()


def wait_for(path: str, text: str, process: subprocess.Popen[str], timeout: float = 60) -> str:
    """Wait until the file at C{path} contains C{text}; return its content."""
    deadline = time.monotonic() + timeout
    content = ""
    while time.monotonic() < deadline:
        content = open(path).read() if os.path.exists(path) else ""
        if text in content:
            return content
        if process.poll() is not None:
            raise AssertionError(f"the lab exited ({process.returncode}):\n{content}")
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not logged within {timeout} s:\n{content}")


#: The built-in lab's ports, in the order L{builtin_lab_config} takes them.
DEFAULT_PORTS = (6341, 12300, 11100, 11099, 5555, 5556, 5557, 5000, 5001, 8765)


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports free right now."""
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def builtin_lab_config(ports: dict[int, int]) -> str:
    """
    The built-in simulated lab as a config file, each default port replaced
    by C{ports[default]}.
    """
    p = ports
    return f"""\
[lab]
simulated = true

[pymodaq]
listen = ["tcp:{p[6341]}:interface=127.0.0.1"]

[leco]
port = {p[12300]}
data_publish_port = {p[11100]}
data_subscribe_port = {p[11099]}
export = ["stage", "powermeter", "spectrometer", "camera", "la4"]

[plesty]
serve = [{{device = "powermeter", address = "tcp://127.0.0.1:{p[5555]}"}},
         {{device = "stage", address = "tcp://127.0.0.1:{p[5556]}"}},
         {{device = "camera", address = "tcp://127.0.0.1:{p[5557]}"}}]

[la4]
nodes = [{{name = "la4", host = "127.0.0.1", port = {p[5000]}}}]
callback = "tcp:{p[5001]}:interface=127.0.0.1"
node = {{enabled = true, port = {p[5000]}, coordinator = "127.0.0.1:{p[5001]}"}}
"""


async def run_lab_until_connected(test: Any, python: str, config: str, log: str, cwd: str,
                                  env: dict[str, str], devices: Any, timeout: float,
                                  what: str) -> None:
    """
    Run C{twistd -n lab --config config} from the checkout with another
    venv's interpreter (C{tests/peers/lab_run.py}), logging to C{log}; stop
    it (SIGINT, then kill) at the test's cleanup; wait until every one of
    C{devices} logged "driver connected", or fail the test with the log's
    tail and C{what} went wrong.
    """
    import signal

    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    process = subprocess.Popen(
        [python, os.path.join(ROOT, "tests", "peers", "lab_run.py"), "-n", "--pidfile=",
         "--logfile", log, "lab", "--config", config],
        cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)

    def stop() -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    test.addCleanup(stop)
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = open(log).read() if os.path.exists(log) else ""
        if all(f"{name}: driver connected" in text for name in devices):
            return
        if process.poll() is not None:
            break
        await deferLater(reactor, 0.2, lambda: None)
    test.fail(f"{what}:\n" + text[-4000:])
