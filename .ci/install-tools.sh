#!/usr/bin/env bash
# Install the pinned gate tools (.ci/tools.txt) into the test venv (.venv, or
# $CI_VENV).  Sourced by the gate scripts in .ci/checks.d; a no-op when they are
# already installed at those versions.
set -euo pipefail
CI_VENV=${CI_VENV:-.venv}
"$CI_VENV/bin/python" -m pip install -q --disable-pip-version-check -r .ci/tools.txt
