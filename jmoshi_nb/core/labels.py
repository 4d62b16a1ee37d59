"""Japanese / English labels: the one place that picks ``日本語``, ``English`` or ``日本語 / English``.

Every label the kit shows is a ``(ja, en)`` pair; ``lang`` is ``"ja"``, ``"en"`` or ``"both"``. The
browser widgets do not pick for themselves: Python hands them ``{key: text}`` already picked
(``label_texts``), recomputed when the widget's ``lang`` changes.
"""

from __future__ import annotations

from collections.abc import Mapping

Bilingual = tuple[str, str]


def bilingual(ja: str, en: str, lang: str = "both") -> str:
    """``ja`` for ``"ja"``, ``en`` for ``"en"``, ``"ja / en"`` for anything else (``"both"``)."""
    if lang == "ja":
        return ja
    if lang == "en":
        return en
    return f"{ja} / {en}"


def label_texts(table: Mapping[str, Bilingual], lang: str = "both") -> dict[str, str]:
    """A ``{key: (ja, en)}`` table as ``{key: text}`` in ``lang``."""
    return {key: bilingual(ja, en, lang) for key, (ja, en) in table.items()}
