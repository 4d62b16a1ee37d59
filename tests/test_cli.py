"""The command line, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from jmoshi_nb.core.recording import Recording


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jmoshi_nb.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_run_writes_a_recording(speech_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs" / "first"
    res = cli("run", str(speech_path), "--fast", "--out", str(out), "--seed", "3", "--temp", "0.6")
    assert res.returncode == 0, res.stderr
    assert "frame time: p50" in res.stdout
    rec = Recording.load(out)
    assert rec.config is not None and rec.config.seed == 3 and rec.config.sampling.temp == 0.6
    assert rec.metrics and all(m["params"]["temp"] == 0.6 for m in rec.metrics)
    assert rec.stereo().shape[1] == 2
    assert json.loads((out / "session.json").read_text())["meta"]["input"] == str(speech_path)


def test_run_realtime_paces_at_80ms(speech_path: Path, tmp_path: Path) -> None:
    """Real-time mode sends one frame per 80 ms: the session lasts at least the audio's length."""
    import time

    from jmoshi_nb.core.audio import read_wav

    pcm = read_wav(speech_path)[: 24000 * 2]
    short = tmp_path / "short.wav"
    from jmoshi_nb.core.audio import write_wav

    write_wav(short, pcm)
    t = time.monotonic()
    res = cli("run", str(short), "--out", str(tmp_path / "rt"))
    assert res.returncode == 0, res.stderr
    assert time.monotonic() - t >= 2.0


def test_bad_inputs_exit_with_a_named_error(tmp_path: Path) -> None:
    res = cli("run", str(tmp_path / "missing.wav"), "--fast")
    assert res.returncode == 2 and "no such audio file" in res.stderr
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF....not a wav")
    res = cli("run", str(junk), "--fast")
    assert res.returncode == 2 and "not a readable audio file" in res.stderr
    res = cli("run", str(junk), "--temp", "7")
    assert res.returncode == 2 and "temp=7.0 is out of range: allowed 0.0..5.0" in res.stderr
    res = cli("serve", "--model", "not-a-model")
    assert res.returncode == 2 and "unknown model 'not-a-model'" in res.stderr


def test_make_tiny(tmp_path: Path) -> None:
    res = cli("make-tiny", str(tmp_path / "tiny"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "tiny" / "config.json").exists() and "model.safetensors" in res.stdout


def _short_wav(path: Path, seconds: float = 0.4, freq: float = 220.0) -> Path:
    import numpy as np

    from jmoshi_nb.core.audio import SAMPLE_RATE, write_wav

    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return write_wav(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32))


def test_sweep_writes_the_recordings_and_the_table_of_jmoshi_nb_sweep(tmp_path: Path) -> None:
    import pandas as pd

    import jmoshi_nb

    inputs = [_short_wav(tmp_path / "a.wav"), _short_wav(tmp_path / "b.wav", freq=330.0)]
    grid = tmp_path / "grid.yaml"
    grid.write_text("temp: [0.6, 1.0]\ntop_k: [50]\n", encoding="utf-8")
    out = tmp_path / "sweep"
    res = cli("sweep", str(grid), *map(str, inputs), "--out", str(out), "--batch-size", "2")
    assert res.returncode == 0, res.stderr
    assert "sweep (local, batched)" in res.stderr  # the progress bar
    table = pd.read_csv(out / "sweep.csv")
    df = jmoshi_nb.sweep({"temp": [0.6, 1.0], "top_k": [50]}, [str(p) for p in inputs], out_dir=tmp_path / "lib",
                         progress=False, batch_size=2)  # fmt: skip
    assert list(table.columns) == list(df.columns)
    assert list(table["run"]) == list(df["run"]) == ["000-a", "000-b", "001-a", "001-b"]
    assert list(table["temp"]) == [0.6, 0.6, 1.0, 1.0] and set(table["top_k"]) == {50}
    for run in df["run"]:  # the same runs as the library's: same settings, seed and input, same tokens
        assert Recording.load(out / run).frame_tokens() == Recording.load(tmp_path / "lib" / run).frame_tokens()


def test_sweep_bad_input_exits_2_naming_the_problem(tmp_path: Path) -> None:
    wav = _short_wav(tmp_path / "a.wav")
    grid = tmp_path / "grid.yaml"
    out = tmp_path / "out"

    def sweep(grid_text: str, *extra: str, inputs: tuple[str, ...] = (str(wav),)) -> subprocess.CompletedProcess[str]:
        grid.write_text(grid_text, encoding="utf-8")
        return cli("sweep", str(grid), *inputs, "--out", str(out), *extra)

    res = sweep("tmp: [0.6]\n")
    assert res.returncode == 2 and "unknown parameter(s) tmp" in res.stderr
    res = sweep("")
    assert res.returncode == 2 and "the grid is empty" in res.stderr
    res = sweep("temp: []\n")
    assert res.returncode == 2 and "temp must be a non-empty list" in res.stderr
    res = sweep("temp: [0.6]\n", inputs=(str(wav), str(tmp_path / "missing.wav")))
    assert res.returncode == 2 and "no such input file" in res.stderr and "missing.wav" in res.stderr
    res = sweep("temp: [0.6]\n", "--batch-size", "0")
    assert res.returncode == 2 and "--batch-size 0" in res.stderr and "out of range" in res.stderr
    res = sweep("seed: [" + ", ".join(map(str, range(10_001))) + "]\n")
    assert res.returncode == 2 and "10,001 jobs" in res.stderr and "--yes" in res.stderr
    assert not out.exists()  # nothing ran
