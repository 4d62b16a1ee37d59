"""A tiny checkpoint of the J-Moshi architecture, made here, deterministically, from a seed.

It has the shape contracts of the real model (Mimi with 8 codebooks at 12.5 Hz, an LM with 8+8 audio
streams plus text, a depformer, the same delays) with small dimensions and random weights, and a
SentencePiece model trained on a few bundled Japanese lines. It is written in moshi's own checkpoint
format (safetensors + ``config.json`` naming the files), so ``moshi.models.loaders`` loads it and
``moshi.server`` serves it unchanged. It is the kit's offline default backend.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import sentencepiece as spm
import torch
from safetensors.torch import save_file

from ..core.audio import FRAME_SIZE, SAMPLE_RATE
from .moshi_api import loaders

TINY_REPO_ID = "jmoshi-nb/tiny"
DEFAULT_SEED = 20240603
FORMAT_VERSION = 1

MOSHI_FILE = "model.safetensors"
MIMI_FILE = "mimi.safetensors"
MIMI_CONFIG_FILE = "mimi_config.json"
TOKENIZER_FILE = "tokenizer_ja.model"
FILES = ("config.json", MOSHI_FILE, MIMI_FILE, MIMI_CONFIG_FILE, TOKENIZER_FILE)

# Same delays as J-Moshi / Moshi: text, 8 model audio streams, 8 user audio streams.
DELAYS = [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1]
AUDIO_CARD = 256  # Mimi bins == LM card
TEXT_VOCAB = 256  # SentencePiece vocabulary == LM text_card


def tiny_mimi_config() -> dict[str, Any]:
    """Mimi at 24 kHz / 12.5 Hz with 8 codebooks, ~0.1 M parameters (the real one has ~80 M)."""
    seanet = {
        "channels": 1,
        "dimension": 32,
        "causal": True,
        "n_filters": 4,
        "n_residual_layers": 1,
        "activation": "ELU",
        "compress": 2,
        "dilation_base": 2,
        "disable_norm_outer_blocks": 0,
        "kernel_size": 7,
        "residual_kernel_size": 3,
        "last_kernel_size": 3,
        "norm": "none",
        "pad_mode": "constant",
        "ratios": [8, 6, 5, 4],
        "true_skip": True,
    }
    return {
        "sample_rate": SAMPLE_RATE,
        "channels": 1,
        "frame_rate": SAMPLE_RATE / FRAME_SIZE,  # 12.5 Hz
        "seanet": seanet,
        "quantizer": {
            "dimension": 16,
            "n_q": 8,
            "bins": AUDIO_CARD,
            "input_dimension": seanet["dimension"],
            "output_dimension": seanet["dimension"],
        },
        "transformer": {
            "d_model": seanet["dimension"],
            "num_heads": 2,
            "num_layers": 1,
            "causal": True,
            "layer_scale": 0.01,
            "context": 250,
            "conv_layout": True,
            "max_period": 10000,
            "gating": "none",
            "norm": "layer_norm",
            "positional_embedding": "rope",
            "dim_feedforward": 64,
            "input_dimension": seanet["dimension"],
            "output_dimensions": [seanet["dimension"]],
        },
    }


def tiny_lm_config(text_card: int = TEXT_VOCAB) -> dict[str, Any]:
    """The 7B LM config of moshi's loaders with every size shrunk; the structure is unchanged."""
    return {
        "dim": 128,
        "text_card": text_card,
        "existing_text_padding_id": 3,
        "n_q": 16,
        "dep_q": 8,
        "card": AUDIO_CARD,
        "num_heads": 4,
        "num_layers": 2,
        "hidden_scale": 4.125,
        "causal": True,
        "layer_scale": None,
        "context": 3000,
        "max_period": 10000,
        "gating": "silu",
        "norm": "rms_norm_f32",
        "positional_embedding": "rope",
        "depformer_dim": 64,
        "depformer_dim_feedforward": int(4.125 * 64),
        "depformer_num_heads": 4,
        "depformer_num_layers": 1,
        "depformer_layer_scale": None,
        "depformer_multi_linear": True,
        "depformer_context": 8,
        "depformer_max_period": 10000,
        "depformer_gating": "silu",
        "depformer_pos_emb": "none",
        "depformer_weights_per_step": True,
        "delays": list(DELAYS),
    }


def corpus_lines() -> list[str]:
    text = resources.files("jmoshi_nb").joinpath("data/tiny_corpus_ja.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def train_tokenizer(path: Path, vocab_size: int = TEXT_VOCAB) -> None:
    """Train a SentencePiece BPE model with moshi's special ids (0 = end pad, 3 = pad)."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus_lines()),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=3,
        num_threads=1,
        minloglevel=2,
        hard_vocab_limit=True,
        seed_sentencepiece_size=100000,
        shuffle_input_sentence=False,
    )
    path.write_bytes(model.getvalue())


def _calibration_signal(generator: torch.Generator, seconds: float = 32.0) -> torch.Tensor:
    """A deterministic speech-like signal: noise bursts and glides at varying levels, with silences."""
    sr = SAMPLE_RATE
    n = int(seconds * sr)
    t = torch.arange(n) / sr
    segments = torch.randint(0, 4, (int(seconds * 5),), generator=generator).repeat_interleave(sr // 5)[:n]
    f0 = 100 + 200 * torch.rand(int(seconds * 5), generator=generator).repeat_interleave(sr // 5)[:n]
    phase = 2 * torch.pi * torch.cumsum(f0 / sr, 0)
    voiced = sum(torch.sin(k * phase) / k for k in range(1, 8))
    noise = torch.randn(n, generator=generator)
    gain = torch.rand(int(seconds * 5), generator=generator).repeat_interleave(sr // 5)[:n]
    sig = torch.where(segments == 0, 0.0, torch.where(segments == 1, noise * 0.3, voiced * 0.3)) * gain
    return (sig + 0.001 * torch.sin(2 * torch.pi * 50 * t))[None, None].float()


@torch.no_grad()
def _calibrate_codebooks(mimi: torch.nn.Module, generator: torch.Generator) -> None:
    """Give every codebook entries drawn from real encoder residuals (like k-means' random init).

    Fresh Mimi codebooks are zeros, so every frame would quantize to code 0; plain random
    vectors miss the encoder's latent distribution and collapse to a few codes. Picking entries
    among the residuals of a calibration signal makes the codes follow the input.
    """
    latent = mimi._encode_to_unquantized_latent(_calibration_signal(generator))  # [1, D, T]
    for rvq in (mimi.quantizer.rvq_first, mimi.quantizer.rvq_rest):
        residual = rvq.input_proj(latent)[0].T.contiguous()  # [T, dim]
        for layer in rvq.vq.layers:
            book = layer._codebook
            size = book.codebook_size
            pick = torch.randint(0, residual.shape[0], (size,), generator=generator)
            scale = residual.std(0, keepdim=True) * 0.05
            entries = residual[pick] + torch.randn(size, residual.shape[1], generator=generator) * scale
            book.embedding_sum.copy_(entries)
            book.cluster_usage.fill_(1.0)
            book._initialized.fill_(1.0)
            book.register_buffer("_embedding", None, persistent=False)
            nearest = torch.cdist(residual, entries).argmin(-1)
            residual = residual - entries[nearest]


def _tensor_digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def make_tiny(directory: str | Path, seed: int = DEFAULT_SEED, overwrite: bool = False) -> Path:
    """Write the tiny checkpoint into ``directory`` and return it.

    The result depends only on ``seed`` (and the versions of torch/sentencepiece): two calls give
    byte-identical weight files. The codebook calibration runs on one thread, so the result does not
    depend on how many threads torch uses in this process either.
    """
    out = Path(directory)
    if out.exists() and (out / "config.json").exists() and not overwrite:
        return out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".tiny-") as tmp_name:
        tmp = Path(tmp_name)
        train_tokenizer(tmp / TOKENIZER_FILE)
        vocab = spm.SentencePieceProcessor(model_file=str(tmp / TOKENIZER_FILE)).vocab_size()

        mimi_config = tiny_mimi_config()
        lm_config = tiny_lm_config(text_card=vocab)
        generator = torch.Generator().manual_seed(seed)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # float sums in the calibration: the same order whatever the thread count
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            mimi = loaders.get_mimi(None, mimi_config, device="cpu", num_codebooks=8)
            _calibrate_codebooks(mimi, generator)
            mimi_state = {k: v.detach().clone().contiguous() for k, v in mimi.state_dict().items()}
            torch.manual_seed(seed + 1)
            lm = loaders.get_moshi_lm(None, lm_kwargs=lm_config, device="cpu", dtype=torch.float32)
            lm_state = {k: v.detach().clone().contiguous() for k, v in lm.state_dict().items()}
        torch.set_num_threads(threads)
        save_file(mimi_state, str(tmp / MIMI_FILE))
        save_file(lm_state, str(tmp / MOSHI_FILE))
        (tmp / MIMI_CONFIG_FILE).write_text(json.dumps(mimi_config, indent=2))
        config = dict(lm_config)
        config.update(
            {
                "model_type": "moshi",
                "moshi_name": MOSHI_FILE,
                "mimi_name": MIMI_FILE,
                "mimi_config_name": MIMI_CONFIG_FILE,
                "tokenizer_name": TOKENIZER_FILE,
                "model_id": {
                    "name": TINY_REPO_ID,
                    "seed": seed,
                    "format": FORMAT_VERSION,
                    "lm_digest": _tensor_digest(lm_state),
                    "mimi_digest": _tensor_digest(mimi_state),
                },
            }
        )
        (tmp / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
        # config.json last: its presence is what marks a complete checkpoint.
        for name in (*FILES[1:], FILES[0]):
            shutil.move(str(tmp / name), str(out / name))
    return out


def install_in_hf_cache(directory: str | Path, cache_dir: str | Path, repo_id: str = TINY_REPO_ID) -> str:
    """Lay a checkpoint folder out as a Hugging Face cache entry of ``repo_id`` (offline use).

    With ``HF_HUB_OFFLINE=1`` and ``HF_HUB_CACHE=cache_dir``, ``hf_hub_download(repo_id, ...)``
    then resolves to these files, so the hub loading path (``CheckpointInfo.from_hf_repo``,
    ``python -m moshi.server --hf-repo``) runs on the tiny model exactly as on the real one.
    Returns the commit hash used for the snapshot.
    """
    src = Path(directory)
    h = hashlib.sha1()
    for name in FILES:
        h.update(name.encode())
        h.update((src / name).read_bytes())
    commit = h.hexdigest()
    repo_dir = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        target = snapshot / name
        if not target.exists():
            shutil.copyfile(src / name, target)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    return commit
