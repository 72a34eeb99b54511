# -*- test-case-name: tests.test_lab_process -*-
"""
The README's first command, as a user runs it: C{twistd -n lab} starts the
simulated lab with a log line per device and per service, serves every
protocol on 127.0.0.1, and stops cleanly within 2 s of Ctrl-C.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The simulated lab's listeners (every port README.md lists): PyMoDAQ, LECO
#: Coordinator and data proxy, PLESTY x3, LA4 node and coordinator callbacks,
#: the web console.
PORTS = {"pymodaq": 6341, "leco": 12300, "leco data publishers": 11100,
         "leco data subscribers": 11099, "plesty powermeter": 5555, "plesty stage": 5556,
         "plesty camera": 5557, "la4 node": 5000, "la4 callbacks": 5001,
         "web": 8765}


def connectable(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


class SimulatedLabProcessTests(SynchronousTestCase):
    """twistd -n lab in a real process."""

    def test_start_serve_stop(self) -> None:
        """Every device and service is logged, every default port accepts on loopback,
        and SIGINT stops the process cleanly in under 2 s."""
        busy = [name for name, port in PORTS.items() if connectable(port)]
        self.assertEqual(busy, [], "default ports already in use: another lab is running")
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        log = os.path.join(cwd, "lab.log")
        env = dict(os.environ, PYTHONPATH=ROOT)
        process = subprocess.Popen(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
             "-n", "--pidfile=", "--logfile", log, "lab"], cwd=cwd, env=env)
        self.addCleanup(lambda: process.poll() is None and process.kill())
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline:
            text = open(log).read() if os.path.exists(log) else ""
            if "lab started" in text and all(connectable(p) for p in PORTS.values()):
                break
            self.assertIsNone(process.poll(), text)
            time.sleep(0.2)
        else:
            self.fail("the lab did not start within 60 s:\n" + text)
        for device in ("stage", "powermeter", "spectrometer", "camera"):
            self.assertIn(f"registered device {device}", text)
        for service in ("pymodaq", "leco", "plesty", "la4", "web"):
            self.assertRegex(text, rf"services: .*\b{service}\b")
        # the LA4 node reaches the registry over its own protocol
        time.sleep(1.5)
        text = open(log).read()
        self.assertIn("registered device la4", text)
        # --check's summary of the built-in lab names exactly the running lab's devices
        check = subprocess.run(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "lab",
             "--check"], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
        summary = check.stdout.split("devices (", 1)[1].split("listeners (", 1)[0]
        checked = sorted(line.split()[0] for line in summary.splitlines()[1:])
        registered = sorted(set(re.findall(r"registered device (\w+)", text)))
        self.assertEqual(checked, registered)
        for name, port in PORTS.items():
            self.assertTrue(connectable(port), name)
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
        elapsed = time.monotonic() - started
        text = open(log).read()
        # twistd re-raises the signal that stopped it, as shells expect after Ctrl-C
        self.assertIn(process.returncode, (0, -signal.SIGINT), text)
        self.assertLess(elapsed, 2.0, text)
        self.assertIn("lab stopped", text)
        self.assertIn("Main loop terminated", text)
        self.assertIn("Server Shut Down", text)
        self.assertNotIn("Traceback", text)
        self.assertNotIn("Unhandled", text)
        self.assertEqual([name for name, port in PORTS.items() if connectable(port)], [])
