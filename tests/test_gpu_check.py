"""benchmarks/gpu_check.py on CPU with the tiny checkpoint: every section runs, the table has every row."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from scripts import load_benchmark


@pytest.fixture(scope="module")
def check() -> ModuleType:
    return load_benchmark("gpu_check")


def _table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]  # without the header


def test_cpu_tiny_run_fills_every_row_and_writes_the_table(
    check: ModuleType,
    tiny_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    measured: list[int] = []
    real_loop = check.engine_batched_loop

    def counted(s: Any, batch: int, frames: list[Any]) -> list[float]:
        measured.append(batch)
        return real_loop(s, batch, frames)  # the kit's BatchEngine on the tiny model

    monkeypatch.setattr(check, "engine_batched_loop", counted)
    argv = ["--tiny", "--frames", "4", "--warmup", "1", "--change-at", "3", "--change-frames", "5"]
    argv += ["--switch-at", "3", "--after-switch", "2", "--batches", "1,2", "--batch-frames", "2"]
    argv += ["--batch-warmup", "1", "--mimi-frames", "2", "--out-dir", str(tmp_path)]
    assert check.main(argv) == 0
    out = capsys.readouterr().out
    rows = _table_rows(out)
    assert [r[0] for r in rows] == check.row_names([1, 2])
    by_name = {r[0]: r for r in rows}
    for name in (check.ROW_BARE, check.ROW_ENGINE, check.BATCH_ROW.format(b=1), check.ROW_MIMI_ENC, check.ROW_MIMI_DEC):
        p50, p99 = float(by_name[name][1]), float(by_name[name][2])
        assert 0 < p50 <= p99
    assert by_name[check.ROW_CARD][3].startswith("CPU")
    assert "tiny checkpoint" in by_name[check.ROW_SETUP][3] and "CUDA graphs off" in by_name[check.ROW_SETUP][3]
    assert by_name[check.ROW_CHANGE][3].startswith("frame 3 (set before frame 3)")  # takes effect at once
    assert by_name[check.ROW_LIVE][3].startswith("PASS")
    for b in (1, 2):
        assert "batched engine: p50" in by_name[check.BATCH_ROW.format(b=b)][3]
    assert measured == [1, 2]  # after each, moshi's loop and the single engine still ran on the same models
    assert "CPU resident (RSS)" in by_name[check.ROW_MEMORY][3]

    (written,) = tmp_path.glob("gpu-check-cpu-*.md")
    assert _table_rows(written.read_text()) == rows
    result = json.loads(written.with_suffix(".json").read_text())
    assert [b["batch"] for b in result["batched"]] == [1, 2]
    assert result["change"]["took_effect_at"] == 3 and result["live_params"]["pass"] is True
    assert result["peak_bytes"] >= result["peak_bytes_single"] > 0


def test_a_batch_size_past_the_section_budget_is_skipped_and_said(check: ModuleType) -> None:
    rows = check.batched(None, [1, 4], [], 0, check.Budget(0.0))  # no time left: nothing is run
    assert [r["batch"] for r in rows] == [1, 4] and all("time budget" in r["skipped"] for r in rows)


def test_without_cuda_it_runs_the_tiny_model_on_cpu(check: ModuleType) -> None:
    import torch

    args = check.parse_args([])
    if not torch.cuda.is_available():
        assert args.device == "cpu" and args.tiny is True
    assert args.batches == [1, 4, 8, 16, 32]
    assert check.parse_args(["--device", "cpu"]).tiny is True  # the random 7B is for GPUs only
