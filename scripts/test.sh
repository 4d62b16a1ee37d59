#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this): set up, lint, unit + integration tests and
# the browser end-to-end tests (tests/), then every notebook through nbmake (`--nbmake notebooks`),
# each alone in a clean folder with its outputs inspected (notebooks/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -f scripts/browser_deps.sh ]; then bash scripts/browser_deps.sh; fi
export HF_HUB_OFFLINE=1
.venv/bin/ruff check .
.venv/bin/python -m pytest -q -ra tests notebooks --nbmake "$@"
