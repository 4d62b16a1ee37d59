"""Full-Duplex-Bench's own v1 rules, as its official evaluators apply them: ``score(dir, rules="fdb")``.

Reimplemented from FDB's published definitions and the behaviour of its v1 evaluation scripts
(``eval_pause_handling``, ``eval_smooth_turn_taking``, ``eval_backchannel``, ``eval_user_interruption``;
their code is CC BY-NC 4.0 and is not copied here). The kit's own rules (``scoring``) are stricter and
say more; these are for numbers that stand beside FDB's published tables. Every quirk below is FDB's,
followed on purpose:

* **The speech unit is the word** (an ASR chunk with times, ``output.json``; see ``words``), not a
  voice-activity utterance, and nothing is merged (v1.5's 0.5 s / 0.6 s merging is v1.5's only).
* **The turn rule is applied to the whole transcript** (:func:`is_turn`): the span from the first
  word's start to the last word's end is at least ``TURN_SPAN_S`` (1 s), or there are more than
  ``TURN_WORDS`` (3) words. Two うん 3 s apart are a turn. A last word without an end is measured
  to its start (the pause evaluator's handling; the other two would fail on it).
* **Pause handling**: TOR 1 when the transcript passes the turn rule, wherever its speech lies,
  even before the pause (``pause.json`` is not read). No latency.
* **Turn-taking**: the user's end is the *first* number of ``turn_taking.json``'s first timestamp.
  TOR as for pause handling, including speech that started before the user's end; latency = first
  word's start minus the user's end. The per-item latency FDB prints may be negative; its mean counts
  a negative latency as 0 (``latency_s`` here is that clipped value, ``latency_raw_s`` the printed one).
* **Interruption**: the words are those of output.wav after the end of the interruption (the second
  number of ``interrupt.json``'s timestamp; FDB's ASR step crops the audio there). TOR 1 when they
  pass the turn rule, so a model that never stopped talking scores a takeover; latency as above. The
  LLM-rated relevance (GPT-4-turbo, 0-5) is not computed: ``judge=`` may rate (context, interruption,
  response text) instead. FDB's script counts a latency only for items it got a rating for; here every
  takeover counts.
* **Backchannel** (:func:`backchannel_verdict`): Silero VAD at the package's defaults on output.wav,
  times rounded to 0.1 s (``return_seconds``). Walking the segments in order, the first one longer
  than ``BACKCHANNEL_TURN_S`` (3 s) sets TOR 1 and stops the walk; **every segment before it counts
  as a backchannel**, even one FDB judges a turn (1-3 s long, or with more than 3 words). Each of them
  sets TOR anew, so **the last segment's verdict decides the item's TOR**: more than 3 words, or at
  least 1 s, or exactly 3 words in under 1 s make it 1. A segment's words are those that overlap it
  by FDB's test (a word with a null end counts only when it starts exactly at the segment's end).
  Frequency = backchannels / output.wav's seconds, averaged over items. JSD: the backchannel segments
  fill 0.2 s bins (every bin from the start's to the end's, both included), + 1e-10, normalised,
  against the reference distribution linearly resampled to as many bins; scipy's ``jensenshannon``
  is the Jensen-Shannon *distance* (the square root of the divergence, natural log), which is what
  FDB reports as JSD. An item without backchannels scores JSD 1.
* **Sample rates**: FDB feeds ``output.wav`` to Silero at its own rate while Silero assumes 16 kHz,
  so a 24 kHz file's segments come out 1.5 times too long and too late. That is an accident; here
  the audio is resampled to 16 kHz first, which is what FDB does on the 16 kHz files of its release.

Other accidents of FDB's scripts are not followed, and are named here so that a difference can be
traced: the turn-taking script pairs metadata and output files by listing order across folders (a
folder without ``turn_taking.json`` shifts every later pair; here each item reads its own files); the
interruption script re-asks the LLM when it cannot parse the rating and then counts that item's TOR
twice; the backchannel script keeps the previous item's TOR for an item without ``output.json`` and
skips items whose folder name is not all digits (here such items are scored, and an item without
words is an error); a chunk with a null start at either end of the transcript stops the pause,
turn-taking and interruption scripts (here null starts are skipped everywhere, as the backchannel
script skips them).

Items that cannot be scored carry ``"error"`` (naming the item and the problem); items with chunks
left out (null starts, reversed spans) or without a reference distribution carry ``"warnings"``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..stats import wilson_interval
from ..vad import silero_segments as package_segments
from .layout import TIMING_FILE, BenchError, Item, read_json, score_folder
from .words import (
    OUTPUT_JSON,
    Word,
    Words,
    WordsHook,
    parse_chunks,
    read_output_json,
    read_text_events,
    words_from_text_events,
    write_output_json,
)

SCORES_FDB_FILE = "scores_fdb.json"
RULES_NAME = "Full-Duplex-Bench v1 (official evaluators' rules)"
TURN_SPAN_S = 1.0  # FDB's turn_duration_threshold
TURN_WORDS = 3  # FDB's turn_num_words_threshold: more words than this make a turn
BACKCHANNEL_TURN_S = 3.0  # eval_backchannel's time_threshold: a longer segment is the model talking
BACKCHANNEL_SHORT_S = 1.0  # under this, a segment of at most BACKCHANNEL_SHORT_WORDS words is a backchannel
BACKCHANNEL_SHORT_WORDS = 2
JSD_BIN_S = 0.2  # eval_backchannel's window_size
JSD_EPSILON = 1e-10
SILERO_RATE = 16000  # Silero's default sampling_rate, which FDB leaves as it is
SILERO_DECIMALS = 1  # get_speech_timestamps(return_seconds=True) rounds to 0.1 s (time_resolution=1)
NOT_COMPUTED = "not computed"

Judge = Callable[[str, str, str], float]
"""A ``judge=`` hook: (context, interruption, response text) -> a rating from 0 to 5, as FDB's rubric."""
Reference = Mapping[str, Sequence[float]]
Segment = tuple[float, float]


# ---- the rules --------------------------------------------------------------------------------------
def transcript_span(words: Sequence[Word]) -> float:
    """Last word's end (its start when the end is null) minus the first word's start; 0 without words."""
    if not words:
        return 0.0
    last = words[-1]
    return (last.end if last.end is not None else last.start) - words[0].start


def is_turn(words: Sequence[Word]) -> bool:
    """FDB's turn rule over a whole transcript: span >= 1 s, or more than 3 words."""
    if not words:
        return False
    return transcript_span(words) >= TURN_SPAN_S or len(words) > TURN_WORDS


def takeover_latency(words: Sequence[Word], user_end: float | None) -> tuple[int, float | None]:
    """(TOR, raw latency) of a pause, turn-taking or interruption item: the latency is the first word's
    start minus ``user_end`` when TOR is 1 and ``user_end`` is given, else None."""
    if not is_turn(words):
        return 0, None
    return 1, (None if user_end is None else words[0].start - user_end)


def silero_segments(pcm: np.ndarray, sample_rate: int) -> list[Segment]:
    """Silero VAD segments at the package's defaults, in seconds rounded as FDB gets them (0.1 s).

    The audio is resampled to 16 kHz first (see the module docstring on sample rates).
    """
    spans = package_segments(pcm, sample_rate)  # Silero's own segments (16 kHz, package defaults)
    duration = len(pcm) / sample_rate
    return [(max(round(s, SILERO_DECIMALS), 0.0), min(round(e, SILERO_DECIMALS), duration)) for s, e in spans]


def segment_words(segment: Segment, words: Sequence[Word]) -> list[str]:
    """The words FDB's backchannel evaluator attributes to one VAD segment (its overlap test, as it is)."""
    start, end = segment
    out = []
    for w in words:
        t_start, t_end = w.start, w.end
        if t_end is None and t_start < end:
            continue
        if t_end is None:
            t_end = t_start
        if (
            (t_start >= start and t_end <= end)
            or (t_start <= end and t_end > end)
            or (t_start <= start and t_end > start)
        ):
            out.append(w.text)
    return out


def backchannel_verdict(segments: Sequence[Segment], words: Sequence[Word]) -> tuple[int, list[Segment]]:
    """(TOR, backchannel segments) of one backchannel item by FDB's walk (see the module docstring)."""
    takeover = 0
    counted: list[Segment] = []
    for start, end in segments:
        duration = end - start
        if duration > BACKCHANNEL_TURN_S:
            takeover = 1
            break
        n = len(segment_words((start, end), words))
        if n > TURN_WORDS:
            takeover = 1
        elif duration < BACKCHANNEL_SHORT_S:
            takeover = 0 if n <= BACKCHANNEL_SHORT_WORDS else 1
        else:
            takeover = 1
        counted.append((start, end))
    return takeover, counted


def backchannel_jsd(segments: Sequence[Segment], duration_s: float, reference: Sequence[float]) -> float:
    """FDB's JSD of one item's backchannel timing against a reference distribution (1 without backchannels)."""
    from scipy.spatial.distance import jensenshannon

    if not segments:
        return 1.0
    bins = np.zeros(int(duration_s / JSD_BIN_S) + 1)
    for start, end in segments:
        first, last = int(start / JSD_BIN_S), int(end / JSD_BIN_S)
        bins[first : min(last, len(bins) - 1) + 1] += 1
    hist = bins + JSD_EPSILON
    hist = hist / hist.sum()
    ref = np.asarray(reference, dtype=float)
    resized = np.interp(np.linspace(0, 1, len(hist)), np.linspace(0, 1, len(ref)), ref)
    return float(jensenshannon(hist, resized))


# ---- reading an item ------------------------------------------------------------------------------------
def _timestamp(item: Item, name: str, index: int) -> tuple[float, dict[str, Any]]:
    """``timestamp[index]`` of FDB's metadata file ``name`` (its first entry) and that entry."""
    where = f"{item.task}/{item.id}"
    doc = read_json(item.path / name)
    entry = doc[0] if isinstance(doc, list) and doc and isinstance(doc[0], dict) else None
    stamp = entry.get("timestamp") if entry is not None else None
    if not isinstance(stamp, list) or len(stamp) <= index or not isinstance(stamp[index], (int, float)):
        raise BenchError(
            f'{where}: {name} has no timestamp; FDB\'s shape is [{{"timestamp": [start_s, end_s], ...}}] '
            f"and its evaluator reads timestamp[{index}]"
        )
    return float(stamp[index]), entry


def _kit_timing(item: Item) -> dict[str, Any] | None:
    path = item.path / TIMING_FILE
    return read_json(path) if path.exists() else None


def user_end(item: Item) -> tuple[float, str]:
    """Turn-taking: (the user's end, the file it came from): turn_taking.json's timestamp[0], else timing.json."""
    if (item.path / "turn_taking.json").exists():
        return _timestamp(item, "turn_taking.json", 0)[0], "turn_taking.json"
    timing = _kit_timing(item)
    if timing is not None and timing.get("user_end") is not None:
        return float(timing["user_end"]), TIMING_FILE
    raise BenchError(f"{item.task}/{item.id}: no turn_taking.json (FDB's end of the user's turn) and no timing.json")


def interruption(item: Item) -> tuple[float, str, str, str]:
    """(end of the interruption, context text, interruption text, the file they came from)."""
    if (item.path / "interrupt.json").exists():
        end, entry = _timestamp(item, "interrupt.json", 1)
        return end, str(entry.get("context", "")), str(entry.get("interrupt", "")), "interrupt.json"
    timing = _kit_timing(item)
    span = timing.get("interrupt") if timing is not None else None
    if isinstance(span, list) and len(span) == 2 and span[1] is not None:
        texts = [str(t) for t in timing.get("text", [])] if timing else []
        return float(span[1]), (texts[0] if texts else ""), (texts[-1] if len(texts) > 1 else ""), TIMING_FILE
    raise BenchError(f"{item.task}/{item.id}: no interrupt.json (FDB's interruption span) and no timing.json")


def item_words(item: Item, hook: WordsHook | None = None, after: float | None = None) -> Words:
    """The item's words: its output.json, else the ``hook``'s, else the kit's recording of the text stream.

    Words built here (hook or text stream) are written as output.json when the item has none
    (``after``: only the words that start at or after it, for interruption items).
    """
    where = f"{item.task}/{item.id}"
    path = item.path / OUTPUT_JSON
    if hook is None and path.exists():
        return read_output_json(path, where)
    if hook is not None:
        try:
            chunks = list(hook(item.output))
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
            raise BenchError(f"{where}: the words hook failed on {item.output.name}: {problem}") from None
        words = parse_chunks(chunks, f"words hook {getattr(hook, '__name__', type(hook).__name__)}",
                             f"{where}: the words hook")  # fmt: skip
    else:
        events = read_text_events(item.recorded, where)
        if events is None:
            raise BenchError(
                f"{where}: no words: no {OUTPUT_JSON} (FDB's ASR shape) and no kit recording of the model's "
                "text; pass words= (a Japanese ASR) to build them"
            )
        words = words_from_text_events(events)
    if after is not None:
        words = words.after(after)
    write_output_json(path, words)
    return words


def _read_pcm(item: Item) -> tuple[np.ndarray, int]:
    from ...core.audio import AudioFileError, read_audio

    if not item.output.exists():
        raise BenchError(f"{item.task}/{item.id}: no output.wav in {item.path}")
    try:
        data, rate = read_audio(item.output)
    except AudioFileError as exc:
        raise BenchError(f"{item.task}/{item.id}: output.wav is not readable audio: {exc}") from None
    return data.mean(axis=1), rate


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def score_item(
    item: Item,
    words: WordsHook | None = None,
    judge: Judge | None = None,
    reference: Reference | None = None,
) -> dict[str, Any]:
    """One item by FDB's v1 rules; raises :class:`BenchError` (naming the item) when it cannot be scored."""
    where = f"{item.task}/{item.id}"
    out: dict[str, Any] = {"id": item.id, "folder": item.path.parent.name}
    warnings: list[str] = []
    if item.task == "interruption":
        end, context, interrupt_text, source = interruption(item)
        found = item_words(item, words, after=end)
        takeover, latency = takeover_latency(found.words, end)
        out.update(interrupt_end_s=_r(end), timing_source=source, relevance=None)
        if takeover and judge is not None:
            try:
                rating = float(judge(context, interrupt_text, found.text))
                if not 0.0 <= rating <= 5.0:
                    raise ValueError(f"{rating} is outside FDB's 0-5 scale")
                out["relevance"] = rating
            except Exception as exc:
                warnings.append(f"{where}: the judge gave no rating: {type(exc).__name__}: {exc}")
    elif item.task == "turn_taking":
        end, source = user_end(item)
        found = item_words(item, words)
        takeover, latency = takeover_latency(found.words, end)
        out.update(user_end_s=_r(end), timing_source=source)
    elif item.task == "pause_handling":
        found = item_words(item, words)
        takeover, latency = takeover_latency(found.words, None)
    else:  # backchannel
        found = item_words(item, words)
        pcm, rate = _read_pcm(item)
        duration = len(pcm) / rate
        segments = silero_segments(pcm, rate)
        takeover, counted = backchannel_verdict(segments, found.words)
        jsd = None
        if reference is not None:
            if item.id in reference:
                jsd = backchannel_jsd(counted, duration, reference[item.id])
            else:
                warnings.append(f"{where}: the reference has no distribution for item id {item.id!r}; jsd is null")
        out.update(backchannels=len(counted), frequency_per_s=_r(len(counted) / duration) if duration else None,
                   jsd=_r(jsd), duration_s=round(duration, 3),
                   segments=[[s, e] for s, e in segments])  # fmt: skip
        latency = None
    warnings += found.notes
    out.update(
        takeover=takeover,
        latency_s=_r(None if latency is None else max(latency, 0.0)),
        latency_raw_s=_r(latency),
        words=len(found.words),
        span_s=_r(transcript_span(found.words)),
        words_source=found.source,
        skipped_chunks=found.skipped,
        text=found.text,
    )
    if warnings:
        out["warnings"] = warnings
    return out


# ---- summaries and the folder ---------------------------------------------------------------------------
def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def _std(values: list[float]) -> float | None:
    return round(float(np.std(values)), 4) if values else None  # numpy's population std, as FDB prints


def summarize(task: str, items: list[dict[str, Any]], judged: bool) -> dict[str, Any]:
    """The means FDB prints for one task (and n, errors, the TOR's 95 % Wilson interval)."""
    ok = [it for it in items if "error" not in it]
    tors = [float(it["takeover"]) for it in ok]
    out: dict[str, Any] = {
        "n": len(ok),
        "errors": len(items) - len(ok),
        "TOR": _mean(tors),
        "TOR_ci95": wilson_interval(int(sum(tors)), len(ok)),
    }
    if task in ("turn_taking", "interruption"):
        out["latency_mean_s"] = _mean([it["latency_s"] for it in ok if it["latency_s"] is not None])
    if task == "interruption":
        ratings = [it["relevance"] for it in ok if it.get("relevance") is not None]
        out["relevance"] = _mean(ratings) if judged else NOT_COMPUTED
        out["relevance_n"] = len(ratings)
    if task == "backchannel":
        freqs = [it["frequency_per_s"] for it in ok if it["frequency_per_s"] is not None]
        jsds = [it["jsd"] for it in ok if it["jsd"] is not None]
        out.update(TOR_std=_std(tors), frequency_mean_per_s=_mean(freqs), frequency_std_per_s=_std(freqs),
                   jsd_mean=_mean(jsds), jsd_std=_std(jsds), jsd_n=len(jsds))  # fmt: skip
    out["skipped_chunks"] = sum(it.get("skipped_chunks", 0) for it in ok)
    out["warnings"] = sum(len(it.get("warnings", [])) for it in ok)
    out["rules"] = RULES_NAME
    return out


def read_reference(source: str | Path | Reference) -> Reference:
    """A reference of backchannel distributions, ``{item id: [p, ...]}`` (FDB's icc_gt_distribution.json shape)."""
    doc: Any = source
    if isinstance(source, (str, Path)):
        doc = read_json(Path(source))
    if not isinstance(doc, Mapping) or not all(
        isinstance(v, (list, tuple)) and v and all(isinstance(x, (int, float)) for x in v) for v in doc.values()
    ):
        raise BenchError(f"{source if isinstance(source, (str, Path)) else 'reference'}: not a JSON object of "
                         "per-item distributions {\"<item id>\": [p0, p1, ...]} (FDB's shape)")  # fmt: skip
    return {str(k): [float(x) for x in v] for k, v in doc.items()}


def score(
    folder: str | Path,
    *,
    tasks: list[str] | tuple[str, ...] | None = None,
    limit: int | None = None,
    words: WordsHook | None = None,
    judge: Judge | None = None,
    reference: str | Path | Reference | None = None,
    write: bool = True,
) -> dict[str, Any]:
    """Every item under ``folder`` by FDB's v1 rules; writes ``folder/scores_fdb.json`` and returns it.

    Same shape as the kit's scores.json. ``words``: a hook from output.wav to chunks (a Japanese
    ASR); without it each item's output.json is used, else the kit's recording of the text stream
    (written as output.json). ``judge``: rates interruption responses 0-5 (without it the summary
    says ``"relevance": "not computed"``). ``reference``: per-item backchannel distributions (a JSON
    file or a mapping) for the JSD; without it ``jsd`` is null.
    """
    ref = None if reference is None else read_reference(reference)
    return score_folder(
        folder,
        lambda item: score_item(item, words, judge, ref),
        lambda task, items: summarize(task, items, judge is not None),
        SCORES_FDB_FILE if write else None,
        tasks,
        limit,
    )


def warnings(scores: dict[str, Any]) -> list[str]:
    """Every item warning in a scores dict (chunks left out, no reference distribution, no rating)."""
    return [w for entry in scores.values() for it in entry["items"] for w in it.get("warnings", [])]
