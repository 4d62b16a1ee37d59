"""Figures of benchmark scores: per-task bars with 95 % intervals, latency distributions, item timelines.

Every function takes scores (the dict ``score`` returns or a scores.json path) or several of them by
setting name, and returns a :class:`jmoshi_nb.core.figures.KitFigure` (shows as a picture in Jupyter)
built like those of :mod:`jmoshi_nb.research.plots` (no pyplot; Japanese labels through its font).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.patches import Patch

from ...core.figures import KitFigure, japanese_text, new_figure
from ..plots import SPEAKER_COLORS
from ..stats import wilson_interval
from .layout import TASKS

Scores = dict[str, Any]
# (task, item field, panel label, latency-plot label or None): the headline metric of each panel ("TOR" is
# the takeover rate of every task); the latencies also get a distribution panel of their own.
METRICS = (
    ("*", "takeover", "TOR 交替率", None),
    ("turn_taking", "latency_s", "turn-taking latency\n応答遅延 (s)", "turn-taking 応答"),
    ("interruption", "stop_latency_s", "stop latency\n停止遅延 (s)", "stop 停止"),
    ("interruption", "response_latency_s", "response latency\n再応答遅延 (s)", "response 再応答"),
    ("backchannel", "backchannels_per_min", "backchannels / min\n相槌頻度", None),
)
PANELS = tuple((task, field, label) for task, field, label, _ in METRICS)
LATENCIES = tuple((task, field, short) for task, field, _, short in METRICS if short is not None)
KIND_COLORS = {"turn": SPEAKER_COLORS["model"], "backchannel": "#2ca02c"}


def load_scores(source: Scores | str | Path) -> Scores:
    """A scores dict, from itself, a scores.json file or a run folder."""
    if isinstance(source, dict):
        return source
    path = Path(source)
    path = path / "scores.json" if path.is_dir() else path
    return json.loads(path.read_text(encoding="utf-8"))


def _by_setting(scores: Scores | str | Path | Mapping[str, Scores | str | Path]) -> dict[str, Scores]:
    if isinstance(scores, (str, Path)) or (isinstance(scores, dict) and set(scores) <= set(TASKS)):
        return {"": load_scores(scores)}  # type: ignore[arg-type]
    return {name: load_scores(s) for name, s in scores.items()}  # type: ignore[union-attr]


def _ok(scores: Scores, task: str) -> list[dict[str, Any]]:
    return [it for it in scores.get(task, {}).get("items", []) if "error" not in it]


def _mean_ci(values: list[float]) -> tuple[float, float, float]:
    """Mean and its 95 % t interval (NaN without values; the mean alone for one value)."""
    if not values:
        return math.nan, math.nan, math.nan
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, mean, mean
    from scipy import stats

    half = float(stats.sem(values) * stats.t.ppf(0.975, len(values) - 1))
    return mean, mean - half, mean + half


def _panel_values(scores: Scores, task: str, field: str) -> tuple[float, float, float]:
    items = _ok(scores, task)
    if field == "takeover":
        ci = wilson_interval(sum(bool(it["takeover"]) for it in items), len(items))
        return (math.nan, math.nan, math.nan) if ci is None else (sum(it["takeover"] for it in items) / len(items), *ci)
    if field == "backchannels_per_min":
        values = [60.0 * it["backchannels"] / it["duration_s"] for it in items if it["duration_s"] > 0]
    else:
        values = [it[field] for it in items if it.get(field) is not None]
    return _mean_ci(values)


@japanese_text
def plot_task_bars(
    scores: Scores | str | Path | Mapping[str, Scores | str | Path], *, width: float = 12.0
) -> KitFigure:
    """Headline metrics as bars (one colour per setting) with 95 % intervals.

    TOR per task (Wilson interval), the latencies and backchannels per minute (mean, t interval).
    ``scores``: one run's scores (dict, scores.json or run folder) or ``{setting name: scores}``.
    """
    settings = _by_setting(scores)
    # TOR across the whole width, the four single-task panels below it: each title and tick label
    # has room at notebook width (one row of five ran the titles into each other).
    fig = new_figure(figsize=(width, 6.0), layout="constrained")
    grid = fig.add_gridspec(2, len(PANELS) - 1, height_ratios=[1.15, 1])
    axes = [fig.add_subplot(grid[0, :])] + [fig.add_subplot(grid[1, i]) for i in range(len(PANELS) - 1)]
    n = len(settings)
    bar = 0.8 / n
    for ax, (task, field, label) in zip(axes, PANELS, strict=True):
        tasks = list(TASKS) if task == "*" else [task]
        for si, (name, sc) in enumerate(settings.items()):
            stats = [_panel_values(sc, t, field) for t in tasks]
            xs = np.arange(len(tasks)) + (si - (n - 1) / 2) * bar
            means, lows, highs = (np.array([s[k] for s in stats]) for k in range(3))
            ax.bar(xs, np.nan_to_num(means), bar * 0.9, color=f"C{si}", label=name or None)
            ok = np.isfinite(lows) & np.isfinite(highs)
            ax.vlines(xs[ok], lows[ok], highs[ok], color="0.25", lw=1.2)  # the 95 % interval
            for y in (lows[ok], highs[ok]):
                ax.hlines(y, xs[ok] - bar * 0.15, xs[ok] + bar * 0.15, color="0.25", lw=1.2)
        ax.set_xticks(np.arange(len(tasks)), [t.replace("_", "\n") for t in tasks], fontsize=8)
        ax.set_title(label, fontsize=9)
        if field == "takeover":
            ax.set_ylim(0, 1.05)
    if n > 1 or next(iter(settings)):
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=min(n, 6), fontsize=8)
    return fig


@japanese_text
def plot_latency_distributions(
    scores: Scores | str | Path | Mapping[str, Scores | str | Path], *, width: float = 10.0
) -> KitFigure:
    """Every item's latencies as points over box plots, per kind and setting (seconds)."""
    settings = _by_setting(scores)
    fig = new_figure(figsize=(width, 3.0), layout="constrained")
    axes = fig.subplots(1, len(LATENCIES), sharey=True)
    rng = np.random.default_rng(0)  # jitter only
    for ax, (task, field, label) in zip(axes, LATENCIES, strict=True):
        data = [[it[field] for it in _ok(sc, task) if it.get(field) is not None] for sc in settings.values()]
        positions = np.arange(len(data))
        if any(data):
            ax.boxplot([d if d else [math.nan] for d in data], positions=positions, widths=0.5, showfliers=False)
        for i, values in enumerate(data):
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=12, color=f"C{i}", alpha=0.7, zorder=3)
            ax.text(i, 1.0, f"n={len(values)}", transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                    fontsize=7)  # fmt: skip
        ax.axhline(0, color="0.6", lw=0.8)
        names = [name or "run" for name in settings]
        long_names = sum(len(name) for name in names) * 6.5 > 72 * width / len(LATENCIES)  # 6.5 pt a character
        ax.set_xticks(positions, names, fontsize=8, rotation=30 if long_names else 0,
                      ha="right" if long_names else "center")  # fmt: skip
        ax.set_title(label, fontsize=9, pad=12)
    axes[0].set_ylabel("seconds / 秒")
    return fig


@japanese_text
def plot_items(
    scores: Scores | str | Path,
    ids: Mapping[str, str] | None = None,
    *,
    width: float = 11.0,
) -> KitFigure:
    """One item per task as a two-speaker timeline: user speech, model turns and backchannels.

    The user's end (turn-taking, pause handling) and the interruption's span are marked. ``ids``
    picks the item per task (default: each task's first scored item).
    """
    sc = load_scores(scores)
    tasks = [t for t in TASKS if _ok(sc, t)]
    fig = new_figure(figsize=(width, 1.35 * max(len(tasks), 1) + 0.6), layout="constrained")
    if not tasks:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no scored items", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    axes = np.atleast_1d(fig.subplots(len(tasks), 1, squeeze=False)[:, 0])
    for ax, task in zip(axes, tasks, strict=True):
        items = _ok(sc, task)
        item = next((it for it in items if ids and it["id"] == ids.get(task)), items[0])
        for start, end in item["user_segments"]:
            ax.broken_barh([(start, end - start)], (0.7, 0.6), facecolors=SPEAKER_COLORS["user"], alpha=0.6)
        for start, end, kind in item["model_segments"]:
            ax.broken_barh([(start, end - start)], (-0.3, 0.6), facecolors=KIND_COLORS[kind], alpha=0.7,
                           hatch="////" if kind == "backchannel" else None, edgecolor="white")  # fmt: skip
        if item.get("user_end_s") is not None and task != "interruption":
            ax.axvline(item["user_end_s"], color="0.2", ls="--", lw=1)
        flags = [f"takeover={item['takeover']}", f"backchannels={item['backchannels']}"]
        for key in ("latency_s", "stop_latency_s", "response_latency_s"):
            if item.get(key) is not None:
                flags.append(f"{key.removesuffix('_s')}={item[key]:.2f} s")
        ax.set_title(f"{task} / {item['id']}: " + ", ".join(flags), fontsize=9, loc="left")
        ax.set_yticks([0, 1], ["model", "user"])
        ax.set_ylim(-0.5, 1.5)
        ax.set_xlim(0, item["duration_s"])
    axes[-1].set_xlabel("time (s) / 時間 (秒)")
    handles = [Patch(color=SPEAKER_COLORS["user"], alpha=0.6, label="user"),
               Patch(color=KIND_COLORS["turn"], alpha=0.7, label="model turn 発話"),
               Patch(facecolor=KIND_COLORS["backchannel"], alpha=0.7, hatch="////", edgecolor="white",
                     label="model backchannel 相槌")]  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    return fig
