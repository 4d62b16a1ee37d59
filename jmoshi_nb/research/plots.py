"""Static matplotlib figures of recordings, turn-taking and parameter sweeps.

Every function returns a :class:`jmoshi_nb.core.figures.KitFigure`, built without pyplot: it shows as a
picture when it is a cell's result or passed to ``display()``, nothing piles up in pyplot's figure
list, the global matplotlib settings are left alone, and Japanese text renders (IPAexGothic). Save
it with ``fig.savefig("x.pdf")``.

* :func:`plot_recording`: what the model wrote (text pieces at their frame times), how long each
  frame took to compute against the 80 ms real-time budget, the waveforms and spectrograms of the
  model and the user, and the moments sampling parameters changed.
* :func:`plot_timeline`: both speakers' IPUs with gaps, pauses and overlaps shaded and the model's
  text over its bars (from :func:`jmoshi_nb.research.turn_taking.turn_taking`).
* :func:`plot_sweep_heatmap`: one metric over a 2-D grid of sampling parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..core.audio import FRAME_BUDGET_MS, FRAME_S
from ..core.config import describe_params
from ..core.figures import KitFigure, japanese_text, new_figure
from ..core.recording import Recording
from ..core.text import display_width, lay_out_labels, merge_pieces
from .turn_taking import TurnTaking

if TYPE_CHECKING:
    import pandas as pd

VIEWS = ("text", "timing", "waveform", "spectrogram")
ROW_HEIGHTS = {"text": 1.1, "timing": 1.8, "waveform": 1.1, "spectrogram": 1.5}
SPEAKER_COLORS = {"model": "#1f77b4", "user": "#ff7f0e"}
STAGE_COLORS = {"encode": "#8da0cb", "lm": "#fc8d62", "decode": "#66c2a5"}
SHADES = {"gap": ("#7f7f7f", 0.25), "pause": ("#bcbd22", 0.25), "overlap": ("#d62728", 0.30)}
TEXT_LANES = 3
TEXT_PT = 10  # text labels' font size (points)
AXES_MARGIN_IN = 1.1  # figure width taken by the y labels and margins (inches)
MAX_WAVE_POINTS = 4000


def _time_axis(ax: Axes, time_range: tuple[float, float] | None, duration: float) -> None:
    ax.set_xlim(*(time_range or (0.0, max(duration, FRAME_S))))


def _phrase_labels(
    rec: Recording, time_range: tuple[float, float] | None, axes_in: float, lanes: int, fontsize: float
) -> list[tuple[float, str, int]]:
    """The model's text as phrases (pieces merged at pauses) with a lane each, -1 where a phrase
    would overlap the ones before it on every lane (drawn as a tick mark only: thinned)."""
    lo, hi = time_range or (0.0, max(rec.duration, FRAME_S))
    s_per_in = (hi - lo) / max(axes_in, 0.5)
    phrases = [p for p in merge_pieces((e.frame, e.text) for e in rec.text) if lo <= p.first_frame * FRAME_S <= hi]
    spans = [(p.first_frame * FRAME_S, (display_width(p.text) + 1.0) * fontsize / 72 * s_per_in) for p in phrases]
    lanes_of = lay_out_labels(spans, lanes)
    return [(t, p.text, lane) for (t, _), p, lane in zip(spans, phrases, lanes_of, strict=True)]


# ---- plot_recording views ------------------------------------------------------------------------
def _draw_text(ax: Axes, rec: Recording, time_range: tuple[float, float] | None, axes_in: float) -> None:
    """The model's text merged into phrases at pauses, each at the start of its first frame, over a
    few lanes; phrases with no room at this zoom are tick marks only (zoom in with ``time_range``)."""
    labels = _phrase_labels(rec, time_range, axes_in, TEXT_LANES, TEXT_PT)
    for t, phrase, lane in labels:
        top = TEXT_LANES - 1 - lane if lane >= 0 else -0.25
        ax.plot([t, t], [-0.5, top - 0.25 if lane >= 0 else top], color="0.6", lw=0.6)
        if lane >= 0:
            ax.text(t, top, phrase, fontsize=TEXT_PT, va="center", ha="left", clip_on=True)
    ax.set_ylim(-0.6, TEXT_LANES - 0.4)
    ax.set_yticks([])
    ax.set_ylabel("text")
    hidden = sum(lane < 0 for _, _, lane in labels)
    if not labels:
        ax.text(0.5, 0.5, "(no text)", transform=ax.transAxes, ha="center", va="center", color="0.3")
    elif hidden:  # above the row, right: clear of the phrases
        ax.text(1.0, 1.02, f"{hidden} of {len(labels)} phrases as ticks: zoom in", transform=ax.transAxes,
                ha="right", va="bottom", color="0.3", fontsize=8)  # fmt: skip


def _metric(rec: Recording, key: str) -> np.ndarray:
    return np.array([float(m.get(key) or 0.0) for m in rec.metrics])


def _draw_timing(ax: Axes, rec: Recording) -> None:
    """Per-frame compute time stacked encode / LM / decode, with the 80 ms budget line."""
    if not rec.metrics:
        ax.text(0.5, 0.5, "(no per-frame metrics)", transform=ax.transAxes, ha="center", va="center", color="0.5")
        ax.set_ylabel("ms / frame")
        return
    frames = np.array([m.get("frame", i) for i, m in enumerate(rec.metrics)], dtype=np.float64)
    edges = np.append(frames, frames[-1] + 1) * FRAME_S
    bottom = np.zeros(len(frames))
    for stage, color in STAGE_COLORS.items():
        values = _metric(rec, f"{stage}_ms")
        top = bottom + values
        ax.stairs(top, edges, baseline=bottom, fill=True, color=color, label=stage, lw=0)
        bottom = top
    total = np.array([float(m.get("total_ms") or 0.0) for m in rec.metrics])
    total = np.where(total > 0, total, bottom)
    over = int((total > FRAME_BUDGET_MS).sum())
    ax.axhline(FRAME_BUDGET_MS, color="#d62728", ls="--", lw=1, label=f"{FRAME_BUDGET_MS:.0f} ms budget")
    ax.set_ylim(0, max(FRAME_BUDGET_MS * 1.25, float(np.percentile(total, 99)) * 1.1))
    ax.set_ylabel("ms / frame")
    ax.set_title(
        f"compute time: median {np.median(total):.1f} ms, {over} of {len(total)} frames over budget",
        fontsize=9,
        loc="left",
    )
    ax.legend(loc="upper right", fontsize=8, ncols=4, frameon=False)


def _envelope(pcm: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times, min, max) per block: a faithful waveform with at most MAX_WAVE_POINTS points."""
    block = max(1, int(np.ceil(len(pcm) / MAX_WAVE_POINTS)))
    n = int(np.ceil(len(pcm) / block))
    padded = np.zeros(n * block, np.float32)
    padded[: len(pcm)] = pcm
    blocks = padded.reshape(n, block)
    return np.arange(n) * block / rate, blocks.min(axis=1), blocks.max(axis=1)


def _draw_waveform(ax: Axes, pcm: np.ndarray, rate: int, name: str) -> None:
    if len(pcm):
        t, lo, hi = _envelope(pcm, rate)
        ax.fill_between(t, lo, hi, color=SPEAKER_COLORS.get(name, "0.3"), lw=0.3, step="post")
    peak = float(np.abs(pcm).max()) if len(pcm) else 0.0
    limit = max(peak, 1e-3) * 1.05
    ax.set_ylim(-limit, limit)
    ax.set_ylabel(name)


def _draw_spectrogram(ax: Axes, pcm: np.ndarray, rate: int, name: str, max_freq: float) -> None:
    """Log-power spectrogram (25 ms Hann windows, 10 ms hop), top 80 dB, up to ``max_freq`` Hz."""
    from scipy.signal import spectrogram

    nper = int(0.025 * rate)
    if len(pcm) < nper:
        ax.set_ylabel(f"{name}\nkHz")
        return
    freqs, times, power = spectrogram(pcm, fs=rate, window="hann", nperseg=nper, noverlap=nper - int(0.01 * rate))
    keep = freqs <= max_freq
    db = 10 * np.log10(power[keep] + 1e-12)
    top = float(db.max())
    hop = times[1] - times[0] if len(times) > 1 else 0.01
    extent = (times[0] - hop / 2, times[-1] + hop / 2, 0.0, freqs[keep][-1] / 1000)
    ax.imshow(db, origin="lower", aspect="auto", extent=extent, cmap="magma", vmin=top - 80, vmax=top)
    ax.set_ylabel(f"{name}\nkHz")


def _mark_params(axes: Sequence[Axes], rec: Recording) -> None:
    """A dotted vertical line on every axis where parameters changed, labelled on the top one."""
    previous: dict[str, Any] | None = None
    for entry in rec.params:
        t = float(entry.get("from_frame", 0)) * FRAME_S
        label = describe_params(entry.get("params") or {}, entry.get("seed"), previous)
        previous = {**(entry.get("params") or {}), "seed": entry.get("seed")}
        for ax in axes:
            ax.axvline(t, color="#2ca02c", ls=":", lw=1.2)
        if label:
            axes[0].annotate(
                label, (t, 1.0), xycoords=("data", "axes fraction"), xytext=(2, 2), textcoords="offset points",
                fontsize=8, color="#2ca02c", va="bottom", ha="left", annotation_clip=True,
            )  # fmt: skip


def _title(rec: Recording) -> str:
    name = rec.config.name if rec.config and rec.config.name else ""
    model = rec.session.get("model") or (rec.config.model if rec.config else "")
    parts = [p for p in (name, model, f"{rec.duration:.1f} s") if p]
    return " · ".join(parts)


@japanese_text
def plot_recording(
    rec: Recording,
    views: Sequence[str] = VIEWS,
    *,
    time_range: tuple[float, float] | None = None,
    width: float = 10.0,
    max_freq: float = 8000.0,
    title: str | None = None,
) -> KitFigure:
    """A stacked, time-aligned figure of one recording.

    ``views`` (any order, each at most once): ``"text"`` (each model text piece at its frame time),
    ``"timing"`` (per-frame compute time: encode, LM, decode stacked, the 80 ms real-time budget as
    a dashed line), ``"waveform"`` and ``"spectrogram"`` (one row each for the model and the user).
    Dotted green lines mark where sampling parameters changed, labelled with what changed.
    ``time_range=(t0, t1)`` zooms in (seconds); ``title=None`` uses the session's name and model.
    """
    unknown = [v for v in views if v not in VIEWS]
    if unknown or not views or len(set(views)) != len(views):
        raise ValueError(f"views must be distinct names among {VIEWS}, got {tuple(views)}")
    rows: list[tuple[str, str | None]] = []
    for view in views:
        rows += [(view, s) for s in ("model", "user")] if view in ("waveform", "spectrogram") else [(view, None)]
    fig = new_figure(figsize=(width, sum(ROW_HEIGHTS[v] for v, _ in rows) + 0.6), layout="constrained")
    axes = fig.subplots(len(rows), 1, sharex=True, squeeze=False, height_ratios=[ROW_HEIGHTS[v] for v, _ in rows])
    axes = list(axes[:, 0])
    pcm = {"model": rec.model_pcm, "user": rec.user_pcm}
    for ax, (view, speaker) in zip(axes, rows, strict=True):
        if view == "text":
            _draw_text(ax, rec, time_range, width - AXES_MARGIN_IN)
        elif view == "timing":
            _draw_timing(ax, rec)
        elif view == "waveform" and speaker:
            _draw_waveform(ax, pcm[speaker], rec.sample_rate, speaker)
        elif view == "spectrogram" and speaker:
            _draw_spectrogram(ax, pcm[speaker], rec.sample_rate, speaker, max_freq)
        _time_axis(ax, time_range, rec.duration)
    _mark_params(axes, rec)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(_title(rec) if title is None else title, fontsize=11)
    return fig


# ---- plot_timeline -------------------------------------------------------------------------------
def _model_row(tt: TurnTaking) -> str:
    return "model" if "model" in tt.speakers else tt.speakers[0]


@japanese_text
def plot_timeline(
    tt: TurnTaking,
    rec: Recording | None = None,
    *,
    ax: Axes | None = None,
    time_range: tuple[float, float] | None = None,
    width: float = 10.0,
) -> Figure:
    """Both speakers' IPUs as bars (backchannel-like ones hatched), with gaps (grey), pauses (olive)
    and overlaps (red) shaded, and, given the recording, the model's text pieces over its bars (left
    out when too many are in view to read: zoom in with ``time_range``).

    Returns a :class:`~jmoshi_nb.core.figures.KitFigure`, or the figure of ``ax`` when one is given.
    """
    if ax is None:
        fig = new_figure(figsize=(width, 2.6), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.get_figure()  # type: ignore[assignment]
    rows = {name: len(tt.speakers) - 1 - i for i, name in enumerate(tt.speakers)}  # first speaker on top
    for kind in ("gap", "pause", "overlap"):
        color, alpha = SHADES[kind]
        for iv in tt.intervals(kind):
            ax.axvspan(iv.start, iv.end, color=color, alpha=alpha, lw=0)
    backchannels = set(tt.backchannels)
    for iv in tt.ipus:
        row = rows[iv.speaker]
        color = SPEAKER_COLORS.get(iv.speaker, f"C{row}")
        hatch = "////" if iv in backchannels else None
        ax.broken_barh(
            [(iv.start, iv.duration)], (row - 0.3, 0.6), facecolors=color, alpha=0.55, edgecolor="white", hatch=hatch
        )
    axes_in = ax.get_position().width * fig.get_figwidth()
    labels = _phrase_labels(rec, time_range, axes_in, 2, 9) if rec is not None else []
    model_y = rows[_model_row(tt)]
    for t, phrase, lane in labels:
        if lane >= 0:
            ax.text(t, model_y + (0.12 if lane else -0.12), phrase, fontsize=9, va="center", ha="left", clip_on=True)
    hidden = sum(lane < 0 for _, _, lane in labels)
    ax.set_yticks(list(rows.values()), list(rows.keys()))
    ax.set_ylim(-0.6, len(tt.speakers) - 0.4)
    _time_axis(ax, time_range, tt.duration)
    ax.set_xlabel("time (s)")
    handles = [Patch(color=SHADES[k][0], alpha=SHADES[k][1], label=k) for k in ("gap", "pause", "overlap")]
    handles.append(Patch(facecolor="0.6", alpha=0.55, hatch="////", edgecolor="white", label="backchannel-like"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncols=4, frameon=False, fontsize=8)
    counts = " · ".join(f"{kind}s: {len(tt.intervals(kind))}" for kind in ("ipu", "gap", "pause", "overlap"))
    note = f" · {hidden} phrases hidden: zoom in with time_range" if hidden else ""
    ax.set_title(f"{counts} · backchannel-like: {len(tt.backchannels)}{note}", fontsize=9, loc="left")
    return fig


# ---- plot_sweep_heatmap --------------------------------------------------------------------------
def _cell_text_color(value: float, lo: float, hi: float) -> str:
    """White on the dark end of viridis, black on the light end."""
    return "white" if hi <= lo or (value - lo) / (hi - lo) < 0.6 else "black"


@japanese_text
def plot_sweep_heatmap(
    df: pd.DataFrame,
    metric: str,
    x: str = "temp",
    y: str = "top_k",
    *,
    agg: str = "mean",
    ax: Axes | None = None,
    annotate: bool = True,
    fmt: str = ".3g",
    cmap: str = "viridis",
) -> Figure:
    """A heatmap of ``metric`` over the grid of ``x`` × ``y`` values (one row of ``df`` per run).

    Several runs per cell (e.g. seeds) are reduced with ``agg`` (``"mean"``, ``"median"``...); cells
    without runs stay blank. Each cell is annotated with its value when ``annotate``.
    """
    missing = [c for c in (metric, x, y) if c not in df.columns]
    if missing:
        raise KeyError(f"columns {missing} are not in the DataFrame (it has {list(df.columns)})")
    grid = df.pivot_table(index=y, columns=x, values=metric, aggfunc=agg).sort_index().sort_index(axis=1)
    values = grid.to_numpy(dtype=np.float64)
    if ax is None:
        fig = new_figure(figsize=(1.1 * len(grid.columns) + 2.4, 0.6 * len(grid.index) + 1.6), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.get_figure()  # type: ignore[assignment]
    image = ax.imshow(np.ma.masked_invalid(values), origin="lower", aspect="auto", cmap=cmap)
    ax.set_xticks(range(len(grid.columns)), [f"{v:g}" if isinstance(v, float) else str(v) for v in grid.columns])
    ax.set_yticks(range(len(grid.index)), [f"{v:g}" if isinstance(v, float) else str(v) for v in grid.index])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    fig.colorbar(image, ax=ax, label=metric)
    if annotate and np.isfinite(values).any():
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        for (row, col), value in np.ndenumerate(values):
            if np.isfinite(value):
                ax.text(col, row, format(value, fmt), ha="center", va="center", fontsize=9,
                        color=_cell_text_color(value, lo, hi))  # fmt: skip
    ax.set_title(f"{metric} ({agg} over runs)" if (df.groupby([x, y]).size() > 1).any() else metric, fontsize=10)
    return fig
