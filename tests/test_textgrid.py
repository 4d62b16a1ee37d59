"""Praat TextGrid export: tiers at known times, read back with praatio; CLI and whole-sweep export."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from praatio import textgrid as tgio
from test_analysis import MODEL_SPANS, USER_SPANS, track, vowel

from jmoshi_nb.core.recording import Recording
from jmoshi_nb.research.textgrid import TEXTGRID_NAME, export_textgrids, recording_folders, save_textgrid

REPO = Path(__file__).resolve().parents[1]


def recording() -> Recording:
    """5 s: speech placed at MODEL_SPANS / USER_SPANS, two phrases of text, two parameter settings."""
    rec = Recording()
    rec.add_model(track(5.0, [(s, vowel(d, 110)) for s, d in MODEL_SPANS]))
    rec.add_user(track(5.0, [(s, vowel(d, 210, 0.2)) for s, d in USER_SPANS]))
    rec.add_params(0, {"temp": 0.8, "top_k": 250}, 7)
    for frame, piece in [(10, "こん"), (11, "にち"), (12, "は"), (40, "▁hello"), (41, " world"), (48, "!")]:
        rec.add_text(frame, 1, piece.replace("▁", " "))
    rec.add_params(25, {"temp": 0.5, "top_k": 250}, None)
    for frame in range(62):
        rec.add_metrics({"frame": frame, "text_token": 3})
    return rec


def read(path: Path) -> tgio.Textgrid:
    return tgio.openTextgrid(str(path), includeEmptyIntervals=False)


def test_tiers_at_known_times_read_back_with_praatio(tmp_path: Path) -> None:
    path = save_textgrid(recording(), tmp_path / "a.TextGrid")
    grid = read(path)
    assert grid.tierNames == ("user", "model", "model text", "params")
    assert grid.minTimestamp == 0 and grid.maxTimestamp == pytest.approx(5.0)
    for name, spans in (("user", USER_SPANS), ("model", MODEL_SPANS)):
        entries = grid.getTier(name).entries
        assert [e.label for e in entries] == ["IPU"] * 3
        for e, (start, seconds) in zip(entries, spans, strict=True):
            assert e.start == pytest.approx(start, abs=0.03) and e.end == pytest.approx(start + seconds, abs=0.03)
    words = grid.getTier("model text").entries
    # pieces 80 ms apart join; the 0.48 s pause after "world" starts a new span
    assert [(w.label, round(w.start, 2), round(w.end, 2)) for w in words] == [
        ("こんにちは", 0.8, 1.04),
        ("hello world", 3.2, 3.36),
        ("!", 3.84, 3.92),
    ]
    points = grid.getTier("params").entries
    want = [(0.0, "temp=0.8 top_k=250 seed=7"), (2.0, "temp=0.5 top_k=250")]
    assert [(round(p.time, 2), p.label) for p in points] == want


def test_cli_default_path_out_and_bad_folders(tmp_path: Path) -> None:
    folder = recording().save(tmp_path / "run")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
        return subprocess.run([sys.executable, "-m", "jmoshi_nb.cli", "textgrid", *args], capture_output=True,
                              text=True, env=env, timeout=120)  # fmt: skip

    res = cli(str(folder))
    assert res.returncode == 0, res.stderr
    assert read(folder / TEXTGRID_NAME).getTier("model text").entries[0].label == "こんにちは"
    res = cli(str(folder), "--out", str(tmp_path / "x" / "mine.TextGrid"))
    assert res.returncode == 0 and (tmp_path / "x" / "mine.TextGrid").exists()
    (tmp_path / "empty").mkdir()
    res = cli(str(tmp_path / "empty"))
    assert res.returncode == 2 and "session.json is missing" in res.stderr
    (folder / "audio.wav").unlink()
    res = cli(str(folder))
    assert res.returncode == 2 and "audio.wav is missing" in res.stderr


def test_a_sweep_or_benchmark_tree_exports_in_one_call(tmp_path: Path) -> None:
    rec = recording()
    for sub in ("sweep/cool", "sweep/warm", "bench/turn_taking/001", "bench/backchannel/002"):
        rec.save(tmp_path / sub)
    (tmp_path / "bench" / "scores.json").write_text("{}")
    written = export_textgrids(tmp_path)
    assert sorted(str(p.relative_to(tmp_path)) for p in written) == [
        "bench/backchannel/002", "bench/turn_taking/001", "sweep/cool", "sweep/warm"
    ]  # fmt: skip
    assert all(read(p).maxTimestamp == pytest.approx(5.0) for p in written.values())
    assert recording_folders(tmp_path / "sweep" / "cool") == [tmp_path / "sweep" / "cool"]
    (tmp_path / "not_a_run").mkdir()
    with pytest.raises(FileNotFoundError, match="session.json is missing"):
        export_textgrids(tmp_path / "not_a_run")


def test_an_empty_recording_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        save_textgrid(Recording(), tmp_path / "e.TextGrid")
