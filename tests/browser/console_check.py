#!/usr/bin/env python3
"""
Drive the web console in a real headless Chromium (Playwright, Debian's
/usr/bin/chromium) and check what issue 15 asks; run as a subprocess by
tests/test_web_browser.py so trial's reactor stays clean.

    console_check.py URL PLESTY_POWERMETER PLESTY_STAGE SHOTS_DIR

PLESTY requests are made with plain pyzmq (a DEALER, as plesty-lib does).
Prints one JSON object of findings on stdout; the trial test asserts them.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from typing import Any

import zmq
from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("TWISTED_LAB_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]
PLESTY_ID = b"plesty-tester"


class Plesty:
    """A PLESTY client: one DEALER, JSON requests, JSON replies."""

    def __init__(self, context: zmq.Context[Any], address: str) -> None:
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.IDENTITY, PLESTY_ID)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(address)

    def request(self, **body: Any) -> Any:
        self.socket.send(json.dumps(body).encode())
        if not self.socket.poll(10000):
            raise RuntimeError(f"no PLESTY reply to {body}")
        return json.loads(self.socket.recv())


def canvas_stats(page: Any) -> dict[str, Any]:
    return page.evaluate("""() => {
        const c = document.getElementById('frame-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let sum = 0, sum2 = 0, n = 0, hash = 0;
        for (let i = 0; i < d.length; i += 4 * 7) {
            const v = d[i] + d[i + 1] + d[i + 2]; sum += v; sum2 += v * v; n++;
            hash = (hash * 31 + v) >>> 0;
        }
        const mean = sum / n;
        return {w: c.width, h: c.height, mean, std: Math.sqrt(sum2 / n - mean * mean), hash,
                frames: window.labConsole.frameCount || 0,
                fps: document.getElementById('fps').textContent};
    }""")


def main() -> int:
    url, pm_address, stage_address, shots = sys.argv[1:5]
    os.makedirs(shots, exist_ok=True)
    out: dict[str, Any] = {}
    context = zmq.Context()
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=ARGS, headless=True,
            viewport={"width": 1200, "height": 900})
        page = browser.pages[0] if browser.pages else browser.new_page()
        page.set_default_timeout(15000)
        console: list[str] = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))

        def shot(name: str) -> None:
            page.screenshot(path=os.path.join(shots, f"web-{name}.png"), full_page=False)

        # the lab: every device listed
        page.goto(url + "#/lab")
        page.wait_for_function("document.querySelectorAll('#devices tbody tr').length >= 5")
        out["devices"] = page.eval_on_selector_all("#devices tbody tr",
                                                   "rows => rows.map(r => r.dataset.device)")
        out["origins"] = page.eval_on_selector_all(
            "#devices tbody tr", "rows => rows.map(r => r.cells[2].textContent)")
        shot("lab")

        # the camera: drawn, not blank, changing
        page.goto(url + "#/device/camera")
        page.wait_for_function("(window.labConsole.frameCount || 0) >= 3")
        first = canvas_stats(page)
        page.wait_for_function(f"(window.labConsole.frameCount || 0) >= {first['frames'] + 3}")
        time.sleep(0.5)
        second = canvas_stats(page)
        out["camera"] = {"first": first, "second": second}
        shot("camera")

        # the spectrometer: a line plot with its wavelength axis
        page.goto(url + "#/device/spectrometer")
        page.wait_for_function("(window.labConsole.plotCount || 0) >= 2")
        out["spectrum"] = page.evaluate("""() => ({
            xlabel: document.querySelector('#plot .xlabel').textContent,
            ylabel: document.querySelector('#plot .ylabel').textContent,
            xticks: Array.from(document.querySelectorAll('#plot .xtick')).map(t => t.textContent),
            points: document.querySelector('#plot polyline').getAttribute('points').trim().split(' ').length})""")
        shot("spectrometer")

        # the power meter: WAVELENGTH set from the page, seen by a PLESTY client
        page.goto(url + "#/device/powermeter")
        page.wait_for_selector("#param-input-WAVELENGTH")
        page.wait_for_function("document.querySelector('#trend polyline') !== null")
        page.fill("#param-input-WAVELENGTH", "850")
        page.click("#param-set-WAVELENGTH")
        page.wait_for_function(
            "document.querySelector('#params td[data-value=\"WAVELENGTH\"]').textContent == '850'")
        powermeter = Plesty(context, pm_address)
        out["plesty_wavelength"] = powermeter.request(type="query", param="WAVELENGTH",
                                                      timeout=None)
        time.sleep(1.0)
        shot("powermeter")

        # the stage: a move from the page shows a changing position
        page.goto(url + "#/device/stage")
        page.wait_for_function("document.getElementById('position').textContent !== '–'")
        start = float(page.text_content("#position"))
        page.fill("#move-target", str(start + 15 if start < 0 else start - 15))
        page.click("#move-btn")
        seen = []
        for i in range(20):
            seen.append(page.text_content("#position"))
            if i == 8:
                shot("stage")  # mid-move
            time.sleep(0.1)
        out["positions"] = seen
        page.click("#stop-btn")
        time.sleep(0.3)

        # a lease taken over PLESTY makes the page's move fail, naming the holder
        stage = Plesty(context, stage_address)
        out["plesty_connect"] = stage.request(type="connect", resources=["stage"])
        page.fill("#move-target", "1")
        page.click("#move-btn")
        page.wait_for_selector("#error:not([hidden])")
        out["lease_error"] = page.text_content("#error")
        shot("stage-locked")

        # the lab view names the lease holder
        page.goto(url + "#/lab")
        page.wait_for_function(
            "document.querySelector('#devices tr[data-device=\"stage\"]').cells[4].textContent != '–'")
        out["lab_lease"] = page.text_content("#devices tr[data-device='stage'] td:nth-child(5)")
        shot("lab")

        # the wires and the log
        page.goto(url + "#/wires")
        page.wait_for_selector("#wires .panel[data-protocol='plesty']")
        out["wires"] = page.eval_on_selector_all("#wires .panel",
                                                 "ps => ps.map(p => p.dataset.protocol)")
        out["wires_text"] = page.text_content("#wires")
        shot("wires")
        out["plesty_disconnect"] = stage.request(type="disconnect")
        page.goto(url + "#/log")
        page.wait_for_function("document.querySelectorAll('#log tbody tr').length >= 1")
        page.select_option("#log-level", "warn")
        page.wait_for_function("document.querySelectorAll('#log tbody tr').length >= 1")
        out["log_levels"] = sorted(set(page.eval_on_selector_all(
            "#log tbody tr", "rows => rows.map(r => r.cells[1].textContent)")))
        out["log_text"] = page.text_content("#log tbody")
        shot("log")
        out["console"] = console
        browser.close()
    context.destroy(linger=0)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
