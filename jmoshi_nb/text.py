"""SentencePiece pieces to display text.

moshi.server turns the word-start marker ``▁`` into a space, which is right for English and wrong for
Japanese (no spaces between words). Here the marker becomes a space only between two non-CJK
characters, so Japanese reads naturally and English keeps its spaces.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .audio import FRAME_SIZE, SAMPLE_RATE

WORD_START = "\u2581"  # ▁
PAD_TOKENS = (0, 3)  # moshi's end-of-padding and padding text tokens: frames without text


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


class PieceDecoder:
    """Stateful: whether a ``▁`` becomes a space depends on the previous character emitted.

    With a SentencePiece ``tokenizer``, ``decode_id`` also joins byte-fallback pieces (``<0xE3>``...)
    back into the characters they spell, so rare characters are not lost.
    """

    def __init__(self, tokenizer: Any = None) -> None:
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


@dataclass(frozen=True)
class TextSpan:
    """Consecutive text pieces joined into a word or phrase: ``start``/``end`` in seconds."""

    start: float
    end: float
    text: str


def merge_pieces(
    pieces: Iterable[tuple[float, str]], max_pause: float = 0.4, piece_s: float = FRAME_SIZE / SAMPLE_RATE
) -> list[TextSpan]:
    """Join text pieces ``(time_s, text)`` into spans, splitting where the text pauses.

    A piece lasts ``piece_s`` (one frame). A new span starts when more than ``max_pause`` seconds
    pass between the end of one piece and the start of the next; a span ends at its last piece's
    end (never after the next span's start). Spans with only whitespace are left out; the text of a
    span keeps the pieces' own spacing (``PieceDecoder`` output), stripped at both ends.
    """
    ordered = sorted(pieces, key=lambda p: p[0])
    groups: list[list[tuple[float, str]]] = []
    for t, text in ordered:
        if groups and t - (groups[-1][-1][0] + piece_s) <= max_pause + 1e-9:
            groups[-1].append((t, text))
        else:
            groups.append([(t, text)])
    spans: list[TextSpan] = []
    for g in groups:
        text = "".join(p for _, p in g).strip()
        if text:
            spans.append(TextSpan(g[0][0], g[-1][0] + piece_s, text))
    for i in range(len(spans) - 1):
        if spans[i].end > spans[i + 1].start:
            spans[i] = TextSpan(spans[i].start, spans[i + 1].start, spans[i].text)
    return spans
