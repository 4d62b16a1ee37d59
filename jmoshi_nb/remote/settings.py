"""The Modal side's names and defaults, in one place, importable without the ``modal`` package.

The app (``cloud.app``), the notebook/sweep client (``remote.modal_client``) and the CLI (``cloud.cli``)
all read these; a deploy overrides the app's with ``JMOSHI_MODAL_*`` environment variables, which
``app_environment`` writes and ``ENV`` names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from ..core.models import GPU_DEFAULT
from ..core.pins import TORCH_COMPILE_ENV

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
TALK_VOLUME_NAME = "jmoshi-nb-talk"  # the talk page's recordings and ratings: <record name>/<participant>/<id>/


ENV = {  # each app setting -> the environment variable a deploy or an ephemeral run sets it with
    "app": "JMOSHI_MODAL_APP",
    "gpu": "JMOSHI_MODAL_GPU",
    "model": "JMOSHI_MODAL_MODEL",
    "revision": "JMOSHI_MODAL_REVISION",
    "volume": "JMOSHI_MODAL_VOLUME",
    "token_secret": "JMOSHI_MODAL_TOKEN_SECRET",
    "hf_secret": "JMOSHI_MODAL_HF_SECRET",  # "" = no Hugging Face secret (public models)
    "max_containers": "JMOSHI_MODAL_MAX_CONTAINERS",
    "max_sessions": "JMOSHI_MODAL_MAX_SESSIONS",
    "sweep_max_containers": "JMOSHI_MODAL_SWEEP_MAX_CONTAINERS",
    "snapshot": "JMOSHI_MODAL_SNAPSHOT",
    "torch_compile": TORCH_COMPILE_ENV,
    "proxy_auth": "JMOSHI_MODAL_PROXY_AUTH",
    "talk": "JMOSHI_MODAL_TALK",  # the talk page's settings as JSON (cloud.talk_deploy.TalkDeploy); "" = none
    "talk_volume": "JMOSHI_MODAL_TALK_VOLUME",
}


def app_environment(**settings: str | int | bool | None) -> dict[str, str]:
    """The ``JMOSHI_MODAL_*`` variables that give the app ``settings``.

    Parameters
    ----------
    **settings:
        Keys of ``ENV``. ``None`` leaves a setting out (the app's default holds); a revision of ``""``
        means the default branch; booleans become ``"1"`` / ``"0"``.

    Returns
    -------
    dict[str, str]
        Variable name -> value, in ``ENV``'s order.
    """
    unknown = set(settings) - set(ENV)
    if unknown:
        raise ValueError(f"unknown Modal app settings {sorted(unknown)}: use {', '.join(ENV)}")
    out = {}
    for key, var in ENV.items():
        value = settings.get(key)
        if value is not None:
            out[var] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return out


class StarmapFunction(Protocol):
    """What the sweep executor needs of a Modal function: ``modal.Function.starmap``'s shape."""

    def starmap(
        self, input_iterator: Iterable[Sequence[Any]], *, order_outputs: bool = True, return_exceptions: bool = False
    ) -> Iterable[Any]: ...
