# -*- test-case-name: tests.test_docs -*-
"""
The documentation stays true: every code block marked runnable in README.md
and docs/ runs against a lab on free ports, the service recipes of
docs/operations.md parse, README.md lists every port the lab opens, and no
document names a file that is not in the repository.

A runnable block is a fenced block right after a marker line::

    <!-- runnable: ENV -->
    <!-- runnable: ENV; lab.stage4 = lab.stage -->

ENV says where it runs: C{shell} (a shell, this venv's C{twistd} first on
the PATH, in the repository root), C{config} (a TOML lab config, given to
C{twistd -n lab --check}), C{lab} (Python in this venv), C{pyleco} and
C{pyzmq} (Python in the pyleco 0.6 peer venv: pyleco, pyzmq), C{pymodaq5}
(Python in the PyMoDAQ 5.3.8 peer venv).  C{OLD = NEW} pairs are replaced
before running (a guide's device names mapped onto the simulated lab's).
The built-in lab's port numbers in a block are replaced by the free ports
the test's lab listens on.
"""
from __future__ import annotations

import configparser
import glob
import os
import re
import shlex
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from twisted.trial.unittest import SynchronousTestCase

from tests.labproc import (
    DEFAULT_PORTS,
    ROOT,
    builtin_lab_config,
    env,
    free_ports,
    start_twistd,
    wait_for,
)
from tests.peers import peer_env, peer_python
from twisted_lab.check import check
from twisted_lab.config import default_config
from twisted_lab.tap import Options

MARKER = re.compile(r"^<!-- runnable: (\w+)((?:;[^>]*)?) -->$")
ENVS = ("shell", "config", "lab", "pyleco", "pyzmq", "pymodaq5")
PEER_OF = {"pyleco": "pyleco", "pyzmq": "pyleco", "pymodaq5": "pymodaq5"}


@dataclass
class Snippet:
    file: str
    line: int
    env: str
    replacements: list[tuple[str, str]]
    code: str


def documents() -> list[str]:
    """README.md and every Markdown file under docs/, relative to the root."""
    found = ["README.md"] + sorted(glob.glob("docs/**/*.md", root_dir=ROOT, recursive=True))
    return found


def snippets(document: str) -> list[Snippet]:
    """The runnable blocks of one document."""
    lines = open(os.path.join(ROOT, document), encoding="utf-8").read().splitlines()
    out = []
    for i, line in enumerate(lines):
        match = MARKER.match(line.strip())
        if not match:
            continue
        env_name = match.group(1)
        pairs = [p.split("=", 1) for p in match.group(2).strip("; ").split(";") if p.strip()]
        fence = lines[i + 1] if i + 1 < len(lines) else ""
        if not fence.startswith("```"):
            raise AssertionError(f"{document}:{i + 1}: a runnable marker must precede a fence")
        end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
        out.append(Snippet(document, i + 1, env_name,
                           [(a.strip(), b.strip()) for a, b in pairs],
                           "\n".join(lines[i + 2:end]) + "\n"))
    return out


def with_ports(code: str, ports: dict[int, int]) -> str:
    for default, port in ports.items():
        code = re.sub(rf"(?<![\d.]){default}(?![\d])", str(port), code)
    return code


class RunnableSnippetTests(SynchronousTestCase):
    """Each document's runnable blocks, run against one lab on free ports."""

    def run_document(self, document: str) -> None:
        found = snippets(document)
        self.assertTrue(found, f"{document} has no runnable block")
        for snippet in found:
            self.assertIn(snippet.env, ENVS, f"{document}:{snippet.line}")
        ports = dict(zip(DEFAULT_PORTS, free_ports(len(DEFAULT_PORTS))))
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        with open(os.path.join(cwd, "lab.toml"), "w") as f:
            f.write(builtin_lab_config(ports))
        log = os.path.join(cwd, "lab.log")
        process = start_twistd(["-n", "--logfile", log, "lab", "--config", "lab.toml"], cwd)
        self.addCleanup(lambda: process.poll() is None and process.kill())
        wait_for(log, "LA4 node la4 at", process)
        failures = []
        for n, snippet in enumerate(found):
            code = with_ports(snippet.code, ports)
            for old, new in snippet.replacements:
                code = code.replace(old, new)
            result = self.run_snippet(snippet.env, code, os.path.join(cwd, f"snippet{n}"))
            if result.returncode != 0:
                failures.append(f"{snippet.file}:{snippet.line} ({snippet.env}) exited "
                                f"{result.returncode}:\n{result.stdout[-2000:]}"
                                f"{result.stderr[-3000:]}")
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
        self.assertEqual(failures, [], "\n\n".join(failures))
        self.assertNotIn("Traceback", open(log).read())

    def run_snippet(self, env_name: str, code: str, base: str
                    ) -> subprocess.CompletedProcess[str]:
        run = dict(capture_output=True, text=True, timeout=180)
        if env_name == "shell":
            path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
            return subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=ROOT,
                                  env=dict(env(), PATH=path), **run)  # type: ignore[call-overload]
        if env_name == "config":
            with open(base + ".toml", "w") as f:
                f.write(code)
            return subprocess.run([sys.executable, "-c",
                                   "from twisted.scripts.twistd import run; run()", "-n", "lab",
                                   "--check", "--config", base + ".toml"], cwd=ROOT, env=env(),
                                  **run)  # type: ignore[call-overload]
        with open(base + ".py", "w") as f:
            f.write(code)
        if env_name == "lab":
            return subprocess.run([sys.executable, base + ".py"], cwd=os.path.dirname(base),
                                  env=env(), **run)  # type: ignore[call-overload]
        peer = PEER_OF[env_name]
        return subprocess.run([str(peer_python(peer)), base + ".py"], cwd=os.path.dirname(base),
                              env=peer_env(peer), **run)  # type: ignore[call-overload]


def _add_document_tests() -> None:
    for document in documents():
        if not snippets(document):
            continue
        name = "test_" + re.sub(r"\W", "_", document.removesuffix(".md"))

        def test(self: RunnableSnippetTests, document: str = document) -> None:
            self.run_document(document)

        test.__doc__ = f"Every runnable block of {document} exits 0 against a running lab."
        setattr(RunnableSnippetTests, name, test)


_add_document_tests()


class RecipeTests(SynchronousTestCase):
    """docs/operations.md's service recipes."""

    def block(self, marker: str) -> str:
        text = open(os.path.join(ROOT, "docs", "operations.md"), encoding="utf-8").read()
        match = re.search(rf"<!-- {marker} -->\n```\w+\n(.*?)\n```", text, re.S)
        assert match is not None, marker
        return match.group(1)

    def lab_args(self, argv: list[str]) -> list[str]:
        """The lab's own options, after twistd's."""
        self.assertIn("lab", argv)
        return argv[argv.index("lab") + 1:]

    def test_systemd_unit(self) -> None:
        """The systemd unit parses (INI), runs twistd in the foreground, stops with
        SIGINT, restarts on failure, and its lab options parse with our Options."""
        unit = configparser.ConfigParser(interpolation=None, strict=True)
        unit.optionxform = str  # type: ignore[assignment,method-assign]
        unit.read_string(self.block("systemd-unit"))
        self.assertEqual(set(unit.sections()), {"Unit", "Service", "Install"})
        service = unit["Service"]
        self.assertEqual(service["Type"], "simple")
        self.assertEqual(service["Restart"], "on-failure")
        self.assertEqual(service["KillSignal"], "SIGINT")
        argv = shlex.split(service["ExecStart"])
        self.assertTrue(argv[0].endswith("/bin/twistd"), argv)
        self.assertIn("-n", argv[:argv.index("lab")])
        options = Options()
        options.parseOptions([a for a in self.lab_args(argv) if a != "--config"
                              and not a.endswith(".toml")])
        self.assertEqual(options["log-format"], "json")
        self.assertIn("--check", shlex.split(service["ExecReload"]))

    def test_windows_task(self) -> None:
        """The Task Scheduler XML is well-formed (as UTF-16, as declared), starts at
        boot, restarts on failure, and runs twistd -n with lab options that parse."""
        text = self.block("windows-task")
        root = ET.fromstring(text.encode("utf-16"))
        ns = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
        self.assertIsNotNone(root.find("t:Triggers/t:BootTrigger", ns))
        self.assertIsNotNone(root.find("t:Settings/t:RestartOnFailure", ns))
        self.assertEqual(root.findtext("t:Settings/t:ExecutionTimeLimit", None, ns), "PT0S")
        command = root.findtext("t:Actions/t:Exec/t:Command", None, ns) or ""
        self.assertTrue(command.endswith("\\Scripts\\twistd.exe"), command)
        argv = (root.findtext("t:Actions/t:Exec/t:Arguments", None, ns) or "").split()
        self.assertEqual(argv[0], "-n")
        Options().parseOptions([a for a in self.lab_args(argv)
                                if a != "--config" and not a.endswith(".toml")])


class ReferenceTests(SynchronousTestCase):
    """README.md and docs/ only name what exists."""

    def test_readme_lists_every_port(self) -> None:
        """README.md names every port the built-in lab listens on (as --check
        lists them), and no other."""
        ports = {a.port for _, _, a in check(default_config()).listeners}
        self.assertEqual(ports, set(DEFAULT_PORTS))
        text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
        section = text[text.index("## Start the simulated lab"):text.index("## Run every test")]
        named = {int(p) for p in re.findall(r"\b(\d{4,5})\b", section)}
        self.assertEqual(named, ports)

    def test_no_reference_outside_the_repository(self) -> None:
        """Every relative link and every backticked path with a file extension in
        README.md and docs/ names a file of the repository."""
        missing = []
        for document in documents():
            text = open(os.path.join(ROOT, document), encoding="utf-8").read()
            here = os.path.dirname(os.path.join(ROOT, document))
            targets = [t for t in re.findall(r"\]\(([^)#\s]+)", text)
                       if not re.match(r"[a-z]+:", t)]
            targets += re.findall(r"`([\w./*-]+/[\w.*-]+\.(?:md|py|toml|yaml|json|bin))`", text)
            for target in targets:
                if target.startswith("/"):
                    continue  # an absolute path on the lab machine (a recipe's example)
                candidates = [os.path.join(here, target), os.path.join(ROOT, target),
                              os.path.join(ROOT, "twisted_lab", target)]
                if not any(glob.glob(c) for c in candidates):
                    missing.append(f"{document}: {target}")
        self.assertEqual(missing, [])

    def test_guides_need_no_pythonpath(self) -> None:
        """No document asks for PYTHONPATH=. or the test suite's peer venvs to run
        the lab or a client."""
        for document in documents():
            text = open(os.path.join(ROOT, document), encoding="utf-8").read()
            self.assertNotIn("PYTHONPATH=.", text, document)
            self.assertNotIn(".peers/plesty/bin", text, document)
            self.assertNotIn(".peers/pyleco/bin", text, document)
