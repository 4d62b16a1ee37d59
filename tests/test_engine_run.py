"""The engine-run loop keeps what it recorded when a step fails: streamed recordings are saved, cut short."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jmoshi_nb.core.audio import FRAME_SIZE
from jmoshi_nb.core.config import SessionConfig
from jmoshi_nb.core.recording import Recording
from jmoshi_nb.research.engine_run import EngineInput, run_all_on_engine

FRAMES = 12
FAIL_AT = 5  # the step that raises


def _failing(engine: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """``engine.step`` raises on its FAIL_AT-th call; returns the call counter."""
    calls: list[int] = []
    step = engine.step

    def failing_step(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == FAIL_AT:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return step(*args, **kwargs)

    monkeypatch.setattr(engine, "step", failing_step)
    return calls


def _inputs(tmp_path: Path, n: int) -> list[EngineInput]:
    pcm = (0.1 * np.sin(np.arange(FRAMES * FRAME_SIZE) / 20)).astype(np.float32)
    config = SessionConfig(model="tiny", seed=7)
    return [EngineInput(pcm, config, f"job{i}", {}, tmp_path / f"job{i}") for i in range(n)]


def _check_cut_short(folder: Path) -> None:
    rec = Recording.load(folder)
    assert rec.cut_short and "engine error: RuntimeError: CUDA error" in rec.meta["cut_short"]
    assert len(rec.metrics) == FAIL_AT - 1  # every frame stepped before the failure is kept


def test_a_failing_step_leaves_the_running_recording_saved_cut_short(
    engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _failing(engine, monkeypatch)
    with pytest.raises(RuntimeError, match="illegal memory access"):
        run_all_on_engine(engine, _inputs(tmp_path, 1))
    _check_cut_short(tmp_path / "job0")


def test_a_failing_batched_step_saves_every_running_slot_cut_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_path: Path
) -> None:
    from jmoshi_nb.model.batch_engine import BatchEngine

    engine = BatchEngine.load("tiny", slots=2, seed=42)
    _failing(engine, monkeypatch)
    with pytest.raises(RuntimeError, match="illegal memory access"):
        run_all_on_engine(engine, _inputs(tmp_path, 2))
    for i in range(2):
        _check_cut_short(tmp_path / f"job{i}")
