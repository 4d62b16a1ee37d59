#!/usr/bin/env bash
# Here (with internet to PyPI): fetch into ./.whl the wheels the lent GPU machine lacks for
# benchmarks/gpu_check.py. That machine (the `device` tool) has Python 3.12, a CUDA PyTorch, numpy, scipy,
# einops, safetensors, sentencepiece, huggingface_hub, pyyaml, requests and triton, and no internet; see
# benchmarks/gpu_device.sh for the run there. Versions: moshi from core/pins.py, the rest as in ./.venv
# (what the tests ran with).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || { echo "run scripts/setup.sh first (the versions are read from .venv)" >&2; exit 2; }
version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
WHEELS=(
  "$(python3 jmoshi_nb/core/pins.py moshi)"
  "pydantic==$(version pydantic)"
  "pydantic-core==$(version pydantic-core)"
  "annotated-types==$(version annotated-types)"
  "typing-inspection==$(version typing-inspection)"
  "soundfile==$(version soundfile)"
  "cffi==$(version cffi)"
  "huggingface-hub==$(version huggingface-hub)"  # the image has 1.x; moshi 0.2.13 wants <1
)
rm -rf .whl && mkdir .whl
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  PLATFORMS+=(--platform "$p")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d .whl "${WHEELS[@]}"
ls -1 .whl
du -sh .whl
