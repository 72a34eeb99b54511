#!/usr/bin/env bash
# Gate: mypy --strict (configuration in pyproject.toml [tool.mypy], with the
# mypy-zope plugin for zope.interface) over the library.  Fails on any error.
set -euo pipefail
cd "$(dirname "$0")/../.."
source .ci/install-tools.sh
"$CI_VENV/bin/python" -m mypy twisted_lab
