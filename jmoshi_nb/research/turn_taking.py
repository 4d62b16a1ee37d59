"""Turn-taking analysis of a two-speaker recording: IPUs, pauses, gaps, overlaps, backchannels.

Definitions follow the turn-taking literature (Heldner & Edlund 2010, "Pauses, gaps and overlaps
in conversations", J. Phonetics 38):

* **IPU** (inter-pausal unit): a stretch of one speaker's speech bounded by at least ``min_silence``
  seconds of that speaker's silence (shorter silences are bridged, so an IPU may contain them).
* **pause**: a silence of *both* speakers between two IPUs of the *same* speaker, i.e. no one else
  spoke in between (within-speaker silence). Its ``speaker`` is the one who pauses.
* **gap**: a silence of both speakers between the end of one speaker's IPU and the start of the
  *other* speaker's IPU (between-speaker silence, the response latency of a speaker change). Its
  ``speaker`` is the one who starts speaking after it (the responder), so the gaps of ``"model"``
  are the model's response latencies.
* **overlap**: a stretch where both speakers speak at once (the intersection of their IPUs). Its
  ``speaker`` is the one who *started* it, i.e. whose IPU started while the other was already
  speaking (the one who came in / interrupted). When both IPUs start on the same frame the speaker
  is both names joined by ``"+"`` (e.g. ``"model+user"``).
* **backchannel-like IPU**: an IPU of speaker X no longer than ``backchannel_max`` seconds that
  starts while the other speaker Y is speaking (a Y IPU started strictly before it and is still
  going) and after which Y holds on to the floor: Y speaks past its end, or resumes no more than
  ``backchannel_window`` seconds after it. This covers a short IPU fully inside Y's speech and one
  overlapping the end of a Y IPU when Y goes on talking. It excludes a short IPU that Y's speech
  ends in and is followed by Y's silence (a turn taken in overlap), one that both start at once,
  and one placed entirely in silence: without the words a short answer ("はい" after a question)
  cannot be told from an acknowledgement in the speaker's pause, so those count as short turns.
  It is an acoustic proxy (no lexical check), hence "-like".

Silence before the first and after the last speech of the recording is neither pause nor gap.

All the interval logic lives in :func:`intervals_from_activity`, a pure function of two boolean
voice-activity arrays at a fixed hop (10 ms by default): the frame indices are integers, so results
are exact and testable. :func:`turn_taking` runs a voice activity detector on a recording, a
recording folder or a stereo WAV file and feeds the result to it.

Voice activity comes from the WebRTC VAD (``webrtcvad``, installed from the ``webrtcvad-wheels``
package: a small compiled library, no model download) on 10 ms frames at 16 kHz. The WebRTC VAD holds
its decision for ~100-150 ms after speech ends (its "hangover"); an energy gate removes frames far
below the channel's noise floor, which trims that hangover where the signal really falls silent
(digital silence, Mimi's near-silent output). ``vad="energy"`` uses the gate alone; any callable
``f(pcm, sample_rate, hop_s) -> bool array`` can be passed instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack

import numpy as np

from ..core.audio import FRAME_S, SAMPLE_RATE, AudioFileError, read_wav
from ..core.keywords import check_keywords
from ..core.recording import Recording
from ..core.text import PAD_TOKENS
from .vad import VadFunction, voice_activity

if TYPE_CHECKING:
    import pandas as pd

KINDS = ("ipu", "pause", "gap", "overlap", "backchannel")
DEFAULT_SPEAKERS = ("model", "user")

Source = Recording | str | Path

_EPS = 1e-9


@dataclass(frozen=True)
class Interval:
    """A time span in seconds, attributed to one speaker (see the module docstring for whom)."""

    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class TextStats:
    """The model's text stream, from the per-frame ``text_token`` of the metrics.

    * ``frames``: frames that produced a text token (the LM's initial delay, ``None``, excluded).
    * ``text_tokens``: those whose token is not padding (``PAD_TOKENS``), i.e. carry text.
    * ``text_rate``: ``text_tokens`` per second of those frames (tokens/s; one frame is 80 ms).
    * ``padding_ratio``: fraction of those frames whose token is padding (0..1); ``None`` when only
      text events are known (a plain moshi server sends no per-frame tokens).
    * ``delay_frames``: frames at the start without a token (the LM's delay).
    """

    frames: int
    text_tokens: int
    text_rate: float
    padding_ratio: float | None
    delay_frames: int


@dataclass
class TurnTaking:
    """The intervals of one two-speaker conversation and their statistics."""

    speakers: tuple[str, str]
    duration: float
    hop_s: float
    min_silence: float
    ipus: list[Interval] = field(default_factory=list)
    pauses: list[Interval] = field(default_factory=list)
    gaps: list[Interval] = field(default_factory=list)
    overlaps: list[Interval] = field(default_factory=list)
    backchannels: list[Interval] = field(default_factory=list)
    text: TextStats | None = None
    activity: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def intervals(self, kind: str) -> list[Interval]:
        """The intervals of one kind: ``"ipu"``, ``"pause"``, ``"gap"``, ``"overlap"``, ``"backchannel"``."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
        return getattr(self, kind + "s")

    def labels(self) -> list[str]:
        """Speaker labels found in the intervals: the two speakers, then any tie labels (``a+b``)."""
        extra = sorted({iv.speaker for k in KINDS for iv in self.intervals(k)} - set(self.speakers))
        return [*self.speakers, *extra]

    def stats(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{kind: {speaker | "all": stats}}`` with, per group of intervals:

        * ``count``: number of intervals;
        * ``per_minute``: ``count`` per minute of the whole recording;
        * ``mean_s`` / ``median_s``: mean and median duration in seconds (NaN when count is 0);
        * ``total_s``: summed duration; ``ratio``: ``total_s`` over the recording's duration.
        """
        out: dict[str, dict[str, dict[str, float]]] = {}
        for kind in KINDS:
            items = self.intervals(kind)
            groups = {label: [iv for iv in items if iv.speaker == label] for label in self.labels()}
            groups["all"] = items
            out[kind] = {label: _describe(ivs, self.duration) for label, ivs in groups.items()}
        return out

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict: duration, speakers, settings, ``stats()`` (NaN as None) and ``text``."""
        stats = {
            kind: {label: {k: None if _isnan(v) else v for k, v in values.items()} for label, values in groups.items()}
            for kind, groups in self.stats().items()
        }
        return {
            "duration_s": self.duration,
            "speakers": list(self.speakers),
            "hop_s": self.hop_s,
            "min_silence_s": self.min_silence,
            "stats": stats,
            "text": None if self.text is None else {k: None if _isnan(v) else v for k, v in asdict(self.text).items()},
        }

    def to_frame(self) -> pd.DataFrame:
        """``stats()`` as a DataFrame: one row per (kind, speaker), columns count..ratio."""
        import pandas as pd

        rows = [
            {"kind": kind, "speaker": label, **values}
            for kind, by_label in self.stats().items()
            for label, values in by_label.items()
        ]
        return pd.DataFrame(rows).set_index(["kind", "speaker"])

    def intervals_frame(self) -> pd.DataFrame:
        """Every interval as a row: kind, speaker, start, end, duration (seconds), sorted by start."""
        import pandas as pd

        rows = [
            {"kind": kind, "speaker": iv.speaker, "start": iv.start, "end": iv.end, "duration": iv.duration}
            for kind in KINDS
            for iv in self.intervals(kind)
        ]
        frame = pd.DataFrame(rows, columns=["kind", "speaker", "start", "end", "duration"])
        return frame.sort_values(["start", "kind"], kind="stable").reset_index(drop=True)


def _isnan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _describe(items: Sequence[Interval], duration: float) -> dict[str, float]:
    durations = np.array([iv.duration for iv in items], dtype=np.float64)
    total = float(durations.sum())
    return {
        "count": len(items),
        "per_minute": 60.0 * len(items) / duration if duration > 0 else math.nan,
        "mean_s": float(durations.mean()) if len(items) else math.nan,
        "median_s": float(np.median(durations)) if len(items) else math.nan,
        "total_s": total,
        "ratio": total / duration if duration > 0 else math.nan,
    }


# ---- interval logic on activity arrays ---------------------------------------------------------
Run = tuple[int, int]  # [start, end) in frames


def _runs(active: np.ndarray) -> list[Run]:
    """The [start, end) frame ranges where ``active`` is True."""
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def _bridge(runs: list[Run], min_gap: int) -> list[Run]:
    """Join runs separated by fewer than ``min_gap`` frames of silence."""
    out: list[Run] = []
    for start, end in runs:
        if out and start - out[-1][1] < min_gap:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def _mask(runs: list[Run], n: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    for start, end in runs:
        mask[start:end] = True
    return mask


def _frames(seconds: float, hop_s: float) -> int:
    """Whole frames in ``seconds`` (robust to float error: 0.2 / 0.01 gives 20, not 19)."""
    return math.floor(seconds / hop_s + 1e-6)


def _intersections(a: list[Run], b: list[Run]) -> list[tuple[Run, Run]]:
    """Pairs of overlapping runs (two sorted lists of disjoint runs), in time order."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if max(a[i][0], b[j][0]) < min(a[i][1], b[j][1]):
            out.append((a[i], b[j]))
        if a[i][1] <= b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _label(names: Sequence[str]) -> str:
    return "+".join(names)


def _overlaps(ipus: dict[str, list[Run]], speakers: tuple[str, str]) -> list[tuple[Run, str]]:
    """Both speak: the intersections of their IPUs, attributed to whoever started later."""
    a, b = speakers
    out = []
    for ra, rb in _intersections(ipus[a], ipus[b]):
        run = (max(ra[0], rb[0]), min(ra[1], rb[1]))
        starter = a if ra[0] > rb[0] else b if rb[0] > ra[0] else _label(speakers)
        out.append((run, starter))
    return out


def _silences(
    masks: dict[str, np.ndarray], speakers: tuple[str, str]
) -> tuple[list[tuple[Run, str]], list[tuple[Run, str]]]:
    """Mutual silences between speech, split into (pauses, gaps) by who spoke before and after."""
    anyone = masks[speakers[0]] | masks[speakers[1]]
    n = len(anyone)
    pauses, gaps = [], []
    for start, end in _runs(~anyone):
        if start == 0 or end == n:
            continue  # before the first or after the last speech
        before = [s for s in speakers if masks[s][start - 1]]
        after = [s for s in speakers if masks[s][end]]
        same = [s for s in speakers if s in before and s in after]
        if same:
            pauses.append(((start, end), _label(same)))
        else:
            gaps.append(((start, end), _label(after)))
    return pauses, gaps


def _backchannels(
    ipus: dict[str, list[Run]], speakers: tuple[str, str], max_len: int, window: int
) -> list[tuple[Run, str]]:
    """Short IPUs while the other speaker holds the floor (see the module docstring)."""
    out: list[tuple[Run, str]] = []
    for x, y in (speakers, speakers[::-1]):
        for start, end in ipus[x]:
            if end - start > max_len:
                continue
            during = any(ys < start < ye for ys, ye in ipus[y])
            after = any(ye > end and ys <= end + window for ys, ye in ipus[y])
            if during and after:
                out.append(((start, end), x))
    return sorted(out)


class IntervalRules(TypedDict, total=False):
    """The interval rules of :func:`intervals_from_activity` (its keywords), as :func:`turn_taking` passes them on.

    ``min_silence`` (s, default 0.2): shorter silences inside one speaker's speech are bridged;
    ``min_speech`` (s): shorter IPUs are dropped; ``backchannel_max`` (s, default 1.0): the longest
    backchannel-like IPU; ``backchannel_window`` (s, default 1.0): how soon the other speaker resumes.
    """

    min_silence: float
    min_speech: float
    backchannel_max: float
    backchannel_window: float


def intervals_from_activity(
    activity_a: np.ndarray | Sequence[bool],
    activity_b: np.ndarray | Sequence[bool],
    hop_s: float = 0.01,
    min_silence: float = 0.2,
    *,
    min_speech: float = 0.0,
    backchannel_max: float = 1.0,
    backchannel_window: float = 1.0,
    speakers: tuple[str, str] = DEFAULT_SPEAKERS,
) -> TurnTaking:
    """IPUs, pauses, gaps, overlaps and backchannel-like IPUs from two voice-activity arrays.

    ``activity_a`` / ``activity_b``: one bool per hop of ``hop_s`` seconds for ``speakers[0]`` /
    ``speakers[1]`` (the shorter is padded with silence). Silences shorter than ``min_silence`` inside
    a speaker's speech are bridged (a silence of exactly ``min_silence`` separates two IPUs); then IPUs
    shorter than ``min_speech`` are dropped (VAD blips). Times are frame index × ``hop_s``.
    """
    if hop_s <= 0:
        raise ValueError(f"hop_s must be > 0, got {hop_s}")
    if speakers[0] == speakers[1]:
        raise ValueError(f"the two speakers need different names, got {speakers}")
    acts = [np.asarray(activity_a, dtype=bool).ravel(), np.asarray(activity_b, dtype=bool).ravel()]
    n = max(len(acts[0]), len(acts[1]))
    min_gap, min_len = max(_frames(min_silence, hop_s), 1), _frames(min_speech, hop_s)
    ipus: dict[str, list[Run]] = {}
    masks: dict[str, np.ndarray] = {}
    for name, act in zip(speakers, acts, strict=True):
        runs = [r for r in _bridge(_runs(act), min_gap) if r[1] - r[0] >= min_len]
        ipus[name], masks[name] = runs, _mask(runs, n)
    pauses, gaps = _silences(masks, speakers)

    def to_iv(run: Run, speaker: str) -> Interval:
        return Interval(round(run[0] * hop_s, 6), round(run[1] * hop_s, 6), speaker)

    all_ipus = sorted((run, name) for name in speakers for run in ipus[name])
    backchannels = _backchannels(ipus, speakers, _frames(backchannel_max, hop_s), _frames(backchannel_window, hop_s))
    return TurnTaking(
        speakers=speakers,
        duration=round(n * hop_s, 6),
        hop_s=hop_s,
        min_silence=min_silence,
        ipus=[to_iv(r, s) for r, s in all_ipus],
        pauses=[to_iv(r, s) for r, s in pauses],
        gaps=[to_iv(r, s) for r, s in gaps],
        overlaps=[to_iv(r, s) for r, s in _overlaps(ipus, speakers)],
        backchannels=[to_iv(r, s) for r, s in backchannels],
        activity={name: np.pad(act, (0, n - len(act))) for name, act in zip(speakers, acts, strict=True)},
    )


# ---- sources -----------------------------------------------------------------------------------
def _load(source: Source) -> tuple[np.ndarray, np.ndarray, int, Recording | None]:
    """(channel 0, channel 1, sample rate, the Recording if the source is one)."""
    if isinstance(source, Recording):
        stereo = source.stereo()
        return stereo[:, 0], stereo[:, 1], source.sample_rate, source
    path = Path(source)
    if path.is_dir():
        rec = Recording.load(path)
        stereo = rec.stereo()
        return stereo[:, 0], stereo[:, 1], rec.sample_rate, rec
    stereo = read_wav(path, channel=None)
    if stereo.shape[1] != 2:
        raise AudioFileError(f"{path}: turn-taking needs a stereo file (one speaker a channel), got {stereo.shape[1]}")
    return stereo[:, 0], stereo[:, 1], SAMPLE_RATE, None


def text_stats(rec: Recording) -> TextStats | None:
    """The model's text rate and padding ratio (see :class:`TextStats`); None without text data.

    Uses the per-frame ``text_token`` of the metrics. Without metrics (a plain moshi server), each
    text event is one non-padding token: the rate is events per second of the recording and the
    padding ratio is unknown (None).
    """
    tokens = rec.frame_tokens()
    if tokens:
        known = [t for t in tokens if t is not None]
        delay = next((i for i, t in enumerate(tokens) if t is not None), len(tokens))
        pads = tuple(rec.session.get("pad_tokens") or PAD_TOKENS)
        text = sum(1 for t in known if t not in pads)
        seconds = len(known) * FRAME_S
        return TextStats(
            frames=len(known),
            text_tokens=text,
            text_rate=text / seconds if seconds else math.nan,
            padding_ratio=(len(known) - text) / len(known) if known else math.nan,
            delay_frames=delay,
        )
    if rec.text and rec.duration > 0:
        return TextStats(
            frames=0,
            text_tokens=len(rec.text),
            text_rate=len(rec.text) / rec.duration,
            padding_ratio=None,
            delay_frames=0,
        )
    return None


VAD_MIN_SPEECH_S = 0.05  # turn_taking's default min_speech: shorter VAD detections are blips, not IPUs
# The level-gated detectors whose frame-exact boundaries the IPU rules (min_speech, min_silence) assume;
# Silero (the benchmark's FDB parity option) pads and merges speech its own way.
TURN_TAKING_VADS = ("webrtc", "energy")


def turn_taking(
    source: Source,
    *,
    vad: Literal["webrtc", "energy"] | VadFunction = "webrtc",
    vad_mode: int = 3,
    gate_db: float | Literal["auto"] | None = "auto",
    hop_s: float = 0.01,
    speakers: tuple[str, str] = DEFAULT_SPEAKERS,
    **rules: Unpack[IntervalRules],
) -> TurnTaking:
    """Turn-taking intervals and statistics of a two-speaker conversation.

    ``source``: a :class:`Recording`, a recording folder, or a stereo audio file with one speaker a
    channel; channel 0 is ``speakers[0]`` (the model, "A", left in recordings) and channel 1 is
    ``speakers[1]`` (the user, "B"). Voice activity per channel comes from :func:`voice_activity`
    (``vad``, ``vad_mode``, ``gate_db``, ``hop_s``); the intervals from
    :func:`intervals_from_activity` (``min_silence``, ``min_speech``, ``backchannel_max``,
    ``backchannel_window``: :class:`IntervalRules`; ``min_speech`` defaults to ``VAD_MIN_SPEECH_S``
    here). With a Recording (or folder) that holds text, ``result.text`` gives the model's text rate
    and padding ratio.
    """
    check_keywords("turn_taking", rules, IntervalRules)
    if not callable(vad) and vad not in TURN_TAKING_VADS:
        raise ValueError(f"unknown vad {vad!r} for turn_taking: {', '.join(TURN_TAKING_VADS)} or a function")
    rules.setdefault("min_speech", VAD_MIN_SPEECH_S)
    left, right, rate, rec = _load(source)
    activity = [
        voice_activity(pcm, rate, vad=vad, hop_s=hop_s, mode=vad_mode, gate_db=gate_db) for pcm in (left, right)
    ]
    result = intervals_from_activity(*activity, hop_s=hop_s, speakers=speakers, **rules)
    result.duration = round(len(left) / rate, 6)
    if rec is not None:
        result.text = text_stats(rec)
    return result
