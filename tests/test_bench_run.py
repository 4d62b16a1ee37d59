"""The benchmark's task set builder and runner, end to end on the tiny model (short items)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from jmoshi_nb.core.audio import FRAME_SIZE, SAMPLE_RATE, read_wav, write_wav
from jmoshi_nb.research.bench import TASKS, BenchError, build, run
from jmoshi_nb.research.vad import speech_segments

pytest.importorskip("pyopenjtalk")


def test_build_is_deterministic_and_timed(tmp_path: Path) -> None:
    tasks = ["pause_handling", "interruption"]
    a = build(tmp_path / "a", per_task=2, seed=3, tasks=tasks)
    b = build(tmp_path / "b", per_task=1, seed=3, tasks=tasks)
    c = build(tmp_path / "c", per_task=1, seed=4, tasks=tasks)
    for task in tasks:
        assert sorted(p.name for p in (a / task).iterdir()) == ["000", "001"]
        same = (a / task / "000" / "input.wav").read_bytes()
        assert same == (b / task / "000" / "input.wav").read_bytes()  # the set's size does not change an item
        assert same != (c / task / "000" / "input.wav").read_bytes()
    for item in (a / "pause_handling").iterdir():
        timing = json.loads((item / "timing.json").read_text(encoding="utf-8"))
        pcm = read_wav(item / "input.wav")
        assert len(pcm) % FRAME_SIZE == 0
        assert 1.0 <= timing["pause"][1] - timing["pause"][0] <= 2.5
        segs = speech_segments(pcm, SAMPLE_RATE)
        assert segs[-1][1] == pytest.approx(timing["user_end"], abs=0.05)
        assert segs[0][0] == pytest.approx(timing["user_segments"][0][0], abs=0.05)
    item = a / "interruption" / "000"
    timing = json.loads((item / "timing.json").read_text(encoding="utf-8"))
    assert len(read_wav(item / "model.wav")) == timing["forced_frames"] * FRAME_SIZE
    assert timing["forced_frames"] * FRAME_SIZE / SAMPLE_RATE <= timing["interrupt"][0]
    assert timing["model_answer_start"] < timing["interrupt"][0]
    with pytest.raises(BenchError, match="unknown task"):
        build(tmp_path / "d", per_task=1, tasks=["smalltalk"])


def _short_set(root: Path) -> Path:
    """One short item per task (about 1.6 s each): the runner's path, not the model's quality."""
    from jmoshi_nb.research.speech import synthesize

    hai = synthesize("はい、そうです。")[: int(1.2 * SAMPLE_RATE)]
    n = 20 * FRAME_SIZE
    for task in TASKS:
        folder = root / task / "000"
        write_wav(folder / "input.wav", np.pad(hai, (0, n - len(hai))))
        timing = {"task": task, "user_end": 1.2, "duration_s": 1.6}
        if task == "interruption":
            write_wav(folder / "model.wav", np.resize(hai, 8 * FRAME_SIZE))
            timing.update(forced_frames=8, interrupt=[0.64, 1.2], text=["教えてください。", "はい、そうです。"])
        if task == "pause_handling":
            timing.update(pause=[0.5, 0.9])
        (folder / "timing.json").write_text(json.dumps(timing), encoding="utf-8")
    return root


def assert_fdb_readable(run: Path) -> None:
    """Every file FDB's v1 evaluators open is in each item folder, and nothing they would take for an item."""
    for task in TASKS:
        folder = run / task
        assert all(p.is_dir() for p in folder.iterdir())  # the pause / turn-taking walkers list every entry
        assert [d for _, dirs, _ in os.walk(folder) for d in dirs] == sorted(p.name for p in folder.iterdir())
        for item in folder.iterdir():  # ...and the interruption walker takes every folder below for an item
            words = json.loads((item / "output.json").read_text(encoding="utf-8"))
            assert isinstance(words["text"], str) and words["source"] == "model text stream"
            assert all(len(c["timestamp"]) == 2 for c in words["chunks"])
            if task == "turn_taking":
                assert isinstance(json.loads((item / "turn_taking.json").read_text())[0]["timestamp"][0], float)
            if task == "pause_handling":
                assert json.loads((item / "pause.json").read_text())[0]["timestamp"] == [0.5, 0.9]
            if task == "interruption":
                meta = json.loads((item / "interrupt.json").read_text(encoding="utf-8"))[0]
                assert (meta["context"], meta["interrupt"], meta["timestamp"]) == \
                    ("教えてください。", "はい、そうです。", [0.64, 1.2])  # fmt: skip
                assert all(c["timestamp"][0] >= 1.2 for c in words["chunks"])  # only after the interruption
            if task == "backchannel":
                assert item.name.isdigit() and (item / "output.wav").exists()


def test_run_on_the_tiny_model_writes_outputs_recordings_and_scores(tmp_path: Path, engine) -> None:  # type: ignore[no-untyped-def]
    source = _short_set(tmp_path / "set")
    out = tmp_path / "run"
    scores = run(out, source=source, engine=engine, progress=False)
    assert set(scores) == set(TASKS)
    for task in TASKS:
        item = out / task / "000"
        assert read_wav(item / "output.wav").shape == read_wav(item / "input.wav").shape
        recorded = out / "_recordings" / task / "000"  # the kit's recording: outside the item folder
        events = [json.loads(line) for line in (recorded / "events.jsonl").read_text().splitlines()]
        metrics = [e for e in events if e["type"] == "metrics"]
        assert len(metrics) == 20
        session = json.loads((recorded / "session.json").read_text(encoding="utf-8"))
        assert session["meta"]["bench_task"] == task
        assert session["meta"]["forced"] is (task == "interruption")
        if task == "interruption":
            assert [m["forced"] for m in metrics] == [True] * 8 + [False] * 12
        summary = scores[task]["summary"]
        assert (summary["n"], summary["errors"]) == (1, 0)
        assert scores[task]["items"][0]["timing_source"] == "timing.json"
    assert json.loads((out / "scores.json").read_text(encoding="utf-8")) == scores
    assert_fdb_readable(out)
    info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert info["items"] == 4 and info["audio_s"] == pytest.approx(4 * 20 * FRAME_SIZE / SAMPLE_RATE)
    # Same engine, same config: the same tokens.
    again = run(tmp_path / "again", source=source, engine=engine, tasks=["turn_taking"], progress=False)
    assert set(again) == {"turn_taking"}
    first, second = out / "turn_taking/000/output.wav", tmp_path / "again/turn_taking/000/output.wav"
    assert first.read_bytes() == second.read_bytes()


def test_batched_run_gives_each_item_its_own_slot_forced_where_asked(tmp_path: Path, tiny_path: Path) -> None:
    """The set as slots of one batched engine: outputs, streamed recordings, the interruption item's
    channel forced for exactly its 8 frames, and the same outputs whatever the slot count."""
    from jmoshi_nb.model.batch_engine import BatchEngine

    source = _short_set(tmp_path / "set")
    runs = {}
    for slots in (4, 2):
        out = tmp_path / f"run{slots}"
        engine = BatchEngine.load("tiny", slots=slots, seed=42)
        scores = run(out, source=source, engine=engine, progress=False)
        assert set(scores) == set(TASKS) and all(scores[t]["summary"]["errors"] == 0 for t in TASKS)
        runs[slots] = out
    for task in TASKS:
        item = runs[4] / task / "000"
        assert read_wav(item / "output.wav").shape == read_wav(item / "input.wav").shape
        recorded = runs[4] / "_recordings" / task / "000"
        session = json.loads((recorded / "session.json").read_text(encoding="utf-8"))
        assert session["meta"]["state"] == "complete" and session["meta"]["forced"] is (task == "interruption")
        metrics = [json.loads(line) for line in (recorded / "events.jsonl").read_text().splitlines()]
        metrics = [m for m in metrics if m["type"] == "metrics"]
        assert len(metrics) == 20
        if task == "interruption":
            assert [m["forced"] for m in metrics] == [True] * 8 + [False] * 12
        assert (item / "output.wav").read_bytes() == (runs[2] / task / "000" / "output.wav").read_bytes()


def test_batch_size_is_checked(tmp_path: Path) -> None:
    from jmoshi_nb.core.config import ConfigError

    with pytest.raises(ConfigError, match="batch_size=0"):
        run(tmp_path / "x", source=_short_set(tmp_path / "set"), batch_size=0, progress=False)


def test_cli_bench_score(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from jmoshi_nb.cli import main

    source = _short_set(tmp_path / "set")
    for item in source.glob("*/000"):
        write_wav(item / "output.wav", np.zeros(20 * FRAME_SIZE, np.float32))
    (source / "turn_taking" / "000" / "input.wav").write_bytes(b"junk")
    assert main(["bench", "score", str(source)]) == 1  # an item failed: reported, the rest scored
    out, err = capsys.readouterr()
    assert "pause_handling" in out and "turn_taking/000" in err
    assert json.loads((source / "scores.json").read_text(encoding="utf-8"))["backchannel"]["summary"]["n"] == 1
    assert main(["bench", "score", str(tmp_path / "nothing")]) == 2


def test_sweep_with_the_benchmark_as_objective(tmp_path: Path, engine) -> None:  # type: ignore[no-untyped-def]
    import jmoshi_nb
    from jmoshi_nb.research.plots import plot_sweep_heatmap

    source = _short_set(tmp_path / "set")
    df = jmoshi_nb.sweep({"temp": [0.6, 1.0]}, [source], objective="bench", out_dir=tmp_path / "sweep",
                         engine=engine, tasks=["turn_taking", "backchannel"], limit=1, progress=False)  # fmt: skip
    assert list(df["temp"]) == [0.6, 1.0]
    for setting, row in df.set_index("setting").iterrows():
        scores = json.loads((tmp_path / "sweep" / str(setting) / "scores.json").read_text(encoding="utf-8"))
        assert row["turn_taking_TOR"] == scores["turn_taking"]["summary"]["TOR"]
        assert row["backchannel_backchannels_per_min"] == scores["backchannel"]["summary"]["backchannels_per_min"]
        assert np.isnan(row["interruption_TOR"])  # not run
    plot_sweep_heatmap(df, "turn_taking_TOR", x="temp", y="top_k")
    with pytest.raises(ValueError, match="out_dir"):
        jmoshi_nb.sweep({"temp": [0.6]}, [source], objective="bench")


def test_a_failing_item_is_named_and_the_others_run(tmp_path: Path, engine) -> None:  # type: ignore[no-untyped-def]
    source = _short_set(tmp_path / "set")
    broken = source / "turn_taking" / "001"
    broken.mkdir()
    (broken / "input.wav").write_bytes(b"RIFF junk")
    scores = run(tmp_path / "run", source=source, engine=engine, tasks=["turn_taking"], progress=False)
    items = {it["id"]: it for it in scores["turn_taking"]["items"]}
    assert "error" not in items["000"]
    assert "turn_taking/001" in items["001"]["error"]
    assert json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))["failed"] == ["turn_taking/001"]


def test_modal_executor_runs_the_items_as_sweep_jobs(tmp_path: Path, engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The Modal path goes through jobs.run_jobs; here its stand-in runs the jobs locally on the same engine."""
    import jmoshi_nb.research.jobs as sweeps

    calls = []
    real = sweeps.run_jobs

    def fake_run_jobs(jobs, executor="local", progress=True, **kwargs):  # type: ignore[no-untyped-def]
        calls.append((executor, [j.name for j in jobs]))
        pool = sweeps.EnginePool()
        pool.put("tiny", None, engine)
        return real(jobs, executor="local", progress=False, pool=pool)

    monkeypatch.setattr(sweeps, "run_jobs", fake_run_jobs)
    source = _short_set(tmp_path / "set")
    scores = run(tmp_path / "run", source=source, executor="modal", tasks=["turn_taking", "interruption"],
                 progress=False)  # fmt: skip
    assert calls == [("modal", ["interruption-000", "turn_taking-000"])]
    session = json.loads((tmp_path / "run/_recordings/interruption/000/session.json").read_text(encoding="utf-8"))
    assert session["meta"]["forced"] is False  # Modal's worker runs plain sessions
    assert scores["interruption"]["summary"]["n"] == 1


@pytest.mark.slow
def test_run_through_a_server(tmp_path: Path, server_url: str) -> None:
    source = _short_set(tmp_path / "set")
    scores = run(tmp_path / "run", source=source, url=server_url, tasks=["turn_taking"], progress=False)
    item = tmp_path / "run" / "turn_taking" / "000"
    assert read_wav(item / "output.wav").shape == read_wav(item / "input.wav").shape
    assert (tmp_path / "run" / "_recordings" / "turn_taking" / "000" / "events.jsonl").exists()
    assert scores["turn_taking"]["summary"]["n"] == 1


def test_cli_bench_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from jmoshi_nb.cli import main

    source = _short_set(tmp_path / "set")
    out = tmp_path / "run"
    code = main(["bench", "run", "--out", str(out), "--source", str(source), "--tasks", "turn_taking",
                 "--temp", "0.7", "--seed", "3", "--quiet"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "ran 1 items" in printed and "turn_taking" in printed
    config = json.loads((out / "run.json").read_text(encoding="utf-8"))["config"]
    assert (config["model"], config["sampling"]["temp"], config["seed"]) == ("tiny", 0.7, 3)
    assert (out / "turn_taking" / "000" / "output.wav").exists()
