"""The GPU-machine kit: scripts/device_wheels.sh carries every package benchmarks/gpu_check.py imports that the
lent machine's image lacks, and benchmarks/gpu_device.sh is a valid script that runs gpu_check."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WHEELS_SCRIPT = REPO / "scripts" / "device_wheels.sh"
DEVICE_SCRIPT = REPO / "benchmarks" / "gpu_device.sh"

# The Python distributions of the lent GPU machines' image ('cuda'), from the device tool's KINDS.md
# (read 2026-11-17) — only the ones gpu_check could import; the image has a CUDA PyTorch and Python 3.12.
DEVICE_IMAGE = {
    "certifi", "charset-normalizer", "einops", "filelock", "fsspec", "hf-xet", "huggingface-hub", "idna",
    "jinja2", "markupsafe", "mpmath", "networkx", "numpy", "packaging", "pyyaml", "requests", "safetensors",
    "scipy", "sentencepiece", "setuptools", "sympy", "torch", "tqdm", "triton", "typing-extensions", "urllib3",
}  # fmt: skip

IMPORTED = """
import importlib.metadata as md, json, sys
sys.path.insert(0, "benchmarks")
before = set(sys.modules)
import gpu_check  # noqa: F401  (imports gpu_frame_loop and the kit's engine modules)
from jmoshi_nb.model import batch_engine, engine, tiny  # noqa: F401
names = {m.split(".")[0] for m in set(sys.modules) - before}
owners = md.packages_distributions()
dists = {d for n in names if n not in sys.stdlib_module_names for d in owners.get(n, [])}
print(json.dumps(sorted(dists)))
"""


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def carried_wheels() -> set[str]:
    """The distribution names scripts/device_wheels.sh downloads."""
    text = WHEELS_SCRIPT.read_text()
    block = text[text.index("WHEELS=(") : text.index(")\n", text.index("WHEELS=("))]
    lines = [line.strip() for line in block.splitlines() if not line.strip().startswith("#")]
    names = {m for line in lines for m in re.findall(r'^"([A-Za-z0-9_.-]+)==', line)}
    names |= {"moshi"} if any("pins.py moshi" in line for line in lines) else set()
    return {_norm(n) for n in names}


def test_the_wheels_cover_what_gpu_check_imports_beyond_the_device_image() -> None:
    out = subprocess.run(
        [sys.executable, "-c", IMPORTED], cwd=REPO, capture_output=True, text=True, timeout=300, check=True
    ).stdout
    imported = {_norm(d) for d in json.loads(out.strip().splitlines()[-1])} - {"jmoshi-nb"}
    assert "moshi" in imported and "torch" in imported  # the probe sees the real imports
    missing = imported - {_norm(d) for d in DEVICE_IMAGE} - carried_wheels()
    assert not missing, f"gpu_check imports {sorted(missing)}: add them to {WHEELS_SCRIPT.name}"


def test_device_scripts_are_valid_bash_and_run_gpu_check_with_the_carried_wheels() -> None:
    for script in (WHEELS_SCRIPT, DEVICE_SCRIPT):
        subprocess.run(["bash", "-n", str(script)], check=True)
    text = DEVICE_SCRIPT.read_text()
    assert ".whl/*.whl" in text and "benchmarks/gpu_check.py --out-dir" in text
