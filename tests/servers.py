"""What the server tests do again and again: serve a ChatServer in-process, send silence, poll health."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import numpy as np
from aiohttp import web
from processes import free_port

from jmoshi_nb.core.audio import FRAME_SIZE
from jmoshi_nb.core.recording import Recording
from jmoshi_nb.serve import protocol as P
from jmoshi_nb.serve.client import ChatClient, connect


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """An aiohttp app (a ChatServer's) served on a free 127.0.0.1 port for the with-block; yields its ws:// url."""
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield f"ws://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def step_fails_on_call(engine: Any, call: int, message: str) -> Iterator[None]:
    """Within the block the engine's ``step`` raises ``RuntimeError(message)`` on its ``call``-th call."""
    real_step = engine.step
    calls = 0

    def failing_step(frames, forced_audio=None):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == call:
            raise RuntimeError(message)
        return real_step(frames, forced_audio)

    engine.step = failing_step
    try:
        yield
    finally:
        del engine.step  # the class's step again


async def send_silence(client: ChatClient, frames: int) -> None:
    for _ in range(frames):
        await client.send_frame(np.zeros(FRAME_SIZE, np.float32))


async def error_after_silence(client: ChatClient, frames: int) -> str:
    """Send ``frames`` frames of silence, then wait for the server's error message."""
    await send_silence(client, frames)
    return await client.wait_error()


async def record_silence(url: str, frames: int, token: str | None = None) -> Recording:
    """A new client sends ``frames`` frames of silence and waits for all of them: what it recorded."""
    async with connect(url, token=token) as s:
        await send_silence(s, frames)
        await s.drain()
        return s.recording


def health(url: str) -> dict[str, Any]:
    """The server's health JSON (``url`` is its ws:// address)."""
    with urllib.request.urlopen(url.replace("ws://", "http://") + P.HEALTH_PATH) as resp:
        return json.loads(resp.read())


async def wait_until(condition: Callable[[], bool], seconds: float = 10.0, poll: float = 0.1) -> None:
    """Poll ``condition`` for at most ``seconds``; the caller asserts what must hold afterwards."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(poll)
