"""How long the benchmark's default task set takes: build it, run part or all of it, extrapolate.

    .venv/bin/python benchmarks/bench_set.py                        # tiny model, CPU, the whole set
    .venv/bin/python benchmarks/bench_set.py --run-limit 2          # run 2 items per task, extrapolate
    .venv/bin/python benchmarks/bench_set.py --model j-moshi-ext    # a GPU
    .venv/bin/python benchmarks/bench_set.py --batch-size 1         # one item at a time (no batching)

Prints the set's build time and audio duration, the run's wall time and real-time factor (wall / audio),
the engine's per-frame compute p50/p99, and the time the whole set would take at that factor
(target on the tiny model: <= 3 min on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from jmoshi_nb.research.bench import build, find_tasks, run
from jmoshi_nb.research.bench.runner import DEFAULT_BATCH_SIZE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--per-task", type=int, default=20, help="the set's size (default: the default set)")
    parser.add_argument("--run-limit", type=int, default=None, help="items per task to run (default: all)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="items at once as engine slots")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = args.out or Path(tempfile.mkdtemp(prefix="jmoshi-bench-"))

    t0 = time.perf_counter()
    build(out / "set", per_task=args.per_task, seed=0)
    build_s = time.perf_counter() - t0
    durations = {
        tf.task: [sf.info(str(it.input)).duration for it in tf.items] for tf in find_tasks(out / "set")
    }
    set_audio = sum(sum(d) for d in durations.values())

    t1 = time.perf_counter()
    run(out / "run", source=out / "set", model=args.model, limit=args.run_limit, progress=False,
        batch_size=args.batch_size)  # fmt: skip
    run_and_score_s = time.perf_counter() - t1
    info = json.loads((out / "run" / "run.json").read_text(encoding="utf-8"))
    totals = []
    for rec_events in (out / "run").glob("*/*/recording/events.jsonl"):
        for line in rec_events.read_text(encoding="utf-8").splitlines():
            ev = json.loads(line)
            if ev["type"] == "metrics":
                totals.append(ev["total_ms"])
    rtf = info["wall_s"] / info["audio_s"]
    print(f"model {args.model}, set of {args.per_task} items per task, run {info['items']} items, "
          f"batch size {args.batch_size}")  # fmt: skip
    print(f"build: {build_s:.1f} s for {sum(len(d) for d in durations.values())} items")
    for task, d in durations.items():
        print(f"  {task:16s} {len(d):3d} items, {np.mean(d):5.2f} s mean, {np.sum(d):7.1f} s audio")
    print(f"set audio: {set_audio:.1f} s")
    print(f"run: {info['wall_s']:.1f} s wall for {info['audio_s']:.1f} s audio -> real-time factor {rtf:.3f}")
    print(f"frame compute: p50 {np.percentile(totals, 50):.1f} ms, p99 {np.percentile(totals, 99):.1f} ms")
    print(f"run + score: {run_and_score_s:.1f} s (loading the model included)")
    print(f"whole set at this factor: {rtf * set_audio:.0f} s (+ {build_s:.0f} s to build it once)")


if __name__ == "__main__":
    main()
