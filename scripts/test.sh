#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this): set up, lint, unit + integration tests,
# every notebook under nbmake, and the browser end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -f scripts/browser_deps.sh ]; then bash scripts/browser_deps.sh; fi
export HF_HUB_OFFLINE=1
.venv/bin/ruff check .
NB_ARGS=()
if ls notebooks/*.ipynb >/dev/null 2>&1 && .venv/bin/python -c "import nbmake" 2>/dev/null; then
  NB_ARGS=(--nbmake notebooks)
fi
.venv/bin/python -m pytest -q -ra tests "${NB_ARGS[@]}" "$@"
