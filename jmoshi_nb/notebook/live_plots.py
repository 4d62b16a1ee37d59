"""Live plots of a running session, on bqplot: cheap to update (about a millisecond per tick).

Three figures share one time axis (seconds of conversation, frame ``i`` at ``i * 0.08``) that scrolls
over the last ``window_s`` seconds:

* the model's text, pieces merged into phrases at pauses (``text.PhraseBuilder``), each placed at the
  frame of its first piece on one of three rows; a phrase with no room on any row at the current
  zoom is thinned to a tick mark (hover the panel's text for exact times),
* per-frame compute time (encode / LM / decode / total) against the 80 ms real-time budget,
* the user's and the model's waveforms as peak envelopes (one point per 40 ms).

Parameter changes (``recording.params``) are drawn as dashed vertical lines with their values.
``LivePlots.update(recording)`` consumes only what is new since the last call and sends one batched
message per mark, so the session can call it at 5-10 Hz from its event loop; it must be called from
one thread at a time (the session's loop thread).
"""

from __future__ import annotations

import math
import time
from typing import Any

import bqplot as bq
import ipywidgets as widgets
import numpy as np

from ..core import config
from ..core.audio import FRAME_BUDGET_MS as BUDGET_MS  # the 80 ms real-time budget
from ..core.audio import FRAME_S, SAMPLE_RATE
from ..core.labels import bilingual
from ..core.recording import Recording
from ..core.text import PhraseBuilder, display_width, lay_out_labels

ENVELOPE_BLOCK = 960  # 40 ms at 24 kHz: 25 points a second per waveform
TEXT_ROWS = 3
TEXT_PX = 14  # label font size
EM_PX = 15.0  # drawn width of a full-width character at that size (measured in Chromium: ~14.9 px)
PLOT_PX = 750.0  # the plot area of a panel in a JupyterLab notebook (measured: ~754 px): time per label
TITLE_PX = 13  # title font size, made smaller (down to TITLE_MIN_PX) when a narrow plot needs it
TITLE_MIN_PX = 9
COLORS = {"encode": "#1f77b4", "lm": "#ff7f0e", "decode": "#2ca02c", "total": "#444444"}
USER_COLOR, MODEL_COLOR, PARAMS_COLOR = "#1f77b4", "#d62728", "#9467bd"

TITLES = {
    "text": ("モデルのテキスト", "Model text"),
    "compute": (f"処理時間 ms（予算 {BUDGET_MS:.0f}）", f"Compute ms ({BUDGET_MS:.0f} budget)"),
    "wave": ("波形 ユーザー↑ モデル↓", "Waves user↑ model↓"),
    "time": ("時間 [s]", "time [s]"),
}


class _Envelope:
    """Streaming peak envelope: one value (max |x|) per ``block`` samples."""

    def __init__(self, block: int = ENVELOPE_BLOCK) -> None:
        self.block = block
        self.values: list[float] = []
        self._rest: np.ndarray = np.zeros(0, np.float32)

    def add(self, pcm: np.ndarray) -> None:
        data = np.concatenate((self._rest, np.asarray(pcm, np.float32))) if self._rest.size else pcm
        n = len(data) // self.block
        if n:
            peaks = np.abs(data[: n * self.block].reshape(n, self.block)).max(axis=1)
            self.values.extend(peaks.tolist())
        self._rest = np.asarray(data[n * self.block :], np.float32)

    def window(self, t0: float) -> tuple[np.ndarray, np.ndarray]:
        """(times, peaks) from ``t0`` seconds on."""
        dt = self.block / SAMPLE_RATE
        start = max(0, int(t0 / dt))
        y = np.asarray(self.values[start:], dtype=np.float32)
        return (start + np.arange(len(y))) * dt, y


class _Cursor:
    """How far into each growing list of a Recording the plots have read."""

    def __init__(self) -> None:
        self.user = self.model = self.text = self.metrics = self.params = 0


class LivePlots:
    """The live figures of one session. ``widget`` is what a panel shows."""

    def __init__(
        self, window_s: float = 20.0, lang: str = "both", width: str = "100%", plot_px: float = PLOT_PX
    ) -> None:
        self.window_s = window_s
        self.lang = lang
        self.plot_px = plot_px  # the expected width of a plot area: label room and title size follow
        self.updates = 0
        self.update_ms: list[float] = []  # cost of each update(), for benchmarks
        self._cursor = _Cursor()
        self._user, self._model = _Envelope(), _Envelope()
        self._frames: list[int] = []
        self._ms: dict[str, list[float]] = {k: [] for k in COLORS}
        self._phrases = PhraseBuilder()
        self._params: list[tuple[int, str]] = []
        self._last_params: dict[str, Any] | None = None
        self._drawn: dict[str, Any] = {}
        self._build(width)

    # ---- figures -------------------------------------------------------------------------------
    def _figure(self, key: str, marks: list[bq.Mark], y_scale: bq.Scale, height: int, **axis: Any) -> bq.Figure:
        x_axis = bq.Axis(scale=self.x_scale, label=bilingual(*TITLES["time"], self.lang), num_ticks=8)
        y_axis = bq.Axis(scale=y_scale, side="left", **axis)
        title = bilingual(*TITLES[key], self.lang)
        return bq.Figure(
            marks=marks,
            axes=[x_axis, y_axis],
            title=title,
            fig_margin={"top": 30, "bottom": 35, "left": 50, "right": 15},
            layout=widgets.Layout(height=f"{height}px", width="100%"),
            animation_duration=0,
            title_style={"font-size": f"{title_font_px(title, self.plot_px)}px"},
        )

    def _build(self, width: str) -> None:
        self.x_scale = bq.LinearScale(min=0.0, max=float(self.window_s))
        y_text = bq.LinearScale(min=-1.0, max=TEXT_ROWS - 0.4)
        y_ms = bq.LinearScale(min=0.0, max=2 * BUDGET_MS)
        y_wave = bq.LinearScale(min=-2.0, max=2.0)
        xs = {"x": self.x_scale}

        self.text_mark = self._label_mark(y_text, TEXT_PX, "#222222", font_weight="normal")
        self.text_ticks = bq.Scatter(
            x=[], y=[], scales={**xs, "y": y_text}, marker="rectangle", default_size=12, colors=["#888888"]
        )
        self.text_params = self._vlines(y_text, -1.0, TEXT_ROWS - 0.4)
        self.ms_lines = bq.Lines(
            x=[0.0],
            y=[[0.0]] * len(COLORS),
            scales={**xs, "y": y_ms},
            colors=list(COLORS.values()),
            labels=list(COLORS),
            display_legend=True,
            stroke_width=1.5,
        )
        self.budget = bq.Lines(
            x=[0.0, 1e6], y=[BUDGET_MS, BUDGET_MS], scales={**xs, "y": y_ms}, colors=["#d62728"], line_style="dashed"
        )
        self.ms_params = self._vlines(y_ms, 0.0, 2 * BUDGET_MS)
        self.params_labels = self._label_mark(y_ms, 11, PARAMS_COLOR, x_offset=3)
        self.user_wave = self._envelope_mark(xs, y_wave, USER_COLOR)
        self.model_wave = self._envelope_mark(xs, y_wave, MODEL_COLOR)
        self.wave_params = self._vlines(y_wave, -2.0, 2.0)

        self.fig_text = self._figure(
            "text", [self.text_mark, self.text_ticks, self.text_params], y_text, 140, num_ticks=0
        )
        self.fig_compute = self._figure(
            "compute", [self.ms_lines, self.budget, self.ms_params, self.params_labels], y_ms, 200
        )
        self.fig_compute.legend_location = "top-right"
        self.fig_compute.legend_style = {"fill": "white", "fill-opacity": 0.75, "stroke-width": 0}
        self.fig_wave = self._figure(
            "wave", [self.user_wave, self.model_wave, self.wave_params], y_wave, 170, num_ticks=0
        )
        self.widget = widgets.VBox([self.fig_text, self.fig_compute, self.fig_wave], layout=widgets.Layout(width=width))
        self.widget.add_class("jmoshi-live-plots")

    def _label_mark(self, y_scale: bq.Scale, size: int, color: str, **style: Any) -> bq.Label:
        """Left-aligned text labels on the time axis, none until the feed places them."""
        return bq.Label(
            x=[],
            y=[],
            text=[],
            scales={"x": self.x_scale, "y": y_scale},
            default_size=size,
            colors=[color],
            align="start",
            **style,
        )

    def _vlines(self, y_scale: bq.Scale, lo: float, hi: float) -> bq.Lines:
        mark = bq.Lines(
            x=[[0.0, 0.0]],
            y=[[lo, hi]],
            scales={"x": self.x_scale, "y": y_scale},
            colors=[PARAMS_COLOR],
            line_style="dashed",
            stroke_width=1.5,
            visible=False,
        )
        mark._span = (lo, hi)  # type: ignore[attr-defined]
        return mark

    @staticmethod
    def _envelope_mark(xs: dict[str, bq.Scale], y_scale: bq.Scale, color: str) -> bq.Lines:
        return bq.Lines(
            x=[0.0],
            y=[[0.0], [0.0]],
            scales={**xs, "y": y_scale},
            colors=[color, color],
            fill="between",
            fill_colors=[color],
            fill_opacities=[0.45],
            stroke_width=0.5,
        )

    # ---- feeding -------------------------------------------------------------------------------
    def _consume(self, rec: Recording) -> None:
        c = self._cursor
        if self._last_params is None and rec.session:
            self._last_params = {"params": rec.session.get("sampling", {}), "seed": rec.session.get("seed")}
        for chunk in rec.user_chunks[c.user :]:
            self._user.add(chunk)
        c.user = len(rec.user_chunks)
        for chunk in rec.model_chunks[c.model :]:
            self._model.add(chunk)
        c.model = len(rec.model_chunks)
        for m in rec.metrics[c.metrics :]:
            self._frames.append(int(m["frame"]))
            for key in COLORS:
                self._ms[key].append(float(m.get(f"{key}_ms", math.nan)))
        c.metrics = len(rec.metrics)
        for ev in rec.text[c.text :]:
            self._phrases.add(ev.frame, ev.text)
        c.text = len(rec.text)
        for p in rec.params[c.params :]:
            self._params.append((int(p["from_frame"]), describe_params(p, self._last_params)))
            self._last_params = p
        c.params = len(rec.params)

    def _label_s(self, text: str) -> float:
        """Seconds of the time axis a label covers (plus a little room after it)."""
        return (display_width(text) + 1.0) * EM_PX / self.plot_px * self.window_s

    def now(self) -> float:
        """The latest time (s) anything was plotted at."""
        t_frames = (self._frames[-1] + 1) * FRAME_S if self._frames else 0.0
        t_audio = max(len(self._user.values), len(self._model.values)) * ENVELOPE_BLOCK / SAMPLE_RATE
        return max(t_frames, t_audio)

    def update(self, rec: Recording) -> None:
        """Read what is new in ``rec`` and redraw what changed in the visible window.

        Each mark is sent only when its visible data changed, in one message (``hold_sync``).
        """
        t0 = time.perf_counter()
        self._consume(rec)
        # The window moves in steps of a quarter: between steps the axes stay put and only marks
        # with new data are redrawn (a domain change redraws every mark: costly for the browser).
        step = self.window_s / 4
        end = max(math.ceil(self.now() / step) * step, self.window_s)
        start = end - self.window_s
        with self.x_scale.hold_sync():
            self.x_scale.min, self.x_scale.max = float(start), float(end)
        self._draw_text(start)
        self._draw_compute(start)
        self._draw_waves(start)
        self._draw_params(start)
        self.updates += 1
        self.update_ms.append((time.perf_counter() - t0) * 1e3)
        if len(self.update_ms) > 1000:
            del self.update_ms[:500]

    def _changed(self, mark: str, key: Any) -> bool:
        """True (and remembered) if ``key`` differs from what ``mark`` last showed."""
        if self._drawn.get(mark) == key:
            return False
        self._drawn[mark] = key
        return True

    def _draw_text(self, start: float) -> None:
        phrases = self._phrases.phrases
        first = next((i for i, p in enumerate(phrases) if p.last_frame * FRAME_S >= start - 2.0), len(phrases))
        if not self._changed("text", (first, len(phrases), len(phrases[-1].text) if phrases else 0)):
            return
        # Rows from the first phrase on, so a phrase keeps its row as the window scrolls.
        rows = lay_out_labels(((p.first_frame * FRAME_S, self._label_s(p.text)) for p in phrases), TEXT_ROWS)
        visible = [(p.first_frame * FRAME_S, p.text, row) for p, row in zip(phrases, rows, strict=True)][first:]
        placed = [(x, text, row) for x, text, row in visible if row >= 0]
        with self.text_mark.hold_sync():
            if placed:
                self.text_mark.x = np.array([x for x, _, _ in placed])
                self.text_mark.y = np.array([float(TEXT_ROWS - 1 - row) for _, _, row in placed])
                self.text_mark.text = np.array([text for _, text, _ in placed])
            else:
                self.text_mark.x, self.text_mark.y, self.text_mark.text = [], [], []
        if visible:
            with self.text_ticks.hold_sync():
                self.text_ticks.x = np.array([x for x, _, _ in visible])
                self.text_ticks.y = np.full(len(visible), -0.75)

    def _draw_compute(self, start: float) -> None:
        first = int(np.searchsorted(np.asarray(self._frames), start / FRAME_S)) if self._frames else 0
        if not self._frames or not self._changed("compute", (first, len(self._frames))):
            return
        frames = np.asarray(self._frames[first:], dtype=np.float64)
        ys = np.vstack([np.asarray(self._ms[k][first:], dtype=np.float64) for k in COLORS])
        with self.ms_lines.hold_sync():
            self.ms_lines.x = frames * FRAME_S
            self.ms_lines.y = ys

    def _draw_waves(self, start: float) -> None:
        for name, env, mark, offset in (
            ("user", self._user, self.user_wave, 1.0),
            ("model", self._model, self.model_wave, -1.0),
        ):
            x, y = env.window(start)
            if x.size == 0 or not self._changed(name, (x[0], x.size)):
                continue
            with mark.hold_sync():
                mark.x = x
                mark.y = np.vstack((offset + y, offset - y))

    def _draw_params(self, start: float) -> None:
        shown = [(f * FRAME_S, s) for f, s in self._params if f * FRAME_S >= start]
        if not self._changed("params", tuple(shown)):
            return
        for mark in (self.text_params, self.ms_params, self.wave_params):
            lo, hi = mark._span  # type: ignore[attr-defined]
            with mark.hold_sync():
                if shown:
                    mark.x = np.array([[t, t] for t, _ in shown])
                    mark.y = np.array([[lo, hi]] * len(shown))
                mark.visible = bool(shown)
        with self.params_labels.hold_sync():
            if shown:
                self.params_labels.x = np.array([t for t, _ in shown])
                self.params_labels.y = np.array([2 * BUDGET_MS * (0.92 - 0.1 * (i % 3)) for i in range(len(shown))])
                self.params_labels.text = np.array([s for _, s in shown])
            else:
                self.params_labels.x, self.params_labels.y, self.params_labels.text = [], [], []


def describe_params(entry: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
    """What one ``recording.params`` entry changed since ``previous`` (everything if None), or "(same)"."""
    before = {**previous.get("params", {}), "seed": previous.get("seed")} if previous is not None else None
    return config.describe_params(entry.get("params", {}), entry.get("seed"), before) or "(same)"


def title_font_px(title: str, plot_px: float) -> int:
    """The title's font size: ``TITLE_PX``, smaller when the title would not fit ``plot_px``."""
    fit = int(0.95 * plot_px / max(display_width(title), 1.0))
    return max(TITLE_MIN_PX, min(TITLE_PX, fit))
