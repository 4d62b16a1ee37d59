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
