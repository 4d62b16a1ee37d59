"""What the kit runs on, defined once: the versions ``scripts/setup.sh`` and the Modal image install, and
the image's torch.compile choice (which ``benchmarks/gpu_check.py`` measures with).

No imports beyond the standard library, so ``scripts/setup.sh`` can ask before anything is installed::

    python3 jmoshi_nb/core/pins.py torch    # -> torch==2.13.0

torch: the tests, the notebooks on a local machine and the Modal image all run this version. moshi
0.2.13 declares ``torch<2.10`` but runs unchanged on it (the whole test suite: engine parity with
moshi's loop, the server, the 0.2.2-format weight loading), and it is installed with ``--no-deps``
everywhere, so its declared range is not what decides. Nothing in the image needs an older torch.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

PYTHON_VERSION = "3.11"
TORCH_VERSION = "2.13.0"
MOSHI_VERSION = "0.2.13"
# The Modal image's CUDA build of TORCH_VERSION: CUDA 12.8 runs on the A10G (sm_86) and every newer
# card Modal lends (L4, L40S, A100, H100, H200, B200), on Modal's drivers.
TORCH_INDEX_URL = "https://download.pytorch.org/whl/cu128"

TORCH_COMPILE_ENV = "JMOSHI_MODAL_TORCH_COMPILE"


def torch_compile_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the Modal image lets moshi torch.compile (read at deploy time; off unless set to 1).

    moshi compiles a few small kernels; that costs ~30-60 s on every container start (it is not in a
    CPU snapshot) and CUDA graphs already remove the launch overhead, so it is off by default.
    """
    return environ.get(TORCH_COMPILE_ENV, "0") == "1"


SPECS = {"torch": f"torch=={TORCH_VERSION}", "moshi": f"moshi=={MOSHI_VERSION}", "python": PYTHON_VERSION}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in SPECS:
        sys.exit(f"usage: python3 jmoshi_nb/core/pins.py {{{'|'.join(SPECS)}}}")
    print(SPECS[sys.argv[1]])
