# -*- test-case-name: tests.test_startup_process -*-
"""
Start-up failures as a lab user meets them: C{twistd lab} in a real process,
one listener of each protocol on a port this test holds.  Every one stops
the lab with exit status 1 and one line on standard error naming the config
key, the address, the reason and a hint, without a traceback; a daemonized
start exits non-zero too.  And a lab that runs logs the twisted_lab version
first, filters by level, writes JSON lines when asked and leaves no pid file.
"""
from __future__ import annotations

import json
import os
import signal

from twisted.trial.unittest import SynchronousTestCase

from tests.labproc import FREE_PORTS_LAB, HeldPort, run_twistd, start_twistd, wait_for
from twisted_lab import __version__

#: config, key named in the message, address shown (PORT: the held port)
CASES = {
    "pymodaq": ('[pymodaq]\nlisten = ["tcp:PORT:interface=127.0.0.1"]\n',
                "[pymodaq] listen[0]", "tcp:PORT:interface=127.0.0.1"),
    "leco": ("[leco]\nport = PORT\ndata_publish_port = 0\ndata_subscribe_port = 0\n",
             "[leco] port", "tcp://127.0.0.1:PORT"),
    "leco data": ("[leco]\nport = 0\ndata_publish_port = PORT\ndata_subscribe_port = 0\n",
                  "[leco] data_publish_port", "tcp://127.0.0.1:PORT"),
    "plesty": ('[plesty]\nserve = [{device = "stage", address = "tcp://127.0.0.1:PORT"}]\n',
               "[plesty] serve[0].address", "tcp://127.0.0.1:PORT"),
    "la4 node": ('[la4]\ncallback = "tcp:0:interface=127.0.0.1"\n'
                 "node = {enabled = true, port = PORT}\n",
                 "[la4] node.port", "127.0.0.1:PORT"),
    "la4 callback": ('[la4]\ncallback = "tcp:PORT:interface=127.0.0.1"\n',
                     "[la4] callback", "tcp:PORT:interface=127.0.0.1"),
    "web": ('[web]\nlisten = "tcp:PORT:interface=127.0.0.1"\n',
            "[web] listen", "tcp:PORT:interface=127.0.0.1"),
}


class StartupFailureTests(SynchronousTestCase):
    """A port clash on any protocol stops the lab with one clear line."""

    def clash(self, case: str, daemon: bool = False) -> tuple[int, str, str, str, str]:
        held = HeldPort()
        self.addCleanup(held.close)
        section, key, address = CASES[case]
        port = str(held.port)
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        config = os.path.join(cwd, "lab.toml")
        with open(config, "w") as f:
            f.write("[lab]\nsimulated = true\n\n" + section.replace("PORT", port))
        args = ["-n", "lab"] if not daemon else [
            "--pidfile", os.path.join(cwd, "lab.pid"), "--logfile", os.path.join(cwd, "lab.log"),
            "lab"]
        out = run_twistd(args + ["--config", config], cwd)
        self.assertNotIn("Traceback", out.stdout + out.stderr)
        if not daemon:
            self.assertEqual(os.listdir(cwd), ["lab.toml"], "files left in the working directory")
        return out.returncode, out.stderr, key, address.replace("PORT", port), cwd

    def assertOneLine(self, case: str) -> None:
        status, stderr, key, address, _ = self.clash(case)
        self.assertEqual(status, 1, stderr)
        self.assertEqual(stderr.splitlines(), [
            f"twistd lab: {key}: cannot listen on {address}: address already in use "
            f"(another lab running? change {key})"])

    def test_pymodaq(self) -> None:
        """[pymodaq] listen on a taken port: exit 1, one line naming listen[0]."""
        self.assertOneLine("pymodaq")

    def test_leco(self) -> None:
        """[leco] port taken: exit 1, one line naming [leco] port."""
        self.assertOneLine("leco")

    def test_leco_data(self) -> None:
        """[leco] data_publish_port taken: exit 1, one line naming that key."""
        self.assertOneLine("leco data")

    def test_plesty(self) -> None:
        """A PLESTY serve address taken: exit 1, one line naming serve[0].address."""
        self.assertOneLine("plesty")

    def test_la4_node(self) -> None:
        """The simulated LA4 node's port taken: exit 1 (it used to log and run on)."""
        self.assertOneLine("la4 node")

    def test_la4_callback(self) -> None:
        """The LA4 callback port taken: exit 1, one line naming [la4] callback."""
        self.assertOneLine("la4 callback")

    def test_web(self) -> None:
        """The web console's port taken: exit 1, one line naming [web] listen."""
        self.assertOneLine("web")

    def test_daemonized(self) -> None:
        """A daemonized start with a port clash exits non-zero and names the key;
        the log has the whole line and no pid file stays behind."""
        status, stderr, key, address, cwd = self.clash("leco", daemon=True)
        self.assertNotEqual(status, 0, stderr)
        self.assertIn(key, stderr)
        log = open(os.path.join(cwd, "lab.log")).read()
        self.assertIn(f"{key}: cannot listen on {address}: address already in use", log)
        self.assertFalse(os.path.exists(os.path.join(cwd, "lab.pid")))


class RunningLabTests(SynchronousTestCase):
    """Operations of a lab that runs."""

    def test_version_levels_json_no_pidfile(self) -> None:
        """With --log-format json --log-level warn,leco=info: the first line is the
        twisted_lab version, every line is one JSON object, LECO info lines pass,
        other info lines (device registration) do not; no twistd.pid in the
        working directory; SIGINT stops it."""
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        with open(os.path.join(cwd, "lab.toml"), "w") as f:
            f.write(FREE_PORTS_LAB)
        log = os.path.join(cwd, "lab.log")
        process = start_twistd(["-n", "--logfile", log, "lab", "--config", "lab.toml",
                                "--log-format", "json", "--log-level", "warn,leco=info"],
                               cwd)
        self.addCleanup(lambda: process.poll() is None and process.kill())
        wait_for(log, '"full_name": "lab.camera"', process)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
        lines = open(log).read().splitlines()
        events = [json.loads(line) for line in lines]
        self.assertEqual(events[0]["version"].split()[:2], ["twisted_lab", __version__])
        namespaces = {e["log_namespace"] for e in events}
        self.assertIn("twisted_lab.protocols.leco.coordinator.CoordinatorService", namespaces)
        self.assertNotIn("twisted_lab.registry.DeviceRegistry", namespaces)
        self.assertNotIn("twisted.scripts._twistd_unix.UnixAppLogger", namespaces)
        self.assertEqual(sorted(os.listdir(cwd)), ["lab.log", "lab.toml"])

    def test_sigint_ignored_by_parent(self) -> None:
        """A lab started in a script's background (SIGINT ignored, as a shell does
        for background jobs) still stops on SIGINT."""
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        with open(os.path.join(cwd, "lab.toml"), "w") as f:
            f.write(FREE_PORTS_LAB)
        log = os.path.join(cwd, "lab.log")
        process = start_twistd(["-n", "--logfile", log, "lab", "--config", "lab.toml"], cwd,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        self.addCleanup(lambda: process.poll() is None and process.kill())
        wait_for(log, "lab started", process)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
        self.assertIn("lab stopped", open(log).read())

    def test_text_debug_filtered(self) -> None:
        """The default level is info: text lines, no debug lines, the version first."""
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        with open(os.path.join(cwd, "lab.toml"), "w") as f:
            f.write(FREE_PORTS_LAB)
        log = os.path.join(cwd, "lab.log")
        process = start_twistd(["-n", "--logfile", log, "lab", "--config", "lab.toml"], cwd)
        self.addCleanup(lambda: process.poll() is None and process.kill())
        wait_for(log, "lab started", process)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
        text = open(log).read()
        self.assertIn(f"twisted_lab {__version__} (Twisted ", text.splitlines()[0])
        self.assertNotIn("#debug]", text)
        self.assertIn("#info] lab started", text)
