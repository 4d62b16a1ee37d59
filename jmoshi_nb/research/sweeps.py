"""Run many (config, input) jobs and get one Recording each: in this process or fanned out on Modal GPUs.

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

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cloud.settings import StarmapFunction
from ..core.audio import FRAME_SIZE, decode_audio, encode_audio, frames, read_wav, sha256_of
from ..core.config import SessionConfig
from ..core.recording import Recording, TextEvent

if TYPE_CHECKING:
    from ..model.engine import Engine

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
        rec.add_user(frame)
        result = engine.step(frame)
        if result.pcm is None:
            rec.add_model_silence(FRAME_SIZE)  # the LM's initial delay, as the client records it
        else:
            rec.add_model(result.pcm)
        if result.text:
            rec.add_text(result.index, int(result.text_token or 0), result.text)
        rec.add_metrics({**result.metrics(), "queued": 0})
    rec.meta.update(meta or {})
    rec.meta.update({"input_sha256": sha256_of(pcm), "seed": seed, "path": "engine"})
    if name:
        rec.meta["job"] = name
    return rec


class EnginePool:
    """Engines by (model, revision), loaded on first use, at most ``max_models`` kept (LRU)."""

    def __init__(
        self,
        device: str | None = None,
        max_models: int = 1,
        loader: Callable[[str, str | None, str | None], Engine] | None = None,
    ) -> None:
        self.device = device
        self.max_models = max_models
        self._loader = loader
        self._engines: OrderedDict[tuple[str, str | None], Engine] = OrderedDict()
        self.loads = 0

    def _load(self, model: str, revision: str | None) -> Engine:
        if self._loader is not None:
            return self._loader(model, revision, self.device)
        from ..model.engine import Engine

        return Engine.load(model, revision=revision, device=self.device)

    def put(self, model: str, revision: str | None, engine: Engine) -> None:
        self._engines[(model, revision)] = engine
        self._engines.move_to_end((model, revision))
        self._evict()

    def _evict(self) -> None:
        while len(self._engines) > self.max_models:
            self._engines.popitem(last=False)
            _free_device_memory()

    def get(self, model: str, revision: str | None = None) -> Engine:
        key = (model, revision)
        if key in self._engines:
            self._engines.move_to_end(key)
            return self._engines[key]
        # Make room first: two 7B models do not fit one 24 GB GPU.
        while self._engines and len(self._engines) >= self.max_models:
            self._engines.popitem(last=False)
            _free_device_memory()
        engine = self._load(model, revision)
        self.loads += 1
        self._engines[key] = engine
        return engine

    def __contains__(self, key: tuple[str, str | None]) -> bool:
        return key in self._engines


def _free_device_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


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


def run_job_payload(pool: EnginePool, config: dict[str, Any], audio: bytes, name: str, executor: str) -> dict[str, Any]:
    """What a remote worker runs for one job: plain data in, plain data out."""
    cfg = SessionConfig.from_dict(config)
    engine = pool.get(cfg.model, cfg.revision)
    t0 = time.perf_counter()
    rec = run_on_engine(engine, decode_audio(audio), cfg, name=name, meta={"executor": executor})
    rec.meta["wall_s"] = round(time.perf_counter() - t0, 3)
    return recording_to_dict(rec)


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


def _run_local(
    jobs: list[Job], progress: bool, device: str | None, pool: EnginePool | None, out_dir: str | Path | None = None
) -> list[Recording]:
    pool = pool or EnginePool(device=device, max_models=1)
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


def _run_modal(jobs: list[Job], progress: bool, worker: StarmapFunction) -> tuple[list[Recording | None], dict]:
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
) -> list[Recording]:
    """Run every job; return their recordings in job order (and save them under ``out_dir/<name>``).

    ``executor="local"``: in this process, one engine per model (``device`` picks cuda/cpu).
    ``executor="modal"``: one call per job on ``modal_app.SweepWorker`` GPU containers, looked up in
    the deployed app ``app_name`` or, if it is not deployed, in an ephemeral run of the app. ``worker``
    replaces that Modal function (anything with ``starmap``; tests pass a stand-in).
    Failed jobs raise ``SweepError`` after all jobs ran; it holds the recordings that succeeded.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}: use one of {', '.join(EXECUTORS)}")
    named = _named(jobs)
    if not named:
        return []
    if executor == "local":
        return _finish(named, _run_local(named, progress, device, pool, out_dir), {}, out_dir)  # type: ignore[arg-type]
    if worker is not None:
        recs, errors = _run_modal(named, progress, worker)
    else:
        from ..cloud.backend import sweep_worker

        with sweep_worker(app_name=app_name, models=sorted({j.config.model for j in named})) as remote:
            recs, errors = _run_modal(named, progress, remote)
    return _finish(named, recs, errors, out_dir)


__all__ = [
    "Job",
    "EnginePool",
    "SweepError",
    "run_jobs",
    "run_on_engine",
    "encode_audio",
    "decode_audio",
    "recording_to_dict",
    "recording_from_dict",
    "run_job_payload",
]
