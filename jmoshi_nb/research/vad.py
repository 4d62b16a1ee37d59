"""Speech segments of one channel: who speaks when, in seconds.

Two detectors, one interface (``speech_segments``):

* ``"webrtc"`` (default): the kit's WebRTC VAD gated by level (:func:`jmoshi_nb.research.turn_taking.voice_activity`),
  10 ms hops. No model, deterministic, and on clean speech (synthesized users, the model's own output,
  digital silence between utterances) its boundaries fall within a few hops of the truth.
* ``"silero"``: Silero VAD (the ``silero-vad`` package ships its model, runs offline on CPU), with
  the package's default settings, as Full-Duplex-Bench uses it: for parity with FDB's published numbers.

Any function ``f(pcm, sample_rate, hop_s) -> bools`` works as well. The raw activity is then turned
into utterances as FDB v1.5 does: speech separated by less than ``merge_gap_s`` of silence is one
utterance, and utterances shorter than ``min_speech_s`` are dropped (clicks, VAD blips).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from .turn_taking import VAD_RATE, voice_activity

VADS = ("webrtc", "silero", "energy")
HOP_S = 0.01
MERGE_GAP_S = 0.5  # silence shorter than this inside a speaker's speech does not split an utterance
MIN_SPEECH_S = 0.1

Segment = tuple[float, float]
VadName = Literal["webrtc", "silero", "energy"]
VadFunction = Callable[[np.ndarray, int, float], np.ndarray]


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


def silero_activity(pcm: np.ndarray, sample_rate: int, hop_s: float = HOP_S) -> np.ndarray:
    """Silero VAD (package defaults) as one bool per ``hop_s``."""
    import torch

    from ..core.audio import resample

    model, get_speech_timestamps = _silero()
    pcm16k = resample(np.asarray(pcm, dtype=np.float32), sample_rate, VAD_RATE)
    with torch.no_grad():
        stamps = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(pcm16k)), model, sampling_rate=VAD_RATE)
    n = int(np.ceil(len(pcm16k) / (VAD_RATE * hop_s)))
    active = np.zeros(n, dtype=bool)
    for s in stamps:
        active[int(round(s["start"] / VAD_RATE / hop_s)) : int(round(s["end"] / VAD_RATE / hop_s))] = True
    return active


def activity(
    pcm: np.ndarray, sample_rate: int, vad: VadName | VadFunction = "webrtc", hop_s: float = HOP_S
) -> np.ndarray:
    """One bool per ``hop_s`` of mono ``pcm``: is there speech."""
    if vad == "silero":
        return silero_activity(pcm, sample_rate, hop_s)
    if callable(vad) or vad in ("webrtc", "energy"):
        return voice_activity(pcm, sample_rate, vad=vad, hop_s=hop_s)
    raise ValueError(f"unknown vad {vad!r}: one of {', '.join(VADS)} or a function (pcm, sample_rate, hop_s) -> bools")


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
    return merge(segments_from_activity(activity(pcm, sample_rate, vad, hop_s), hop_s), merge_gap_s, min_speech_s)
