#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this): set up, lint, unit + integration tests,
# every notebook executed alone with its outputs inspected (tests/test_notebook_outputs.py), and the
# browser end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -f scripts/browser_deps.sh ]; then bash scripts/browser_deps.sh; fi
export HF_HUB_OFFLINE=1
.venv/bin/ruff check .
.venv/bin/python -m pytest -q -ra tests "$@"
