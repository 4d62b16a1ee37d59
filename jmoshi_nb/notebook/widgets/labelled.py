"""``LabelledWidget``: an anywidget whose browser side shows labels picked in Python.

A subclass lists its labels as ``LABELS = {key: (ja, en)}``; the synced ``labels`` trait holds them as
``{key: text}`` in the widget's ``lang`` (``jmoshi_nb.core.labels``), recomputed when ``lang`` changes, so
the JS only looks texts up and never picks a language itself.

The widgets share their browser code as files of this folder joined by ``joined_source``: ``labelled.js``
(the ``h`` DOM helper and the ``LabelledView`` base with its ``L(key)`` lookup) before each widget's ESM,
``labelled.css`` (font, frame, bars, buttons) before its CSS. An anywidget ESM is one module. The
AudioWorklets live with the talk page, in ``jmoshi_nb/serve/pages`` (``worklet_sources``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import anywidget
import traitlets as t

from ...core.labels import Bilingual, label_texts

WIDGETS = Path(__file__).parent


def joined_source(*names: str) -> str:
    """The text of the files ``names`` of this folder, one after the other."""
    return "\n".join((WIDGETS / name).read_text(encoding="utf-8") for name in names)


class LabelledWidget(anywidget.AnyWidget):
    """Base of the kit's anywidgets: ``lang`` in, ``labels`` out."""

    LABELS: ClassVar[Mapping[str, Bilingual]] = {}

    def __init_subclass__(cls, assets: str | None = None, **kwargs: Any) -> None:
        """``class TalkWidget(LabelledWidget, assets="talk")``: the browser side is labelled.js + talk.js
        (the ESM) and labelled.css + talk.css (the CSS)."""
        if assets is not None:
            cls._esm = joined_source("labelled.js", f"{assets}.js")
            cls._css = joined_source("labelled.css", f"{assets}.css")
        super().__init_subclass__(**kwargs)

    lang = t.Unicode("both", help="labels: 'ja', 'en' or 'both'").tag(sync=True)
    labels = t.Dict(help="{key: text}: every label of the widget, in `lang` (read by the browser)").tag(sync=True)

    @t.default("labels")
    def _default_labels(self) -> dict[str, str]:
        return label_texts(self.LABELS, self.lang)

    @t.observe("lang")
    def _lang_changed(self, change: dict[str, Any]) -> None:
        self.labels = label_texts(self.LABELS, change["new"])
