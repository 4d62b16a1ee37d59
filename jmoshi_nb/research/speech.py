"""Real Japanese speech made offline, for tests, demos and the fake microphone.

``pyopenjtalk-plus`` synthesizes with its bundled dictionary and HTS voice (no download); the result
is resampled to the kit's 24 kHz. ``dialogue_wav`` builds a two-speaker stereo file with known
turn boundaries for the turn-taking tools.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np

from ..core.audio import SAMPLE_RATE, resample, write_wav

DEFAULT_LINES = (
    "こんにちは、今日はいい天気ですね。",
    "最近、何か面白いことはありましたか。",
    "週末に友達と京都へ行ってきました。",
)


def synthesize(text: str, speed: float = 1.0, half_tone: float = 0.0) -> np.ndarray:
    """Japanese text -> 24 kHz mono float32 speech (peak-normalised to 0.7)."""
    # pyopenjtalk-plus prints a notice about optional onnxruntime on import: keep stdout clean.
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(io.StringIO()):
        try:
            import pyopenjtalk
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ImportError("speech synthesis needs pyopenjtalk-plus: pip install 'jmoshi-nb[speech]'") from exc
        wav, rate = pyopenjtalk.tts(text, speed=speed, half_tone=half_tone)
    pcm = resample(np.asarray(wav, dtype=np.float64) / 32768.0, int(rate), SAMPLE_RATE)
    peak = float(np.abs(pcm).max()) or 1.0
    return (pcm * (0.7 / peak)).astype(np.float32)


def speech_wav(
    path: str | Path, lines: tuple[str, ...] | list[str] = DEFAULT_LINES, pause_s: float = 0.6
) -> Path:
    """Write a mono 24 kHz WAV of ``lines`` spoken one after another with pauses between them."""
    silence = np.zeros(int(pause_s * SAMPLE_RATE), dtype=np.float32)
    parts: list[np.ndarray] = []
    for line in lines:
        parts += [synthesize(line), silence]
    return write_wav(path, np.concatenate(parts))


def dialogue_wav(
    path: str | Path,
    turns: list[tuple[str, str]] | None = None,
    gap_s: float = 0.5,
) -> tuple[Path, list[tuple[float, float, str]]]:
    """A stereo dialogue (left = "A"/model side, right = "B"/user side) and its spoken intervals.

    ``turns`` is a list of (speaker "A" | "B", text); returns the path and ``[(start, end, speaker)]``.
    """
    turns = turns or [("B", DEFAULT_LINES[0]), ("A", "はい、そうですね。"), ("B", DEFAULT_LINES[1])]
    gap = int(gap_s * SAMPLE_RATE)
    pos = gap
    chunks: list[tuple[int, np.ndarray, str]] = []
    for speaker, text in turns:
        if speaker not in ("A", "B"):
            raise ValueError(f"speaker must be 'A' or 'B', got {speaker!r}")
        pcm = synthesize(text)
        chunks.append((pos, pcm, speaker))
        pos += len(pcm) + gap
    out = np.zeros((pos, 2), dtype=np.float32)
    intervals = []
    for start, pcm, speaker in chunks:
        ch = 0 if speaker == "A" else 1
        out[start : start + len(pcm), ch] = pcm
        intervals.append((start / SAMPLE_RATE, (start + len(pcm)) / SAMPLE_RATE, speaker))
    return write_wav(path, out), intervals


def looped_speech(n_frames: int, path: str | Path | None = None) -> np.ndarray:
    """``n_frames`` 80 ms frames of the default Japanese speech, looped (benchmarks' input).

    Written once to ``path`` (default: the system's temp folder). Without pyopenjtalk, seeded noise
    of the same length stands in, so a benchmark still runs.
    """
    import tempfile

    from ..core.audio import FRAME_SIZE, read_wav

    try:
        pcm = read_wav(speech_wav(path or Path(tempfile.gettempdir()) / "jmoshi-bench-input.wav"))
    except ImportError:
        pcm = (np.random.default_rng(0).standard_normal(FRAME_SIZE * n_frames) * 0.1).astype(np.float32)
    reps = int(np.ceil(n_frames * FRAME_SIZE / len(pcm)))
    return np.tile(pcm, reps)[: n_frames * FRAME_SIZE]
