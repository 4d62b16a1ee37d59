"""The server under stress, in-process: dropped frames, an engine that fails, shutdown mid-session."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import numpy as np
import pytest
from servers import error_after_silence, record_silence, send_silence, serving, step_fails_on_call

from jmoshi_nb.core.audio import FRAME_SIZE
from jmoshi_nb.core.config import Sampling
from jmoshi_nb.model.engine import Engine
from jmoshi_nb.serve.backends import LocalServer
from jmoshi_nb.serve.client import connect
from jmoshi_nb.serve.server import ChatServer


@pytest.fixture
async def serve(engine: Engine) -> AsyncIterator:  # type: ignore[type-arg]
    async with AsyncExitStack() as servers:

        async def start(**kwargs) -> str:  # type: ignore[no-untyped-def]
            engine.reset(Sampling(), 42)
            return await servers.enter_async_context(serving(ChatServer(engine, **kwargs).make_app()))

        yield start


async def test_dropped_frames_keep_the_recording_aligned(serve, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    url = await serve(max_lag_frames=1)
    n = 16
    async with connect(url) as s:
        for i in range(n):  # all at once: the engine cannot keep up
            await s.send_frame(np.full(FRAME_SIZE, 0.01 * (i + 1), np.float32))
        await s.drain(timeout=60)
        rec = s.recording
    dropped = rec.meta.get("dropped_frames", [])
    assert dropped, "with a 1-frame queue some frames must be dropped"
    assert len(rec.metrics) + len(dropped) == n
    # The Opus delay comes off the decoded stream; on a loaded machine every frame with audio may be
    # dropped, and then the model side is silence only, with nothing to take off.
    decoded = any(m.get("audio") for m in rec.metrics)
    assert len(rec.model_pcm) == n * FRAME_SIZE - (rec.meta["opus_delay_samples"] if decoded else 0)
    for i in dropped:  # silence on the model side where the model never heard the user
        assert np.abs(rec.model_pcm[i * FRAME_SIZE : (i + 1) * FRAME_SIZE - 200]).max() == 0


async def test_engine_failure_ends_the_session_with_an_error(serve, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    url = await serve()
    with step_fails_on_call(engine, 3, "CUDA out of memory (simulated)"):
        async with connect(url) as s:
            error = await error_after_silence(s, 5)
            assert "engine error, session ended: CUDA out of memory (simulated)" in error
            await asyncio.wait_for(s._receiver, 10)  # type: ignore[arg-type]
            assert s.closed and len(s.recording.metrics) == 2
    rec = await record_silence(url, 1)  # the next client is served
    assert len(rec.metrics) == 1


def test_stop_with_a_live_session_returns_promptly(engine: Engine) -> None:
    engine.reset(Sampling(), 42)
    server = LocalServer(engine=engine).start()
    opened = threading.Event()
    result: dict[str, object] = {}

    async def hold() -> None:
        async with connect(server.url) as s:
            await send_silence(s, 1)
            await s.drain()
            opened.set()
            await asyncio.wait_for(s._receiver, 15)  # type: ignore[arg-type]
            result["closed"] = s.closed
            result["frames"] = len(s.recording.metrics)

    client = threading.Thread(target=lambda: asyncio.run(hold()))
    client.start()
    assert opened.wait(30)
    t = time.monotonic()
    server.stop()
    assert time.monotonic() - t < 8
    client.join(20)
    assert result == {"closed": True, "frames": 1}  # the client kept what it recorded
