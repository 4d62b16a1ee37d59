#!/usr/bin/env bash
# Set up ./.venv for jmoshi-nb. Idempotent: a second run only checks what is there.
#
#   bash scripts/setup.sh            # CPU machine (tiny offline backend) or GPU machine
#
# torch: pinned in jmoshi_nb/core/pins.py (TORCH_SPEC overrides), the version the Modal image installs too.
# On this project's machines that resolves to a CPU build on local disk; on a GPU machine PyPI's linux
# wheel of the same version is the CUDA build.
# moshi: 0.2.13 declares torch<2.10, bitsandbytes and sounddevice, which the kit does not need, so
# it is installed with --no-deps on top of the kit's own requirements (which list moshi's real ones).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-$("$PYTHON" jmoshi_nb/core/pins.py torch)}
MOSHI_SPEC=${MOSHI_SPEC:-$("$PYTHON" jmoshi_nb/core/pins.py moshi)}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "installing $TORCH_SPEC ..."
  quiet "${PIP[@]}" install "$TORCH_SPEC"
fi
echo "installing jmoshi-nb and its requirements ..."
quiet "${PIP[@]}" install -e ".[notebook,speech,modal,test,bench]"
quiet "${PIP[@]}" install --no-deps "$MOSHI_SPEC"
.venv/bin/python - <<'PY'
import importlib.metadata as md
print("ready:", ", ".join(f"{p} {md.version(p)}" for p in ("jmoshi-nb", "moshi", "torch", "sphn")))
PY
