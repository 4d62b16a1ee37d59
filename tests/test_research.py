"""Sweeps as tables, prompted continuation with a forced model channel, re-analysis without a model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jmoshi_nb.core.audio import FRAME_SIZE, SAMPLE_RATE, write_wav
from jmoshi_nb.core.config import ConfigError, SessionConfig
from jmoshi_nb.model.engine import Engine
from jmoshi_nb.model.forcing import ModelChannelForcer
from jmoshi_nb.research.continuation import continue_dialogue, prompted_continuation, read_dialogue
from jmoshi_nb.research.sweeps import expand_grid, iter_recordings, sweep


def test_expand_grid_is_the_cartesian_product() -> None:
    base = SessionConfig(seed=1)
    configs = expand_grid({"temp": [0.5, 0.9], "top_k": [10, 50, 100]}, base)
    assert len(configs) == 6
    assert {(c.sampling.temp, c.sampling.top_k) for c in configs} == {(t, k) for t in (0.5, 0.9) for k in (10, 50, 100)}
    assert all(c.seed == 1 and c.sampling.temp_text == base.sampling.temp_text for c in configs)
    assert [c.seed for c in expand_grid({"seed": [3, 4]}, base)] == [3, 4]


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"temperature": [1.0]}, "unknown parameter(s) temperature"),
        ({"temp": []}, "temp must be a non-empty list"),
        ({"temp": 0.5}, "temp must be a non-empty list"),
        ({"temp": [9.0]}, "temp=9.0 is out of range: allowed 0.0..5.0"),
        ({"top_k": [5000]}, "top_k=5000 is above the audio codebook size: allowed 1..256"),
    ],
)
def test_bad_grids_are_refused(grid: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        expand_grid(grid, SessionConfig())


def test_sweep_returns_one_row_per_run(speech_pcm: np.ndarray, tmp_path: Path, engine: Engine) -> None:
    short = tmp_path / "short.wav"
    write_wav(short, speech_pcm[: int(1.6 * SAMPLE_RATE)])
    df = sweep(
        {"temp": [0.5, 1.0], "seed": [7, 7]}, [short], base=SessionConfig(), out_dir=tmp_path / "runs", progress=False
    )
    assert len(df) == 4
    assert list(df["temp"]) == [0.5, 0.5, 1.0, 1.0] and set(df["seed"]) == {7}
    for col in (
        "model_ipu_per_min",
        "model_gap_mean_s",
        "overlap_ratio",
        "text_rate",
        "padding_ratio",
        "frame_ms_p50",
        "recording",
    ):
        assert col in df.columns
    recs = df.attrs["recordings"]
    assert recs[0].frame_tokens() == recs[1].frame_tokens()  # same config + same input
    assert recs[0].frame_tokens() != recs[2].frame_tokens()
    saved = dict(iter_recordings(tmp_path / "runs"))
    assert sorted(saved) == sorted(df["run"])
    assert saved[df["run"][0]].frame_tokens() == recs[0].frame_tokens()


def _dialogue(tmp_path: Path, seconds: float = 2.0) -> Path:
    rng = np.random.default_rng(0)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    left = (0.3 * np.sin(2 * np.pi * 180 * t) * (t < 1.0)).astype(np.float32)
    right = (0.2 * rng.standard_normal(n) * (t >= 1.0)).astype(np.float32)
    return write_wav(tmp_path / "dialogue.wav", np.stack([left, right], axis=1))


def test_model_channel_is_forced_during_the_prompt(engine: Engine, tmp_path: Path) -> None:
    dialogue = read_dialogue(_dialogue(tmp_path), model_channel=0)
    config = SessionConfig(seed=5)
    rec = continue_dialogue(engine, dialogue, config, prompt_s=1.2, continuation_s=0.8)
    n_prompt = 15
    assert rec.meta["prompt_frames"] == n_prompt and len(rec.metrics) == 25
    assert [m["forced"] for m in rec.metrics] == [True] * n_prompt + [False] * 10
    # The model's audio tokens coming out of the LM are exactly the prompt's own Mimi codes.
    forcer = ModelChannelForcer(engine, dialogue.model)
    engine.reset(config.sampling, config.seed)
    for i in range(n_prompt):
        frame = dialogue.user[i * FRAME_SIZE : (i + 1) * FRAME_SIZE]
        r = engine.step(frame, forced_audio=forcer.tokens_for_step(i))
        if i >= 1:
            np.testing.assert_array_equal(r.tokens[1:], forcer.codes[i])
    # After the prompt the user channel is silent and the model runs free.
    assert np.abs(rec.user_pcm[n_prompt * FRAME_SIZE :]).max() == 0


def test_prompted_continuation_over_a_folder(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "dialogues"
    folder.mkdir()
    _dialogue(folder)
    mono = folder / "mono.wav"
    write_wav(mono, np.zeros(int(1.5 * SAMPLE_RATE), np.float32))
    recs = prompted_continuation(
        folder, SessionConfig(seed=1), prompt_s=1.0, continuation_s=0.4, out_dir=tmp_path / "out", engine=engine
    )
    assert [Path(r.meta["source"]).name for r in recs] == ["dialogue.wav", "mono.wav"]
    assert recs[0].meta["model_channel_forced"] and not recs[1].meta["model_channel_forced"]
    assert {name for name, _ in iter_recordings(tmp_path / "out")} == {"dialogue", "mono"}


def test_continuation_refuses_too_short_inputs(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shorter than the 10.0 s prompt"):
        prompted_continuation(_dialogue(tmp_path), prompt_s=10.0, engine=engine)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no audio files"):
        prompted_continuation(tmp_path / "empty", engine=engine)
