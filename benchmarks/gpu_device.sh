#!/usr/bin/env bash
# On the lent GPU machine, as the `device` tool's command (carry: .whl, from scripts/device_wheels.sh):
#   bash benchmarks/gpu_device.sh
# Installs the carried wheels beside the machine's own CUDA PyTorch, prints the card, runs
# benchmarks/gpu_check.py (7B random weights, bf16, CUDA graphs; about 6 of its 8 minutes) and leaves the
# markdown table, the JSON and the log in $OUT (or ./gpu-out when $OUT is unset). Extra arguments go to
# gpu_check.py (e.g. --batches 1,4,8,16,32).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
[ -d .whl ] || { echo "no .whl folder: run scripts/device_wheels.sh here and carry .whl" >&2; exit 2; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/jmoshi-site .whl/*.whl
export PYTHONPATH="/tmp/jmoshi-site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/nvidia-smi.csv" || true
python3 -c "import torch, moshi, pydantic; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'available', torch.cuda.is_available(), '| moshi', moshi.__version__, '| pydantic', pydantic.__version__)"
python3 benchmarks/gpu_check.py --out-dir "$OUT" "$@" 2>&1 | tee "$OUT/gpu_check.log"
