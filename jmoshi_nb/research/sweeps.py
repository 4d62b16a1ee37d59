"""Parameter sweeps: ``sweep`` (a grid over inputs, one table row per run) and the executors under it.

``sweep`` expands a grid of sampling parameters over a list of inputs, runs every combination
through ``run_jobs`` (in-process, or fanned out on Modal GPUs; ``batch_size`` > 1: as slots of one
batched engine) and returns one pandas row per run: the parameters, turn-taking metrics and frame
timings. ``iter_recordings`` reads a saved sweep back without the model.

``run_jobs``: many (config, input) jobs, one Recording each, in this process or fanned out on Modal GPUs.

    jobs = [Job(SessionConfig(model="j-moshi-ext", sampling=Sampling(temp=t), seed=s), "in.wav")
            for t in (0.6, 0.8, 1.0) for s in (1, 2, 3)]
    recs = run_jobs(jobs, executor="modal")       # or executor="local"

Both executors feed the frames straight to ``Engine.step`` (no WebSocket, no Opus), in the same
function, ``run_on_engine``: the local executor in this process with one engine per model (loaded
once, ``reset(sampling, seed)`` per job), the Modal one in GPU containers (``modal_app.SweepWorker``),
one job per call, fanned out with ``starmap``. Why not ``runner.run_wav`` against a local server:

* speed: no real-time pacing, no Opus encode/decode, no event loop; a sweep is bounded by the engine;
* exactness: the model hears exactly the input samples and the recording holds exactly the samples
  the model produced (the server path passes both through Opus, a lossy codec);
* one path for both executors: a local and a Modal sweep of the same jobs run the same code, so they
  differ only by hardware.

The price: a sweep's tokens are not those of an interactive session over the same WAV (that session's
model heard the Opus-decoded audio). The recording has the layout a client session records (user
audio, model audio with one silent frame per frame without audio, text events, per-frame metrics,
params, the server's session description), so every analysis and plot reads both alike.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..cloud.settings import StarmapFunction
from ..core.audio import decode_audio, encode_audio, frames, read_wav, sha256_of
from ..core.config import ConfigError, Sampling, SessionConfig
from ..core.recording import Recording, TextEvent
from ..model.engine_pool import EnginePool

if TYPE_CHECKING:
    import pandas as pd

    from ..model.batch_engine import BatchEngine
    from ..model.engine import Engine

EXECUTORS = ("local", "modal")
GRID_KEYS = (*Sampling.model_fields, "seed")


class SweepError(RuntimeError):
    """Some jobs failed. ``recordings`` holds the results in job order (None where a job failed)."""

    def __init__(self, message: str, recordings: list[Recording | None], errors: dict[str, BaseException]) -> None:
        super().__init__(message)
        self.recordings = recordings
        self.errors = errors


@dataclass
class Job:
    """One run: a config (model, sampling, seed) and an input (audio file path or 24 kHz mono array)."""

    config: SessionConfig
    input: str | Path | np.ndarray
    name: str = ""

    def pcm(self) -> np.ndarray:
        """The input as 24 kHz mono float32."""
        if isinstance(self.input, np.ndarray):
            pcm = np.asarray(self.input, dtype=np.float32)
            if pcm.ndim != 1:
                raise ValueError(f"job {self.name!r}: input arrays must be mono 24 kHz (1-D), got shape {pcm.shape}")
            return pcm
        return read_wav(self.input)

    def describe_input(self) -> str | None:
        return None if isinstance(self.input, np.ndarray) else str(self.input)


def default_name(index: int, config: SessionConfig) -> str:
    s = config.sampling
    label = config.name or config.model.replace("/", "_")
    return f"{index:03d}-{label}-temp{s.temp:g}-topk{s.top_k}-seed{config.seed}"


def _named(jobs: Sequence[Job]) -> list[Job]:
    out = [Job(j.config, j.input, j.name or default_name(i, j.config)) for i, j in enumerate(jobs)]
    names = [j.name for j in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"job names must be unique (they name the saved recordings); repeated: {', '.join(dupes)}")
    return out


# ---- the engine path -----------------------------------------------------------------------------


def run_on_engine(
    engine: Engine,
    pcm: np.ndarray,
    config: SessionConfig,
    name: str = "",
    meta: dict[str, Any] | None = None,
    out: str | Path | None = None,
) -> Recording:
    """One session on ``engine``, frames fed directly; returns what a client would have recorded.

    With ``out`` the recording streams into that folder while it runs (``save(out)`` completes it).

    The engine is reset to the config's sampling and seed first. ``seed=None`` draws a random seed,
    which the recording keeps (``meta["seed"]`` and the params event), so the run can be repeated.
    """
    pcm = np.ascontiguousarray(pcm, dtype=np.float32)
    seed = config.seed if config.seed is not None else secrets.randbits(63)
    engine.reset(config.sampling, seed)
    rec = Recording(config=config)
    rec.session = engine.describe()
    rec.meta["seed"] = seed
    if out is not None:
        rec.stream_to(out)
    rec.add_params(0, config.sampling.model_dump(), seed)
    for frame in frames(pcm):
        rec.add_frame(frame, engine.step(frame), queued=0)
    rec.meta.update(meta or {})
    rec.meta.update({"input_sha256": sha256_of(pcm), "seed": seed, "path": "engine"})
    if name:
        rec.meta["job"] = name
    return rec


@dataclass
class _Running:
    index: int
    frames: list[np.ndarray]
    rec: Recording
    started: float
    done: int = 0
    forcer: Any = None  # model.forcing.ModelChannelForcer while the model's channel is forced
    forced_frames: int = 0


def run_batch_on_engine(
    engine: BatchEngine,
    jobs: Sequence[tuple[np.ndarray, SessionConfig, str, dict[str, Any] | None]],
    on_done: Callable[[int, Recording], None] | None = None,
    outs: Sequence[str | Path | None] | None = None,
    forcing: Sequence[tuple[np.ndarray, int] | None] | None = None,
) -> list[Recording]:
    """Many sessions as slots of one batched engine: ``(pcm, config, name, meta)`` per job, recordings in order.

    Every free slot takes the next job; each step feeds every running job its next frame; a finished
    job frees its slot for the next. A recording is what ``run_on_engine`` records for the same job
    (the engine path, no Opus), so ``run_jobs`` gives the same form at any batch size; the slot and
    the batch size go to ``meta``. ``on_done(index, recording)`` is called as each job finishes.

    Per job, in the same order: ``outs`` streams its recording into that folder as it runs;
    ``forcing`` = ``(model_pcm, frames)`` forces the model's channel for its first ``frames`` frames
    (teacher forcing, as in prompted continuation; those frames' metrics say ``forced``).
    """
    recs: list[Recording | None] = [None] * len(jobs)
    todo = list(range(len(jobs)))
    running: dict[int, _Running] = {}
    for slot in engine.busy_slots:
        engine.release(slot)
    while todo or running:
        while todo and engine.free_slots:
            i = todo.pop(0)
            pcm, config, name, meta = jobs[i]
            pcm = np.ascontiguousarray(pcm, dtype=np.float32)
            seed = config.seed if config.seed is not None else secrets.randbits(63)
            slot = engine.open(config.sampling, seed)
            rec = Recording(config=config)
            rec.session = {k: v for k, v in engine.describe(slot).items() if k not in ("slot", "slots")}
            rec.add_params(0, config.sampling.model_dump(), seed)
            rec.meta.update(meta or {})
            rec.meta.update({"input_sha256": sha256_of(pcm), "seed": seed, "path": "engine"})
            rec.meta.update({"batch_size": engine.slots, "slot": slot})
            if name:
                rec.meta["job"] = name
            if outs is not None and outs[i] is not None:
                rec.stream_to(outs[i])
            running[slot] = _Running(i, list(frames(pcm)), rec, time.perf_counter())
            if forcing is not None and forcing[i] is not None:
                from ..model.forcing import ModelChannelForcer

                model_pcm, n_forced = forcing[i]
                running[slot].forcer, running[slot].forced_frames = ModelChannelForcer(engine, model_pcm), n_forced
        forced = {s: r.forcer.tokens_for_step(r.done) for s, r in running.items() if r.done < r.forced_frames}
        results = engine.step({slot: r.frames[r.done] for slot, r in running.items()}, forced_audio=forced or None)
        for slot, result in results.items():
            r = running[slot]
            extra = {"forced": slot in forced} if r.forcer is not None else {}
            r.rec.add_frame(r.frames[r.done], result, queued=0, **extra)
            r.done += 1
            if r.done == len(r.frames):
                r.rec.meta["wall_s"] = round(time.perf_counter() - r.started, 3)
                recs[r.index] = r.rec
                engine.release(slot)
                del running[slot]
                if on_done is not None:
                    on_done(r.index, r.rec)
    return recs  # type: ignore[return-value]


def check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} is out of range: allowed integers >= 1 (jobs per engine)")
    return batch_size


# ---- transport: audio and recordings as plain data (Modal pickles these) --------------------------


def recording_to_dict(rec: Recording) -> dict[str, Any]:
    """A Recording as plain data (exact float32 audio as bytes); ``recording_from_dict`` inverts it."""
    return {
        "sample_rate": rec.sample_rate,
        "user": rec.user_pcm.astype(np.float32).tobytes(),
        "model": rec.model_pcm.astype(np.float32).tobytes(),
        "text": [e.__dict__.copy() for e in rec.text],
        "metrics": rec.metrics,
        "params": rec.params,
        "config": rec.config.model_dump(mode="json") if rec.config else None,
        "session": rec.session,
        "meta": rec.meta,
    }


def recording_from_dict(data: dict[str, Any]) -> Recording:
    rec = Recording(sample_rate=int(data["sample_rate"]))
    rec.user_chunks = [np.frombuffer(data["user"], dtype=np.float32).copy()]
    rec.model_chunks = [np.frombuffer(data["model"], dtype=np.float32).copy()]
    rec.text = [TextEvent(**e) for e in data["text"]]
    rec.metrics = list(data["metrics"])
    rec.params = list(data["params"])
    rec.config = SessionConfig.from_dict(data["config"]) if data.get("config") else None
    rec.session = dict(data.get("session") or {})
    rec.meta = dict(data.get("meta") or {})
    return rec


def run_job_payload(
    pool: EnginePool,
    config: dict[str, Any] | list[dict[str, Any]],
    audio: bytes | list[bytes],
    name: str | list[str],
    executor: str,
) -> dict[str, Any] | list[dict[str, Any]]:
    """What a remote worker runs for one job: plain data in, plain data out.

    Lists of configs, audios and names are a batch: the jobs run as slots of one batched engine
    (``run_batch_on_engine``) and a list of recordings comes back, in order.
    """
    if isinstance(config, list):
        assert isinstance(audio, list) and isinstance(name, list)
        return run_batch_payload(pool, config, audio, name, executor)
    assert isinstance(audio, bytes) and isinstance(name, str)
    cfg = SessionConfig.from_dict(config)
    engine = pool.get(cfg.model, cfg.revision)
    t0 = time.perf_counter()
    rec = run_on_engine(engine, decode_audio(audio), cfg, name=name, meta={"executor": executor})
    rec.meta["wall_s"] = round(time.perf_counter() - t0, 3)
    return recording_to_dict(rec)


def run_batch_payload(
    pool: EnginePool, configs: list[dict[str, Any]], audios: list[bytes], names: list[str], executor: str
) -> list[dict[str, Any]]:
    """A batch of jobs of one model as slots of one batched engine; plain data in and out."""
    cfgs = [SessionConfig.from_dict(c) for c in configs]
    models = {(c.model, c.revision) for c in cfgs}
    if len(models) != 1:
        raise ValueError(f"a batch runs on one model; got {sorted(str(m) for m in models)}")
    model, revision = models.pop()
    engine = pool.get_batch(model, revision, len(cfgs))
    jobs = [(decode_audio(a), c, n, {"executor": executor}) for c, a, n in zip(cfgs, audios, names, strict=True)]
    return [recording_to_dict(r) for r in run_batch_on_engine(engine, jobs)]


# ---- executors -----------------------------------------------------------------------------------


def _progress(iterable: Iterable[Any], total: int, enabled: bool, desc: str) -> Iterator[Any]:
    if not enabled:
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, total=total, desc=desc, unit="job")


def _finish(
    jobs: list[Job], recs: list[Recording | None], errors: dict[str, BaseException], out_dir: str | Path | None
) -> list[Recording]:
    if out_dir is not None:
        for job, rec in zip(jobs, recs, strict=True):
            if rec is not None:
                rec.save(Path(out_dir) / job.name)
    if errors:
        first = next(iter(errors.items()))
        raise SweepError(
            f"{len(errors)} of {len(jobs)} jobs failed ({', '.join(errors)}); first: {first[0]}: {first[1]}",
            recs,
            errors,
        )
    return [r for r in recs if r is not None]


def _by_model(jobs: list[Job]) -> list[list[int]]:
    """Job indices grouped by (model, revision), in job order within a group."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault((job.config.model, job.config.revision or ""), []).append(i)
    return [groups[k] for k in sorted(groups)]


def _run_local_batched(jobs: list[Job], progress: bool, pool: EnginePool, batch_size: int) -> list[Recording]:
    recs: list[Recording | None] = [None] * len(jobs)
    counter = _Counter(progress, len(jobs), "sweep (local, batched)")
    for group in _by_model(jobs):
        first = jobs[group[0]].config
        engine = pool.get_batch(first.model, first.revision, min(batch_size, len(group)))
        items = []
        for i in group:
            meta: dict[str, Any] = {"executor": "local"}
            if jobs[i].describe_input():
                meta["input"] = jobs[i].describe_input()
            items.append((jobs[i].pcm(), jobs[i].config, jobs[i].name, meta))
        for i, rec in zip(group, run_batch_on_engine(engine, items, on_done=counter.done), strict=True):
            recs[i] = rec
    counter.close()
    return recs  # type: ignore[return-value]


class _Counter:
    def __init__(self, enabled: bool, total: int, desc: str) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="job")

    def done(self, _index: int, _rec: Recording) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run_local(
    jobs: list[Job],
    progress: bool,
    device: str | None,
    pool: EnginePool | None,
    out_dir: str | Path | None = None,
    batch_size: int = 1,
) -> list[Recording]:
    pool = pool or EnginePool(device=device, max_models=1)
    if batch_size > 1:
        return _run_local_batched(jobs, progress, pool, batch_size)
    # Jobs of one model run together so that each model loads once even with max_models=1.
    order = sorted(range(len(jobs)), key=lambda i: (jobs[i].config.model, jobs[i].config.revision or ""))
    recs: list[Recording | None] = [None] * len(jobs)
    for i in _progress(order, len(jobs), progress, "sweep (local)"):
        job = jobs[i]
        pcm = job.pcm()
        engine = pool.get(job.config.model, job.config.revision)
        t0 = time.perf_counter()
        out = Path(out_dir) / job.name if out_dir is not None else None
        rec = run_on_engine(engine, pcm, job.config, name=job.name, meta={"executor": "local"}, out=out)
        rec.meta["wall_s"] = round(time.perf_counter() - t0, 3)
        if job.describe_input():
            rec.meta["input"] = job.describe_input()
        recs[i] = rec
    return recs  # type: ignore[return-value]


def _run_modal_batched(
    jobs: list[Job], progress: bool, worker: StarmapFunction, batch_size: int
) -> tuple[list[Recording | None], dict]:
    """Batches of up to ``batch_size`` jobs of one model, one call (one container's batched engine) each."""
    chunks = [g[i : i + batch_size] for g in _by_model(jobs) for i in range(0, len(g), batch_size)]
    args = [
        (
            [jobs[i].config.model_dump(mode="json") for i in chunk],
            [encode_audio(jobs[i].pcm()) for i in chunk],
            [jobs[i].name for i in chunk],
        )
        for chunk in chunks
    ]
    results = worker.starmap(args, order_outputs=True, return_exceptions=True)
    recs: list[Recording | None] = [None] * len(jobs)
    errors: dict[str, BaseException] = {}
    for chunk, result in _progress(zip(chunks, results, strict=False), len(chunks), progress, "sweep (modal, batches)"):
        for k, i in enumerate(chunk):
            if isinstance(result, BaseException):
                errors[jobs[i].name] = result
                continue
            rec = recording_from_dict(result[k])
            if jobs[i].describe_input():
                rec.meta["input"] = jobs[i].describe_input()
            recs[i] = rec
    return recs, errors


def _run_modal(
    jobs: list[Job], progress: bool, worker: StarmapFunction, batch_size: int = 1
) -> tuple[list[Recording | None], dict]:
    if batch_size > 1:
        return _run_modal_batched(jobs, progress, worker, batch_size)
    args = [(job.config.model_dump(mode="json"), encode_audio(job.pcm()), job.name) for job in jobs]
    results = worker.starmap(args, order_outputs=True, return_exceptions=True)
    recs: list[Recording | None] = []
    errors: dict[str, BaseException] = {}
    for job, result in _progress(zip(jobs, results, strict=False), len(jobs), progress, "sweep (modal)"):
        if isinstance(result, BaseException):
            errors[job.name] = result
            recs.append(None)
            continue
        rec = recording_from_dict(result)
        if job.describe_input():
            rec.meta["input"] = job.describe_input()
        recs.append(rec)
    if len(recs) != len(jobs):
        raise SweepError(f"the Modal worker returned {len(recs)} results for {len(jobs)} jobs", recs, errors)
    return recs, errors


def run_jobs(
    jobs: Sequence[Job],
    executor: str = "local",
    progress: bool = True,
    *,
    out_dir: str | Path | None = None,
    device: str | None = None,
    pool: EnginePool | None = None,
    worker: StarmapFunction | None = None,
    app_name: str | None = None,
    batch_size: int = 1,
) -> list[Recording]:
    """Run every job; return their recordings in job order (and save them under ``out_dir/<name>``).

    ``batch_size`` > 1 runs up to that many jobs of one model at once as slots of a batched engine
    (``batch_engine.BatchEngine``): in this process, or in each Modal container (one call per batch).
    A job's recording is the same at every ``batch_size`` > 1 (each slot has its own state and random
    stream); ``batch_size=1`` runs the single-conversation ``Engine``, whose tokens agree with the
    batched ones until the first near-tie that the two arithmetic paths round differently.

    ``executor="local"``: in this process, one engine per model (``device`` picks cuda/cpu).
    ``executor="modal"``: one call per job on ``modal_app.SweepWorker`` GPU containers, looked up in
    the deployed app ``app_name`` or, if it is not deployed, in an ephemeral run of the app. ``worker``
    replaces that Modal function (anything with ``starmap``; tests pass a stand-in).
    Failed jobs raise ``SweepError`` after all jobs ran; it holds the recordings that succeeded.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}: use one of {', '.join(EXECUTORS)}")
    check_batch_size(batch_size)
    named = _named(jobs)
    if not named:
        return []
    if executor == "local":
        recs_local = _run_local(named, progress, device, pool, out_dir, batch_size)
        return _finish(named, recs_local, {}, out_dir)  # type: ignore[arg-type]
    if worker is not None:
        recs, errors = _run_modal(named, progress, worker, batch_size)
    else:
        from ..cloud.backend import sweep_worker

        with sweep_worker(app_name=app_name, models=sorted({j.config.model for j in named})) as remote:
            recs, errors = _run_modal(named, progress, remote, batch_size)
    return _finish(named, recs, errors, out_dir)


__all__ = [
    "Job",
    "EnginePool",
    "SweepError",
    "run_jobs",
    "run_on_engine",
    "run_batch_on_engine",
    "check_batch_size",
    "encode_audio",
    "decode_audio",
    "recording_to_dict",
    "recording_from_dict",
    "run_job_payload",
    "run_batch_payload",
]


# ---- sweeps ----------------------------------------------------------------------------------------


def expand_grid(grid: Mapping[str, Sequence[Any]], base: SessionConfig | None = None) -> list[SessionConfig]:
    """Every combination of ``grid`` values applied to ``base``, each validated (ConfigError names the field)."""
    base = base or SessionConfig()
    unknown = sorted(set(grid) - set(GRID_KEYS))
    if unknown:
        raise ConfigError(f"grid: unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(GRID_KEYS)}")
    for key, values in grid.items():
        if isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0:
            raise ConfigError(f"grid: {key} must be a non-empty list of values, got {values!r}")
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
    ``objective="bench"``: the benchmark instead (``jmoshi_nb.research.bench.runner.sweep``): ``inputs`` is a
    task set folder (or empty: one is built in ``out_dir/_set``), one row per setting with each task's
    headline metrics; the other keyword arguments (``limit``, ``tasks``, ``vad``...) go to it.
    ``batch_size`` > 1 runs that many runs at once as slots of one batched engine (locally, or in each
    Modal container): see ``sweeps.run_jobs``.
    """
    if objective == "bench":
        from .bench.runner import sweep as bench_sweep

        if out_dir is None:
            raise ValueError("sweep(objective='bench') needs out_dir: each setting's run is a folder")
        source = inputs[0] if inputs else None
        if isinstance(source, np.ndarray):
            raise ValueError("sweep(objective='bench'): inputs is a task set folder (or empty), not audio")
        return bench_sweep(grid, out_dir, source=source, base=base, executor=executor, progress=progress,
                           **turn_taking_kwargs)  # fmt: skip
    check_batch_size(batch_size)
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


def iter_recordings(folder: str | Path) -> Iterator[tuple[str, Recording]]:
    """Every recording under ``folder`` (one level), by name: re-analyse saved runs without the model."""
    for sub in sorted(Path(folder).iterdir()):
        if (sub / "session.json").exists():
            yield sub.name, Recording.load(sub)
