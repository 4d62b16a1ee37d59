"""Parameter sweeps: ``sweep`` (a grid over inputs, one table row per run) and its table.

``sweep`` expands a grid of sampling parameters over a list of inputs, runs every combination
through ``jobs.run_jobs`` (in-process, or fanned out on Modal GPUs; ``batch_size`` > 1: as slots of
one batched engine) and returns one pandas row per run: the parameters, turn-taking metrics and frame
timings. With ``objective="bench"`` each setting runs the Japanese full-duplex benchmark instead
(``bench.run``) and the row holds each task's headline metrics. ``iter_recordings`` reads a saved
sweep back without the model.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..core.config import ConfigError, Sampling, SessionConfig
from ..core.keywords import check_keywords
from ..core.recording import Recording, is_recording_folder
from ..model.engine_factory import batch_slots, load_engine
from .jobs import Job, run_jobs

if TYPE_CHECKING:
    import pandas as pd

    from ..model.engine import Engine

GRID_KEYS = (*Sampling.model_fields, "seed")


# ---- sweeps ----------------------------------------------------------------------------------------


def check_grid(grid: Mapping[str, Sequence[Any]]) -> int:
    """How many settings ``grid`` makes; a ConfigError naming an unknown parameter or a value that is not
    a non-empty list (the values themselves are checked by ``expand_grid``)."""
    unknown = sorted(set(grid) - set(GRID_KEYS))
    if unknown:
        raise ConfigError(f"grid: unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(GRID_KEYS)}")
    for key, values in grid.items():
        if isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0:
            raise ConfigError(f"grid: {key} must be a non-empty list of values, got {values!r}")
    return math.prod(len(values) for values in grid.values())


def expand_grid(grid: Mapping[str, Sequence[Any]], base: SessionConfig | None = None) -> list[SessionConfig]:
    """Every combination of ``grid`` values applied to ``base``, each validated (ConfigError names the field)."""
    base = base or SessionConfig()
    check_grid(grid)
    keys = list(grid)
    configs = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        values = dict(zip(keys, combo, strict=True))
        seed = values.pop("seed", base.seed)
        data = base.model_dump()
        data["sampling"] = base.sampling.updated(**values).model_dump()
        data["seed"] = seed
        configs.append(SessionConfig.from_dict(data))
    return configs


def _input_label(inp: str | Path | np.ndarray, index: int) -> str:
    return Path(inp).stem if not isinstance(inp, np.ndarray) else f"array{index}"


def config_columns(config: SessionConfig) -> dict[str, Any]:
    """A run's settings as columns of a sweep table: the sampling parameters, the seed, the model."""
    return {**config.sampling.model_dump(), "seed": config.seed, "model": config.model}


def sweep_table(rows: list[dict[str, Any]], **results: Any) -> pd.DataFrame:
    """A sweep's table, one row per run; ``results`` (the recordings, the scores) kept in ``df.attrs``."""
    import pandas as pd

    df = pd.DataFrame(rows)
    df.attrs.update(results)
    return df


def run_metrics(rec: Recording, **turn_taking_kwargs: Any) -> dict[str, Any]:
    """The numbers a sweep table holds for one recording (turn-taking, text stream, frame timing)."""
    from .turn_taking import turn_taking

    tt = turn_taking(rec, **turn_taking_kwargs)
    stats = tt.stats()
    row: dict[str, Any] = {"duration_s": round(tt.duration, 3)}
    for kind in ("ipu", "pause", "gap", "overlap", "backchannel"):
        row[f"model_{kind}_per_min"] = stats[kind]["model"]["per_minute"]
        row[f"model_{kind}_mean_s"] = stats[kind]["model"]["mean_s"]
    row["model_speech_ratio"] = stats["ipu"]["model"]["ratio"]
    row["overlap_ratio"] = stats["overlap"]["all"]["ratio"]
    if tt.text is not None:
        row["text_rate"] = tt.text.text_rate
        row["padding_ratio"] = tt.text.padding_ratio
    totals = [m["total_ms"] for m in rec.metrics]
    if totals:
        row["frame_ms_p50"] = float(np.percentile(totals, 50))
        row["frame_ms_p99"] = float(np.percentile(totals, 99))
    return row


def sweep(
    grid: Mapping[str, Sequence[Any]],
    inputs: Sequence[str | Path | np.ndarray],
    base: SessionConfig | None = None,
    executor: Literal["local", "modal"] = "local",
    out_dir: str | Path | None = None,
    progress: bool = True,
    objective: Literal["turn_taking", "bench"] = "turn_taking",
    batch_size: int = 1,
    **turn_taking_kwargs: Any,
) -> pd.DataFrame:
    """Run ``grid`` (e.g. ``{"temp": [0.6, 0.8], "top_k": [50, 250]}``) over ``inputs``; one row per run.

    The recordings are kept in ``df.attrs["recordings"]`` (and saved under ``out_dir/<run>`` if given).
    ``objective="bench"``: the benchmark instead: ``inputs`` is a task set folder (or empty: one is
    built in ``out_dir/_set``), one row per setting with each task's headline metrics (see
    ``bench_sweep``); the other keyword arguments (``limit``, ``tasks``, ``vad``, ``engine``...) go to it.
    ``batch_size`` > 1 runs that many runs at once as slots of one batched engine (locally, or in each
    Modal container): see ``jobs.run_jobs``.
    """
    if objective == "bench":
        if out_dir is None:
            raise ValueError("sweep(objective='bench') needs out_dir: each setting's run is a folder")
        source = inputs[0] if inputs else None
        if isinstance(source, np.ndarray):
            raise ValueError("sweep(objective='bench'): inputs is a task set folder (or empty), not audio")
        return bench_sweep(grid, out_dir, source=source, base=base, executor=executor, progress=progress,
                           **turn_taking_kwargs)  # fmt: skip
    batch_slots(batch_size, 1)  # checks batch_size before anything runs
    if not inputs:
        raise ValueError("sweep: give at least one input (a WAV path or a 24 kHz mono array)")
    configs = expand_grid(grid, base)
    jobs: list[Job] = []
    for ci, cfg in enumerate(configs):
        for ii, inp in enumerate(inputs):
            jobs.append(Job(cfg, inp, name=f"{ci:03d}-{_input_label(inp, ii)}"))
    recordings = run_jobs(jobs, executor=executor, progress=progress, out_dir=out_dir, batch_size=batch_size)
    rows = []
    for job, rec in zip(jobs, recordings, strict=True):
        row: dict[str, Any] = {"run": job.name, "input": job.describe_input() or job.name.split("-", 1)[1]}
        row.update(config_columns(job.config))
        row.update(run_metrics(rec, **turn_taking_kwargs))
        if out_dir is not None:
            row["recording"] = str(Path(out_dir) / job.name)
        rows.append(row)
    return sweep_table(rows, recordings=recordings)


def setting_label(index: int, config: SessionConfig) -> str:
    """The folder name of a benchmark sweep's setting."""
    s = config.sampling
    return f"{index:03d}-temp{s.temp:g}-topk{s.top_k}-seed{config.seed}"


def bench_sweep(
    grid: Mapping[str, Sequence[Any]],
    out: str | Path,
    *,
    source: str | Path | None = None,
    base: SessionConfig | None = None,
    executor: Literal["local", "modal"] = "local",
    engine: Engine | None = None,
    progress: bool = True,
    **run_options: Any,
) -> pd.DataFrame:
    """The benchmark as a sweep objective (``sweep(objective="bench")``): one row per setting of ``grid``.

    The set (``source``, else built once into ``out/_set``) runs under each setting into
    ``out/<setting>`` (``bench.run``); the columns are the sampling parameters, seed, model, then
    ``<task>_TOR``, ``turn_taking_latency_mean_s``, ``backchannel_backchannels_per_min``,
    ``interruption_stop_latency_mean_s``... so ``plot_sweep_heatmap`` shows any of them.
    ``df.attrs["scores"]`` holds every setting's full scores. ``run_options``: ``vad`` and which items
    (``limit``, ``tasks``, ``per_task``, ``seed``: ``bench.runner.ItemChoice``), as for ``bench.run``.

    Returns
    -------
    The table, one row per setting.
    """
    from .bench.runner import ItemChoice, build_set, run
    from .bench.scoring import headline
    from .bench.tasks import MANIFEST

    choice = {k: v for k, v in run_options.items() if k != "vad"}
    check_keywords("sweep", choice, ItemChoice)
    out = Path(out)
    configs = expand_grid(grid, base)
    if source is None:
        source = out / "_set"
        if not (source / MANIFEST).exists():
            build_set(source, progress, **choice)
    if engine is None and executor == "local":
        first = configs[0]
        engine = load_engine(first.model, revision=first.revision, sampling=first.sampling, seed=first.seed)  # type: ignore[assignment]
    rows, all_scores = [], {}
    for ci, cfg in enumerate(configs):
        label = setting_label(ci, cfg)
        scores = run(out / label, source=source, config=cfg, executor=executor, engine=engine, progress=progress,
                     **run_options)  # fmt: skip
        all_scores[label] = scores
        rows.append({"setting": label, **config_columns(cfg), **headline(scores), "folder": str(out / label)})
    return sweep_table(rows, scores=all_scores)


def iter_recordings(folder: str | Path) -> Iterator[tuple[str, Recording]]:
    """Every recording under ``folder`` (one level), by name: re-analyse saved runs without the model."""
    for sub in sorted(Path(folder).iterdir()):
        if is_recording_folder(sub):
            yield sub.name, Recording.load(sub)
