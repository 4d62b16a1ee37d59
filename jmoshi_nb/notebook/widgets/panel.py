"""``TalkPanel``: the one panel ``session.talk()`` shows: talk bar, sampling sliders, live plots.

The panel holds no session logic: slider changes go to an ``on_change(changes)`` callback (the
session turns them into ``set_params``), and ``refresh(recording, stats)`` redraws text, counters,
the status line (``status_text``) and plots from the recording and counters the session fills.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ...core.audio import FRAME_S
from ...core.config import MAX_TEMP, SEED_MAX, ConfigError, Sampling, describe_params
from ...core.labels import bilingual
from ...core.recording import Recording
from ..live_plots import LivePlots
from .talk_widget import TalkWidget

log = logging.getLogger("jmoshi_nb.notebook.widgets")

ParamsCallback = Callable[[dict[str, Any]], None]

SLIDER_LABELS = {
    "temp": ("音声温度", "temp"),
    "temp_text": ("テキスト温度", "text temp"),
    "top_k": ("音声 top-k", "top_k"),
    "top_k_text": ("テキスト top-k", "text top_k"),
    "seed": ("シード", "seed"),
}
TEXT_TAIL = 200  # text pieces kept in the panel's text box
COUNTERS_PERIOD_S = 0.25  # each counter update repaints the page: 4 Hz is plenty to read


def status_text(
    label: str, stats: dict[str, Any], sampling: dict[str, Any], stopped: bool = False, ended_by_panel: bool = False
) -> str:
    """The panel's status line.

    Parameters
    ----------
    label:
        What runs where: ``"model · device · backend"``.
    stats:
        The session's counters (``NotebookSession.stats()``): ``frames_done``, ``params``, ``seed``,
        ``from_frame``, ``frame_latency_ms``.
    sampling:
        The sampling parameters last set (``Sampling.model_dump()``), shown until the server reports
        the ones in force.
    stopped, ended_by_panel:
        The conversation is over (by the panel's End button: the line says to run the cells below).

    Returns
    -------
    str
    """
    seconds = f"{stats['frames_done'] * FRAME_S:.1f} s"
    if stopped:
        hint = " · 下のセルを実行してください / run the cells below" if ended_by_panel else ""
        return f"{label} · 終了 / stopped · {seconds}{hint}"
    params = describe_params(stats["params"] or sampling)
    since = f" (frame {stats['from_frame']}~)" if stats["from_frame"] is not None else ""
    rt = stats["frame_latency_ms"]
    server = f" · サーバー往復 / server RT {rt:.0f} ms" if rt else ""
    return f"{label} · {seconds} · {params} seed={stats['seed']}{since}{server}"


class TalkPanel(widgets.VBox):
    """Talk bar + sliders (temp, temp_text, top_k, top_k_text, seed) + live plots, in one VBox."""

    def __init__(
        self,
        sampling: Sampling,
        seed: int | None,
        on_change: ParamsCallback,
        card: int = 2048,
        text_card: int = 32000,
        lang: str = "both",
        input_mode: str = "mic",
        plots: bool = True,
        window_s: float = 20.0,
        audio_options: dict[str, bool] | None = None,
        session_label: str = "",
    ) -> None:
        self.audio = TalkWidget(lang=lang, input_mode=input_mode, **(audio_options or {}))
        self.session_label = session_label  # "model · device · backend", the status line's head
        self.hear: widgets.ToggleButtons | None = None  # which conversation the speaker plays (with a shadow)
        self.shadow_plots: LivePlots | None = None
        self.plots = LivePlots(window_s=window_s, lang=lang) if plots else None
        self._on_change = on_change
        self._syncing = False
        self._n_text = 0
        self._last_stats: dict[str, Any] = {}
        self._counters_at = 0.0
        self.sliders = self._make_sliders(sampling, seed, card, text_card, lang)
        controls = widgets.GridBox(
            list(self.sliders.values()),
            layout=widgets.Layout(grid_template_columns="repeat(auto-fill, minmax(380px, 1fr))", grid_gap="2px 12px"),
        )
        children: list[widgets.Widget] = [self.audio, controls]
        if self.plots is not None:
            children.append(self.plots.widget)
        super().__init__(children, layout=widgets.Layout(width="100%"))
        self.add_class("jmoshi-panel")

    # ---- sliders -------------------------------------------------------------------------------
    def _make_sliders(
        self, s: Sampling, seed: int | None, card: int, text_card: int, lang: str
    ) -> dict[str, widgets.ValueWidget]:
        style = {"description_width": "190px" if lang == "both" else "100px"}
        layout = widgets.Layout(width="auto")
        common: dict[str, Any] = {"continuous_update": False, "style": style, "layout": layout}
        temp_max = max(2.0, s.temp, s.temp_text)
        sliders: dict[str, widgets.ValueWidget] = {
            "temp": widgets.FloatSlider(value=s.temp, min=0.0, max=min(temp_max, MAX_TEMP), step=0.05, **common),
            "temp_text": widgets.FloatSlider(
                value=s.temp_text, min=0.0, max=min(temp_max, MAX_TEMP), step=0.05, **common
            ),
            "top_k": widgets.IntSlider(value=s.top_k, min=1, max=card, **common),
            "top_k_text": widgets.IntSlider(
                value=s.top_k_text, min=1, max=max(s.top_k_text, min(text_card, 500)), **common
            ),
            "seed": widgets.BoundedIntText(value=seed if seed is not None else 0, min=0, max=SEED_MAX, **common),
        }
        for name, w in sliders.items():
            w.description = bilingual(*SLIDER_LABELS[name], lang)
            w.description_allow_html = False
            w.add_class(f"jmoshi-slider-{name.replace('_', '-')}")
            w.observe(self._slider_changed, names="value")
            w._jmoshi_name = name  # type: ignore[attr-defined]
        return sliders

    def _slider_changed(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        name = change["owner"]._jmoshi_name
        try:
            self._on_change({name: change["new"]})
            self.audio.error = ""
        except ConfigError as exc:
            self.audio.error = str(exc)
        except Exception as exc:  # shown in the panel: a slider must never raise into the comm handler
            log.exception("set_params from a slider failed")
            self.audio.error = f"{type(exc).__name__}: {exc}"

    def show_params(self, sampling: Sampling, seed: int | None) -> None:
        """Move the sliders to these values without sending them back to the session."""
        self._syncing = True
        try:
            for name, value in sampling.model_dump().items():
                self.sliders[name].value = value
            if seed is not None:
                self.sliders["seed"].value = seed
        finally:
            self._syncing = False

    def values(self) -> dict[str, Any]:
        """Current slider values: the Sampling fields and ``seed``."""
        return {name: w.value for name, w in self.sliders.items()}

    # ---- refresh -------------------------------------------------------------------------------
    def status_text(self, stats: dict[str, Any], stopped: bool = False, ended_by_panel: bool = False) -> str:
        """This panel's status line for the session's ``stats`` (see the module's ``status_text``)."""
        sampling = {k: v for k, v in self.values().items() if k != "seed"}  # the sliders: the parameters last set
        return status_text(self.session_label, stats, sampling, stopped, ended_by_panel)

    def show_status(self, stats: dict[str, Any]) -> None:
        """Write the status line for ``stats`` now."""
        self.audio.status = self.status_text(stats)

    def refresh(self, rec: Recording, stats: dict[str, Any], force: bool = False) -> None:
        """Redraw text and plots (at the session's update rate), counters and status (at most 4 Hz, or ``force``)."""
        a = self.audio
        status = self.status_text(stats)
        now = time.monotonic()
        with a.hold_sync():
            if len(rec.text) != self._n_text:
                self._n_text = len(rec.text)
                a.tokens = [[e.frame, e.text, round(e.t, 3)] for e in rec.text[-TEXT_TAIL:]]
            if force or now - self._counters_at >= COUNTERS_PERIOD_S:
                self._counters_at = now
                if stats != self._last_stats:
                    self._last_stats = dict(stats)
                    a.stats = dict(stats)
                if status != a.status:
                    a.status = status
        if self.plots is not None:
            self.plots.update(rec)

    def add_shadow(self, description: str, on_hear: Callable[[str], None]) -> None:
        """Show a shadow conversation: its live plots under a title, and which one the speaker plays."""
        lang = self.audio.lang
        self.hear = widgets.ToggleButtons(
            options=[(bilingual("メイン", "main", lang), "main"), (bilingual("シャドー", "shadow", lang), "shadow")],
            value="main",
            description=bilingual("スピーカー", "Speaker", lang),
            style={"description_width": "initial"},
        )
        self.hear.add_class("jmoshi-hear")
        self.hear.observe(lambda change: on_hear(change["new"]), names="value")
        title = widgets.HTML(f"<b>{html.escape(bilingual('シャドー', 'Shadow', lang))}</b>: {html.escape(description)}")
        self.shadow_plots = LivePlots(window_s=self.plots.window_s if self.plots else 20.0, lang=lang)
        self.shadow_plots.widget.add_class("jmoshi-shadow-plots")
        self.children = [*self.children, self.hear, title, self.shadow_plots.widget]

    def refresh_shadow(self, rec: Recording) -> None:
        if self.shadow_plots is not None:
            self.shadow_plots.update(rec)

    def close_session(self, stats: dict[str, Any], ended_by_panel: bool = False) -> None:
        """The session ended: disable input, release the microphone, keep everything visible."""
        self.audio.active = False
        self.audio.status = self.status_text(stats, stopped=True, ended_by_panel=ended_by_panel)
        self.audio.stop_mic()
        for w in self.sliders.values():
            w.disabled = True
