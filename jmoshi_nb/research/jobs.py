"""Many (config, input) jobs, one Recording each, in this process or fanned out on Modal GPUs.

    jobs = [Job(SessionConfig(model="j-moshi-ext", sampling=Sampling(temp=t), seed=s), "in.wav")
            for t in (0.6, 0.8, 1.0) for s in (1, 2, 3)]
    recs = run_jobs(jobs, executor="modal")       # or executor="local"

Both executors run the jobs through the one engine-run loop (``engine_run``): the local executor in
this process with one engine per model (``model.engine_pool.EnginePool``: loaded once), the Modal one
in GPU containers (``cloud.app.SweepWorker`` runs ``run_job_payload``), fanned out with ``starmap``.
Why not ``run_wav`` against a local server:

* speed: no real-time pacing, no Opus encode/decode, no event loop; a sweep is bounded by the engine;
* exactness: the model hears exactly the input samples and the recording holds exactly the samples
  the model produced (the server path passes both through Opus, a lossy codec);
* one path for both executors: a local and a Modal sweep of the same jobs run the same code, so they
  differ only by hardware.

The price: a sweep's tokens are not those of an interactive session over the same WAV (that session's
model heard the Opus-decoded audio).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.audio import decode_audio, encode_audio, read_wav
from ..core.config import SessionConfig
from ..core.progress import Progress, progress
from ..core.recording import Recording
from ..model.engine_factory import batch_slots
from ..model.engine_pool import EnginePool
from .engine_run import EngineInput, run_all_on_engine, run_on_engine

if TYPE_CHECKING:
    from ..remote.settings import StarmapFunction

EXECUTORS = ("local", "modal")


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

    def engine_input(self, executor: str, out: Path | None = None) -> EngineInput:
        """This job for the engine-run loop (``meta``: the executor, and the input file when there is one)."""
        meta: dict[str, Any] = {"executor": executor}
        if self.describe_input():
            meta["input"] = self.describe_input()
        return EngineInput(self.pcm(), self.config, self.name, meta, out)


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


# ---- the worker side: plain data in, plain data out (Modal pickles these) ---------------------------


def run_job_payload(
    pool: EnginePool,
    config: dict[str, Any] | list[dict[str, Any]],
    audio: bytes | list[bytes],
    name: str | list[str],
    executor: str,
) -> dict[str, Any] | list[dict[str, Any]]:
    """What a remote worker runs for one job: plain data in, plain data out (``Recording.to_dict``).

    Lists of configs, audios and names are a batch: the jobs run as slots of one batched engine
    (``engine_factory.batch_slots``) and a list of recordings comes back, in order.
    """
    if isinstance(config, list):
        assert isinstance(audio, list) and isinstance(name, list)
        return run_batch_payload(pool, config, audio, name, executor)
    assert isinstance(audio, bytes) and isinstance(name, str)
    cfg = SessionConfig.from_dict(config)
    engine = pool.get(cfg.model, cfg.revision)
    rec = run_on_engine(engine, decode_audio(audio), cfg, name=name, meta={"executor": executor})
    return rec.to_dict()


def run_batch_payload(
    pool: EnginePool, configs: list[dict[str, Any]], audios: list[bytes], names: list[str], executor: str
) -> list[dict[str, Any]]:
    """A batch of jobs of one model as slots of one batched engine; plain data in and out."""
    cfgs = [SessionConfig.from_dict(c) for c in configs]
    models = {(c.model, c.revision) for c in cfgs}
    if len(models) != 1:
        raise ValueError(f"a batch runs on one model; got {sorted(str(m) for m in models)}")
    model, revision = models.pop()
    # A batch comes from batch_size > 1: a batched engine even for a last batch of one job.
    engine = pool.get(model, revision, batch_slots(max(len(cfgs), 2), len(cfgs)))
    inputs = [
        EngineInput(decode_audio(a), c, n, {"executor": executor}) for c, a, n in zip(cfgs, audios, names, strict=True)
    ]
    return [r.to_dict() for r in run_all_on_engine(engine, inputs)]


# ---- executors -----------------------------------------------------------------------------------


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


def _run_local(
    jobs: list[Job],
    show_progress: bool,
    device: str | None,
    pool: EnginePool | None,
    out_dir: str | Path | None = None,
    batch_size: int = 1,
) -> list[Recording]:
    """Each model's jobs on one engine (loaded once): one at a time, or ``batch_size`` at once as slots."""
    pool = pool or EnginePool(device=device)
    recs: list[Recording | None] = [None] * len(jobs)
    bar = Progress(len(jobs), "sweep (local, batched)" if batch_size > 1 else "sweep (local)", show_progress)
    for group in _by_model(jobs):
        first = jobs[group[0]].config
        engine = pool.get(first.model, first.revision, batch_slots(batch_size, len(group)))
        # Each recording streams into its folder as it runs: a killed sweep keeps what it did.
        outs = [Path(out_dir) / jobs[i].name if out_dir is not None else None for i in group]
        inputs = [jobs[i].engine_input("local", out) for i, out in zip(group, outs, strict=True)]
        for i, rec in zip(group, run_all_on_engine(engine, inputs, on_done=bar.update), strict=True):
            recs[i] = rec
    bar.close()
    return recs  # type: ignore[return-value]


def _run_modal(
    jobs: list[Job], show_progress: bool, worker: StarmapFunction, batch_size: int = 1
) -> tuple[list[Recording | None], dict[str, BaseException]]:
    """One call per job (``batch_size`` 1) or per batch of up to ``batch_size`` jobs of one model."""
    if batch_size > 1:
        chunks = [g[i : i + batch_size] for g in _by_model(jobs) for i in range(0, len(g), batch_size)]
        args: list[tuple[Any, ...]] = [
            (
                [jobs[i].config.model_dump(mode="json") for i in chunk],
                [encode_audio(jobs[i].pcm()) for i in chunk],
                [jobs[i].name for i in chunk],
            )
            for chunk in chunks
        ]
        desc = "sweep (modal, batches)"
    else:
        chunks = [[i] for i in range(len(jobs))]
        args = [(job.config.model_dump(mode="json"), encode_audio(job.pcm()), job.name) for job in jobs]
        desc = "sweep (modal)"
    results = worker.starmap(args, order_outputs=True, return_exceptions=True)
    recs: list[Recording | None] = [None] * len(jobs)
    errors: dict[str, BaseException] = {}
    returned = 0
    for chunk, result in progress(zip(chunks, results, strict=False), len(chunks), desc, show_progress):
        returned += 1
        for k, i in enumerate(chunk):
            if isinstance(result, BaseException):
                errors[jobs[i].name] = result
                continue
            rec = Recording.from_dict(result[k] if batch_size > 1 else result)
            if jobs[i].describe_input():
                rec.meta["input"] = jobs[i].describe_input()
            recs[i] = rec
    if returned != len(chunks):
        raise SweepError(f"the Modal worker returned {returned} results for {len(chunks)} calls", recs, errors)
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
    ``executor="modal"``: one call per job on ``cloud.app.SweepWorker`` GPU containers, looked up in
    the deployed app ``app_name`` or, if it is not deployed, in an ephemeral run of the app. ``worker``
    replaces that Modal function (anything with ``starmap``; tests pass a stand-in).
    Failed jobs raise ``SweepError`` after all jobs ran; it holds the recordings that succeeded.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}: use one of {', '.join(EXECUTORS)}")
    batch_slots(batch_size, 1)  # checks batch_size before anything runs
    named = _named(jobs)
    if not named:
        return []
    if executor == "local":
        recs_local = _run_local(named, progress, device, pool, out_dir, batch_size)
        return _finish(named, recs_local, {}, out_dir)  # type: ignore[arg-type]
    if worker is not None:
        recs, errors = _run_modal(named, progress, worker, batch_size)
    else:
        from ..remote.modal_client import sweep_worker

        with sweep_worker(app_name=app_name, models=sorted({j.config.model for j in named})) as remote:
            recs, errors = _run_modal(named, progress, remote, batch_size)
    return _finish(named, recs, errors, out_dir)


__all__ = [
    "Job",
    "SweepError",
    "run_jobs",
    "run_job_payload",
    "run_batch_payload",
]
