#!/usr/bin/env bash
# The whole suite again under Twisted's select reactor: the reactor Windows
# uses (IOCP aside), so the ZeroMQ reader and every fast path are proven
# without epoll.  Trial's output joins the summary line.
set -uo pipefail
.venv/bin/python -m twisted.trial --reactor=select tests 2>&1 | tee "$CI_TRIAL_LOGS/select.log" | tail -n 3
grep -qE '^PASSED \(' "$CI_TRIAL_LOGS/select.log"
