"""The tiny checkpoint: deterministic, J-Moshi's shape contracts, loadable through moshi's loaders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from jmoshi_nb.model import checkpoints
from jmoshi_nb.model.moshi_api import loaders
from jmoshi_nb.model.tiny import FILES, install_in_hf_cache, make_tiny


def test_same_seed_gives_identical_files(tmp_path: Path, tiny_path: Path) -> None:
    again = make_tiny(tmp_path / "again")
    for name in FILES:
        assert (again / name).read_bytes() == (tiny_path / name).read_bytes(), name


def test_other_seed_gives_other_weights(tmp_path: Path, tiny_path: Path) -> None:
    other = make_tiny(tmp_path / "other", seed=7)
    assert (other / "model.safetensors").read_bytes() != (tiny_path / "model.safetensors").read_bytes()


def test_shape_contracts_match_jmoshi(tiny_path: Path) -> None:
    info = checkpoints.resolve("tiny").info
    mimi = info.get_mimi()
    lm = info.get_moshi(dtype=torch.float32)
    tok = info.get_text_tokenizer()
    assert mimi.frame_rate == 12.5 and mimi.sample_rate == 24000
    assert mimi.num_codebooks == 8
    assert lm.card == mimi.cardinality  # LM card == Mimi bins
    assert lm.n_q - lm.dep_q == mimi.num_codebooks == 8
    assert lm.dep_q == 8 and lm.n_q == 16
    assert lm.text_card <= tok.vocab_size()
    assert lm.delays == loaders._lm_kwargs["delays"]  # the same delays as the 7B model
    assert lm.depformer is not None
    # small enough for a laptop CPU
    assert sum(p.numel() for p in mimi.parameters()) < 400_000
    assert sum(p.numel() for p in lm.parameters()) < 5_000_000


def test_mimi_codebooks_are_random_not_zero(tiny_path: Path, speech_pcm: np.ndarray) -> None:
    mimi = checkpoints.resolve("tiny").info.get_mimi()
    x = torch.from_numpy(speech_pcm[: 1920 * 25])[None, None]
    codes = mimi.encode(x)
    assert codes.shape[:2] == (1, 8)
    assert len(torch.unique(codes)) > 20, "all frames quantized to a handful of codes"


def test_tokenizer_is_japanese_with_moshi_special_ids(tiny_path: Path) -> None:
    tok = checkpoints.resolve("tiny").info.get_text_tokenizer()
    assert tok.id_to_piece(3) == "<pad>" and tok.pad_id() == 3
    pieces = tok.encode("今日はいい天気ですね", out_type=str)
    assert tok.unk_id() not in tok.encode("今日はいい天気ですね")
    assert "".join(pieces).replace("\u2581", "") == "今日はいい天気ですね"


def test_config_json_is_moshi_checkpoint_format(tiny_path: Path) -> None:
    raw = json.loads((tiny_path / "config.json").read_text())
    for key in ("moshi_name", "mimi_name", "tokenizer_name", "mimi_config_name"):
        assert (tiny_path / raw[key]).exists()
    # everything else must be an LMModel argument: moshi passes the rest straight to LMModel
    info = loaders.CheckpointInfo.from_hf_repo(
        "unused/repo",
        moshi_weights=tiny_path / raw["moshi_name"],
        mimi_weights=tiny_path / raw["mimi_name"],
        tokenizer=tiny_path / raw["tokenizer_name"],
        config_path=tiny_path / "config.json",
        mimi_config_path=tiny_path / raw["mimi_config_name"],
    )
    info.get_moshi(dtype=torch.float32)


def test_loads_through_the_hub_path(tiny_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A repo id goes through CheckpointInfo.from_hf_repo and hf_hub_download, as for J-Moshi."""
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hub"
    commit = install_in_hf_cache(tiny_path, cache, repo_id="someone/tiny-jmoshi")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    resolved = checkpoints.resolve("someone/tiny-jmoshi")
    assert resolved.source == "hf"
    assert Path(resolved.info.moshi_weights).parent.parent.parent == cache / "models--someone--tiny-jmoshi"
    assert resolved.commit == commit  # recorded with every session, even when no revision was asked
    assert resolved.info.get_moshi(dtype=torch.float32).text_card == 256


def test_jmoshi_repo_layout_is_fetched_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """J-Moshi repos have no config.json: the three files are fetched by moshi's names, config None."""
    import huggingface_hub.constants as hf_constants

    src = tmp_path / "src"
    src.mkdir()
    names = ["model.safetensors", "tokenizer-e351c8d8-checkpoint125.safetensors", "tokenizer_spm_32k_3.model"]
    for name in names:
        (src / name).write_bytes(b"x")
    snap = tmp_path / "hub" / "models--nu-dialogue--j-moshi-ext" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    for name in names:
        (snap / name).write_bytes(b"x")
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    resolved = checkpoints.resolve("j-moshi-ext")
    info = resolved.info
    assert resolved.location == "nu-dialogue/j-moshi-ext"
    assert info.lm_config is None  # moshi's 7B config, which is J-Moshi's
    assert Path(info.moshi_weights).name == "model.safetensors"
    assert Path(info.mimi_weights).name == "tokenizer-e351c8d8-checkpoint125.safetensors"
    assert Path(info.tokenizer).name == "tokenizer_spm_32k_3.model"


def test_unknown_model_names_the_choices() -> None:
    with pytest.raises(checkpoints.ModelNotFoundError, match="j-moshi-ext"):
        checkpoints.resolve("no-such-model")


def test_folder_without_checkpoint_is_refused(tmp_path: Path) -> None:
    with pytest.raises(checkpoints.ModelNotFoundError, match="lacks model.safetensors"):
        checkpoints.resolve(str(tmp_path))
