"""``jmoshi-nb bench run`` and ``jmoshi-nb bench score``: the benchmark's subcommands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .layout import SCORES_FILE, TASKS

COLUMNS = (
    ("n", "n", "{:d}"),
    ("TOR", "TOR", "{:.3f}"),
    ("latency_mean_s", "latency s", "{:.3f}"),
    ("stop_latency_mean_s", "stop s", "{:.3f}"),
    ("response_latency_mean_s", "response s", "{:.3f}"),
    ("backchannels_per_min", "bc/min", "{:.2f}"),
    ("errors", "errors", "{:d}"),
)


def format_scores(scores: dict[str, Any]) -> str:
    """A plain-text table of each task's summary (means; medians are in scores.json)."""
    head = f"{'task':16s}" + "".join(f"{label:>12s}" for _, label, _ in COLUMNS)
    lines = [head]
    for task in TASKS:
        if task not in scores:
            continue
        summary = scores[task]["summary"]
        cells = []
        for key, _, fmt in COLUMNS:
            value = summary.get(key)
            cells.append(f"{'-' if value is None else fmt.format(value):>12s}")
        lines.append(f"{task:16s}" + "".join(cells))
    return "\n".join(lines)


def _report(scores: dict[str, Any], folder: Path) -> int:
    from .scoring import errors

    print(format_scores(scores))
    print(f"scores: {folder / SCORES_FILE}")
    problems = errors(scores)
    for message in problems:
        print(f"jmoshi-nb bench: {message}", file=sys.stderr)
    return 1 if problems else 0


def cmd_bench_run(args: argparse.Namespace) -> int:
    from ...core.cli_args import config_from_arguments
    from .runner import run

    config = config_from_arguments(args, args.model)
    scores = run(args.out, source=args.source, config=config, limit=args.limit, tasks=args.tasks,
                 per_task=args.per_task, seed=args.set_seed, url=args.url, token=args.token,
                 executor=args.executor, vad=args.vad, progress=not args.quiet,
                 batch_size=args.batch_size)  # fmt: skip
    run_info = json.loads((Path(args.out) / "run.json").read_text(encoding="utf-8"))
    print(f"ran {run_info['items']} items ({run_info['audio_s']:.1f} s of audio) in {run_info['wall_s']:.1f} s")
    return _report(scores, Path(args.out))


def cmd_bench_score(args: argparse.Namespace) -> int:
    from .scoring import score

    scores = score(args.directory, vad=args.vad, tasks=args.tasks, limit=args.limit)
    return _report(scores, Path(args.directory))


def add_bench_commands(sub: Any) -> None:
    """Add ``bench run`` and ``bench score`` to the ``jmoshi-nb`` parser's subcommands."""
    from ...core.cli_args import add_command, add_config_arguments
    from .runner import DEFAULT_BATCH_SIZE

    bench = sub.add_parser("bench", help="a Japanese full-duplex benchmark (Full-Duplex-Bench layout)")
    bsub = bench.add_subparsers(dest="bench_command", required=True)

    p = add_command(bsub, "run", cmd_bench_run, "build (or take) a task set, run the model on it, score it")
    p.add_argument("--out", type=Path, required=True, help="the run folder (<task>/<id>/input.wav, output.wav...)")
    p.add_argument("--source", type=Path, help="a task set to copy in (default: build one in --out)")
    p.add_argument("--model", default=None, help="tiny (default) | j-moshi-ext | j-moshi | <dir> | <hf repo id>")
    p.add_argument("--limit", type=int, help="items per task")
    p.add_argument("--tasks", nargs="+", choices=TASKS, help="a subset of the tasks")
    p.add_argument("--per-task", type=int, default=20, help="items per task when building the set (default 20)")
    p.add_argument("--set-seed", type=int, default=0, help="the task set's seed (default 0)")
    p.add_argument("--url", help="a running server instead of a model in this process")
    p.add_argument("--token", help="token for --url")
    p.add_argument("--executor", choices=("local", "modal"), default="local")
    p.add_argument("--vad", choices=("webrtc", "silero"), default="webrtc")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                   help=f"items run at once as batched-engine slots (default {DEFAULT_BATCH_SIZE}; 1: one by one)")
    add_config_arguments(p)

    p = add_command(bsub, "score", cmd_bench_score, "score a folder in FDB's layout into DIR/scores.json")
    p.add_argument("directory", type=Path)
    p.add_argument("--vad", choices=("webrtc", "silero"), default="webrtc",
                   help="webrtc (default, exact on clean speech) or silero (FDB parity)")  # fmt: skip
    p.add_argument("--tasks", nargs="+", choices=TASKS, help="a subset of the tasks")
    p.add_argument("--limit", type=int, help="only the first N items of each task folder")
