"""The Modal side's names and defaults, in one place, importable without the ``modal`` package.

The app (``modal_app``), the notebook/sweep helper (``modal_backend``) and the CLI (``cli_modal``)
all read these; a deploy overrides the app's with ``JMOSHI_MODAL_*`` environment variables.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from ..core.models import GPU_DEFAULT

APP_NAME = "jmoshi-nb"
GPU = "A10G"  # 24 GB: the 7B bf16 weights (15.4 GB) + KV cache + Mimi
MODEL = GPU_DEFAULT
VOLUME_NAME = "jmoshi-nb-cache"  # the weights cache (Hugging Face hub layout)
TOKEN_SECRET_NAME = "jmoshi-nb-token"  # holds TOKEN_ENV, the server's access token
HF_SECRET_NAME = "huggingface"  # holds HF_TOKEN for gated repositories
TOKEN_ENV = "JMOSHI_NB_TOKEN"
MIN_TOKEN_CHARS = 16
SERVER_CLASS = "JMoshiServer"
SWEEP_CLASS = "SweepWorker"
LISTEN_APP_NAME = "jmoshi-nb-listen"  # the rater page's app (cloud/listen_app.py), CPU only
LISTEN_VOLUME_NAME = "jmoshi-nb-listening"  # listening tests and their ratings: tests/<name>/
LISTEN_CLASS = "RaterPage"


class StarmapFunction(Protocol):
    """What the sweep executor needs of a Modal function: ``modal.Function.starmap``'s shape."""

    def starmap(
        self, input_iterator: Iterable[Sequence[Any]], *, order_outputs: bool = True, return_exceptions: bool = False
    ) -> Iterable[Any]: ...
