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


def _table_rows(text: str, which: int = 0) -> list[list[str]]:
    """The rows (without the header and its rule) of the ``which``-th markdown table in ``text``."""
    tables: list[list[str]] = []
    previous = ""
    for line in text.splitlines():
        if line.startswith("|"):
            if not previous.startswith("|"):
                tables.append([])
            tables[-1].append(line)
        previous = line
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in tables[which][2:]]  # no header


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
    argv += ["--batch-warmup", "1", "--mimi-frames", "2", "--bandwidth-gbps", "20", "--out-dir", str(tmp_path)]
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

    estimate = _table_rows(out, 1)  # the A10G estimate, here from the 20 GB/s given for the CPU
    assert [int(r[0]) for r in estimate] == [1, 2]
    assert "sessions per container = " in out

    (written,) = tmp_path.glob("gpu-check-cpu-*.md")
    assert _table_rows(written.read_text()) == rows
    assert _table_rows(written.read_text(), 1) == estimate
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


def test_a10g_estimate_follows_the_arithmetic_of_results_md(check: ModuleType) -> None:
    """J-Moshi's 7B: W = 7,687,729,152 bf16 parameters, K = 2·32·32·3000·128·2 bytes; measured on an H100 SXM."""
    w, k = 7_687_729_152 * 2, 2 * 32 * 32 * 3000 * 128 * 2
    gib = check.GIB
    rows = [
        {"batch": 1, "engine": {"p99": 20.0}, "peak_bytes": int(17 * gib)},
        {"batch": 4, "engine": {"p99": 22.0}, "peak_bytes": int(20 * gib)},
        {"batch": 8, "engine": {"p99": 25.0}, "peak_bytes": int(27 * gib)},
        {"batch": 16, "skipped": "out of memory", "peak_bytes": 0},
    ]
    assert check.card_bandwidth_gbps("NVIDIA H100 80GB HBM3") == 3350.0
    assert check.card_bandwidth_gbps("NVIDIA A100-SXM4-80GB") == 2039.0 and check.card_bandwidth_gbps("CPU") is None
    e = check.a10g_estimate(rows, w, k, 3350.0)
    one, four, eight = e["rows"]
    assert round(one["bytes_read"] / 1e9, 2) == 16.95  # RESULTS.md's table: 16.95 GB, floors 28.2 / 5.06 ms
    assert round(one["floor_a10g_ms"], 1) == 28.2 and round(one["floor_measured_ms"], 2) == 5.06
    assert one["t_opt_ms"] == pytest.approx(one["floor_a10g_ms"] + 20.0 - one["floor_measured_ms"])
    assert one["t_max_ms"] == pytest.approx(20.0 * 3350 / 600)
    assert round(four["floor_a10g_ms"], 1) == 36.1 and four["t_opt_ms"] < check.TIME_LIMIT_MS
    assert four["fits_memory"] and not eight["fits_memory"]  # 27 GiB > 21 GiB usable
    assert (e["n_mem"], e["n_time"], e["sessions_per_container"]) == (4, 8, 4)
    assert e["pessimistic_bound_holds"] is False  # 20 ms × 3350/600 = 112 ms: confirm live
