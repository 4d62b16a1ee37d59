"""The benchmark's figures: bars at the summary values, one timeline row per task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from jmoshi_nb.research.bench.plots import plot_items, plot_latency_distributions, plot_task_bars
from jmoshi_nb.research.bench.scoring import summarize


def _item(i: int, takeover: bool, **values: float | None) -> dict:
    base = {"id": f"{i:03d}", "folder": "x", "takeover": takeover, "latency_s": None, "backchannels": 1,
            "stop_latency_s": None, "response_latency_s": None, "duration_s": 10.0, "user_end_s": 4.0,
            "model_segments": [[1.0, 1.3, "backchannel"], [4.5, 6.0, "turn"]],
            "user_segments": [[0.5, 4.0]]}  # fmt: skip
    return {**base, **values}


def _scores(tors: dict[str, list[bool]]) -> dict:
    out = {}
    for task, flags in tors.items():
        items = [_item(i, f, latency_s=0.3 + 0.1 * i if task == "turn_taking" else None,
                       stop_latency_s=0.5 if task == "interruption" else None,
                       response_latency_s=0.8 if task == "interruption" else None)
                 for i, f in enumerate(flags)]  # fmt: skip
        items.append({"id": "bad", "folder": "x", "error": "x/bad: no input.wav"})
        out[task] = {"summary": summarize(items), "items": items}
    return out


A = {"pause_handling": [False, True, False, False], "turn_taking": [True, True, False],
     "backchannel": [False, False], "interruption": [True, True]}  # fmt: skip
B = {"pause_handling": [True, True], "turn_taking": [True], "backchannel": [True], "interruption": [False, True]}


def _bars(ax) -> list:  # type: ignore[no-untyped-def]
    return [p for p in ax.patches if p.get_width() > 0]


def test_task_bars_show_each_setting_tor_with_intervals(tmp_path: Path) -> None:
    a, b = _scores(A), _scores(B)
    (tmp_path / "scores.json").write_text(json.dumps(b), encoding="utf-8")
    fig = plot_task_bars({"a": a, "b": tmp_path})
    assert isinstance(fig, Figure)
    tor_ax = fig.axes[0]
    heights = sorted(round(p.get_height(), 4) for p in _bars(tor_ax))
    expected = sorted([a[t]["summary"]["TOR"] for t in A] + [b[t]["summary"]["TOR"] for t in B])
    assert heights == pytest.approx(expected)
    spans = sorted(
        (round(float(seg[0][1]), 4), round(float(seg[1][1]), 4))
        for c in tor_ax.collections
        for seg in c.get_segments()
        if seg[0][0] == seg[1][0]  # vertical: the 95 % intervals
    )
    assert spans == sorted(tuple(sc[t]["summary"]["TOR_ci95"]) for sc in (a, b) for t in sc)
    latency_ax = fig.axes[1]
    assert sorted(p.get_height() for p in _bars(latency_ax)) == pytest.approx(
        sorted([a["turn_taking"]["summary"]["latency_mean_s"], b["turn_taking"]["summary"]["latency_mean_s"]])
    )


def test_latency_distributions_and_item_timelines() -> None:
    a = _scores(A)
    fig = plot_latency_distributions({"a": a, "b": _scores(B)})
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    fig = plot_items(a)
    assert len(fig.axes) == 4
    for ax in fig.axes:
        bars = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(bars) == 3  # one user segment, a backchannel and a turn
    assert "no scored items" in plot_items({"turn_taking": {"summary": {}, "items": []}}).axes[0].texts[0].get_text()
