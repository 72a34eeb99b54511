#!/usr/bin/env bash
# Both sides of every fast path: the protocol tests that exercise them run
# again with all of twisted_lab.fastpath's paths off (TWISTED_LAB_SLOW_PATHS=all),
# i.e. on public APIs only.  Its trial counts join the summary line.
set -uo pipefail
cd "$(dirname "$0")/../.."
CI_VENV=${CI_VENV:-.venv}
log="${CI_TRIAL_LOGS:-$(mktemp -d)}/40-slow-paths.log"
TWISTED_LAB_SLOW_PATHS=all "$CI_VENV/bin/python" -m twisted.trial \
    tests.test_fastpath tests.test_zmqutil \
    tests.test_pymodaq_loopback tests.test_pymodaq_client tests.test_pymodaq_server \
    tests.test_la4_transport tests.test_la4_e2e tests.test_la4_coordinator \
    tests.test_plesty_server tests.test_plesty_client tests.test_leco_coordinator \
    tests.test_headroom \
    2>&1 | tee "$log" | tail -n 3
exit "${PIPESTATUS[0]}"
