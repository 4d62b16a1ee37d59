"""``LabelledWidget``: an anywidget whose browser side shows labels picked in Python.

A subclass lists its labels as ``LABELS = {key: (ja, en)}``; the synced ``labels`` trait holds them as
``{key: text}`` in the widget's ``lang`` (``jmoshi_nb.core.labels``), recomputed when ``lang`` changes, so
the JS only looks texts up and never picks a language itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import anywidget
import traitlets as t

from ...core.labels import Bilingual, label_texts


class LabelledWidget(anywidget.AnyWidget):
    """Base of the kit's anywidgets: ``lang`` in, ``labels`` out."""

    LABELS: ClassVar[Mapping[str, Bilingual]] = {}

    lang = t.Unicode("both", help="labels: 'ja', 'en' or 'both'").tag(sync=True)
    labels = t.Dict(help="{key: text}: every label of the widget, in `lang` (read by the browser)").tag(sync=True)

    @t.default("labels")
    def _default_labels(self) -> dict[str, str]:
        return label_texts(self.LABELS, self.lang)

    @t.observe("lang")
    def _lang_changed(self, change: dict[str, Any]) -> None:
        self.labels = label_texts(self.LABELS, change["new"])
