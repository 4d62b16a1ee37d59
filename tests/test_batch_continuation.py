"""Prompted continuation batched: dialogues as slots of one engine, each as it is alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jmoshi_nb.core.audio import SAMPLE_RATE, write_wav
from jmoshi_nb.core.config import ConfigError, SessionConfig
from jmoshi_nb.research.continuation import prompted_continuation
from jmoshi_nb.research.sweeps import iter_recordings


def _stereo(path: Path, freq: float, seconds: float = 1.6) -> Path:
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    left = (0.3 * np.sin(2 * np.pi * freq * t) * (t < 0.8)).astype(np.float32)
    right = (0.2 * np.random.default_rng(int(freq)).standard_normal(n) * (t >= 0.8)).astype(np.float32)
    return write_wav(path, np.stack([left, right], axis=1))


def test_batched_continuation_equals_each_dialogue_alone(tiny_path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "dialogues"
    folder.mkdir()
    _stereo(folder / "a.wav", 180.0)
    _stereo(folder / "b.wav", 260.0)
    write_wav(
        folder / "c.wav", (0.1 * np.random.default_rng(3).standard_normal(int(1.2 * SAMPLE_RATE))).astype(np.float32)
    )
    config = SessionConfig(seed=7)
    kw = {"prompt_s": 0.8, "continuation_s": 0.4}
    recs = prompted_continuation(folder, config, batch_size=2, out_dir=tmp_path / "out", **kw)
    assert [Path(r.meta["source"]).name for r in recs] == ["a.wav", "b.wav", "c.wav"]
    assert [r.meta["model_channel_forced"] for r in recs] == [True, True, False]
    n_prompt = recs[0].meta["prompt_frames"]
    assert n_prompt == 10 and all(len(r.metrics) == 15 for r in recs)
    assert [m["forced"] for m in recs[0].metrics] == [True] * n_prompt + [False] * 5
    assert not any(m["forced"] for m in recs[2].metrics)
    assert {name for name, _ in iter_recordings(tmp_path / "out")} == {"a", "b", "c"}
    for rec in recs:
        alone = prompted_continuation(rec.meta["source"], config, batch_size=2, **kw)[0]
        assert alone.frame_tokens() == rec.frame_tokens()
        np.testing.assert_array_equal(alone.model_pcm, rec.model_pcm)
    assert recs[0].frame_tokens() != recs[1].frame_tokens()


def test_batched_continuation_checks_batch_size(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="batch_size=0 is out of range"):
        prompted_continuation(_stereo(tmp_path / "a.wav", 200.0), batch_size=0)
