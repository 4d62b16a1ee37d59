"""A Japanese full-duplex benchmark in Full-Duplex-Bench's layout: build a task set, run a model, score.

    from jmoshi_nb import bench
    bench.build("bench/ja", per_task=20, seed=0)    # the task set (pyopenjtalk speech, offline)
    bench.run("bench/ja", model="tiny")              # output.wav + the kit's recording per item, then scores
    bench.score("bench/ja")                          # any folder in FDB's layout -> bench/ja/scores.json
    print(bench.format_scores(bench.load_scores("bench/ja")))       # the summary table, as the CLI prints it
    bench.plot_task_bars({"A": "bench/ja"})          # figures: plot_task_bars, plot_latency_distributions, plot_items
    bench.score("bench/ja", rules="fdb")             # FDB's own v1 rules -> bench/ja/scores_fdb.json
    both = bench.score("bench/ja", rules="both")     # both; print(bench.format_side_by_side(both["kit"], both["fdb"]))

The names are imported on first use (scoring needs no torch).
"""

from __future__ import annotations

from ...core.lazy_exports import lazy_getattr

_EXPORTS = {
    "TASKS": "layout",
    "BenchError": "layout",
    "find_tasks": "layout",
    "score": "scoring",
    "score_item": "scoring",
    "Rules": "scoring",
    "headline": "scoring",
    "build": "tasks",
    "run": "runner",
    "load_scores": "plots",
    "plot_task_bars": "plots",
    "plot_latency_distributions": "plots",
    "plot_items": "plots",
    "format_scores": "scoring",
    "format_side_by_side": "scoring",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
