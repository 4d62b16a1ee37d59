"""The one place that imports ``moshi``.

moshi compiles some modules with ``torch.compile`` unless ``NO_TORCH_COMPILE`` is set. On a CPU that
costs ~20 s on the first frame (and needs gcc), so on machines without CUDA we switch it off before
moshi is imported. Every module of the kit imports moshi through here.
"""

from __future__ import annotations

import os

import torch

# Checked only when the caller has not decided: probing CUDA here would initialise it, which a
# process about to be memory-snapshotted (Modal) must not do.
if "NO_TORCH_COMPILE" not in os.environ and not torch.cuda.is_available():
    os.environ["NO_TORCH_COMPILE"] = "1"

from moshi.models import loaders  # noqa: E402
from moshi.models.compression import MimiModel  # noqa: E402
from moshi.models.lm import LMGen, LMModel  # noqa: E402

__all__ = ["loaders", "MimiModel", "LMGen", "LMModel"]
