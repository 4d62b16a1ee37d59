"""moshi's own server serves the tiny checkpoint unchanged, and the kit's client talks to it.

``python -m moshi.server`` is run as a subprocess from a Hugging Face cache holding the tiny model
(``--hf-repo``, the path J-Moshi takes). Its warm-up calls ``torch.cuda.synchronize()``, which a
CPU-only torch refuses, so on CPU that one call is made a no-op before moshi's module runs; moshi's
code is otherwise untouched.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from processes import free_port, running

from jmoshi_nb.core.audio import FRAME_SIZE
from jmoshi_nb.model.tiny import install_in_hf_cache
from jmoshi_nb.serve.client import connect, stream_pcm

SHIM = (
    "import sys, runpy, torch\n"
    "if not torch.cuda.is_available():\n"
    "    torch.cuda.synchronize = lambda *a, **k: None\n"
    "sys.argv = ['moshi.server'] + sys.argv[1:]\n"
    "runpy.run_module('moshi.server', run_name='__main__')\n"
)


async def test_kit_client_talks_to_moshi_server(tiny_path: Path, tmp_path: Path, speech_pcm: np.ndarray) -> None:
    cache = tmp_path / "hub"
    install_in_hf_cache(tiny_path, cache, repo_id="jmoshi-nb/tiny")
    port = free_port()
    args = [sys.executable, "-c", SHIM, "--hf-repo", "jmoshi-nb/tiny", "--static", "none",
            "--host", "127.0.0.1", "--port", str(port)]
    if not torch.cuda.is_available():
        args += ["--device", "cpu"]
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "NO_TORCH_COMPILE": "1"}
    with running(args, f"http://127.0.0.1:{port}/", env=env):
        async with connect(f"ws://127.0.0.1:{port}") as s:
            assert s.info == {}  # moshi.server sends no session description
            rec = await stream_pcm(s, speech_pcm[: 25 * FRAME_SIZE], realtime=False, tail_timeout=60)
    assert rec.metrics == []  # and no metrics: frames are counted from the audio it returns
    assert len(rec.model_pcm) >= 20 * FRAME_SIZE
    assert np.abs(rec.model_pcm[FRAME_SIZE:]).max() > 0.01
    assert rec.text, "moshi.server sent text pieces"
