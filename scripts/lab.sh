#!/usr/bin/env bash
# Launch JupyterLab with jmoshi-nb's Jupyter configuration (low-latency kernel WebSockets).
#
#   scripts/lab.sh                       # opens notebooks/ in JupyterLab
#   scripts/lab.sh --port 8890 --no-browser
#
# The kit's config folder (jmoshi_nb/notebook/jupyter_config) goes first on JUPYTER_CONFIG_PATH, so its
# server extension sets TCP_NODELAY on every kernel WebSocket; your own config still applies.
# Uses the repository's .venv if there is one, else the python on PATH. Extra arguments go to
# `jupyter lab` unchanged (add --allow-root in a root container).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${JMOSHI_NB_PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x "$repo/.venv/bin/python" ]]; then python="$repo/.venv/bin/python"; else python="$(command -v python3)"; fi
fi

config_dir="$("$python" -m jmoshi_nb.notebook.jupyter_config)"
export JUPYTER_CONFIG_PATH="$config_dir${JUPYTER_CONFIG_PATH:+:$JUPYTER_CONFIG_PATH}"

# Serve notebooks/ unless the arguments name another root.
root_args=(--ServerApp.root_dir="$repo/notebooks")
for arg in "$@"; do
  case "$arg" in --ServerApp.root_dir* | --root_dir* | --notebook-dir* | --notebook_dir*) root_args=() ;; esac
done
exec "$python" -m jupyterlab ${root_args[@]+"${root_args[@]}"} "$@"
