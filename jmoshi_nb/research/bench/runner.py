"""Run a task set through a model and score it: ``run(out, ...)``, and ``sweep(grid, out, ...)``.

Each item's input.wav goes straight into the engine (as sweeps and prompted continuation do: no
real-time pacing, no Opus), or through a running server (``url``, the moshi protocol with Opus, as
a client would). The item then holds ``output.wav`` (the model, 24 kHz, the input's duration); the
kit's recording (text events, per-frame metrics, session description) goes to ``Item.recording``,
outside the item folder (``layout``); and the whole folder is scored (``score``).

Interruption items carry ``model.wav``, the prepared answer: on the engine, the model's channel is
forced into it (``research.continue_dialogue``) until the barge-in, then the model runs free. Over a
server, or on Modal (whose sweep worker runs plain sessions), the channel cannot be forced: those
items run unforced and their recording says so (``meta["forced"] = False``).

``run_items`` runs items one at a time; it is the one place a batched engine will take them together.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack

import numpy as np

from ...core.audio import FRAME_S, FRAME_SIZE, SAMPLE_RATE, read_wav, write_wav
from ...core.config import SessionConfig, load_config
from ...core.keywords import check_keywords
from ...core.recording import Recording
from ..vad import VadName
from .fdb_files import write_fdb_files
from .layout import TIMING_FILE, BenchError, Item, find_tasks
from .scoring import score
from .tasks import DEFAULT_PER_TASK, MANIFEST, MODEL_FILE, build

if TYPE_CHECKING:
    import pandas as pd

    from ...model.batch_engine import BatchEngine
    from ...model.engine import Engine

log = logging.getLogger(__name__)
RUN_FILE = "run.json"
DEFAULT_BATCH_SIZE = 8  # items run at once as slots of one batched engine (local executor)
_COPY = (TIMING_FILE, MODEL_FILE, "pause.json", "turn_taking.json", "interrupt.json", "metadata.json")


def _forcing(item: Item) -> tuple[np.ndarray, int] | None:
    """The prepared model channel and the frames to force, for items that have them."""
    timing_path, model_path = item.path / TIMING_FILE, item.path / MODEL_FILE
    if not (timing_path.exists() and model_path.exists()):
        return None
    frames = int(json.loads(timing_path.read_text(encoding="utf-8")).get("forced_frames") or 0)
    return (read_wav(model_path), frames) if frames > 0 else None


def run_item(engine: Engine, item: Item, config: SessionConfig) -> Recording:
    """One item on ``engine``: the user is input.wav; the model's channel is forced where the item asks.

    The recording streams into ``item.recording`` as it runs (a killed run leaves it readable).
    """
    from ..continuation import DialogueInput, continue_dialogue
    from ..sweeps import run_on_engine

    user = read_wav(item.input)
    forcing = _forcing(item)
    n_frames = math.ceil(len(user) / FRAME_SIZE)
    if forcing is not None and forcing[1] < n_frames:
        model, forced = forcing
        step_s = FRAME_S
        rec = continue_dialogue(engine, DialogueInput(item.input, user, model), config,
                                prompt_s=forced * step_s, continuation_s=(n_frames - forced) * step_s,
                                user_after_prompt="continue", out=item.recording)  # fmt: skip
        rec.meta.update(forced=True, forced_frames=forced)
    else:
        rec = run_on_engine(engine, user, config, name=f"{item.task}/{item.id}", out=item.recording)
        rec.meta["forced"] = False
    return rec


def _failed(item: Item, exc: BaseException) -> None:
    log.error("bench: %s/%s failed: %s: %s", item.task, item.id, type(exc).__name__, exc)
    item.output.unlink(missing_ok=True)  # a previous run's output must not be scored as this run's


def run_items(
    engine: Engine | BatchEngine, items: Sequence[Item], config: SessionConfig, progress: bool = False
) -> list[Recording | None]:
    """Every item on ``engine``: one at a time on an ``Engine``, as slots on a ``BatchEngine``.

    An item that fails is logged and gives None (the scorer then names it); the others still run.
    """
    from ...model.batch_engine import BatchEngine
    from ..sweeps import _progress

    if isinstance(engine, BatchEngine):
        return _run_items_batched(engine, items, config)
    recs: list[Recording | None] = []
    for item in _progress(items, len(items), progress, "bench"):
        try:
            recs.append(run_item(engine, item, config))
        except Exception as exc:  # one bad item must not lose the others
            _failed(item, exc)
            recs.append(None)
    return recs


def _run_items_batched(engine: BatchEngine, items: Sequence[Item], config: SessionConfig) -> list[Recording | None]:
    """The items as slots of one batched engine (``sweeps.run_batch_on_engine``), forced where they ask."""
    from ..sweeps import run_batch_on_engine

    ready: list[int] = []
    jobs, outs, forcing = [], [], []
    for i, item in enumerate(items):
        try:
            user = read_wav(item.input)
            force = _forcing(item)
        except Exception as exc:  # unreadable input: named, the others run
            _failed(item, exc)
            continue
        n_frames = math.ceil(len(user) / FRAME_SIZE)
        ready.append(i)
        jobs.append((user, config, f"{item.task}/{item.id}", None))
        outs.append(item.recording)
        forcing.append(force if force is not None and force[1] < n_frames else None)
    recs: list[Recording | None] = [None] * len(items)
    done = run_batch_on_engine(engine, jobs, outs=outs, forcing=forcing)
    for i, force, rec in zip(ready, forcing, done, strict=True):
        rec.meta.update(forced=force is not None, **({"forced_frames": force[1]} if force is not None else {}))
        recs[i] = rec
    return recs


def _run_url(items: Sequence[Item], config: SessionConfig, url: str, token: str | None) -> list[Recording | None]:
    from ...core.blocking import run_blocking
    from ..runner import run_pcm_async

    recs: list[Recording | None] = []
    for item in items:
        try:
            pcm = read_wav(item.input)
            rec = run_blocking(run_pcm_async(pcm, url, token, config, realtime=False, out=item.recording))
        except Exception as exc:
            _failed(item, exc)
            recs.append(None)
            continue
        rec.meta["forced"] = False
        recs.append(rec)
    return recs


def _run_modal(items: Sequence[Item], config: SessionConfig, progress: bool) -> list[Recording | None]:
    from ..sweeps import Job, SweepError, run_jobs

    runnable, jobs = [], []
    for item in items:
        try:
            jobs.append(Job(config, read_wav(item.input), name=f"{item.task}-{item.id}"))
            runnable.append(item)
        except Exception as exc:
            _failed(item, exc)
    try:
        done: list[Recording | None] = list(run_jobs(jobs, executor="modal", progress=progress))
    except SweepError as exc:
        done = list(exc.recordings)
        for item, rec in zip(runnable, done, strict=True):
            if rec is None:
                _failed(item, exc.errors.get(f"{item.task}-{item.id}", exc))
    by_item = dict(zip((id(it) for it in runnable), done, strict=True))
    recs = [by_item.get(id(item)) for item in items]
    for rec in recs:
        if rec is not None:
            rec.meta["forced"] = False
    return recs


def save_item(item: Item, rec: Recording) -> None:
    """output.wav (the model, cut or padded to the input's length, 24 kHz) and the recording (``item.recording``)."""
    n = len(read_wav(item.input))
    model = rec.model_pcm[:n]
    write_wav(item.output, np.pad(model, (0, n - len(model))), SAMPLE_RATE)
    rec.meta.update(bench_task=item.task, bench_item=item.id)
    streamed = rec.streaming_to is not None and rec.streaming_to.resolve() == item.recording.resolve()
    if item.recording.exists() and not streamed:  # a streamed folder was cleared when its stream began
        shutil.rmtree(item.recording)
    rec.save(item.recording)


class ItemChoice(TypedDict, total=False):
    """Which items a run takes (keyword arguments of ``run``, passed on by ``sweep``).

    ``limit``: items per task folder (and per task of a set built for the run); ``tasks``: a subset of
    the four; ``per_task`` (default ``DEFAULT_PER_TASK``) and ``seed`` (default 0): the size and seed
    of a set built for the run when there is none.
    """

    limit: int | None
    tasks: Sequence[str] | None
    per_task: int
    seed: int


def _build_set(folder: Path, progress: bool, **choice: Unpack[ItemChoice]) -> None:
    """A new task set in ``folder``: ``limit`` (else ``per_task``) items per task, drawn from ``seed``."""
    per_task = choice.get("limit") or choice.get("per_task", DEFAULT_PER_TASK)
    build(folder, per_task=per_task, seed=choice.get("seed", 0), tasks=choice.get("tasks"), progress=progress)


def _selected(folder: Path, tasks: Sequence[str] | None, limit: int | None) -> list[Item]:
    return [it for tf in find_tasks(folder, tasks) for it in tf.items[:limit]]


def _copy_set(source: Path, out: Path, tasks: Sequence[str] | None, limit: int | None) -> None:
    for item in _selected(source, tasks, limit):
        dest = out / item.path.parent.name / item.id
        dest.mkdir(parents=True, exist_ok=True)
        if not item.input.exists():
            continue  # the scorer names the item
        shutil.copy2(item.input, dest / "input.wav")
        for name in _COPY:
            if (item.path / name).exists():
                shutil.copy2(item.path / name, dest / name)


def _config(config: SessionConfig | str | Path | None, model: str | None) -> SessionConfig:
    cfg = config if isinstance(config, SessionConfig) else load_config(config) if config else SessionConfig()
    return cfg if model is None else SessionConfig.from_dict({**cfg.model_dump(), "model": model})


def run(
    out: str | Path,
    *,
    source: str | Path | None = None,
    model: str | None = None,
    config: SessionConfig | str | Path | None = None,
    limit: int | None = None,
    tasks: Sequence[str] | None = None,
    per_task: int = DEFAULT_PER_TASK,
    seed: int = 0,
    url: str | None = None,
    token: str | None = None,
    executor: Literal["local", "modal"] = "local",
    engine: Engine | BatchEngine | None = None,
    vad: VadName = "webrtc",
    progress: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, Any]:
    """Run the benchmark into ``out`` and return its scores (also in ``out/scores.json``).

    The items come from ``source`` (a set folder, e.g. from ``build`` or FDB's data, copied into
    ``out``), else from ``out`` itself if it already holds a set, else a new set is built there
    (``per_task`` items per task, or ``limit``, from ``seed``). ``limit``: items per task folder;
    ``tasks``: a subset of the four. ``model`` (default: the config's, ``tiny``) and ``config`` (a
    SessionConfig or a YAML/JSON file) set the model, sampling and seed. ``url``/``token``: a running
    server instead of an engine in this process; ``executor="modal"``: Modal GPUs (``sweeps.run_jobs``);
    ``engine``: an engine already loaded (local only; a ``BatchEngine`` runs items as its slots).
    ``batch_size`` > 1 (local, no ``engine``): that many items at once as slots of one batched engine;
    1: one at a time on an ``Engine``. Items that fail are logged and left without output, so the
    scores name them; the others are scored.
    """
    if executor not in ("local", "modal"):
        raise BenchError(f"unknown executor {executor!r}: local or modal")
    from ..sweeps import check_batch_size

    check_batch_size(batch_size)
    cfg = _config(config, model)
    out = Path(out)
    if source is not None:
        _copy_set(Path(source), out, tasks, limit)
    elif not (out / MANIFEST).exists() and not _has_tasks(out):
        _build_set(out, progress, limit=limit, tasks=tasks, per_task=per_task, seed=seed)
    items = [it for it in _selected(out, tasks, limit) if it.input.exists()]
    t0 = time.perf_counter()
    if url is not None:
        recs = _run_url(items, cfg, url, token)
    elif executor == "modal":
        recs = _run_modal(items, cfg, progress)
    else:
        if engine is None and batch_size > 1:
            from ...model.batch_engine import BatchEngine

            slots = min(batch_size, max(len(items), 1))
            engine = BatchEngine.load(
                cfg.model, slots=slots, revision=cfg.revision, sampling=cfg.sampling, seed=cfg.seed
            )
        elif engine is None:
            from ...model.engine import Engine

            engine = Engine.load(cfg.model, revision=cfg.revision, sampling=cfg.sampling, seed=cfg.seed)
        recs = run_items(engine, items, cfg, progress)
    wall = time.perf_counter() - t0
    for item, rec in zip(items, recs, strict=True):
        if rec is not None:
            save_item(item, rec)
            write_fdb_files(item, rec)  # FDB's metadata files and output.json (fdb_files)
    audio_s = sum(rec.duration for rec in recs if rec is not None)
    failed = [f"{it.task}/{it.id}" for it, rec in zip(items, recs, strict=True) if rec is None]
    info = {"config": cfg.model_dump(mode="json"), "executor": "url" if url else executor, "items": len(items),
            "failed": failed,
            "audio_s": round(audio_s, 2), "wall_s": round(wall, 2),
            "real_time_factor": round(wall / audio_s, 4) if audio_s else None}  # fmt: skip
    (out / RUN_FILE).write_text(json.dumps(info, indent=1, ensure_ascii=False), encoding="utf-8")
    return score(out, vad=vad, tasks=tasks, limit=limit)


def _has_tasks(folder: Path) -> bool:
    try:
        find_tasks(folder)
    except BenchError:
        return False
    return True


def setting_label(index: int, config: SessionConfig) -> str:
    s = config.sampling
    return f"{index:03d}-temp{s.temp:g}-topk{s.top_k}-seed{config.seed}"


def sweep(
    grid: Mapping[str, Sequence[Any]],
    out: str | Path,
    *,
    source: str | Path | None = None,
    base: SessionConfig | None = None,
    executor: Literal["local", "modal"] = "local",
    engine: Engine | None = None,
    vad: VadName = "webrtc",
    progress: bool = True,
    **choice: Unpack[ItemChoice],
) -> pd.DataFrame:
    """The benchmark as a sweep objective: one row per setting of ``grid`` with each task's headline metrics.

    ``grid`` as for ``jmoshi_nb.sweep`` (e.g. ``{"temp": [0.6, 0.8], "top_k": [50, 250]}``). The set
    (``source``, else built once into ``out/_set``) runs under each setting into ``out/<setting>``;
    the columns are the sampling parameters, seed, model, then ``<task>_TOR``, ``turn_taking_latency_mean_s``,
    ``backchannel_backchannels_per_min``, ``interruption_stop_latency_mean_s``... so ``plot_sweep_heatmap``
    shows any of them. ``df.attrs["scores"]`` holds every setting's full scores. ``limit``, ``tasks``,
    ``per_task``, ``seed``: which items, as for ``run`` (:class:`ItemChoice`).
    """
    from ..sweeps import config_columns, expand_grid, sweep_table
    from .scoring import headline

    check_keywords("sweep", choice, ItemChoice)
    out = Path(out)
    configs = expand_grid(grid, base)
    if source is None:
        source = out / "_set"
        if not (source / MANIFEST).exists():
            _build_set(source, progress, **choice)
    if engine is None and executor == "local":
        from ...model.engine import Engine

        first = configs[0]
        engine = Engine.load(first.model, revision=first.revision, sampling=first.sampling, seed=first.seed)
    rows, all_scores = [], {}
    for ci, cfg in enumerate(configs):
        label = setting_label(ci, cfg)
        scores = run(out / label, source=source, config=cfg, executor=executor, engine=engine, vad=vad,
                     progress=progress, **choice)  # fmt: skip
        all_scores[label] = scores
        rows.append({"setting": label, **config_columns(cfg), **headline(scores), "folder": str(out / label)})
    return sweep_table(rows, scores=all_scores)
