"""A Japanese full-duplex benchmark in Full-Duplex-Bench's layout: build a task set, run a model, score.

    from jmoshi_nb.research import bench
    bench.build("bench/ja", per_task=20, seed=0)    # the task set (pyopenjtalk speech, offline)
    bench.run("bench/ja", model="tiny")              # output.wav + the kit's recording per item, then scores
    bench.score("bench/ja")                          # any folder in FDB's layout -> bench/ja/scores.json

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
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
