"""``ListeningWidget``: the rater's side of a listening test (``jmoshi_nb.research.listening``), on anywidget.

The rater types a name; the widget then shows that rater's remaining trials one at a time: one clip
and two 1–5 scales (naturalness, meaningfulness), or two clips A and B and a preference. The clips
travel as WAV bytes on the comm (24 kHz, whatever the source rate) and play in the browser's audio
element; no system name reaches the browser. Each answer is appended to the ratings CSV before the
next trial is shown, so closing the tab or a kernel crash loses nothing, and the same name resumes.

Messages, browser -> kernel: ``{type: "ready"}`` (a view opened: send the current clips),
``{type: "rate", trial, naturalness, meaningfulness}``, ``{type: "prefer", trial, choice}``.
Kernel -> browser: ``{type: "clips", trial, n}`` with the WAV files as buffers.
The same answers can be given from Python (``rate`` / ``prefer``), which is how the tests drive it.
"""

from __future__ import annotations

import logging
from typing import Any

import traitlets as t

from ...core.labels import bilingual
from ...research.listening import CHOICES, LISTENING_LABELS, ListeningTest, Trial
from ...research.listening_quality import HEADPHONE_CHOICES, RATED_KINDS
from .labelled import LabelledWidget

log = logging.getLogger("jmoshi_nb.notebook.widgets")


ANSWERED = ("この試行は回答済みです", "that trial was already answered")


class ListeningWidget(LabelledWidget, assets="listening"):
    """One rater at a time; ``test`` holds the clips and the ratings file."""

    LABELS = LISTENING_LABELS

    rater = t.Unicode("", help="the rater's name (typed in the browser, or set from Python)").tag(sync=True)
    trial = t.Dict(help="the trial shown: id, kind, index (1-based), total; empty when none").tag(sync=True)
    finished = t.Bool(False, help="the rater has answered every trial").tag(sync=True)
    answered = t.Int(0, help="trials answered by this rater (including earlier sessions)").tag(sync=True)
    error = t.Unicode("").tag(sync=True)

    def __init__(self, test: ListeningTest, rater: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.test = test
        self._queue: list[Trial] = []
        self._total = 0
        self.on_msg(self._on_custom)
        self.observe(self._on_rater, names="rater")
        if rater:
            self.rater = rater

    # ---- state ------------------------------------------------------------------------------------
    @property
    def current(self) -> Trial | None:
        return self._queue[0] if self._queue else None

    def _on_rater(self, change: dict[str, Any]) -> None:
        name = str(change["new"]).strip()
        self.error = ""
        if not name:
            self._queue, self.trial, self.finished = [], {}, False
            return
        all_trials = self.test.trials(name)
        try:
            self._queue = self.test.remaining(name)
        except ValueError as exc:  # a name that cannot be a ratings file's name (a saved test: one file per rater)
            self._queue, self.trial, self.finished, self.error = [], {}, False, str(exc)
            return
        self._total = len(all_trials)
        self.answered = self._total - len(self._queue)
        self._show()

    def _show(self) -> None:
        trial = self.current
        if trial is None:
            self.trial, self.finished = {}, True
            return
        self.finished = False
        kind = "mos" if trial.kind in RATED_KINDS else trial.kind  # trap and gold clips look like any clip
        self.trial = {"id": trial.id, "kind": kind, "index": self.answered + 1, "total": self._total}
        self._send_clips()

    def _send_clips(self) -> None:
        trial = self.current
        if trial is not None:
            self.send({"type": "clips", "trial": trial.id, "n": len(trial.clips)},
                      buffers=[self.test.wav(c) for c in trial.clips])  # fmt: skip

    # ---- answers ----------------------------------------------------------------------------------
    def _on_custom(self, _widget: object, content: dict[str, Any], buffers: list[Any]) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "ready":
            self._send_clips()
        elif kind == "rate":
            self._answer(content.get("trial"), naturalness=content.get("naturalness"),
                         meaningfulness=content.get("meaningfulness"))  # fmt: skip
        elif kind == "prefer":
            self._answer(content.get("trial"), choice=content.get("choice"))
        else:
            log.warning("listening widget: unknown message %r ignored", kind)

    def _answer(self, trial_id: Any, **answer: Any) -> None:
        trial = self.current
        if trial is None or trial_id != trial.id:
            self.error = bilingual(*ANSWERED, self.lang)
            return
        try:
            for key in ("naturalness", "meaningfulness"):
                if answer.get(key) is not None:
                    answer[key] = int(answer[key])
            self.test.answer(self.rater, trial, **answer)
        except (ValueError, OSError) as exc:
            self.error = str(exc)
            return
        self.error = ""
        self._queue.pop(0)
        self.answered += 1
        self._show()

    def rate(self, naturalness: int, meaningfulness: int) -> None:
        """Answer the current MOS trial (what the browser's buttons do)."""
        self._on_custom(self, {"type": "rate", "trial": self.trial.get("id"), "naturalness": naturalness,
                               "meaningfulness": meaningfulness}, [])  # fmt: skip

    def prefer(self, choice: str) -> None:
        """Answer the current A/B trial (``"A"``, ``"B"``, ``"same"``) or headphone check (``"1"``-``"3"``)."""
        if choice not in CHOICES + HEADPHONE_CHOICES:
            raise ValueError(f"choice must be one of {', '.join(CHOICES + HEADPHONE_CHOICES)}")
        self._on_custom(self, {"type": "prefer", "trial": self.trial.get("id"), "choice": choice}, [])
