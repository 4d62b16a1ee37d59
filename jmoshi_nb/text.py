"""SentencePiece pieces to display text.

moshi.server turns the word-start marker ``▁`` into a space, which is right for English and wrong for
Japanese (no spaces between words). Here the marker becomes a space only between two non-CJK
characters, so Japanese reads naturally and English keeps its spaces.
"""

from __future__ import annotations

import unicodedata

WORD_START = "\u2581"  # ▁


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
    """Stateful: whether a ``▁`` becomes a space depends on the previous character emitted."""

    def __init__(self) -> None:
        self._last = ""

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
