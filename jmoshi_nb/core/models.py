"""The one model registry: the checkpoints the kit knows by name, and the rule for everything else.

A model argument is a known name (below), a local checkpoint folder (a path starting with ``/``,
``.`` or ``~``) or a Hugging Face repo id (``owner/name``). ``config`` validates against this and
``model.checkpoints`` resolves through it; nothing else lists models.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    """A known checkpoint: where it lives and its vocabulary sizes (audio codebook, text)."""

    name: str
    repo_id: str | None  # None: built locally (tiny)
    description: str
    card: int
    text_card: int
    has_config: bool = True  # the repo ships moshi's config.json (J-Moshi's do not)
    gpu_only: bool = True


TINY = "tiny"
GPU_DEFAULT = "j-moshi-ext"  # the model a GPU backend serves unless told otherwise
MODELS: dict[str, ModelSpec] = {
    "j-moshi-ext": ModelSpec(
        "j-moshi-ext",
        "nu-dialogue/j-moshi-ext",
        "J-Moshi trained with augmented dialogue data (the GPU default)",
        2048,
        32000,
        has_config=False,
    ),
    "j-moshi": ModelSpec("j-moshi", "nu-dialogue/j-moshi", "J-Moshi", 2048, 32000, has_config=False),
    "moshiko": ModelSpec("moshiko", "kyutai/moshiko-pytorch-bf16", "Kyutai Moshiko (English), bf16", 2048, 32000),
    TINY: ModelSpec(
        TINY,
        None,
        "Tiny random-weight model of the same architecture, built locally (offline default)",
        256,
        256,
        gpu_only=False,
    ),
}


def looks_local(model: str) -> bool:
    """A local checkpoint folder: a path starting with ``/``, ``.`` or ``~`` (or a Windows path)."""
    return model.startswith(("/", ".", "~")) or "\\" in model


def looks_hub(model: str) -> bool:
    """A Hugging Face repo id: ``owner/name``."""
    return not looks_local(model) and model.count("/") == 1 and all(model.split("/"))


def unknown_model_message(model: str) -> str:
    return (
        f"unknown model {model!r}: use one of {', '.join(MODELS)}, a Hugging Face repo id (owner/name) "
        "or a local checkpoint folder (a path starting with /, . or ~)"
    )
