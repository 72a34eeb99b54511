"""
The real peers (shared/PEERS.md) are installed, each in its own venv, and
import there.  Install them with ``python3 tests/peers/install.py``; a missing
peer is a failure, never a skip.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from tests.peers import PEER_SPECS, PeerMissing, install_command, peer_python, run_peer_script

_PROBE = (
    "import importlib, importlib.metadata as md, json, sys; "
    "importlib.import_module(sys.argv[1]); "
    "print(json.dumps({d: md.version(d) for d in sys.argv[2:]}))"
)


class PeersAvailableTests(SynchronousTestCase):
    """
    One test per peer: its venv exists and its main module imports there,
    at the pinned versions.
    """

    def check_peer(self, name: str) -> None:
        try:
            python = peer_python(name)
        except PeerMissing as e:
            self.fail(str(e))
        self.assertTrue(python.exists(), f"{python} is missing; run {install_command(name)}")
        module = str(PEER_SPECS[name]["import"])
        versions = dict(PEER_SPECS[name]["versions"])  # type: ignore[call-overload]
        result = run_peer_script(name, _PROBE, module, *versions, timeout=120)
        self.assertEqual(
            result.returncode,
            0,
            f"`import {module}` failed in the {name} venv:\n{result.stderr[-3000:]}\n"
            f"reinstall with: {install_command(name)} --force",
        )
        self.assertEqual(json.loads(result.stdout.strip().splitlines()[-1]), versions)

    def test_pymodaq4(self) -> None:
        self.check_peer("pymodaq4")

    def test_pyleco(self) -> None:
        self.check_peer("pyleco")

    def test_pymodaq5(self) -> None:
        self.check_peer("pymodaq5")

    def test_plesty(self) -> None:
        self.check_peer("plesty")

    def test_pymodaq41(self) -> None:
        self.check_peer("pymodaq41")

    def test_pymodaq42(self) -> None:
        self.check_peer("pymodaq42")

    def test_pymodaq43(self) -> None:
        self.check_peer("pymodaq43")

    def test_plesty05(self) -> None:
        self.check_peer("plesty05")

    def test_lab312(self) -> None:
        self.check_peer("lab312")

    def test_labpymodaq(self) -> None:
        self.check_peer("labpymodaq")

    def test_every_peer_checked(self) -> None:
        """Each peer of PEER_SPECS has its test here."""
        for name in PEER_SPECS:
            self.assertTrue(hasattr(self, f"test_{name}"), name)
