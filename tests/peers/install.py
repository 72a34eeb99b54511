#!/usr/bin/env python3
"""
Install the real peers, each in its own venv under ``<repo>/.peers/<name>/``.

    python3 tests/peers/install.py [-j JOBS] [--force] [names...]   # default: all

The install commands are those of shared/PEERS.md (see PEER_SPECS in
tests/peers/__init__.py).  A finished venv gets ``.peers/<name>/.complete``
holding its spec and is skipped while the spec is unchanged; an unfinished or
outdated one is removed and rebuilt.  Installs run in parallel (default 2 at
a time: pip downloads overlap well), pip's output goes to
``.peers/<name>.log``, and on failure the tail of that log is printed and the
exit status is non-zero.  pip runs in the ordinary environment (the user's
pip config and cache; nothing disables the cache), the final import check in
peer_env().  ``TWISTED_LAB_PEERS_DIR`` moves the whole cache folder.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time

_HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE.parent.parent))

from tests.peers import (  # noqa: E402
    MARKER,
    PEER_NAMES,
    PEER_SPECS,
    PEERS_DIR,
    is_complete,
    peer_env,
    spec_text,
)

PIP_FLAGS = ["--disable-pip-version-check", "-q"]
_print_lock = threading.Lock()
_t0 = time.monotonic()


class InstallError(Exception):
    pass


def say(name: str, message: str) -> None:
    with _print_lock:
        print(f"[{time.monotonic() - _t0:7.1f}s] {name:9} {message}", flush=True)


def _probe(command: list[str], env: dict[str, str] | None = None) -> pathlib.Path | None:
    """
    The real executable behind an interpreter command (pyenv shims resolve to
    their target), or None if it does not run.
    """
    try:
        out = subprocess.run(
            command + ["-c", "import sys; print(sys.executable)"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    return pathlib.Path(out.stdout.strip())


def _pyenv_root() -> pathlib.Path | None:
    pyenv = shutil.which("pyenv")
    if pyenv:
        out = subprocess.run([pyenv, "root"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return pathlib.Path(out.stdout.strip())
    root = os.environ.get("PYENV_ROOT")
    return pathlib.Path(root) if root else None


def find_python(version: str) -> pathlib.Path:
    """
    Find the interpreter for ``version`` ("3.11" or an exact pyenv version
    such as "3.12.1").
    """
    major_minor = ".".join(version.split(".")[:2])
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    candidates: list[tuple[list[str], dict[str, str]]] = []
    if version.count(".") >= 2:
        # pyenv shims answer only for the selected version.
        candidates.append(([f"python{major_minor}"], {**env, "PYENV_VERSION": version}))
    else:
        candidates.append(([f"python{major_minor}"], env))
    root = _pyenv_root()
    if root is not None:
        for directory in sorted((root / "versions").glob(f"{version}*"), reverse=True):
            candidates.append(([str(directory / "bin" / "python3")], env))
    for command, cenv in candidates:
        found = _probe(command, cenv)
        if found is None:
            continue
        check = subprocess.run(
            [str(found), "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
        )
        got = check.stdout.strip()
        if check.returncode == 0 and (got == version or got.startswith(version + ".")):
            return found
    raise InstallError(
        f"no Python {version} found (tried {', '.join(' '.join(c) for c, _ in candidates)})"
    )


def _dir_size(path: pathlib.Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def _run_logged(name: str, command: list[str], log: pathlib.Path, env: dict[str, str]) -> None:
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        rc = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        ).returncode
    if rc != 0:
        tail = log.read_text(errors="replace").splitlines()[-40:]
        raise InstallError(
            f"`{' '.join(command)}` exited {rc}; last lines of {log}:\n  " + "\n  ".join(tail)
        )


def install(name: str, force: bool = False) -> dict[str, object]:
    spec = PEER_SPECS[name]
    venv = PEERS_DIR / name
    if not force and is_complete(name):
        say(name, "up to date, skipped")
        return {"name": name, "skipped": True}
    start = time.monotonic()
    log = PEERS_DIR / f"{name}.log"
    log.write_text(f"# install of {name}\n{spec_text(name)}\n")
    if venv.exists():
        say(name, "removing incomplete or outdated venv")
        shutil.rmtree(venv)
    python = find_python(str(spec["python"]))
    say(name, f"creating venv with {python}")
    # pip runs in the ordinary environment (the user's pip config and cache,
    # as PEERS.md's commands do); the import check runs like the tests do.
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYENV_VERSION")}
    _run_logged(name, [str(python), "-m", "venv", str(venv)], log, env)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", *PIP_FLAGS]
    steps = spec["steps"]
    assert isinstance(steps, list)
    for i, step in enumerate(steps, 1):
        say(name, f"pip install ({i}/{len(steps)}) {' '.join(step)}")
        _run_logged(name, pip + list(step), log, env)
    say(name, f"checking `import {spec['import']}`")
    _run_logged(
        name, [str(venv / "bin" / "python"), "-c", f"import {spec['import']}"], log, peer_env(name)
    )
    freeze = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze", "--all", *PIP_FLAGS[:1]],
        capture_output=True,
        text=True,
        env=env,
    )
    (venv / "pip-freeze.txt").write_text(freeze.stdout)
    seconds = time.monotonic() - start
    size = _dir_size(venv)
    (venv / ".install-stats.json").write_text(
        json.dumps({"seconds": round(seconds, 1), "bytes": size, "python": str(python)}) + "\n"
    )
    (venv / MARKER).write_text(spec_text(name))
    say(name, f"done in {seconds:.0f}s, {size / 2**20:.0f} MiB")
    return {"name": name, "skipped": False, "seconds": seconds, "bytes": size}


#: System programs the tests drive, by Debian package: the path that must
#: exist.  Installed with apt-get when missing and we are root (as in CI).
SYSTEM_PACKAGES = {"chromium": "/usr/bin/chromium"}


def ensure_system_packages() -> list[str]:
    """
    Install the missing L{SYSTEM_PACKAGES} with apt-get (root only).

    @return: the packages still missing afterwards.
    """
    missing = [name for name, path in SYSTEM_PACKAGES.items() if not os.path.exists(path)]
    if not missing:
        say("system", f"{', '.join(SYSTEM_PACKAGES)} present")
        return []
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        say("system", f"missing {', '.join(missing)}: install them (apt-get install -y "
                      f"{' '.join(missing)}) or run this script as root")
        return missing
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    say("system", f"apt-get install {' '.join(missing)}")
    log = PEERS_DIR / "system.log"
    with open(log, "w") as out:
        subprocess.run([apt, "update", "-q"], stdout=out, stderr=subprocess.STDOUT, env=env)
        rc = subprocess.run([apt, "install", "-y", "-q", *missing],
                            stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    still = [name for name in missing if not os.path.exists(SYSTEM_PACKAGES[name])]
    if rc != 0 or still:
        say("system", f"apt-get failed (exit {rc}); see {log}")
    return still


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"peers to install (default all: {' '.join(PEER_NAMES)})")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="parallel installs (default 2)")
    parser.add_argument("--force", action="store_true", help="reinstall even if complete")
    options = parser.parse_args(argv)
    names = options.names or PEER_NAMES
    unknown = [n for n in names if n not in PEER_SPECS]
    if unknown:
        parser.error(f"unknown peer(s) {', '.join(unknown)}; known: {', '.join(PEER_NAMES)}")
    PEERS_DIR.mkdir(exist_ok=True)
    # The cache folder ignores itself, whatever the repo's .gitignore says.
    (PEERS_DIR / ".gitignore").write_text("*\n")
    failed: list[str] = []
    if not options.names:
        failed += ensure_system_packages()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        futures = {pool.submit(install, n, options.force): n for n in names}
        for future in concurrent.futures.as_completed(futures):
            name = futures[future]
            try:
                future.result()
            except InstallError as e:
                failed.append(name)
                say(name, f"FAILED: {e}")
            except Exception as e:  # noqa: BLE001 - report every peer
                failed.append(name)
                say(name, f"FAILED: {e.__class__.__name__}: {e}")
    if failed:
        say("install", f"failed: {', '.join(failed)}")
        return 1
    say("install", "all requested peers installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
