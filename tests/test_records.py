"""Recordings streamed to disk: a killed run leaves a folder that loads, marked as cut short."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jmoshi_nb.core.audio import FRAME_SIZE, SAMPLE_RATE
from jmoshi_nb.core.config import SessionConfig
from jmoshi_nb.core.record_writer import PART_FILES
from jmoshi_nb.core.recording import Recording

REPO = Path(__file__).resolve().parents[1]


def _fill(rec: Recording, n: int, start: int = 0) -> None:
    """``n`` frames: a distinct tone level per frame on each side, text every 5th frame."""
    for i in range(start, start + n):
        rec.add_user(np.full(FRAME_SIZE, 0.001 * (i + 1), np.float32))
        rec.add_model(np.full(FRAME_SIZE, -0.001 * (i + 1), np.float32))
        if i % 5 == 0:
            rec.add_text(i, 100 + i, f"w{i}")
        rec.add_metrics({"frame": i, "total_ms": 1.0, "text_token": 100 + i})


def _wait_flushed(folder: Path, frames: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = folder / "events.jsonl"
        if path.exists() and path.read_text().count('"metrics"') >= frames:
            return
        time.sleep(0.05)
    raise TimeoutError("the writer did not flush")


def test_streamed_then_saved_equals_the_in_memory_recording(tmp_path: Path) -> None:
    rec = Recording(config=SessionConfig(model="tiny", seed=5))
    rec.meta["seed"] = 5
    out = tmp_path / "run"
    rec.stream_to(out)
    head = json.loads((out / "session.json").read_text())
    assert head["meta"]["state"] == "recording" and head["config"]["seed"] == 5 and head["meta"]["versions"]
    rec.add_params(0, {"temp": 0.7}, 5)
    _fill(rec, 30)
    rec.save(out)
    assert not any((out / name).exists() for name in PART_FILES.values())
    back = Recording.load(out)
    assert not back.cut_short and not back.empty
    assert back.meta["state"] == "complete" and back.meta["frames"] == 30
    assert [e.text for e in back.text] == [e.text for e in rec.text]
    assert len(back.metrics) == 30 and back.params[0]["params"] == {"temp": 0.7}
    np.testing.assert_allclose(back.user_pcm, rec.user_pcm, atol=1e-4)
    np.testing.assert_allclose(back.model_pcm, rec.model_pcm, atol=1e-4)
    kinds = [json.loads(line)["type"] for line in (out / "events.jsonl").read_text().splitlines()]
    assert kinds[:3] == ["params", "metrics", "text"] or kinds[:2] == ["params", "text"]  # in the order they happened


def test_a_folder_cut_mid_stream_loads_what_was_flushed(tmp_path: Path) -> None:
    rec = Recording(config=SessionConfig(model="tiny"))
    out = tmp_path / "cut"
    writer = rec.stream_to(out)
    _fill(rec, 25)
    _wait_flushed(out, 25)
    # The process dies here: nothing saves, the writer never closes; a torn last line is on disk.
    with (out / "events.jsonl").open("a") as fh:
        fh.write('{"type": "metrics", "fra')
    back = Recording.load(out)
    assert back.cut_short and "did not finish" in back.meta["cut_short"]
    assert len(back.metrics) == 25 and [e.frame for e in back.text] == [0, 5, 10, 15, 20]
    assert len(back.user_pcm) == 25 * FRAME_SIZE and len(back.model_pcm) == 25 * FRAME_SIZE
    np.testing.assert_allclose(back.user_pcm[-FRAME_SIZE:], 0.025, atol=1e-4)
    assert back.stereo().shape == (25 * FRAME_SIZE, 2)
    writer.close()


def test_old_format_folders_still_load(tmp_path: Path) -> None:
    rec = Recording(config=SessionConfig(model="tiny"))
    _fill(rec, 10)
    rec.save(tmp_path / "old")  # never streamed: save writes the whole folder as it always did
    doc = json.loads((tmp_path / "old" / "session.json").read_text())
    del doc["meta"]["state"]  # a folder saved before streaming existed
    (tmp_path / "old" / "session.json").write_text(json.dumps(doc))
    back = Recording.load(tmp_path / "old")
    assert not back.cut_short and len(back.metrics) == 10 and back.duration == pytest.approx(10 * 0.08)


def test_an_empty_recording_saves_loads_and_says_so(tmp_path: Path) -> None:
    rec = Recording(config=SessionConfig(model="tiny"))
    assert rec.empty
    rec.save(tmp_path / "empty")
    back = Recording.load(tmp_path / "empty")
    assert back.empty and back.duration == 0 and back.metrics == [] and not back.cut_short
    streamed = Recording()
    streamed.stream_to(tmp_path / "empty2")
    streamed.save(tmp_path / "empty2")
    assert Recording.load(tmp_path / "empty2").empty


def test_a_folder_that_is_not_a_recording_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(FileNotFoundError, match="session.json is missing"):
        Recording.load(tmp_path / "x")
    (tmp_path / "x" / "session.json").write_text(json.dumps({"meta": {}}))
    with pytest.raises(FileNotFoundError, match="audio.wav is missing"):
        Recording.load(tmp_path / "x")


def test_sweeps_stream_each_job_into_its_folder(engine, speech_pcm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from jmoshi_nb.research.engine_run import run_on_engine

    out = tmp_path / "job"
    rec = run_on_engine(engine, speech_pcm[:SAMPLE_RATE], SessionConfig(model="tiny", seed=1), out=out)
    assert rec.streaming_to == out
    _wait_flushed(out, len(rec.metrics))
    assert Recording.load(out).cut_short  # not saved yet: the folder says the run has not finished
    rec.save(out)
    back = Recording.load(out)
    assert not back.cut_short and len(back.metrics) == len(rec.metrics) and back.meta["seed"] == 1


def test_a_real_run_killed_with_sigkill_loads_up_to_a_second_before_the_kill(speech_pcm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``jmoshi-nb run`` (real time, tiny model, its own server) killed part-way, then loaded."""
    from jmoshi_nb.core.audio import write_wav

    long_input = write_wav(tmp_path / "long.wav", np.tile(speech_pcm, int(np.ceil(20 * SAMPLE_RATE / len(speech_pcm)))))
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jmoshi_nb.cli", "run", str(long_input), "--out", str(out), "--seed", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        user_part = out / PART_FILES["user"]
        deadline = time.monotonic() + 120
        while not (user_part.exists() and user_part.stat().st_size > 44):  # the first user audio is on disk
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "the run did not start streaming"
            time.sleep(0.02)
        first_audio = time.monotonic()
        _wait_flushed(out, 10, timeout=60)
        seen = (out / "events.jsonl").read_text().count('"metrics"')
        time.sleep(1.5)
        assert proc.poll() is None, "the run ended before the kill: use a longer input"
        killed_at = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert not (out / "audio.wav").exists()
    back = Recording.load(out)
    assert back.cut_short
    assert back.config is not None and back.config.seed == 2 and back.meta["seed"] == 2 and back.session["model"]
    assert len(back.metrics) >= seen
    # The client sends in real time from its first frame: what it had sent 1 s before the kill is on disk.
    assert len(back.user_pcm) / SAMPLE_RATE >= (killed_at - first_audio) - 1.0
    assert len(back.model_pcm) >= len(back.metrics) * FRAME_SIZE - 2 * FRAME_SIZE
    assert back.stereo().shape[1] == 2


def test_notebook_session_streams_to_out_and_stop_completes_it(engine, speech_pcm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from jmoshi_nb.core.config import Sampling
    from jmoshi_nb.notebook.session import start
    from jmoshi_nb.serve.backends import LocalServer

    engine.reset(Sampling(), 42)
    out = tmp_path / "nb"
    with LocalServer(engine=engine) as srv:
        s = start(url=srv.url, config=SessionConfig(model="tiny", seed=4), out=out)
        try:
            s.play_wav(speech_pcm[: 10 * FRAME_SIZE], realtime=False, wait=True)
            _wait_flushed(out, 10)
            mid = Recording.load(out)  # while the session runs, the folder already reads
            assert mid.cut_short and len(mid.metrics) == 10 and mid.meta["seed"] == 4
        finally:
            rec = s.stop()
    back = Recording.load(out)
    assert not back.cut_short and len(back.metrics) == len(rec.metrics) == 10
    assert back.meta["notebook"]["backend"] == "url"
