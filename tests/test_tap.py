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
from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.tap import Options, docs_location

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
        for option in ("--config", "--check", "--list", "--log-level", "--log-format",
                       "--version", "simulated lab", "127.0.0.1"):
            self.assertIn(option, out.stdout)
        # it names where the documentation is, and it is there
        self.assertIn(docs_location(), out.stdout.replace("\n", " ").replace("  ", " "))
        self.assertTrue(os.path.exists(os.path.join(docs_location(), "configuration.md")))

    def test_twistd_lists_lab(self) -> None:
        """`twistd --help` lists the lab command."""
        out = run_twistd("--help")
        self.assertIn("lab", out.stdout)


class OptionsTests(SynchronousTestCase):
    """Option parsing reports config errors before startup."""

    def test_missing_config_file(self) -> None:
        """A missing config file ends option parsing with one line naming the file
        (no usage text)."""
        e = self.assertRaises(SystemExit, Options().parseOptions,
                              ["--config", "/nonexistent.toml"])
        self.assertEqual(e.code, "/nonexistent.toml: no such file")

    def test_bad_config_key(self) -> None:
        """An unknown key ends option parsing with one line naming file and key, and
        the key meant."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("[lab]\nsimulate = true\n")
        e = self.assertRaises(SystemExit, Options().parseOptions, ["-c", path])
        self.assertIn(f"{path}: lab.simulate: unknown key", str(e.code))
        self.assertIn("did you mean 'simulated'?", str(e.code))

    def test_bad_config_one_line(self) -> None:
        """twistd prints a config error as one line on stderr, without its usage
        text, and exits 1."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("[plesti]\n")
        out = run_twistd("-n", "lab", "--config", path)
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertEqual(out.stderr.strip().splitlines(),
                         [f"{path}: plesti: unknown section; known sections are: lab, devices, "
                          "la4, leco, plesty, pymodaq, web; did you mean 'plesty'?"])
        self.assertEqual(out.stdout, "")

    def test_version(self) -> None:
        """`twistd lab --version` prints twisted_lab's version (and Twisted's)."""
        from twisted_lab import __version__

        out = run_twistd("-n", "lab", "--version")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertTrue(out.stdout.startswith(f"twisted_lab {__version__} (Twisted "),
                        out.stdout)

    def test_bad_log_level(self) -> None:
        """An unknown --log-level is one line naming the levels."""
        e = self.assertRaises(SystemExit, Options().parseOptions, ["--log-level", "loud"])
        self.assertIn("unknown log level 'loud'", str(e.code))

    def test_check(self) -> None:
        """--check validates the built-in lab, prints a summary and exits 0."""
        out = run_twistd("-n", "lab", "--check")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("built-in simulated lab: OK", out.stdout)
        self.assertRegex(out.stdout, r"\n  camera +sim\.camera\n")

    def test_list(self) -> None:
        """--list prints the protocols and device types found."""
        out = run_twistd("-n", "lab", "--list")
        self.assertEqual(out.returncode, 0, out.stderr)
        for name in ("[pymodaq]", "[leco]", "[plesty]", "[la4]", "sim.camera", "visa"):
            self.assertIn(name, out.stdout)
