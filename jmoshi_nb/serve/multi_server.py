"""Several conversations on one model: the chat server over a ``BatchEngine`` (``serve --max-sessions N``).

Each WebSocket conversation holds one slot of the engine; conversation N+1 gets the usual 0x05 "busy"
error. The protocol, the messages and their checks are ``server.ConversationServer``'s, per conversation,
as for ``server.ChatServer``.

A scheduler task runs the engine: whenever a frame is waiting, it takes one frame from every
conversation that has one and runs one batched step in the engine thread; the conversations without
a frame sit that step out (the engine masks their slots). Frames that arrive during a step go into
the next one, so each conversation advances once per 80 ms of its own audio as long as a batched step
fits in 80 ms (``benchmarks/batch_throughput.py`` measures how many conversations that is). Each
conversation has its own queue (the ``queued`` and ``dropped`` figures in its metrics are its own),
and its own sender task, so a slow client never holds up the step or the other clients.

Isolation: a slot's state, sampling and random stream are its own (see ``batch_engine``); a
conversation's results go only to its socket; a disconnect, clean or abrupt, ends only its
conversation, and its slot is released in the engine thread after any step that still holds its frame.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..core.config import Sampling
from ..model.batch_engine import BatchEngine
from ..model.engine import FrameResult
from .record import ServerRecorder
from .server import ConversationServer, _Conversation
from .settings import SettingAssigner

log = logging.getLogger("jmoshi_nb.serve.multi_server")


class _WakingQueue(asyncio.Queue):  # type: ignore[type-arg]
    """A conversation's frame queue that wakes the scheduler when a frame arrives."""

    def __init__(self, wake: asyncio.Event) -> None:
        super().__init__()
        self._wake = wake

    def put_nowait(self, item: Any) -> None:
        super().put_nowait(item)
        self._wake.set()


@dataclass
class _SlotSession(_Conversation):
    slot: int = -1
    results: asyncio.Queue[FrameResult | BaseException | None] = field(default_factory=asyncio.Queue)


class MultiChatServer(ConversationServer[_SlotSession]):
    """Serves up to ``engine.slots`` conversations at once on one ``BatchEngine``."""

    engine: BatchEngine

    def __init__(
        self,
        engine: BatchEngine,
        token: str | None = None,
        max_lag_frames: int = 250,
        assigner: SettingAssigner | None = None,
        recorder: ServerRecorder | None = None,
    ) -> None:
        super().__init__(
            engine,
            engine.default_sampling,
            engine.default_seed,
            token,
            max_lag_frames,
            max_sessions=engine.slots,
            assigner=assigner,
            recorder=recorder,
        )
        self._free = set(range(engine.slots))  # slots no conversation holds (bookkept on the event loop)
        self._live: dict[int, _SlotSession] = {}  # slots whose frames the scheduler takes
        self._wake: asyncio.Event | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self.steps = 0

    @property
    def busy(self) -> bool:
        return not self._free

    def health(self) -> dict[str, Any]:
        return super().health() | {"sessions": self.max_sessions - len(self._free), "max_sessions": self.max_sessions}

    async def _on_shutdown(self, app: web.Application) -> None:
        if self._scheduler is not None:
            self._scheduler.cancel()
        await super()._on_shutdown(app)

    # ---- a conversation's slot -----------------------------------------------------------------
    async def _claim_slot(self) -> int | None:
        if not self._free:
            return None
        slot = min(self._free)
        self._free.discard(slot)
        return slot

    async def _release_slot(self, slot: int) -> None:
        self._live.pop(slot, None)
        try:
            # In the engine thread: after any step still holding this slot's frame.
            await self._in_engine_thread(self.engine.release, slot)
        finally:
            self._free.add(slot)

    def _ensure_scheduler(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
        if self._scheduler is None or self._scheduler.done():
            self._scheduler = asyncio.create_task(self._schedule(self._wake))
        return self._wake

    async def _start_conversation(
        self, ws: web.WebSocketResponse, slot: int, sampling: Sampling, seed: int
    ) -> tuple[_SlotSession, dict[str, Any]]:
        wake = self._ensure_scheduler()
        await self._in_engine_thread(lambda: self.engine.open(sampling, seed, slot=slot))
        s = _SlotSession(ws, frames=_WakingQueue(wake), slot=slot)
        self._live[slot] = s
        return s, self.engine.describe(slot)

    def _detach(self, s: _SlotSession) -> None:
        self._live.pop(s.slot, None)  # from here the scheduler takes no more of its frames

    async def _next_result(self, s: _SlotSession) -> FrameResult | None:
        # The scheduler steps every conversation's frames together and hands each its result.
        r = await s.results.get()
        if isinstance(r, BaseException):
            raise r
        return r

    async def _stop_results(self, s: _SlotSession) -> None:
        s.results.put_nowait(None)

    def _apply_params(self, s: _SlotSession, seed: int | None, changes: dict[str, Any]) -> None:
        self.engine.set_params(s.slot, seed=seed, **changes)

    # ---- the scheduler ---------------------------------------------------------------------------
    async def _schedule(self, wake: asyncio.Event) -> None:
        while True:
            await wake.wait()
            wake.clear()
            sessions = {slot: s for slot, s in self._live.items() if not s.frames.empty()}
            if not sessions:
                continue
            frames = {slot: s.frames.get_nowait() for slot, s in sessions.items()}
            try:
                results = await self._in_engine_thread(self.engine.step, frames)
            except Exception as exc:  # every conversation of this step ends with the error
                log.exception("batched step failed")
                for s in sessions.values():
                    s.results.put_nowait(exc)
                continue
            self.steps += 1
            for slot, r in results.items():
                s = sessions[slot]
                if self._live.get(slot) is s:
                    s.results.put_nowait(r)
            if any(not s.frames.empty() for s in self._live.values()):
                wake.set()


__all__ = ["MultiChatServer"]
