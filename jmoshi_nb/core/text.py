"""SentencePiece pieces to display text.

moshi.server turns the word-start marker ``▁`` into a space, which is right for English and wrong for
Japanese (no spaces between words). Here the marker becomes a space only between two non-CJK
characters, so Japanese reads naturally and English keeps its spaces.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .audio import FRAME_S

WORD_START = "\u2581"  # ▁
# moshi's default end-of-padding and padding text ids: frames without text. The engine takes the ids
# from its LM and records them in each session (``session["pad_tokens"]``); this is the fallback
# for recordings made before that.
PAD_TOKENS = (0, 3)


def is_cjk(ch: str) -> bool:
    """Kana, kanji, CJK punctuation and full-width forms."""
    if not ch:
        return False
    code = ord(ch)
    return (
        0x3000 <= code <= 0x30FF  # CJK punctuation, hiragana, katakana
        or 0x3400 <= code <= 0x9FFF  # CJK ideographs
        or 0xF900 <= code <= 0xFAFF
        or 0xFF00 <= code <= 0xFFEF  # full-width and half-width forms
        or unicodedata.east_asian_width(ch) in ("W", "F")
    )


@runtime_checkable
class TextTokenizer(Protocol):
    """What the kit asks of a text tokenizer: SentencePiece's piece lookups (``SentencePieceProcessor``
    has them all; a stand-in for random weights must have them too)."""

    def id_to_piece(self, id: int) -> str: ...  # noqa: A002 (SentencePiece's name)

    def is_byte(self, id: int) -> bool: ...  # noqa: A002

    def is_control(self, id: int) -> bool: ...  # noqa: A002

    def is_unknown(self, id: int) -> bool: ...  # noqa: A002


class PieceDecoder:
    """Stateful: whether a ``▁`` becomes a space depends on the previous character emitted.

    With a SentencePiece ``tokenizer``, ``decode_id`` also joins byte-fallback pieces (``<0xE3>``...)
    back into the characters they spell, so rare characters are not lost.
    """

    def __init__(self, tokenizer: TextTokenizer | None = None) -> None:
        if tokenizer is not None and not isinstance(tokenizer, TextTokenizer):
            missing = [m for m in ("id_to_piece", "is_byte", "is_control", "is_unknown") if not hasattr(tokenizer, m)]
            raise TypeError(f"{type(tokenizer).__name__} is not a text tokenizer: it lacks {', '.join(missing)}")
        self._last = ""
        self._sp = tokenizer
        self._bytes = bytearray()

    def decode_id(self, token: int) -> str:
        sp = self._sp
        if sp is None:
            raise ValueError("decode_id needs the tokenizer: PieceDecoder(tokenizer)")
        if sp.is_byte(token):
            self._bytes.append(int(sp.id_to_piece(token)[3:5], 16))
            try:
                text = self._bytes.decode("utf-8")
            except UnicodeDecodeError:
                if len(self._bytes) < 4:
                    return ""  # a multi-byte character is still arriving
                text = self._bytes.decode("utf-8", "replace")
            self._bytes.clear()
            return self.decode(text)
        if sp.is_control(token) or sp.is_unknown(token):
            return ""
        return self.decode(sp.id_to_piece(token))

    def decode(self, piece: str) -> str:
        starts_word = piece.startswith(WORD_START)
        body = piece.replace(WORD_START, "")
        if piece.startswith("<") and piece.endswith(">"):
            return ""  # control pieces such as <unk>
        out = body
        if starts_word and self._last and not is_cjk(self._last) and body and not is_cjk(body[0]):
            out = " " + body
        if out:
            self._last = out[-1]
        return out


def pieces_to_text(pieces: list[str]) -> str:
    dec = PieceDecoder()
    return "".join(dec.decode(p) for p in pieces)


# ---- phrases: pieces merged at pauses, for plots and annotation tiers ------------------------------------
PHRASE_GAP_FRAMES = 4  # 4 frames (320 ms) without a text piece end a phrase
PHRASE_MAX_CHARS = 16  # a longer run of text is cut into phrases of at most this many characters


@dataclass
class Phrase:
    """Consecutive text pieces with no pause between them: ``first_frame`` to ``last_frame`` inclusive."""

    first_frame: int
    last_frame: int
    text: str

    @property
    def start(self) -> float:
        """Seconds: the start of the first piece's frame."""
        return self.first_frame * FRAME_S

    @property
    def end(self) -> float:
        """Seconds: the end of the last piece's frame."""
        return (self.last_frame + 1) * FRAME_S


class PhraseBuilder:
    """Merges text pieces (in frame order) into phrases as they arrive.

    A piece joins the latest phrase when it comes at most ``gap_frames`` frames after that phrase's
    last piece and the phrase stays within ``max_chars``; otherwise it starts a new phrase.
    """

    def __init__(self, gap_frames: int = PHRASE_GAP_FRAMES, max_chars: int | None = PHRASE_MAX_CHARS) -> None:
        if gap_frames < 1 or (max_chars is not None and max_chars < 1):
            raise ValueError(f"gap_frames and max_chars must be >= 1, got {gap_frames} and {max_chars}")
        self.gap_frames, self.max_chars = gap_frames, max_chars
        self.phrases: list[Phrase] = []

    def add(self, frame: int, piece: str) -> bool:
        """Add one piece; True if it started a new phrase (False: it grew the latest one, or was blank)."""
        if not piece.strip():
            return False
        last = self.phrases[-1] if self.phrases else None
        if (
            last is not None
            and frame - last.last_frame <= self.gap_frames
            and (self.max_chars is None or len(last.text) + len(piece) <= self.max_chars)
        ):
            last.text += piece
            last.last_frame = frame
            return False
        self.phrases.append(Phrase(frame, frame, piece.lstrip()))
        return True


def merge_pieces(
    pieces: Iterable[tuple[int, str]], gap_frames: int = PHRASE_GAP_FRAMES, max_chars: int | None = PHRASE_MAX_CHARS
) -> list[Phrase]:
    """``(frame, piece)`` pairs in frame order as phrases (see :class:`PhraseBuilder`)."""
    builder = PhraseBuilder(gap_frames, max_chars)
    for frame, piece in pieces:
        builder.add(frame, piece)
    return builder.phrases


def display_width(text: str) -> float:
    """Width of ``text`` in ems, roughly as a sans-serif font draws it: CJK 1, other characters 0.6."""
    return sum(1.0 if is_cjk(ch) else 0.6 for ch in text)


def lay_out_labels(spans: Iterable[tuple[float, float]], rows: int) -> list[int]:
    """Rows for labels ``(start, width)`` in time order so that none overlaps another on its row.

    Each label takes the first row free at its start; a label with no free row gets -1 (drawn as a
    tick mark only: thinned). Deterministic, so a growing sequence keeps its earlier rows.
    """
    ends = [float("-inf")] * rows
    out = []
    for start, width in spans:
        row = next((r for r, end in enumerate(ends) if start >= end), -1)
        if row >= 0:
            ends[row] = start + width
        out.append(row)
    return out
