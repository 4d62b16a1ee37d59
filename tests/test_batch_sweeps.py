"""Batched sweeps: jobs as slots of one engine, locally and through the Modal worker's code; same recordings."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from jmoshi_nb.core.audio import FRAME_SIZE, SAMPLE_RATE
from jmoshi_nb.core.config import ConfigError, Sampling, SessionConfig
from jmoshi_nb.core.recording import Recording
from jmoshi_nb.model.engine_pool import EnginePool
from jmoshi_nb.research.jobs import Job, run_jobs


@pytest.fixture(scope="module")
def pool(tiny_path) -> EnginePool:  # type: ignore[no-untyped-def]
    return EnginePool(loader=lambda *_: pytest.fail("batched sweeps load batched engines only"))


def tone(frames: int, freq: float) -> np.ndarray:
    t = np.arange(frames * FRAME_SIZE) / SAMPLE_RATE
    noise = np.random.default_rng(int(freq)).normal(0, 0.02, t.shape)
    return (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def jobs() -> list[Job]:
    """Five jobs of different settings, seeds and lengths: slots free up and refill mid-run."""
    specs = [(0.6, 30, 1, 6, 220.0), (1.0, 250, 2, 9, 330.0), (0.0, 5, 3, 4, 440.0), (0.8, 100, 4, 7, 550.0)]
    out = [
        Job(SessionConfig(model="tiny", sampling=Sampling(temp=t, top_k=k), seed=s), tone(n, f), f"job{s}")
        for t, k, s, n, f in specs
    ]
    out.append(Job(SessionConfig(model="tiny", sampling=Sampling(temp_text=1.3), seed=5), tone(5, 660.0), "job5"))
    return out


def same_recording(a: Recording, b: Recording) -> None:
    np.testing.assert_array_equal(a.user_pcm, b.user_pcm)
    np.testing.assert_array_equal(a.model_pcm, b.model_pcm)
    assert [(e.frame, e.token, e.text) for e in a.text] == [(e.frame, e.token, e.text) for e in b.text]
    untimed = [{k: v for k, v in p.items() if k != "t"} for p in a.params]
    assert untimed == [{k: v for k, v in p.items() if k != "t"} for p in b.params]
    assert a.config == b.config and a.session == b.session
    assert [m["frame"] for m in a.metrics] == [m["frame"] for m in b.metrics]
    assert [(m["text_token"], m["params"], m["seed"]) for m in a.metrics] == [
        (m["text_token"], m["params"], m["seed"]) for m in b.metrics
    ]
    assert a.meta["seed"] == b.meta["seed"] and a.meta["input_sha256"] == b.meta["input_sha256"]


def test_batched_recordings_equal_one_at_a_time(pool: EnginePool) -> None:
    js = jobs()
    batched = run_jobs(js, progress=False, pool=pool, batch_size=3)
    assert [r.meta["job"] for r in batched] == [j.name for j in js]
    assert [r.meta["batch_size"] for r in batched] == [3] * 5
    for job, rec in zip(js, batched, strict=True):
        assert len(rec.metrics) == -(-len(job.input) // FRAME_SIZE)  # type: ignore[arg-type]
        assert rec.meta["executor"] == "local" and rec.meta["path"] == "engine"
        alone = run_jobs([job], progress=False, pool=pool, batch_size=2)[0]
        same_recording(rec, alone)
    assert len({str(r.frame_tokens()) for r in batched}) == 5


def test_batch_size_is_checked(pool: EnginePool) -> None:
    from jmoshi_nb.research.sweeps import sweep

    for bad in (0, -1):
        with pytest.raises(ConfigError, match=f"batch_size={bad} is out of range"):
            run_jobs(jobs(), progress=False, pool=pool, batch_size=bad)
        with pytest.raises(ConfigError, match=f"batch_size={bad} is out of range"):
            sweep({"temp": [0.5]}, [tone(2, 100.0)], batch_size=bad, progress=False)


class FakeBatchStarmap:
    """Stands in for ``SweepWorker().run``: each call runs the worker's own code here."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def starmap(
        self, input_iterator: Iterable[Sequence[Any]], *, order_outputs: bool = True, return_exceptions: bool = False
    ) -> Iterator[Any]:
        from jmoshi_nb.cloud import app as modal_app

        for configs, audios, names in input_iterator:
            assert isinstance(configs, list) and all(isinstance(a, bytes) for a in audios)  # plain data
            self.calls.append(list(names))
            yield modal_app.sweep_job(configs, audios, names)


def test_modal_executor_sends_batches_and_matches_local(pool: EnginePool, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("modal")
    from jmoshi_nb.cloud import app as modal_app

    monkeypatch.setattr(modal_app, "_POOL", pool)
    js = jobs()
    worker = FakeBatchStarmap()
    remote = run_jobs(js, executor="modal", progress=False, worker=worker, batch_size=2)
    assert worker.calls == [["job1", "job2"], ["job3", "job4"], ["job5"]]
    local = run_jobs(js, progress=False, pool=pool, batch_size=4)
    for r, loc in zip(remote, local, strict=True):
        assert r.meta["executor"] == "modal"
        same_recording(r, loc)


def test_sweep_table_has_the_same_form_batched(pool: EnginePool, monkeypatch: pytest.MonkeyPatch) -> None:
    from jmoshi_nb.research import jobs as sweeps
    from jmoshi_nb.research.sweeps import sweep

    monkeypatch.setattr(sweeps, "EnginePool", lambda **_: pool)
    inputs = [tone(4, 200.0), tone(3, 300.0)]
    df = sweep({"temp": [0.5, 1.0]}, inputs, progress=False, batch_size=4)
    assert len(df) == 4 and list(df["temp"]) == [0.5, 0.5, 1.0, 1.0]
    assert {"run", "input", "temp", "seed", "model", "duration_s", "frame_ms_p50"} <= set(df.columns)
    assert len(df.attrs["recordings"]) == 4
