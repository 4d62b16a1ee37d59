"""Score a benchmark folder: takeover, latencies and backchannels per item, summaries per task.

The kit's rules (``rules="kit"``): FDB's thresholds, applied per utterance, with Japanese adaptations
(see the README section "Benchmark"). They are not FDB's rules, which apply to a whole transcript of
ASR words: ``rules="fdb"`` scores by those (``fdb_rules``).

* The model's utterances come from voice activity on output.wav (``vad.speech_segments``: merged
  across gaps shorter than ``merge_gap_s``); the user's from input.wav, unless the item's timing
  metadata (the kit's timing.json or FDB's files) gives the moments that matter.
* Each model utterance is a **turn** or a **backchannel**. Without text, an utterance of at least
  ``turn_s`` (1 s) is a turn, a shorter one a backchannel (FDB's duration rule). With the kit's
  recording, the model's own text replaces FDB's English ASR: text written during the utterance made
  only of aizuchi (``AIZUCHI``) keeps it a backchannel up to ``backchannel_max_s`` (3 s); more than
  ``takeover_chars`` characters of other text make even a short one a turn (FDB's "more than 3 words").
  In the backchannel task any utterance over ``backchannel_max_s`` is a turn, text or not.
* Per task (``takeover`` is FDB's TOR per item):
  - pause_handling: takeover = a turn starts before the user's turn is over (its last speech end, or
    the end of the pause in the metadata). Lower TOR is better.
  - turn_taking: takeover = a turn still going after the user's end; ``latency_s`` = the onset of the
    model's first speech still going after the user's end minus that end (negative: the model started
    before the user finished), null without a takeover.
  - backchannel: takeover = any turn; ``backchannels`` = the backchannel utterances.
  - interruption: the interruption is the user speech that starts while the model speaks (or the
    metadata's span). ``stop_latency_s`` = end of the model utterance going on at its onset minus the
    onset (0 when the model was silent); ``response_latency_s`` = the model's next utterance onset
    minus the end of the interruption; takeover = that later speech holds a turn.
"""

from __future__ import annotations

import math
import re
import statistics
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ...core.audio import FRAME_S, AudioFileError, read_audio
from ..stats import wilson_interval
from ..vad import MERGE_GAP_S, MIN_SPEECH_S, Segment, VadFunction, VadName, speech_segments
from .layout import SCORES_FILE, TASKS, BenchError, Item, read_timing, score_folder
from .words import WordsHook, read_text_events

if TYPE_CHECKING:
    from .fdb_rules import Judge, Reference

AIZUCHI = (
    "うん",
    "うんうん",
    "ううん",
    "はい",
    "はいはい",
    "ええ",
    "へえ",
    "へー",
    "ほう",
    "ほー",
    "ふうん",
    "ふーん",
    "なるほど",
    "そうですね",
    "そうですか",
    "そうなんですね",
    "そうなんですか",
    "そうなんだ",
    "そうね",
    "そうか",
    "そう",
    "そうそう",
    "ああ",
    "あー",
    "あっ",
    "おお",
    "おー",
    "えー",
    "確かに",
    "たしかに",
    "本当",
    "ほんと",
    "本当ですか",
    "ほんとに",
    "いいですね",
    "すごい",
    "へえー",
    "ですね",
    "ね",
    "ん",
    "んー",
)
_AIZUCHI_RE = re.compile("(?:" + "|".join(sorted(map(re.escape, AIZUCHI), key=len, reverse=True)) + ")+")
TEXT_LEAD_S = 0.3  # the text stream runs slightly ahead of the audio it describes


@dataclass(frozen=True)
class Rules:
    """The scorer's thresholds (seconds, characters); defaults follow FDB."""

    vad: VadName | VadFunction = "webrtc"
    merge_gap_s: float = MERGE_GAP_S
    min_speech_s: float = MIN_SPEECH_S
    turn_s: float = 1.0
    backchannel_max_s: float = 3.0
    takeover_chars: int = 6
    text_lead_s: float = TEXT_LEAD_S

    def describe(self) -> dict[str, Any]:
        vad = self.vad if isinstance(self.vad, str) else getattr(self.vad, "__name__", "custom")
        return {**self.__dict__, "vad": vad}


def normalize_text(text: str) -> str:
    """Text without spaces, punctuation or sentencepiece markers."""
    return "".join(c for c in text.replace("▁", "") if not unicodedata.category(c).startswith(("P", "Z", "C", "S")))


def is_aizuchi(text: str) -> bool:
    """True if ``text`` (once normalized) is one or more aizuchi from ``AIZUCHI`` and nothing else."""
    norm = normalize_text(text)
    return bool(norm) and _AIZUCHI_RE.fullmatch(norm) is not None


def classify(duration: float, text: str | None, task: str, rules: Rules) -> str:
    """``"turn"`` or ``"backchannel"`` for one model utterance (see the module docstring)."""
    if task == "backchannel" and duration > rules.backchannel_max_s:
        return "turn"
    if text is not None:
        if is_aizuchi(text) and duration <= rules.backchannel_max_s:
            return "backchannel"
        if len(normalize_text(text)) > rules.takeover_chars:
            return "turn"
    return "turn" if duration >= rules.turn_s else "backchannel"


# ---- reading an item ---------------------------------------------------------------------------------
def _read_audio(path: Path, item: Item) -> tuple[np.ndarray, int]:
    """The file mixed to mono, at its own rate (the VAD resamples)."""
    if not path.exists():
        raise BenchError(f"{item.task}/{item.id}: no {path.name} in {item.path}")
    try:
        data, rate = read_audio(path)
    except AudioFileError as exc:
        raise BenchError(f"{item.task}/{item.id}: {path.name} is not readable audio: {exc}") from None
    return data.mean(axis=1), rate


def _text_events(item: Item) -> list[tuple[float, str]] | None:
    """(time, text) of the model's text events from the kit's recording; None without one."""
    events = read_text_events(item.recorded, f"{item.task}/{item.id}")
    return None if events is None else [(frame * FRAME_S, text) for frame, text in events]


def _texts(segments: list[Segment], events: list[tuple[float, str]] | None, lead: float) -> list[str | None]:
    if events is None:
        return [None] * len(segments)
    texts = [""] * len(segments)
    for t, text in events:
        for i, (start, end) in enumerate(segments):
            if start - lead <= t < end:
                texts[i] += text
                break
    return list(texts)


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 3)


def _onset_inside(user: list[Segment], model: list[Segment]) -> Segment | None:
    for us, ue in user:
        if any(ms <= us < me for ms, me in model):
            return us, ue
    return None


def score_item(item: Item, rules: Rules | None = None) -> dict[str, Any]:
    """The scores of one item; raises :class:`BenchError` (naming the item) when it cannot be scored."""
    rules = rules or Rules()
    name = f"{item.task}/{item.id}"
    user_pcm, user_rate = _read_audio(item.input, item)
    model_pcm, model_rate = _read_audio(item.output, item)
    duration = len(user_pcm) / user_rate
    out_duration = len(model_pcm) / model_rate
    if abs(out_duration - duration) > FRAME_S + 1e-6:
        raise BenchError(
            f"{name}: output.wav lasts {out_duration:.3f} s, input.wav {duration:.3f} s; "
            f"they must match within one frame ({FRAME_S:.2f} s)"
        )
    timing = read_timing(item)
    seg_args = {"merge_gap_s": rules.merge_gap_s, "min_speech_s": rules.min_speech_s}
    user = speech_segments(user_pcm, user_rate, rules.vad, **seg_args)
    model = speech_segments(model_pcm, model_rate, rules.vad, **seg_args)
    texts = _texts(model, _text_events(item), rules.text_lead_s)
    kinds = [classify(e - s, t, item.task, rules) for (s, e), t in zip(model, texts, strict=True)]
    utts = list(zip(model, kinds, strict=True))
    user_end = timing.get("user_end", user[-1][1] if user else None)

    takeover = False
    latency = stop_latency = response_latency = None
    if item.task == "pause_handling":
        window_end = user_end if user_end is not None else duration
        if "pause" in timing:
            window_end = max(window_end, timing["pause"][1])
        takeover = any(k == "turn" and s < window_end for (s, _), k in utts)
    elif item.task == "turn_taking":
        if user_end is None:
            raise BenchError(f"{name}: no user speech found in input.wav and no timing metadata")
        takeover = any(k == "turn" and e > user_end for (_, e), k in utts)
        # The response starts with the model's first speech still going after the user's end (an
        # opening "はい、" split off by a comma's pause included), as FDB takes the first word's onset.
        latency = next(s for (s, e) in model if e > user_end) - user_end if takeover else None
    elif item.task == "backchannel":
        takeover = "turn" in kinds
    else:  # interruption
        span = timing.get("interrupt") or _onset_inside(user, model)
        if span is None:
            raise BenchError(f"{name}: no user speech starts while the model speaks, and no interrupt metadata")
        onset, end = span
        active = [(s, e) for s, e in model if s <= onset < e]
        stop_end = active[0][1] if active else onset
        stop_latency = stop_end - onset
        if "interrupt" not in timing:
            # From voice activity the interruption runs on over the user's pauses until the model speaks again.
            next_start = min((s for s, _ in model if s >= stop_end), default=math.inf)
            end = max(ue for us, ue in user if onset <= us < next_start)
        after = [((s, e), k) for (s, e), k in utts if s >= stop_end and e > end]
        response_latency = after[0][0][0] - end if after else None
        takeover = any(k == "turn" for _, k in after)
    transcript = None if texts and texts[0] is None else "".join(t or "" for t in texts)
    return {
        "id": item.id,
        "folder": item.path.parent.name,
        "takeover": takeover,
        "latency_s": _round(latency),
        "backchannels": kinds.count("backchannel"),
        "stop_latency_s": _round(stop_latency),
        "response_latency_s": _round(response_latency),
        "duration_s": round(duration, 3),
        "user_end_s": _round(user_end),
        "timing_source": timing.get("source", "vad"),
        "model_segments": [[s, e, k] for (s, e), k in utts],
        "user_segments": [list(seg) for seg in user],
        "text": transcript,
    }


# ---- summaries -----------------------------------------------------------------------------------------
def _stats(values: list[float], prefix: str) -> dict[str, float | None]:
    return {
        f"{prefix}_mean_s": _round(statistics.fmean(values)) if values else None,
        f"{prefix}_median_s": _round(statistics.median(values)) if values else None,
    }


def summarize(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A task's summary: n, TOR (+95 % CI), mean/median latencies, backchannels per minute."""
    ok = [it for it in items if "error" not in it]
    n = len(ok)
    taken = sum(bool(it["takeover"]) for it in ok)
    minutes = sum(it["duration_s"] for it in ok) / 60.0
    backchannels = sum(it["backchannels"] for it in ok)
    out: dict[str, Any] = {
        "n": n,
        "errors": len(items) - n,
        "TOR": round(taken / n, 4) if n else None,
        "TOR_ci95": wilson_interval(taken, n),
    }
    for key, prefix in (
        ("latency_s", "latency"),
        ("stop_latency_s", "stop_latency"),
        ("response_latency_s", "response_latency"),
    ):
        out.update(_stats([it[key] for it in ok if it[key] is not None], prefix))
    out["backchannels_per_min"] = round(backchannels / minutes, 3) if minutes > 0 else None
    out["backchannels_mean"] = round(backchannels / n, 3) if n else None
    return out


RULE_SETS = ("kit", "fdb", "both")
RuleSet = Literal["kit", "fdb", "both"]


def score(
    folder: str | Path,
    *,
    rules: RuleSet | Rules | None = None,
    vad: VadName | VadFunction = "webrtc",
    tasks: list[str] | tuple[str, ...] | None = None,
    limit: int | None = None,
    write: bool = True,
    words: WordsHook | None = None,
    judge: Judge | None = None,
    reference: str | Path | Reference | None = None,
) -> dict[str, Any]:
    """Score every item under ``folder`` by the kit's rules, FDB's v1 rules, or both.

    ``rules``: ``"kit"`` (default; a :class:`Rules` gives the kit's rules other thresholds) writes
    ``folder/scores.json`` and returns it (:func:`score_kit`); ``"fdb"`` writes
    ``folder/scores_fdb.json`` and returns it (:func:`jmoshi_nb.research.bench.fdb_rules.score`);
    ``"both"`` writes both and returns ``{"kit": ..., "fdb": ...}``. ``vad`` is the kit rules' voice
    activity detector; ``words`` (a hook from output.wav to FDB-shaped chunks, e.g. a Japanese ASR),
    ``judge`` (rates interruption responses 0-5) and ``reference`` (per-item backchannel
    distributions, for the JSD) belong to FDB's rules. ``tasks``, ``limit``, ``write``: for either.
    """
    from . import fdb_rules

    if rules is None or isinstance(rules, Rules):
        rules_name = "kit"
    elif rules in RULE_SETS:
        rules_name = rules
    else:
        raise BenchError(f"unknown rules {rules!r}: one of {', '.join(RULE_SETS)} (or a Rules for the kit's)")
    hooks = (("words", words), ("judge", judge), ("reference", reference))
    given = [name for name, value in hooks if value is not None]
    if rules_name == "kit" and given:
        raise BenchError(f"{', '.join(given)} apply to FDB's rules: rules='fdb' or 'both'")
    kit_rules = rules if isinstance(rules, Rules) else None
    if rules_name == "kit":
        return score_kit(folder, vad=vad, tasks=tasks, rules=kit_rules, limit=limit, write=write)
    fdb = fdb_rules.score(folder, tasks=tasks, limit=limit, words=words, judge=judge, reference=reference, write=write)
    if rules_name == "fdb":
        return fdb
    return {"kit": score_kit(folder, vad=vad, tasks=tasks, rules=kit_rules, limit=limit, write=write), "fdb": fdb}


def score_kit(
    folder: str | Path,
    *,
    vad: VadName | VadFunction = "webrtc",
    tasks: list[str] | tuple[str, ...] | None = None,
    rules: Rules | None = None,
    limit: int | None = None,
    write: bool = True,
) -> dict[str, Any]:
    """Score every item under ``folder`` by the kit's rules; write ``folder/scores.json`` and return the same dict.

    ``{"<task>": {"summary": {...}, "items": [{"id": ..., "takeover": ..., ...}, ...]}}``. Items that
    cannot be scored appear as ``{"id", "folder", "error"}`` (the message names the item) and count in
    ``summary["errors"]``; the others are scored as usual. A folder without task folders raises
    :class:`BenchError`. ``vad``: ``"webrtc"`` (default), ``"silero"`` (FDB's backchannel detector) or a function.
    ``tasks``: score only these; ``limit``: only the first items of each task folder (by name).
    """
    rules = rules or Rules(vad=vad)
    return score_folder(
        folder,
        lambda item: score_item(item, rules),
        lambda _task, items: {**summarize(items), "rules": rules.describe()},
        SCORES_FILE if write else None,
        tasks,
        limit,
    )


def errors(scores: dict[str, Any]) -> list[str]:
    """Every item error message in a scores dict."""
    return [it["error"] for entry in scores.values() for it in entry["items"] if "error" in it]


def headline(scores: dict[str, Any]) -> dict[str, float | None]:
    """Each task's headline metrics as one flat row (for sweep tables): ``<task>_<metric>``."""
    keys = {
        "pause_handling": ("TOR",),
        "turn_taking": ("TOR", "latency_mean_s"),
        "backchannel": ("TOR", "backchannels_per_min"),
        "interruption": ("TOR", "stop_latency_mean_s", "response_latency_mean_s"),
    }
    row: dict[str, float | None] = {}
    for task, names in keys.items():
        summary = scores.get(task, {}).get("summary", {})
        for key in names:
            value = summary.get(key)
            row[f"{task}_{key}"] = math.nan if value is None else value
    return row


COLUMNS = (
    ("n", "n", "{:d}"),
    ("TOR", "TOR", "{:.3f}"),
    ("latency_mean_s", "latency s", "{:.3f}"),
    ("stop_latency_mean_s", "stop s", "{:.3f}"),
    ("response_latency_mean_s", "response s", "{:.3f}"),
    ("backchannels_per_min", "bc/min", "{:.2f}"),
    ("errors", "errors", "{:d}"),
)


def format_scores(scores: dict[str, Any], columns: tuple[tuple[str, str, str], ...] = COLUMNS) -> str:
    """A plain-text table of each task's summary (means; medians are in scores.json)."""
    head = f"{'task':16s}" + "".join(f"{label:>12s}" for _, label, _ in columns)
    lines = [head]
    for task in TASKS:
        if task not in scores:
            continue
        summary = scores[task]["summary"]
        cells = []
        for key, _, fmt in columns:
            value = summary.get(key)
            cells.append(f"{'-' if value is None else fmt.format(value):>12s}")
        lines.append(f"{task:16s}" + "".join(cells))
    return "\n".join(lines)


FDB_COLUMNS = (
    ("n", "n", "{:d}"),
    ("TOR", "TOR", "{:.3f}"),
    ("latency_mean_s", "latency s", "{:.3f}"),
    ("frequency_mean_per_s", "bc freq/s", "{:.3f}"),
    ("jsd_mean", "JSD", "{:.3f}"),
    ("errors", "errors", "{:d}"),
)
# (kit summary key, FDB summary key, label): the rows of the side-by-side table of --rules both
SIDE_BY_SIDE = (
    ("TOR", "TOR", "TOR"),
    ("latency_mean_s", "latency_mean_s", "latency s"),
    ("backchannels_per_min", "frequency_mean_per_s", "backchannels"),
    ("n", "n", "n"),
    ("errors", "errors", "errors"),
)


def format_fdb_scores(scores: dict[str, Any]) -> str:
    """A plain-text table of each task's summary by FDB's rules (means, as FDB's scripts print them)."""
    return format_scores(scores, FDB_COLUMNS)


def _cell(value: Any, fmt: str = "{:.3f}") -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:d}" if isinstance(value, int) and not isinstance(value, bool) else fmt.format(value)


def format_side_by_side(kit: dict[str, Any], fdb: dict[str, Any]) -> str:
    """The kit's and FDB's summaries of each task side by side (backchannels: per minute, kit; per second, FDB)."""
    lines = [f"{'task':16s}{'metric':>14s}{'kit rules':>14s}{'FDB rules':>14s}"]
    for task in TASKS:
        if task not in kit and task not in fdb:
            continue
        k, f = kit.get(task, {}).get("summary", {}), fdb.get(task, {}).get("summary", {})
        for kit_key, fdb_key, label in SIDE_BY_SIDE:
            if kit_key == "latency_mean_s" and task not in ("turn_taking", "interruption"):
                continue
            if kit_key == "backchannels_per_min" and task != "backchannel":
                continue
            kit_value = k.get("response_latency_mean_s") if task == "interruption" and kit_key == "latency_mean_s" \
                else k.get(kit_key)  # fmt: skip
            lines.append(f"{task:16s}{label:>14s}{_cell(kit_value):>14s}{_cell(f.get(fdb_key)):>14s}")
        if task == "interruption" and "relevance" in f:
            lines.append(f"{task:16s}{'relevance':>14s}{'-':>14s}{_cell(f['relevance']):>14s}")
    lines.append("(backchannels: per minute by the kit's rules, per second by FDB's; interruption latency: the")
    lines.append(" kit's response latency, FDB's first word after the interruption)")
    return "\n".join(lines)
