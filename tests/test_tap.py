# -*- test-case-name: tests.test_tap -*-
"""
Tests for the twistd plugin: L{twisted_lab.tap} and the C{lab} dropin.
"""
from __future__ import annotations

import os
import subprocess
import sys

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.tap import Options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_twistd(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run C{twistd} in a fresh interpreter from the repository root."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", "from twisted.scripts.twistd import run; run()", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


class DropinTests(SynchronousTestCase):
    """The dropin makes C{lab} a twistd command."""

    def test_service_maker(self) -> None:
        """getPlugins(IServiceMaker) yields tapname 'lab' pointing at twisted_lab.tap."""
        makers = {m.tapname: m for m in getPlugins(IServiceMaker)}
        self.assertIn("lab", makers)
        self.assertEqual(makers["lab"].module, "twisted_lab.tap")

    def test_twistd_help(self) -> None:
        """`twistd -n lab --help` documents every option."""
        out = run_twistd("-n", "lab", "--help")
        self.assertEqual(out.returncode, 0, out.stderr)
        for option in ("--config", "--check", "--list", "simulated lab", "127.0.0.1"):
            self.assertIn(option, out.stdout)

    def test_twistd_lists_lab(self) -> None:
        """`twistd --help` lists the lab command."""
        out = run_twistd("--help")
        self.assertIn("lab", out.stdout)


class OptionsTests(SynchronousTestCase):
    """Option parsing reports config errors before startup."""

    def test_missing_config_file(self) -> None:
        """A missing config file is a usage error naming the file."""
        e = self.assertRaises(usage.UsageError, Options().parseOptions,
                              ["--config", "/nonexistent.toml"])
        self.assertEqual(str(e), "/nonexistent.toml: no such file")

    def test_bad_config_key(self) -> None:
        """An unknown key is a usage error naming file and key."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("[lab]\nsimulate = true\n")
        e = self.assertRaises(usage.UsageError, Options().parseOptions, ["-c", path])
        self.assertIn(f"{path}: lab.simulate: unknown key", str(e))

    def test_check(self) -> None:
        """--check validates the built-in lab, prints a summary and exits 0."""
        out = run_twistd("-n", "lab", "--check")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("built-in simulated lab: OK", out.stdout)
        self.assertIn("camera (sim.camera)", out.stdout)

    def test_list(self) -> None:
        """--list prints the protocols and device types found."""
        out = run_twistd("-n", "lab", "--list")
        self.assertEqual(out.returncode, 0, out.stderr)
        for name in ("[pymodaq]", "[leco]", "[plesty]", "[la4]", "sim.camera", "visa"):
            self.assertIn(name, out.stdout)
