"""A shadow conversation: a second slot of the same server, fed exactly what the main one hears.

``session.talk(shadow=other_config)`` opens it beside the main conversation (the server must hold two
conversations: ``jmoshi_nb.start(..., max_sessions=2)`` for the tiny / local backends, or a server run
with ``--max-sessions 2``). Every microphone or WAV frame goes to both; the panel shows both text
streams and frame plots, the speaker plays one of them (a toggle switches), and both are recorded.
So a researcher hears how another setting answers exactly the same speech.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from ..core.config import SessionConfig
from ..core.recording import Recording
from ..serve.client import ChatClient, Event, connect

HEAR = ("main", "shadow")


class ShadowConversation:
    """The shadow's client, its frame queue and its event pump; lives on the session's event loop."""

    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self.client: ChatClient | None = None
        self.queue: asyncio.Queue[np.ndarray] = asyncio.Queue()
        self._stack = contextlib.AsyncExitStack()
        self._tasks: list[asyncio.Task[Any]] = []

    @property
    def recording(self) -> Recording:
        if self.client is None:
            raise RuntimeError("the shadow conversation is not open")
        return self.client.recording

    async def open(self, url: str, token: str | None, out: Path | None, on_audio: Any, **connect_kwargs: Any) -> None:
        """Connect, take the config's sampling and seed, and start sending and receiving."""
        self.client = await self._stack.enter_async_context(connect(url, token, self.config, **connect_kwargs))
        if out is not None:
            self.client.recording.stream_to(out)
        self.client.recording.meta["shadow"] = True
        await self.client.apply_config(self.config)
        self._tasks = [
            asyncio.create_task(self._send_loop()),
            asyncio.create_task(self._pump(self.client.subscribe(), on_audio)),
        ]

    async def _send_loop(self) -> None:
        assert self.client is not None
        while True:
            pcm = await self.queue.get()
            try:
                await self.client.send_frame(pcm)
            finally:
                self.queue.task_done()

    @staticmethod
    async def _pump(events: asyncio.Queue[Event], on_audio: Any) -> None:
        while True:
            ev = await events.get()
            if ev.kind == "audio":
                on_audio(ev.data)

    async def close(self, timeout: float = 30.0) -> None:
        """Process what was sent, then close the connection (the recording stays)."""
        if self.client is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.queue.join()
                    await self.client.drain(timeout=timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stack.aclose()
