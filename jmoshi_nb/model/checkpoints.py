"""Which checkpoints the kit knows and how they are found: a Hugging Face repo id or a local folder.

Everything ends in ``moshi.models.loaders.CheckpointInfo``, the object moshi itself loads models from.
The J-Moshi repos predate moshi's ``config.json``: they ship ``model.safetensors``, Mimi as
``tokenizer-e351c8d8-checkpoint125.safetensors`` and the rinna Japanese SentencePiece renamed to
``tokenizer_spm_32k_3.model``; with no config moshi uses its 7B config, which is J-Moshi's. Those
files are fetched by name (so an offline cache works too: moshi's own fallback only triggers on a
remote "not found"), with huggingface_hub's progress bars and standard cache.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..core.models import MODELS, TINY, looks_hub, unknown_model_message
from .moshi_api import loaders


class ModelNotFoundError(ValueError):
    pass


@dataclass(frozen=True)
class ResolvedModel:
    """What a model argument resolved to; ``info`` is moshi's CheckpointInfo."""

    name: str
    source: str  # "tiny" | "local" | "hf"
    location: str  # folder or repo id
    revision: str | None
    info: loaders.CheckpointInfo

    @property
    def model_id(self) -> str:
        return self.name if self.source != "local" else f"local:{self.location}"

    @property
    def commit(self) -> str | None:
        """The hub commit the files came from (``.../snapshots/<commit>/...``), for reproducibility."""
        if self.source != "hf":
            return None
        parts = Path(self.info.moshi_weights).parts
        return parts[parts.index("snapshots") + 1] if "snapshots" in parts else None


def cache_root() -> Path:
    """Where the kit keeps what it builds (the tiny checkpoint). ``JMOSHI_NB_CACHE`` overrides."""
    env = os.environ.get("JMOSHI_NB_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jmoshi-nb"


def tiny_dir() -> Path:
    """The tiny checkpoint folder, built on first use."""
    from .tiny import DEFAULT_SEED, make_tiny

    return make_tiny(cache_root() / f"tiny-{DEFAULT_SEED}")


def _from_local_dir(path: Path) -> loaders.CheckpointInfo:
    config_path = path / "config.json"
    if config_path.exists():
        raw = json.loads(config_path.read_text())

        def pick(key: str, default: str) -> Path:
            return path / raw.get(key, default)

        mimi_config_name = raw.get("mimi_config_name")
        return loaders.CheckpointInfo.from_hf_repo(
            str(path),
            moshi_weights=pick("moshi_name", loaders.MOSHI_NAME),
            mimi_weights=pick("mimi_name", loaders.MIMI_NAME),
            tokenizer=pick("tokenizer_name", loaders.TEXT_TOKENIZER_NAME),
            config_path=config_path,
            mimi_config_path=(path / mimi_config_name) if mimi_config_name else None,
            lora_weights=(path / raw["lora_name"]) if raw.get("lora_name") else None,
        )
    # A J-Moshi style folder: moshi's file names, no config (the 7B config applies).
    files = {
        "moshi": path / loaders.MOSHI_NAME,
        "mimi": path / loaders.MIMI_NAME,
        "tokenizer": path / loaders.TEXT_TOKENIZER_NAME,
    }
    missing = [str(p.name) for p in files.values() if not p.exists()]
    if missing:
        raise ModelNotFoundError(
            f"{path} is not a moshi checkpoint folder: it has no config.json and lacks {', '.join(missing)}"
        )
    return loaders.CheckpointInfo(files["moshi"], files["mimi"], files["tokenizer"])


def _from_legacy_repo(repo_id: str, revision: str | None) -> loaders.CheckpointInfo:
    from huggingface_hub import hf_hub_download

    def get(name: str) -> Path:
        return Path(hf_hub_download(repo_id, name, revision=revision))

    return loaders.CheckpointInfo(get(loaders.MOSHI_NAME), get(loaders.MIMI_NAME), get(loaders.TEXT_TOKENIZER_NAME))


def resolve(model: str = TINY, revision: str | None = None) -> ResolvedModel:
    """Turn ``tiny | j-moshi-ext | j-moshi | moshiko | <local dir> | <hf repo id>`` into a checkpoint.

    Hub files are downloaded (with progress) into the standard Hugging Face cache.
    """
    if model == TINY:
        folder = tiny_dir()
        return ResolvedModel(TINY, "tiny", str(folder), None, _from_local_dir(folder))
    spec = MODELS.get(model)
    if spec is not None and spec.repo_id is not None:
        if spec.has_config:
            info = loaders.CheckpointInfo.from_hf_repo(spec.repo_id, revision=revision)
        else:
            info = _from_legacy_repo(spec.repo_id, revision)
        return ResolvedModel(spec.name, "hf", spec.repo_id, revision, info)
    path = Path(model).expanduser()
    if path.is_dir():
        return ResolvedModel(str(path), "local", str(path.resolve()), None, _from_local_dir(path))
    if looks_hub(model):
        info = loaders.CheckpointInfo.from_hf_repo(model, revision=revision)
        return ResolvedModel(model, "hf", model, revision, info)
    raise ModelNotFoundError(unknown_model_message(model))
