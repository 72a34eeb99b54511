#!/usr/bin/env bash
# Packaging: build the sdist and the wheel, check their metadata with twine,
# install the wheel (no extras) in a fresh venv outside the checkout, and
# start the built-in simulated lab from it: --version, --check, then the lab
# itself on its default ports until it logs "lab started", then SIGINT.
set -euo pipefail
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/pip install -q build twine
.venv/bin/python -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
.venv/bin/twine check --strict "$work"/dist/*
python3.11 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$work"/dist/*.whl
cd "$work"   # not the checkout: the installed package must be used
"$work/venv/bin/python" -c 'import twisted_lab, sys; assert not twisted_lab.__file__.startswith(sys.argv[1]), twisted_lab.__file__' "$root"
"$work/venv/bin/twistd" -n lab --version
"$work/venv/bin/twistd" -n lab --check
"$work/venv/bin/twistd" -n lab --help >"$work/help.txt"
grep -q "share/doc/twisted-lab" "$work/help.txt"
test -f "$work/venv/share/doc/twisted-lab/configuration.md"
test -f "$work/venv/share/doc/twisted-lab/lab.toml"
"$work/venv/bin/twistd" -n lab --check --config "$work/venv/share/doc/twisted-lab/guides/pymodaq4-into-leco.toml"
"$work/venv/bin/twistd" -n --logfile "$work/lab.log" lab &
pid=$!
for _ in $(seq 1 150); do
    grep -q "lab started" "$work/lab.log" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/lab.log"; exit 1; }
    sleep 0.2
done
grep -q "lab started" "$work/lab.log" || { cat "$work/lab.log"; kill "$pid"; exit 1; }
kill -INT "$pid"
wait "$pid" || true
grep -q "lab stopped" "$work/lab.log" || { cat "$work/lab.log"; exit 1; }
test ! -e "$work/twistd.pid"
echo "package: built, checked, installed and started the lab from the wheel"
