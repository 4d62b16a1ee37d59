"""The seed policy on every path: ``seed=None`` draws a seed, the run uses it, the recording keeps it.

Each path runs twice with ``seed=None``; each run's recorded seed, given back as the config's seed,
reproduces that run exactly (the same tokens, the same model audio).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from jmoshi_nb.core.audio import FRAME_SIZE, SAMPLE_RATE, write_wav
from jmoshi_nb.core.config import SessionConfig
from jmoshi_nb.core.recording import Recording

FRAMES = 6


@pytest.fixture()
def engine(engine):  # type: ignore[no-untyped-def]
    """The session's tiny engine, given back with the sampling and seed it had (other tests rely on them)."""
    sampling, seed = engine.sampling, engine.seed
    yield engine
    engine.reset(sampling, seed)


def _pcm(freq: float = 220.0, frames: int = FRAMES) -> np.ndarray:
    t = np.arange(frames * FRAME_SIZE) / SAMPLE_RATE
    noise = np.random.default_rng(int(freq)).normal(0, 0.05, t.shape)
    return (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def _config(seed: int | None) -> SessionConfig:
    return SessionConfig(model="tiny", seed=seed)


def _same(a: Recording, b: Recording) -> None:
    assert a.frame_tokens() == b.frame_tokens()
    np.testing.assert_array_equal(a.model_pcm, b.model_pcm)


def _check_policy(run: Callable[[int | None], Recording], seed_of: Callable[[Recording], int]) -> None:
    """Two runs with seed=None draw two seeds; each recorded seed reproduces its own run."""
    first, second = run(None), run(None)
    seeds = [seed_of(first), seed_of(second)]
    assert all(isinstance(s, int) for s in seeds) and seeds[0] != seeds[1]
    assert first.frame_tokens() != second.frame_tokens()  # the draws were used
    for rec, seed in zip((first, second), seeds, strict=True):
        again = run(seed)
        assert seed_of(again) == seed
        _same(rec, again)


def _meta_seed(rec: Recording) -> int:
    assert rec.params[0]["seed"] == rec.meta["seed"]
    return rec.meta["seed"]


def test_run_wav_through_a_local_server(tiny_path: Path) -> None:
    from jmoshi_nb.research.runner import run_wav

    _check_policy(lambda seed: run_wav(_pcm(), _config(seed)), lambda rec: rec.meta["seed"])


def test_run_wav_in_process(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from jmoshi_nb.research.runner import run_wav

    wav = write_wav(tmp_path / "in.wav", _pcm())
    _check_policy(lambda seed: run_wav(wav, _config(seed), engine=engine), _meta_seed)
    rec = run_wav(wav, _config(3), engine=engine, out=tmp_path / "out")
    saved = Recording.load(tmp_path / "out")
    assert saved.meta["seed"] == 3 and saved.meta["input"] == str(wav) and saved.frame_tokens() == rec.frame_tokens()


def test_the_server_draws_a_seed_per_conversation(tiny_path: Path) -> None:
    """A client that sends no seed (moshi's own clients): the server draws one and describes it."""
    from jmoshi_nb.serve.backends import LocalServer
    from jmoshi_nb.serve.client import connect, stream_pcm

    async def talk(url: str, seed: int | None) -> Recording:
        async with connect(url) as s:
            if seed is not None:
                await s.set_params(seed=seed)  # before the first frame
            return await stream_pcm(s, _pcm(), realtime=False)

    def seed_in_force(rec: Recording) -> int:
        # The conversation's description says the seed it started with; a set_params seed then took effect
        # at frame 0 (the server's params message, recorded by the client).
        return rec.params[-1]["seed"] if rec.params else rec.session["seed"]

    with LocalServer(model="tiny", config=_config(None)) as server:
        assert server.engine.seed is None  # no default seed: each conversation draws one
        _check_policy(lambda seed: asyncio.run(talk(server.url, seed)), seed_in_force)


def test_sweeps_single_and_batched(engine) -> None:  # type: ignore[no-untyped-def]
    from jmoshi_nb.model.engine_pool import EnginePool
    from jmoshi_nb.research.jobs import Job, run_jobs

    pool = EnginePool()
    pool.put("tiny", None, engine)
    for batch_size in (1, 2):

        def run(seed: int | None, batch_size: int = batch_size) -> Recording:
            jobs = [Job(_config(seed), _pcm(), "a"), Job(_config(7), _pcm(330.0), "b")]
            return run_jobs(jobs, progress=False, pool=pool, batch_size=batch_size)[0]

        _check_policy(run, _meta_seed)


def _dialogue(path: Path) -> Path:
    n = 15 * FRAME_SIZE
    t = np.arange(n) / SAMPLE_RATE
    model_side = (0.3 * np.sin(2 * np.pi * 180 * t) * (t < 0.6)).astype(np.float32)
    user = (0.2 * np.random.default_rng(1).standard_normal(n) * (t >= 0.6)).astype(np.float32)
    return write_wav(path, np.stack([model_side, user], axis=1))


@pytest.mark.parametrize("batch_size", [1, 2])
def test_prompted_continuation(engine, tmp_path: Path, batch_size: int) -> None:  # type: ignore[no-untyped-def]
    from jmoshi_nb.research.continuation import prompted_continuation

    wav = _dialogue(tmp_path / "d.wav")
    kw = {"prompt_s": 0.64, "continuation_s": 0.48, "batch_size": batch_size}

    def run(seed: int | None) -> Recording:
        return prompted_continuation(wav, _config(seed), engine=engine if batch_size == 1 else None, **kw)[0]

    _check_policy(run, _meta_seed)


def test_benchmark(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Each item draws its own seed (an interruption item, forced, and a turn-taking one, batched)."""
    from test_bench_run import _short_set

    from jmoshi_nb.research.bench import find_tasks, run

    source = _short_set(tmp_path / "set")
    runs = iter(range(100))

    def item_recordings(seed: int | None) -> dict[str, Recording]:
        out = tmp_path / f"run{next(runs)}"
        run(out, source=source, config=_config(seed), tasks=["turn_taking", "interruption"], batch_size=2,
            progress=False)  # fmt: skip
        tasks = find_tasks(out, ["turn_taking", "interruption"])
        return {tf.task: Recording.load(tf.items[0].recording) for tf in tasks}

    first, second = item_recordings(None), item_recordings(None)
    assert first["interruption"].meta["forced"] is True
    seeds = {task: rec.meta["seed"] for task, rec in first.items()}
    assert len({*seeds.values(), *(r.meta["seed"] for r in second.values())}) == 4  # a seed per item and run
    for task, seed in seeds.items():
        again = item_recordings(seed)[task]
        assert again.meta["seed"] == seed
        _same(first[task], again)
        (saved,) = [tf.items[0].recording for tf in find_tasks(tmp_path / "run0", [task])]
        session = json.loads((saved / "session.json").read_text("utf-8"))
        assert session["meta"]["seed"] == seed  # on disk too
