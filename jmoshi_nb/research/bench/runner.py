"""Run a task set through a model and score it: ``run(out, ...)``; a grid: ``sweep(objective="bench")``.

Each item's input.wav goes through the engine-run loop (``research.engine_run``, as sweeps and
prompted continuation do: no real-time pacing, no Opus), or through a running server (``url``, the
moshi protocol with Opus, as a client would). The item then holds ``output.wav`` (the model, 24 kHz,
the input's duration); the kit's recording (text events, per-frame metrics, session description) goes
to ``Item.recording``, outside the item folder (``layout``); and the whole folder is scored (``score``).

Interruption items carry ``model.wav``, the prepared answer: on the engine, the model's channel is
forced into it (the loop's ``forcing``) until the barge-in, then the model runs free. Over a server,
or on Modal (whose sweep worker runs plain sessions), the channel cannot be forced: those items run
unforced and their recording says so (``meta["forced"] = False``).

``run_items`` runs the items on one engine: one at a time on an ``Engine``, as slots of a
``BatchEngine`` (``batch_size``); ``save_item`` then writes each item's files.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack

import numpy as np

from ...core.audio import FRAME_SIZE, SAMPLE_RATE, read_wav, write_wav
from ...core.config import SessionConfig, load_config
from ...core.progress import Progress
from ...core.recording import Recording
from ...model.engine_factory import batch_slots, is_batched, load_engine
from ..engine_run import EngineInput, run_all_on_engine
from ..vad import VadName
from .fdb_files import write_fdb_files
from .layout import TIMING_FILE, BenchError, Item, find_tasks
from .scoring import score
from .tasks import DEFAULT_PER_TASK, MANIFEST, MODEL_FILE, build

if TYPE_CHECKING:
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


def item_input(item: Item, config: SessionConfig) -> EngineInput:
    """The item for the engine-run loop: the user is input.wav, streamed into ``item.recording`` (beside
    the item folder); the model's channel is forced where the item asks (``meta["forced"]`` says whether)."""
    user = read_wav(item.input)
    force = _forcing(item)
    if force is not None and force[1] >= math.ceil(len(user) / FRAME_SIZE):
        force = None  # nothing left to run free: the item runs unforced
    meta: dict[str, Any] = {"forced": force is not None, **({"forced_frames": force[1]} if force else {})}
    return EngineInput(user, config, f"{item.task}/{item.id}", meta, item.recording, force)


def run_item(engine: Engine | BatchEngine, item: Item, config: SessionConfig) -> Recording:
    """One item on ``engine`` (``item_input``); a killed run leaves its recording folder readable."""
    return run_all_on_engine(engine, [item_input(item, config)])[0]


def _failed(item: Item, exc: BaseException) -> None:
    log.error("bench: %s/%s failed: %s: %s", item.task, item.id, type(exc).__name__, exc)
    item.output.unlink(missing_ok=True)  # a previous run's output must not be scored as this run's


def run_items(
    engine: Engine | BatchEngine, items: Sequence[Item], config: SessionConfig, progress: bool = False
) -> list[Recording | None]:
    """Every item on ``engine``: one at a time on an ``Engine``, as slots on a ``BatchEngine``.

    An item that fails is logged and gives None (the scorer then names it); the others still run.
    """
    recs: list[Recording | None] = [None] * len(items)
    ready: dict[int, EngineInput] = {}
    for i, item in enumerate(items):
        try:
            ready[i] = item_input(item, config)
        except Exception as exc:  # unreadable input: named, the others run
            _failed(item, exc)
    bar = Progress(len(ready), "bench", progress, unit="item")
    if is_batched(engine):
        for i, rec in zip(ready, run_all_on_engine(engine, list(ready.values()), on_done=bar.update), strict=True):
            recs[i] = rec
    else:
        for i, inp in ready.items():
            try:
                recs[i] = run_all_on_engine(engine, [inp])[0]
            except Exception as exc:  # one bad item must not lose the others
                _failed(items[i], exc)
            bar.update()
    bar.close()
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
    from .. import jobs

    runnable, todo = [], []
    for item in items:
        try:
            todo.append(jobs.Job(config, read_wav(item.input), name=f"{item.task}-{item.id}"))
            runnable.append(item)
        except Exception as exc:
            _failed(item, exc)
    try:
        done: list[Recording | None] = list(jobs.run_jobs(todo, executor="modal", progress=progress))
    except jobs.SweepError as exc:
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


def build_set(folder: Path, progress: bool, **choice: Unpack[ItemChoice]) -> None:
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
    server instead of an engine in this process; ``executor="modal"``: Modal GPUs (``jobs.run_jobs``);
    ``engine``: an engine already loaded (local only; a ``BatchEngine`` runs items as its slots).
    ``batch_size`` > 1 (local, no ``engine``): that many items at once as slots of one batched engine;
    1: one at a time on an ``Engine``. Items that fail are logged and left without output, so the
    scores name them; the others are scored.
    """
    if executor not in ("local", "modal"):
        raise BenchError(f"unknown executor {executor!r}: local or modal")
    batch_slots(batch_size, 1)  # checks batch_size before any work
    cfg = _config(config, model)
    out = Path(out)
    if source is not None:
        _copy_set(Path(source), out, tasks, limit)
    elif not (out / MANIFEST).exists() and not _has_tasks(out):
        build_set(out, progress, limit=limit, tasks=tasks, per_task=per_task, seed=seed)
    items = [it for it in _selected(out, tasks, limit) if it.input.exists()]
    slots = batch_slots(batch_size, max(len(items), 1))
    t0 = time.perf_counter()
    if url is not None:
        recs = _run_url(items, cfg, url, token)
    elif executor == "modal":
        recs = _run_modal(items, cfg, progress)
    else:
        if engine is None:
            engine = load_engine(cfg.model, slots, revision=cfg.revision, sampling=cfg.sampling, seed=cfg.seed)
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
