#!/usr/bin/env bash
# Gate: ruff (rules and the reason for each exception in pyproject.toml
# [tool.ruff]) over the library, its tests, benches and the twistd dropin.
set -euo pipefail
cd "$(dirname "$0")/../.."
source .ci/install-tools.sh
"$CI_VENV/bin/python" -m ruff check --no-cache .
