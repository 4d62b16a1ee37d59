"""One conversation of a notebook session: a client, the frames it sends, the events it receives.

A ``NotebookSession`` holds one for its main conversation and, with ``talk(shadow=config)``, a second
for the shadow (a second slot of the same server fed the same input). Everything here runs on the
session's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core.config import SessionConfig
from ..core.recording import Recording
from ..serve.client import ChatClient, Event, connect

LATENCY_KEPT = 500  # round trips kept (the most recent)


class FrameLatency:
    """Kernel -> server -> kernel time of each frame: when it was sent, when its result came back.

    The server processes a conversation's frames in order, so each result belongs to the oldest frame
    still in flight; frames the server dropped (it fell behind) are taken out by ``dropped``.
    """

    def __init__(self) -> None:
        self._sent_at: dict[int, float] = {}  # frame index -> when it was sent (insertion-ordered)
        self._seq_of_frame: dict[int, int] = {}  # frame index -> the browser's sequence number
        self.round_trips_ms: list[float] = []  # the last LATENCY_KEPT, oldest first

    def sent(self, index: int, seq: int | None = None) -> None:
        """Frame ``index`` (the browser's ``seq``, if it came from the microphone) leaves now."""
        self._sent_at[index] = time.monotonic()
        if seq is not None:
            self._seq_of_frame[index] = seq

    def dropped(self, index: int) -> None:
        """The server skipped frame ``index``: no result will come for it."""
        self._sent_at.pop(index, None)
        self._seq_of_frame.pop(index, None)

    def finished(self) -> int | None:
        """A result came back: record the oldest frame's round trip; returns its ``seq`` (or None)."""
        if not self._sent_at:
            return None
        index = next(iter(self._sent_at))
        self.round_trips_ms.append((time.monotonic() - self._sent_at.pop(index)) * 1e3)
        del self.round_trips_ms[:-LATENCY_KEPT]
        return self._seq_of_frame.pop(index, None)

    def median_ms(self, last: int = 50) -> float | None:
        """The median of the last ``last`` round trips, in ms (None before the first)."""
        return round(float(np.median(self.round_trips_ms[-last:])), 1) if self.round_trips_ms else None


class Conversation:
    """A client on one server slot, its outgoing frame queue, its send loop and its event pump.

    Parameters
    ----------
    config:
        The conversation's settings (sampling and seed are applied on ``open``).
    on_audio:
        Called with each chunk of model audio.
    on_frame_done:
        Called with the browser's sequence number of a microphone frame whose result came back.
    on_error:
        Called with the server's error messages.
    """

    def __init__(
        self,
        config: SessionConfig,
        on_audio: Callable[[np.ndarray], None] | None = None,
        on_frame_done: Callable[[int], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.client: ChatClient | None = None
        self.queue: asyncio.Queue[tuple[int | None, np.ndarray]] = asyncio.Queue()
        self.latency = FrameLatency()
        self.seed: int | None = config.seed  # the seed in force (drawn by the server when None)
        self._on_audio, self._on_frame_done, self._on_error = on_audio, on_frame_done, on_error
        self._stack = contextlib.AsyncExitStack()
        self._tasks: list[asyncio.Task[Any]] = []

    @property
    def recording(self) -> Recording:
        if self.client is None:
            raise RuntimeError("the conversation is not open")
        return self.client.recording

    @property
    def frames_sent(self) -> float:
        return self.client.frames_sent if self.client is not None else 0.0

    async def open(
        self,
        url: str,
        token: str | None,
        out: Path | None = None,
        meta: dict[str, Any] | None = None,
        **connect_kwargs: Any,
    ) -> None:
        """Connect, stream the recording to ``out``, apply the config's sampling and seed, start the tasks.

        Parameters
        ----------
        url, token:
            The server.
        out:
            A folder the recording streams to while the conversation runs (None: memory only).
        meta:
            Added to the recording's ``meta`` (``{"shadow": True}`` for a shadow).
        **connect_kwargs:
            Passed to ``serve.client.connect`` (``headers``).
        """
        try:
            self.client = await self._stack.enter_async_context(connect(url, token, self.config, **connect_kwargs))
            if out is not None:
                self.client.recording.stream_to(out)
            self.client.recording.meta.update(meta or {})
            self.seed = await self.client.apply_config(self.config)
        except BaseException:
            await self._stack.aclose()
            raise
        self._tasks = [asyncio.create_task(self._send_loop()), asyncio.create_task(self._pump(self.client.subscribe()))]

    def send(self, pcm: np.ndarray, seq: int | None = None) -> None:
        """Queue one 80 ms frame (``seq``: the browser's number for a microphone frame)."""
        self.queue.put_nowait((seq, pcm))

    async def _send_loop(self) -> None:
        client = self.client
        assert client is not None
        while True:
            seq, pcm = await self.queue.get()
            try:
                index = int(client.frames_sent)
                if client.frames_sent == index:  # a whole frame boundary: this frame gets a result
                    self.latency.sent(index, seq)
                await client.send_frame(pcm)
            finally:
                self.queue.task_done()

    async def _pump(self, events: asyncio.Queue[Event]) -> None:
        while True:
            ev = await events.get()
            if ev.kind == "metrics":
                seq = self.latency.finished()
                if seq is not None and self._on_frame_done is not None:
                    self._on_frame_done(seq)
            elif ev.kind == "dropped":  # the server fell behind and skipped our frame ``index``
                self.latency.dropped(int(ev.data["index"]))
            elif ev.kind == "audio" and self._on_audio is not None:
                self._on_audio(ev.data)
            elif ev.kind == "error" and self._on_error is not None:
                self._on_error(str(ev.data))

    async def drain(self, timeout: float) -> None:
        """Wait until every queued frame was sent and the server has answered them all."""
        assert self.client is not None
        await self.queue.join()
        await self.client.drain(timeout=timeout)

    async def close(self, timeout: float = 30.0) -> None:
        """Process what was sent (up to ``timeout`` s), then close the connection; the recording stays."""
        if self.client is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.drain(timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stack.aclose()
