"""The model's words with times, in Full-Duplex-Bench's ASR shape: an item's ``output.json``.

    {"text": "はい 京都 へ ...", "chunks": [{"text": "はい", "timestamp": [start_s, end_s]}, ...],
     "source": "model text stream"}

FDB's evaluators take the model's words from ``output.json``, written by an English ASR with word
times. Here the words come, in this order, from:

1. the item's own ``output.json`` (any source: FDB's ASR, a Japanese ASR, the kit), read as it is;
2. a ``words=`` hook: a function from the path of ``output.wav`` to chunks in FDB's shape (plug a
   Japanese ASR in there; the kit ships none, none can be downloaded where it is built);
3. the kit's recording of the model's own text stream (:func:`words_from_text_events`): the pieces
   are joined, split into words by OpenJTalk's morphological analysis (pyopenjtalk-plus, the
   ``speech`` extra, its dictionary bundled: offline), and each word is timed by the frames of its
   pieces. The result is written as ``output.json`` with ``"source": "model text stream"`` so that
   FDB's own scripts read the same words. An existing ``output.json`` is never overwritten by scoring.

Chunks whose start is null are skipped, as FDB's backchannel evaluator skips them (its other
evaluators would fail on one at the ends); chunks whose end comes before their start are skipped
too. Both are counted in :class:`Words` so that the scores can say so.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core.audio import FRAME_S
from .layout import BenchError

OUTPUT_JSON = "output.json"
SOURCE_TEXT_STREAM = "model text stream"
# Seconds from the start of the frame that produced a text piece to where that piece's speech starts in
# output.wav. moshi's LMGen returns a step's text token together with the audio codes of the same
# position (it undoes the acoustic delay before returning them), and the kit records both at that
# frame: the offset is zero frames. J-Moshi's training aligns a word's first piece with the word's
# onset (the inner monologue), so the piece's frame is the word's start; an ASR on output.wav may
# still differ by a frame or two. ``offset_s`` changes it where a model is known to differ.
TEXT_TO_AUDIO_S = 0.0

WordsHook = Callable[[Path], Sequence[dict[str, Any]]]
"""A ``words=`` hook: the path of output.wav -> chunks ``[{"text": str, "timestamp": [start_s, end_s]}]``."""


@dataclass(frozen=True)
class Word:
    """One word (an ASR chunk): its text, start and end in seconds of output.wav (end may be null)."""

    text: str
    start: float
    end: float | None


@dataclass
class Words:
    """The words of one item, where they came from, and the chunks that were left out."""

    words: list[Word]
    source: str
    text: str = ""
    skipped_null_start: int = 0
    skipped_reversed: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return self.skipped_null_start + self.skipped_reversed

    def after(self, t: float) -> Words:
        """Only the words that start at or after ``t`` (FDB transcribes an interruption item from its end)."""
        kept = [w for w in self.words if w.start >= t - 1e-9]
        return Words(kept, self.source, " ".join(w.text for w in kept), self.skipped_null_start,
                     self.skipped_reversed, list(self.notes))  # fmt: skip

    def document(self) -> dict[str, Any]:
        """The output.json document (FDB's shape plus ``source``)."""
        return {
            "text": self.text,
            "chunks": [{"text": w.text, "timestamp": [w.start, w.end]} for w in self.words],
            "source": self.source,
        }


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def parse_chunks(chunks: Any, source: str, where: str, text: str | None = None) -> Words:
    """FDB-shaped chunks as :class:`Words`; :class:`BenchError` (naming ``where``) when they are not that shape.

    Chunks with a null start or a reversed span are skipped and counted (see the module docstring).
    """
    if not isinstance(chunks, list):
        raise BenchError(f"{where}: 'chunks' must be a list of {{'text', 'timestamp': [start, end]}}")
    words: list[Word] = []
    null_start = reversed_ = 0
    for i, chunk in enumerate(chunks):
        stamp = chunk.get("timestamp") if isinstance(chunk, dict) else None
        if not isinstance(chunk, dict) or not isinstance(chunk.get("text"), str) or not isinstance(stamp, list):
            raise BenchError(f"{where}: chunk {i} is not {{'text': str, 'timestamp': [start, end]}}: {chunk!r}")
        if len(stamp) != 2:
            raise BenchError(f"{where}: chunk {i} has timestamp {stamp!r}; FDB's shape is [start_s, end_s]")
        try:
            start, end = _number(stamp[0]), _number(stamp[1])
        except TypeError as exc:
            raise BenchError(f"{where}: chunk {i} has a timestamp that is not numbers: {exc}") from None
        if start is None:
            null_start += 1
            continue
        if end is not None and end < start:
            reversed_ += 1
            continue
        words.append(Word(chunk["text"], start, end))
    out = Words(words, source, text if text is not None else " ".join(w.text for w in words), null_start, reversed_)
    if null_start:
        out.notes.append(f"{where}: {null_start} chunk(s) with a null start skipped (as FDB skips them)")
    if reversed_:
        out.notes.append(f"{where}: {reversed_} chunk(s) ending before they start skipped")
    return out


def read_output_json(path: Path, where: str) -> Words:
    """An item's output.json; :class:`BenchError` naming ``where`` when it is not FDB's ASR shape."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchError(f"{where}: {path.name} is not readable JSON ({exc})") from None
    if not isinstance(doc, dict) or "chunks" not in doc or not isinstance(doc.get("text", ""), str):
        raise BenchError(
            f"{where}: {path.name} is not FDB's ASR shape "
            '{"text": str, "chunks": [{"text": str, "timestamp": [start_s, end_s]}]}'
        )
    source = str(doc.get("source") or OUTPUT_JSON)
    return parse_chunks(doc["chunks"], source, f"{where}: {path.name}", doc.get("text", ""))


def write_output_json(path: Path, words: Words, replace: bool = False) -> bool:
    """Write ``words`` as ``path`` (FDB's shape); an existing file is kept unless ``replace``. True if written."""
    if path.exists() and not replace:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(words.document(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return True


# ---- words from the model's text stream ----------------------------------------------------------------
_NUMERALS = set("〇一二三四五六七八九十百千万億兆零")


def _normalized(text: str) -> tuple[str, list[int]]:
    """``text`` in NFKC (OpenJTalk writes full-width forms) and, per character, its index in ``text``."""
    chars: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        for c in unicodedata.normalize("NFKC", ch):
            chars.append(c)
            index.append(i)
    return "".join(chars), index


def _is_mark(text: str) -> bool:
    return bool(text) and all(unicodedata.category(c)[0] in "PSZ" for c in text)


def split_words(text: str) -> list[tuple[str, int, int]]:
    """``text`` split into words by OpenJTalk: ``[(word, first char, last char + 1)]`` (indices into ``text``).

    Punctuation joins the word before it (as an ASR writes "Yes,"); spaces are no words. A run of
    digits is one word (OpenJTalk reads "2025" as four numeral words, 二 千 二 十 五).
    """
    from ..speech import quiet_openjtalk

    norm, index = _normalized(text)
    if not norm.strip():
        return []
    with quiet_openjtalk() as pyopenjtalk:
        nodes = [unicodedata.normalize("NFKC", n["string"]) for n in pyopenjtalk.run_frontend(norm)]
    spans: list[list[int]] = []  # [first, end) in ``norm``
    i = 0
    after_digits = False

    def take(start: int, end: int, mark: bool) -> None:
        if mark and spans:
            spans[-1][1] = end
        elif not mark:
            spans.append([start, end])

    for node in nodes:
        while i < len(norm) and norm[i].isspace():
            i += 1
        if not node.strip() or i >= len(norm):
            continue
        if norm.startswith(node, i):
            take(i, i + len(node), _is_mark(node))
            i += len(node)
            after_digits = False
        elif after_digits and set(node) <= _NUMERALS:
            continue  # the rest of a number OpenJTalk spelled in numerals
        elif norm[i].isdigit():
            j = i
            while j < len(norm) and (norm[j].isdigit() or (norm[j] in ",." and norm[j + 1 : j + 2].isdigit())):
                j += 1
            take(i, j, False)
            i, after_digits = j, True
        else:
            found = norm.find(node, i, i + len(node) + 8)
            if found < 0:
                continue  # a node OpenJTalk made up (a reading): its characters go to the next word
            take(i, found + len(node), _is_mark(node))
            i, after_digits = found + len(node), False
    rest = norm[i:].strip()
    if rest:
        start = i + (len(norm[i:]) - len(norm[i:].lstrip()))
        take(start, len(norm.rstrip()), _is_mark(rest))
    return [(text[index[a] : index[b - 1] + 1], index[a], index[b - 1] + 1) for a, b in spans]


def words_from_text_events(events: Sequence[tuple[int, str]], offset_s: float = TEXT_TO_AUDIO_S) -> Words:
    """Words with times from the model's text pieces ``[(frame, text)]`` (the kit's recording).

    The pieces are joined and split by :func:`split_words`; a word starts at the frame of its first
    piece and ends at the end of the frame of its last piece (plus ``offset_s``, see
    ``TEXT_TO_AUDIO_S``). A piece's text can hold the end of one word and the start of the next: each
    character keeps its piece's frame. Text tells only when a word began, so a word's end is a lower
    bound: the last piece's frame, not the end of its sound.
    """
    text = ""
    frames: list[int] = []
    for frame, piece in events:
        text += piece
        frames += [int(frame)] * len(piece)
    words = []
    for word, a, b in split_words(text):
        start = round(frames[a] * FRAME_S + offset_s, 3)
        end = round((frames[b - 1] + 1) * FRAME_S + offset_s, 3)
        words.append(Word(word.strip(), start, end))
    return Words(words, SOURCE_TEXT_STREAM, " ".join(w.text for w in words))


def read_text_events(recording: Path, where: str) -> list[tuple[int, str]] | None:
    """``[(frame, text)]`` of the model's text events in a kit recording folder; None without one."""
    events = recording / "events.jsonl"
    if not events.exists():
        return None
    out = []
    try:
        with events.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    ev = json.loads(line)
                    if ev.get("type") == "text":
                        out.append((int(ev["frame"]), str(ev["text"])))
    except (OSError, ValueError, KeyError) as exc:
        raise BenchError(f"{where}: {events} is not a readable event log ({exc})") from None
    return out
