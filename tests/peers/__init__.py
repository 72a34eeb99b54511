"""
The real peer implementations, each in its own cached virtual environment.

The venvs live in ``<repo>/.peers/<name>/`` (git-ignored) and are built by
``python tests/peers/install.py [names...]``; tests only *use* them, through
:func:`peer_python`, :func:`peer_env` and :func:`run_peer_script`, and fail
with :class:`PeerMissing` (naming the install command) when one is absent.

Only the standard library is imported here: this module is imported by the
test suite and by the install script, never inside a peer venv.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
from typing import Dict, List, Mapping

__all__ = [
    "PEERS_DIR",
    "PEER_NAMES",
    "PEER_SPECS",
    "PYMODAQ4_PEERS",
    "PeerMissing",
    "install_command",
    "peer_python",
    "peer_env",
    "run_peer_script",
]

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
# TWISTED_LAB_PEERS_DIR moves the cache (install.py and the tests both honour it).
PEERS_DIR = pathlib.Path(os.environ.get("TWISTED_LAB_PEERS_DIR") or REPO_ROOT / ".peers").resolve()
HERE = pathlib.Path(__file__).resolve().parent

# The install spec of every peer, exactly as in shared/PEERS.md.  ``python``
# names the interpreter the venv is made from (see install.py for how it is
# found); ``steps`` are the successive ``pip install`` argument lists.  The
# JSON of ``python`` and ``steps`` is written to ``.peers/<name>/.complete``
# when the install finishes, so changing either invalidates the cached venv.
# ``import`` is the peer's main module and ``versions`` the distributions it
# must report; tests/test_peers_available.py checks both.
def _lab_requirements() -> list[str]:
    """
    twisted_lab's own dependencies and its C{test} extra, read from
    C{setup.cfg} (their one home), for the venvs that run the lab itself.
    """
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(REPO_ROOT / "setup.cfg")
    lines = (cfg.get("options", "install_requires") + "\n"
             + cfg.get("options.extras_require", "test")).splitlines()
    return [line.strip() for line in lines if line.strip()]


_LAB_REQUIREMENTS = _lab_requirements()

#: PyMoDAQ 5.3.8's stack (the pymodaq5 peer and the labpymodaq venv), then
#: pymodaq itself without its dependencies (shared/PEERS.md explains why).
_PYMODAQ5_STACK = ("pyleco==0.6.0.post1", "pymodaq_utils==5.3.7", "pymodaq_data==5.3.0",
                   "serializall", "pyqtgraph", "qtpy", "qt-themes", "easydict", "PyQt5",
                   "pymodaq_gui==5.3.8")
_PYMODAQ5_NO_DEPS = ("--no-deps", "pymodaq==5.3.8", "pymodaq_plugins_mock==5.3.0")

PEER_SPECS: Dict[str, Dict[str, object]] = {
    "pymodaq4": {
        "python": "3.11",
        "steps": [["pymodaq==4.4.11", "PyQt5"]],
        "import": "pymodaq.utils.tcp_ip.tcp_server_client",
        "versions": {"pymodaq": "4.4.11", "pymodaq_plugins_mock": "4.4.5"},
    },
    "pyleco": {
        "python": "3.11",
        "steps": [["pyleco==0.6.0.post1"]],
        "import": "pyleco.coordinators.coordinator",
        "versions": {"pyleco": "0.6.0.post1"},
    },
    "pymodaq5": {
        "python": "3.11",
        "steps": [
            list(_PYMODAQ5_STACK),
            list(_PYMODAQ5_NO_DEPS),
            # DAQ_Move/DAQ_Viewer import it; the --no-deps step leaves it out.
            ["pymodaq_plugin_manager==1.3.8"],
        ],
        "import": "pymodaq.utils.leco.director_utils",
        "versions": {"pymodaq": "5.3.8", "pyleco": "0.6.0.post1", "pymodaq_gui": "5.3.8",
                     "pymodaq_plugins_mock": "5.3.0", "pymodaq_plugin_manager": "1.3.8"},
    },
    "plesty": {
        "python": "3.12.1",
        "steps": [["plesty-lib==0.6.0"]],
        "import": "plesty.lib.service",
        "versions": {"plesty-lib": "0.6.0"},
    },
    # plesty-lib 0.5.x is still supported by its authors.
    "plesty05": {
        "python": "3.12.1",
        "steps": [["plesty-lib==0.5.2"]],
        "import": "plesty.lib.service",
        "versions": {"plesty-lib": "0.5.2"},
    },
    # The lab itself on Python 3.12, hosting PLESTY device packages (issue 17),
    # and the interpreter of the Python 3.12 CI run (.ci/checks.d/50-py312.sh).
    # twisted_lab's own dependencies and test extras are installed here, not
    # twisted_lab: the tests run the lab from the checkout (PYTHONPATH = the
    # repo root), so the venv never goes stale when the code changes.
    "lab312": {
        "python": "3.12.1",
        "steps": [
            [
                *_LAB_REQUIREMENTS,
                "pymeasure==0.16.0",
                "plesty-lib==0.6.0",
                "plesty-thorlabs-powermeter==0.1.0",
                "plesty-k10cr1==0.3.0",
            ]
        ],
        "import": "plesty.thorlabs_powermeter",
        "versions": {
            "plesty-lib": "0.6.0",
            "plesty-thorlabs-powermeter": "0.1.0",
            "plesty-k10cr1": "0.3.0",
        },
    },
    # The lab on Python 3.11 with the PyMoDAQ 5 stack (issue 17), hosting
    # PyMoDAQ instrument plugins headless; like lab312, the tests run the lab
    # from the checkout.  The same pins as the pymodaq5 peer.
    "labpymodaq": {
        "python": "3.11",
        "steps": [
            [*_PYMODAQ5_STACK, *_LAB_REQUIREMENTS],
            list(_PYMODAQ5_NO_DEPS),
        ],
        "import": "pymodaq_plugins_mock.daq_move_plugins.daq_move_Mock",
        "versions": {"pymodaq": "5.3.8", "pymodaq_plugins_mock": "5.3.0"},
    },
}

# The older PyMoDAQ 4 lines users still run (latest patch of each), installed
# like pymodaq4 (4.4.11); each speaks its own wire version.
for _line, _patch in (("41", "4.1.5"), ("42", "4.2.5"), ("43", "4.3.7")):
    PEER_SPECS[f"pymodaq{_line}"] = {
        "python": "3.11",
        "steps": [[f"pymodaq=={_patch}", "PyQt5"]],
        "import": "pymodaq.utils.tcp_ip.tcp_server_client",
        "versions": {"pymodaq": _patch},
    }

#: Every PyMoDAQ 4 peer, oldest first: the TCP interop tests run against each.
PYMODAQ4_PEERS: List[str] = ["pymodaq41", "pymodaq42", "pymodaq43", "pymodaq4"]

PEER_NAMES: List[str] = list(PEER_SPECS)

MARKER = ".complete"


class PeerMissing(Exception):
    """
    A peer venv is absent, incomplete or built from an older spec.
    """


def spec_text(name: str) -> str:
    """
    The canonical text of a peer's install spec, as stored in its marker.
    """
    spec = PEER_SPECS[name]
    return json.dumps(
        {"python": spec["python"], "steps": spec["steps"]}, sort_keys=True, indent=1
    )


def install_command(name: str) -> str:
    """
    The shell command (run from the repo root) that installs a peer.
    """
    return f"python3 tests/peers/install.py {name}"


def venv_dir(name: str) -> pathlib.Path:
    if name not in PEER_SPECS:
        raise ValueError(f"unknown peer {name!r}; known: {', '.join(PEER_NAMES)}")
    return PEERS_DIR / name


def is_complete(name: str) -> bool:
    """
    Whether the venv of a peer was fully installed from its current spec.
    """
    marker = venv_dir(name) / MARKER
    try:
        return marker.read_text() == spec_text(name)
    except OSError:
        return False


def peer_python(name: str) -> pathlib.Path:
    """
    The interpreter of a peer's venv.

    @raise PeerMissing: if the venv is missing, incomplete or outdated; the
        message names the command that installs it.  Nothing is installed
        here.
    """
    directory = venv_dir(name)
    python = directory / "bin" / "python"
    marker = directory / MARKER
    if not marker.exists():
        state = "is not installed" if not directory.exists() else "is incomplete"
    elif not is_complete(name):
        state = "was installed from an older spec"
    elif not python.exists():
        state = "has no interpreter"
    else:
        return python
    raise PeerMissing(
        f"peer {name!r} {state} ({directory}); install it with: "
        f"cd {REPO_ROOT} && {install_command(name)}"
    )


def peer_env(name: str, base: Mapping[str, str] | None = None) -> Dict[str, str]:
    """
    The environment for running a peer headless: a copy of C{os.environ}
    (or C{base}) with an offscreen Qt platform, a scratch C{HOME} in
    C{.peers/home-<name>} (importing pymodaq writes C{~/.pymodaq}) and no
    bytecode writing.
    """
    venv_dir(name)  # validates the name
    env = dict(os.environ if base is None else base)
    home = PEERS_DIR / f"home-{name}"
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    runtime = home / "runtime"  # Qt wants a private XDG_RUNTIME_DIR
    runtime.mkdir(mode=0o700, exist_ok=True)
    env["XDG_RUNTIME_DIR"] = str(runtime)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # The peer must see its own site-packages only, never ours.
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYENV_VERSION", None)
    # pyqtgraph/qtpy pick the binding from this; the peers install PyQt5.
    env.setdefault("QT_API", "pyqt5")
    return env


def run_peer_script(
    name: str,
    code: str,
    *args: str,
    timeout: float = 120,
    cwd: str | os.PathLike[str] | None = None,
) -> "subprocess.CompletedProcess[str]":
    """
    Run C{python -c code *args} in a peer's venv and environment, blocking
    (use it from C{deferToThread} or a set-up), capturing text output.

    @raise PeerMissing: if the peer is not installed.
    @raise subprocess.TimeoutExpired: after C{timeout} seconds.
    """
    python = peer_python(name)
    return subprocess.run(
        [str(python), "-c", code, *args],
        env=peer_env(name),
        cwd=str(cwd) if cwd is not None else str(PEERS_DIR),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def smoke_script(name: str) -> pathlib.Path:
    """
    The path of the smoke script of a peer (run it with its venv's python).
    """
    venv_dir(name)
    return HERE / f"smoke_{name}.py"


def run_smoke(name: str, *args: str, timeout: float = 180) -> "subprocess.CompletedProcess[str]":
    """
    Run a peer's smoke script in its venv, blocking.
    """
    python = peer_python(name)
    return subprocess.run(
        [str(python), str(smoke_script(name)), *args],
        env=peer_env(name),
        cwd=str(PEERS_DIR),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )

