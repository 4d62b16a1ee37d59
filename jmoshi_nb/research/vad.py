"""Voice activity of one channel, for turn-taking and the benchmark: who speaks when.

``voice_activity`` gives one bool per hop, ``speech_segments`` the utterances in seconds. Detectors:

* ``"webrtc"`` (default): the WebRTC VAD gated by level (``frame_levels``, ``auto_gate_db``),
  10 ms hops. No model, deterministic, and on clean speech (synthesized users, the model's own output,
  digital silence between utterances) its boundaries fall within a few hops of the truth.
* ``"silero"``: Silero VAD (the ``silero-vad`` package ships its model, runs offline on CPU), with
  the package's default settings, as Full-Duplex-Bench uses it: for parity with FDB's published numbers.
  ``silero_segments`` gives its speech segments as they come, in seconds.
* ``"energy"``: the level gate alone.

Any function ``f(pcm, sample_rate, hop_s) -> bools`` works as well. The raw activity is then turned
into utterances as FDB v1.5 does: speech separated by less than ``merge_gap_s`` of silence is one
utterance, and utterances shorter than ``min_speech_s`` are dropped (clicks, VAD blips).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from ..core.audio import SAMPLE_RATE, resample

VADS = ("webrtc", "silero", "energy")
HOP_S = 0.01
MERGE_GAP_S = 0.5  # silence shorter than this inside a speaker's speech does not split an utterance
MIN_SPEECH_S = 0.1

Segment = tuple[float, float]
VadName = Literal["webrtc", "silero", "energy"]
VadFunction = Callable[[np.ndarray, int, float], np.ndarray]  # (pcm, sample_rate, hop_s) -> bools

VAD_RATE = 16000  # the WebRTC VAD takes 8/16/32/48 kHz; 16 kHz is its native band
GATE_MARGIN_DB = 12.0  # auto gate: this far above the noise floor...
GATE_RANGE_DB = (-60.0, -35.0)  # ...clipped to this range of dBFS


def frame_levels(pcm: np.ndarray, sample_rate: int, hop_s: float) -> np.ndarray:
    """RMS level in dBFS of each hop (the last one zero-padded); digital silence gives -120."""
    hop = round(sample_rate * hop_s)
    n = math.ceil(len(pcm) / hop)
    padded = np.zeros(n * hop, dtype=np.float64)
    padded[: len(pcm)] = pcm
    rms = np.sqrt(np.mean(padded.reshape(n, hop) ** 2, axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-6))


def auto_gate_db(levels: np.ndarray) -> float:
    """Gate threshold: the 10th percentile of the levels (noise floor) + 12 dB, within -60..-35 dBFS."""
    if not len(levels):
        return GATE_RANGE_DB[0]
    return float(np.clip(np.percentile(levels, 10) + GATE_MARGIN_DB, *GATE_RANGE_DB))


def _webrtc(pcm16k: np.ndarray, hop_s: float, mode: int) -> np.ndarray:
    try:
        import webrtcvad
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the WebRTC VAD is missing: pip install webrtcvad-wheels (or pass vad='energy' or a function)"
        ) from None
    hop = round(VAD_RATE * hop_s)
    if not webrtcvad.valid_rate_and_frame_length(VAD_RATE, hop):
        raise ValueError(f"the WebRTC VAD works on 10, 20 or 30 ms frames, got hop_s={hop_s}")
    n = math.ceil(len(pcm16k) / hop)
    ints = np.zeros(n * hop, dtype="<i2")
    ints[: len(pcm16k)] = np.round(np.clip(pcm16k, -1.0, 1.0) * 32767).astype("<i2")
    vad = webrtcvad.Vad(mode)
    data = ints.tobytes()
    step = 2 * hop
    return np.array([vad.is_speech(data[i * step : (i + 1) * step], VAD_RATE) for i in range(n)], dtype=bool)


def voice_activity(
    pcm: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    *,
    vad: VadName | VadFunction = "webrtc",
    hop_s: float = HOP_S,
    mode: int = 3,
    gate_db: float | Literal["auto"] | None = "auto",
) -> np.ndarray:
    """One bool per ``hop_s`` of mono ``pcm``: is someone speaking.

    Parameters
    ----------
    pcm, sample_rate:
        One channel, any rate.
    vad:
        ``"webrtc"`` (WebRTC VAD, aggressiveness ``mode`` 0..3, 3 = fewest false alarms), ``"energy"``
        (the level gate alone), ``"silero"`` (Silero VAD with the package's defaults, no gate: as
        Full-Duplex-Bench uses it) or a function ``f(pcm, sample_rate, hop_s) -> bools``.
    hop_s:
        The time step of the answer.
    mode:
        The WebRTC VAD's aggressiveness.
    gate_db:
        Frames below this level (dBFS) are silence whatever the VAD says; ``"auto"`` puts it 12 dB
        above the channel's noise floor (10th percentile of the frame levels), within -60..-35 dBFS;
        ``None`` turns the gate off (not allowed with ``vad="energy"``). Not used by ``"silero"``.

    Returns
    -------
    numpy.ndarray
        bools, one per ``hop_s``.
    """
    pcm = np.asarray(pcm, dtype=np.float32).ravel()
    if callable(vad):
        return np.asarray(vad(pcm, sample_rate, hop_s), dtype=bool).ravel()
    if vad == "silero":
        return silero_activity(pcm, sample_rate, hop_s)
    pcm16k = resample(pcm, sample_rate, VAD_RATE)
    levels = frame_levels(pcm16k, VAD_RATE, hop_s)
    gate = levels > (auto_gate_db(levels) if gate_db == "auto" else -np.inf if gate_db is None else gate_db)
    if vad == "energy":
        if gate_db is None:
            raise ValueError("vad='energy' needs a gate: gate_db='auto' or a level in dBFS")
        return gate
    if vad == "webrtc":
        speech = _webrtc(pcm16k, hop_s, mode)
        return speech[: len(gate)] & gate
    raise ValueError(f"unknown vad {vad!r}: one of {', '.join(VADS)} or a function (pcm, sample_rate, hop_s) -> bools")


@functools.lru_cache(maxsize=1)
def _silero() -> tuple[Any, Callable[..., Any]]:
    """(model, get_speech_timestamps) of the silero-vad package."""
    import torch

    threads = torch.get_num_threads()
    try:
        import silero_vad  # its import sets torch to 1 thread for the whole process...
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("vad='silero' needs the silero-vad package: pip install 'jmoshi-nb[bench]'") from None
    finally:
        torch.set_num_threads(threads)  # ...the engine in this process keeps its threads
    return silero_vad.load_silero_vad(), silero_vad.get_speech_timestamps


def silero_segments(pcm: np.ndarray, sample_rate: int, **options: Any) -> list[Segment]:
    """Silero VAD's speech segments of one channel, in seconds, as the package gives them.

    Parameters
    ----------
    pcm, sample_rate:
        One channel, any rate (resampled to 16 kHz, Silero's rate).
    **options:
        Passed to ``silero_vad.get_speech_timestamps`` (``threshold``, ``min_speech_duration_ms``,
        ``min_silence_duration_ms``, ``speech_pad_ms``...); none: the package's defaults, as
        Full-Duplex-Bench uses them.

    Returns
    -------
    list[tuple[float, float]]
        ``(start_s, end_s)`` of each speech segment, in order; no merging, no minimum length.
    """
    return _silero_segments_16k(resample(np.asarray(pcm, dtype=np.float32).ravel(), sample_rate, VAD_RATE), **options)


def _silero_segments_16k(pcm16k: np.ndarray, **options: Any) -> list[Segment]:
    import torch

    model, get_speech_timestamps = _silero()
    with torch.no_grad():
        stamps = get_speech_timestamps(
            torch.from_numpy(np.ascontiguousarray(pcm16k)), model, sampling_rate=VAD_RATE, **options
        )
    return [(s["start"] / VAD_RATE, s["end"] / VAD_RATE) for s in stamps]


def silero_activity(pcm: np.ndarray, sample_rate: int, hop_s: float = HOP_S) -> np.ndarray:
    """Silero VAD (package defaults) as one bool per ``hop_s``."""
    pcm16k = resample(np.asarray(pcm, dtype=np.float32).ravel(), sample_rate, VAD_RATE)
    n = int(np.ceil(len(pcm16k) / (VAD_RATE * hop_s)))
    active = np.zeros(n, dtype=bool)
    for start, end in _silero_segments_16k(pcm16k):
        active[int(round(start / hop_s)) : int(round(end / hop_s))] = True
    return active


def merge(
    segments: list[Segment], merge_gap_s: float = MERGE_GAP_S, min_speech_s: float = MIN_SPEECH_S
) -> list[Segment]:
    """Join segments less than ``merge_gap_s`` apart, then drop those shorter than ``min_speech_s``."""
    out: list[list[float]] = []
    for start, end in sorted(segments):
        if out and start - out[-1][1] < merge_gap_s - 1e-9:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(round(s, 4), round(e, 4)) for s, e in out if e - s >= min_speech_s - 1e-9]


def segments_from_activity(active: np.ndarray, hop_s: float = HOP_S) -> list[Segment]:
    edges = np.diff(np.concatenate([[0], np.asarray(active, dtype=np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(float(s * hop_s), float(e * hop_s)) for s, e in zip(starts, ends, strict=True)]


def speech_segments(
    pcm: np.ndarray,
    sample_rate: int,
    vad: VadName | VadFunction = "webrtc",
    *,
    merge_gap_s: float = MERGE_GAP_S,
    min_speech_s: float = MIN_SPEECH_S,
    hop_s: float = HOP_S,
) -> list[Segment]:
    """The utterances of one channel as ``[(start_s, end_s)]``, merged across short gaps."""
    active = voice_activity(pcm, sample_rate, vad=vad, hop_s=hop_s)
    return merge(segments_from_activity(active, hop_s), merge_gap_s, min_speech_s)
