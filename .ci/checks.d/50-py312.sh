#!/usr/bin/env bash
# The test suite again, on Python 3.12 and under Twisted's select reactor (the
# reactor Windows uses, IOCP aside), so the ZeroMQ reader and every fast path
# are proven without epoll.  One run covers both: the first run (the README's
# test command) is Python 3.11 with the default epoll reactor, and running the
# whole suite a third time would add ten minutes of CI for no code path that
# these two runs do not already take.  The interpreter is the lab312 venv that
# tests/peers/install.py builds (the README's test command runs it) from
# pyenv's 3.12.1, with twisted_lab's dependencies and test extras, PLESTY
# device packages and pymeasure; the suite runs from the checkout (python -m
# puts the repo root first on sys.path), so nothing is installed twice.
# trial's output goes to "$CI_TRIAL_LOGS/py312-select.log" and joins the summary line.
set -uo pipefail
cd "$(dirname "$0")/../.."
peers="${TWISTED_LAB_PEERS_DIR:-.peers}"
python="$peers/lab312/bin/python"
if [ ! -x "$python" ]; then
    echo "no Python 3.12 venv at $python: run python3 tests/peers/install.py lab312" >&2
    exit 1
fi
"$python" -c 'import sys; assert sys.version_info[:2] >= (3, 12), sys.version' || exit 1
logs="${CI_TRIAL_LOGS:-$(mktemp -d)}"
PYTHONPATH="$PWD" "$python" -m twisted.trial --reactor=select tests 2>&1 | tee "$logs/py312-select.log"
exit "${PIPESTATUS[0]}"
