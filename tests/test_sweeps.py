"""Sweeps: the local executor on the tiny model, determinism, and the Modal executor against a stand-in."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jmoshi_nb.core.audio import FRAME_SIZE, SAMPLE_RATE, decode_audio, encode_audio, write_wav
from jmoshi_nb.core.config import Sampling, SessionConfig
from jmoshi_nb.core.recording import Recording
from jmoshi_nb.model.engine_pool import EnginePool
from jmoshi_nb.research.jobs import Job, SweepError, run_jobs

SECONDS = 0.5  # 7 frames a job: the tiny model on a shared CPU is ~50-100 ms a frame


@pytest.fixture()
def tiny_engine(engine):  # type: ignore[no-untyped-def]
    """The session's tiny engine, given back with the sampling and seed it had (other tests rely on them)."""
    sampling, seed = engine.sampling, engine.seed
    yield engine
    engine.reset(sampling, seed)


@pytest.fixture()
def pool(tiny_engine) -> EnginePool:  # type: ignore[no-untyped-def]
    pool = EnginePool(loader=lambda *_: pytest.fail("the tiny engine should be reused, not loaded again"))
    pool.put("tiny", None, tiny_engine)
    return pool


def tone(seconds: float = SECONDS, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    noise = np.random.default_rng(0).normal(0, 0.02, t.shape)
    return (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def config(temp: float = 0.8, seed: int | None = 1) -> SessionConfig:
    return SessionConfig(model="tiny", sampling=Sampling(temp=temp), seed=seed)


def n_frames(pcm: np.ndarray) -> int:
    return -(-len(pcm) // FRAME_SIZE)


def test_local_executor_runs_each_job_on_one_engine(pool: EnginePool, tmp_path: Path) -> None:
    pcm = tone()
    wav = write_wav(tmp_path / "in.wav", pcm)
    jobs = [
        Job(config(temp=0.6, seed=1), pcm, name="cool"),
        Job(config(temp=1.2, seed=1), pcm, name="hot"),
        Job(config(temp=0.8, seed=2), wav),  # from a file, default name
    ]
    recs = run_jobs(jobs, executor="local", progress=False, pool=pool, out_dir=tmp_path / "runs")
    assert pool.loads == 0  # the engine given to the pool served all three
    assert len(recs) == 3
    frames = n_frames(pcm)
    for job, rec in zip(jobs, recs, strict=True):
        assert rec.config == job.config
        assert len(rec.metrics) == frames
        assert [m["frame"] for m in rec.metrics] == list(range(frames))
        assert len(rec.user_pcm) == len(rec.model_pcm) == frames * FRAME_SIZE
        # The LM's initial delay: no audio at frame 0, recorded as one frame of silence, as a client does.
        assert rec.metrics[0]["audio"] is False and not rec.model_pcm[:FRAME_SIZE].any()
        assert rec.model_pcm[FRAME_SIZE:].any()
        assert rec.params[0]["from_frame"] == 0 and rec.params[0]["seed"] == job.config.seed
        assert all(m["params"]["temp"] == job.config.sampling.temp for m in rec.metrics)
        assert rec.session["sampling"]["temp"] == job.config.sampling.temp
        assert rec.session["seed"] == job.config.seed
        assert rec.meta["executor"] == "local"
        assert [e.frame for e in rec.text] == [i for i, m in enumerate(rec.metrics) if m["text"]]
    np.testing.assert_array_equal(recs[0].user_pcm[: len(pcm)], pcm)  # the model heard the exact samples
    assert recs[2].meta["input"] == str(wav)
    assert recs[2].meta["job"].startswith("002-tiny-temp0.8")
    # Saved in the recording layout, one folder per job name.
    loaded = Recording.load(tmp_path / "runs" / "cool")
    assert loaded.text_tokens == recs[0].text_tokens
    assert len(loaded.metrics) == frames


def test_same_config_and_input_give_the_same_tokens(pool: EnginePool) -> None:
    pcm = tone()
    a, other, b = run_jobs(
        [Job(config(seed=7), pcm, "a"), Job(config(seed=8), pcm, "other-seed"), Job(config(seed=7), pcm, "b")],
        progress=False,
        pool=pool,
    )
    assert a.frame_tokens() == b.frame_tokens()
    assert a.text_tokens == b.text_tokens and a.text_tokens
    np.testing.assert_array_equal(a.model_pcm, b.model_pcm)
    assert other.frame_tokens() != a.frame_tokens()  # the seed matters: sampling is live


def test_random_seed_is_drawn_and_recorded(pool: EnginePool) -> None:
    (rec,) = run_jobs([Job(config(seed=None), tone(0.2), "r")], progress=False, pool=pool)
    seed = rec.meta["seed"]
    assert isinstance(seed, int) and rec.params[0]["seed"] == seed == rec.session["seed"]
    (again,) = run_jobs([Job(config(seed=seed), tone(0.2), "r")], progress=False, pool=pool)
    assert again.frame_tokens() == rec.frame_tokens()


def test_job_names_must_be_unique_and_executor_known() -> None:
    pcm = tone(0.1)
    with pytest.raises(ValueError, match="unique"):
        run_jobs([Job(config(), pcm, "x"), Job(config(), pcm, "x")], progress=False)
    with pytest.raises(ValueError, match="unknown executor"):
        run_jobs([Job(config(), pcm, "x")], executor="slurm", progress=False)
    with pytest.raises(ValueError, match="mono"):
        Job(config(), np.zeros((10, 2), np.float32)).pcm()
    assert run_jobs([], progress=False) == []


def test_audio_and_recording_transport_is_exact(tmp_path: Path) -> None:
    pcm = tone(0.1)
    np.testing.assert_array_equal(decode_audio(encode_audio(pcm)), pcm)
    wav = write_wav(tmp_path / "x.wav", pcm).read_bytes()
    np.testing.assert_allclose(decode_audio(wav), pcm, atol=1e-4)  # 16-bit file: close, not exact
    with pytest.raises(ValueError, match="neither"):
        decode_audio(b"not audio at all")
    rec = Recording(config=config())
    rec.add_user(pcm)
    rec.add_model_silence(FRAME_SIZE)
    rec.add_model(pcm * 0.5)
    rec.add_text(1, 42, "こんにちは")
    rec.add_metrics({"frame": 0, "text_token": None, "audio": False})
    rec.add_params(0, Sampling().model_dump(), 3)
    rec.session = {"model": "tiny"}
    rec.meta = {"seed": 3}
    back = Recording.from_dict(rec.to_dict())
    np.testing.assert_array_equal(back.model_pcm, rec.model_pcm)
    np.testing.assert_array_equal(back.user_pcm, rec.user_pcm)
    assert back.text == rec.text and back.metrics == rec.metrics and back.params == rec.params
    assert back.config == rec.config and back.session == rec.session and back.meta == rec.meta


class FakeStarmap:
    """Stands in for ``modal.Cls.from_name(app, "SweepWorker")().run``: runs the worker's code here."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.calls: list[tuple[dict[str, Any], bytes, str]] = []
        self.fail = fail or set()

    def starmap(
        self, input_iterator: Iterable[Sequence[Any]], *, order_outputs: bool = True, return_exceptions: bool = False
    ) -> Iterator[Any]:
        from jmoshi_nb.cloud import app as modal_app

        assert order_outputs, "results must come back in job order"
        for args in input_iterator:
            config_dict, audio, name = args
            assert isinstance(config_dict, dict) and isinstance(audio, bytes)  # plain, picklable data
            self.calls.append((config_dict, audio, name))
            try:
                if name in self.fail:
                    raise RuntimeError(f"CUDA out of memory in {name}")
                yield modal_app.sweep_job(config_dict, audio, name)
            except Exception as exc:
                if not return_exceptions:
                    raise
                yield exc


@pytest.fixture()
def modal_pool(pool: EnginePool, monkeypatch: pytest.MonkeyPatch) -> EnginePool:
    pytest.importorskip("modal")
    from jmoshi_nb.cloud import app as modal_app

    monkeypatch.setattr(modal_app, "_POOL", pool)
    return pool


def test_modal_executor_fans_out_with_starmap_and_matches_local(modal_pool: EnginePool) -> None:
    pcm = tone()
    jobs = [Job(config(temp=0.6, seed=3), pcm, "a"), Job(config(temp=1.0, seed=4), pcm, "b")]
    worker = FakeStarmap()
    remote = run_jobs(jobs, executor="modal", progress=False, worker=worker)
    assert [c[2] for c in worker.calls] == ["a", "b"]
    assert [r.meta["executor"] for r in remote] == ["modal", "modal"]
    local = run_jobs(jobs, executor="local", progress=False, pool=modal_pool)
    for r, loc in zip(remote, local, strict=True):
        # One code path for both executors: same engine + same job = same tokens and the same samples.
        assert r.frame_tokens() == loc.frame_tokens()
        np.testing.assert_array_equal(r.model_pcm, loc.model_pcm)
        np.testing.assert_array_equal(r.user_pcm, loc.user_pcm)
        assert r.config == loc.config


def test_modal_executor_reports_failed_jobs_after_running_the_rest(modal_pool: EnginePool) -> None:
    pcm = tone(0.2)
    jobs = [Job(config(seed=1), pcm, "ok"), Job(config(seed=2), pcm, "boom"), Job(config(seed=3), pcm, "ok2")]
    with pytest.raises(SweepError, match="1 of 3 jobs failed.*boom") as info:
        run_jobs(jobs, executor="modal", progress=False, worker=FakeStarmap(fail={"boom"}))
    recs = info.value.recordings
    assert recs[0] is not None and recs[1] is None and recs[2] is not None
    assert "CUDA out of memory" in str(info.value.errors["boom"])
