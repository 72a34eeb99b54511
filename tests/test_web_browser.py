# -*- test-case-name: tests.test_web_browser -*-
"""
The web console in a real headless browser: Debian's Chromium driven by
Playwright (tests/browser/console_check.py, run as a subprocess so trial's
reactor stays clean) against a simulated lab served in this process, with
a PLESTY client (plain pyzmq) on the other side.

Screenshots of each view go to C{$TWISTED_LAB_SCREENSHOTS} (docs/img to
refresh the docs' pictures) or to the test's temporary folder.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from twisted_lab.config import parse_config
from twisted_lab.protocols.plesty.export import PlestyServerService
from twisted_lab.protocols.web.service import WebService
from twisted_lab.registry import DeviceRegistry
from twisted_lab.service import build_service

SCRIPT = Path(__file__).resolve().parent / "browser" / "console_check.py"
CHROMIUM = os.environ.get("TWISTED_LAB_CHROMIUM", "/usr/bin/chromium")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _walk(service: Any) -> Any:
    yield service
    try:
        children = list(service)
    except TypeError:
        return
    for child in children:
        yield from _walk(child)


class BrowserConsoleTests(TestCase):
    """What a person sees in the console, checked in Chromium."""

    timeout = 240

    async def test_console_in_chromium(self) -> None:
        """Five devices listed; the camera canvas drawn, not blank, changing; the spectrum
        with its wavelength axis; WAVELENGTH set on the page seen by a PLESTY client; a
        move shows a changing position; a PLESTY lease makes the page's move fail naming
        the holder; the wires and log views fill."""
        self.assertTrue(os.path.exists(CHROMIUM),
                        f"{CHROMIUM} is missing: run `python tests/peers/install.py` as root "
                        "(it apt-get installs chromium)")
        node = _free_port()
        config = parse_config({
            "lab": {"simulated": True},
            "la4": {"nodes": [{"name": "la4", "host": "127.0.0.1", "port": node}],
                    "callback": "tcp:0:interface=127.0.0.1", "heartbeat_interval": 0.5,
                    "node": {"enabled": True, "port": node, "interface": "127.0.0.1",
                             "heartbeat_interval": 0.5}},
            "plesty": {"serve": [{"device": "powermeter", "address": "tcp://127.0.0.1:*"},
                                 {"device": "stage", "address": "tcp://127.0.0.1:*"}]},
            "web": {"listen": "tcp:0:interface=127.0.0.1"},
        })
        registry = DeviceRegistry(reactor)
        top = build_service(registry, config, reactor)
        top.startService()
        self.addCleanup(top.stopService)
        await registry.when_registered("la4").addTimeout(20, reactor)
        services = list(_walk(top))
        web = [s for s in services if isinstance(s, WebService)][0]
        plesty = {s.device_name: s.address for s in services
                  if isinstance(s, PlestyServerService)}
        url = f"http://127.0.0.1:{web.listener.port.getHost().port}/"
        shots = os.environ.get("TWISTED_LAB_SCREENSHOTS") or os.path.abspath(self.mktemp())
        result = await deferToThread(
            subprocess.run, [sys.executable, str(SCRIPT), url, plesty["powermeter"],
                             plesty["stage"], shots],
            capture_output=True, text=True, timeout=200)
        self.assertEqual(result.returncode, 0, result.stderr[-4000:])
        out = json.loads(result.stdout.strip().splitlines()[-1])

        # the lab: the five simulated devices, la4 imported over LA4
        self.assertEqual(sorted(out["devices"]),
                         ["camera", "la4", "powermeter", "spectrometer", "stage"])
        self.assertIn(f"la4 · 127.0.0.1:{node}", out["origins"])
        # the camera: drawn (not blank) and changing between frames
        first, second = out["camera"]["first"], out["camera"]["second"]
        self.assertGreater(first["std"], 5.0, first)
        self.assertGreater(second["frames"], first["frames"])
        self.assertNotEqual(first["hash"], second["hash"])
        self.assertRegex(second["fps"], r"^\d+\.\d fps$")
        # the spectrum: a line plot with its wavelength axis and units
        self.assertEqual(out["spectrum"]["xlabel"], "wavelength (nm)")
        self.assertGreaterEqual(len(out["spectrum"]["xticks"]), 3)
        self.assertGreater(out["spectrum"]["points"], 500)
        # WAVELENGTH set from the page, read back by a PLESTY client
        self.assertEqual(out["plesty_wavelength"], {"status": "ok", "result": 850.0})
        # a move from the page: the position changes while it moves
        positions = [float(p) for p in out["positions"]]
        self.assertGreaterEqual(len(set(positions)), 4, positions)
        # a PLESTY lease: the page's move fails naming the holder
        self.assertEqual(out["plesty_connect"]["status"], "ok")
        self.assertIn("LeaseConflict", out["lease_error"])
        self.assertIn("plesty:plesty-tester", out["lease_error"])
        self.assertEqual(out["lab_lease"], "plesty:plesty-tester")
        self.assertEqual(out["plesty_disconnect"]["status"], "ok")
        # the wires and the log
        self.assertTrue({"plesty", "la4", "web"} <= set(out["wires"]), out["wires"])
        self.assertIn("plesty-tester", out["wires_text"])
        self.assertEqual(out["log_levels"], ["warn"])
        self.assertIn("409", out["log_text"])
        self.assertIn("plesty:plesty-tester", out["log_text"])
        for view in ("lab", "camera", "spectrometer", "powermeter", "stage", "stage-locked",
                     "wires", "log"):
            self.assertTrue(os.path.getsize(os.path.join(shots, f"web-{view}.png")) > 1000)
        errors = [m for m in out["console"] if m.startswith(("pageerror", "error"))
                  and "409" not in m]
        self.assertEqual(errors, [])
