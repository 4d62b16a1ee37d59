"""Several conversations on one model: the chat server over a ``BatchEngine`` (``serve --max-sessions N``).

Each WebSocket conversation holds one slot of the engine; conversation N+1 gets the usual 0x05 "busy"
error. The protocol, the messages and their checks are ``server.ChatServer``'s, per conversation.

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
import contextlib
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..model.batch_engine import BatchEngine
from ..model.engine import FrameResult
from . import protocol as P
from .server import ChatServer, _bind_device, _Conversation

log = logging.getLogger("jmoshi_nb.server")


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


class MultiChatServer(ChatServer):
    """Serves up to ``engine.slots`` conversations at once on one ``BatchEngine``."""

    def __init__(self, engine: BatchEngine, token: str | None = None, max_lag_frames: int = 250) -> None:
        self.engine = engine  # type: ignore[assignment]
        self.batch = engine
        self.default_sampling, self.default_seed = engine.default_sampling, engine.default_seed
        self.token = token
        self.max_lag_frames = max_lag_frames
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="jmoshi-engine", initializer=_bind_device, initargs=(engine.device,)
        )
        self._open: set[web.WebSocketResponse] = set()
        self.sessions_served = 0
        self._free = set(range(engine.slots))  # slots no conversation holds (bookkept on the event loop)
        self._live: dict[int, _SlotSession] = {}  # slots whose frames the scheduler takes
        self._wake: asyncio.Event | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self.steps = 0

    @property
    def max_sessions(self) -> int:
        return self.batch.slots

    async def _on_shutdown(self, app: web.Application) -> None:
        if self._scheduler is not None:
            self._scheduler.cancel()
        await super()._on_shutdown(app)

    async def handle_health(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "busy": not self._free, "sessions_served": self.sessions_served}
            | {"sessions": self.max_sessions - len(self._free), "max_sessions": self.max_sessions}
            | {"model": self.batch.model.model_id, "device": str(self.batch.device)}
        )

    # ---- a conversation ------------------------------------------------------------------------
    async def _serve(self, ws: web.WebSocketResponse) -> None:
        if not self._free:
            n = self.max_sessions
            await ws.send_bytes(
                P.pack_error(f"busy: this server holds {n} conversation{'s' * (n > 1)} at a time; try again later")
            )
            await ws.close()
            return
        slot = min(self._free)
        self._free.discard(slot)
        self.sessions_served += 1
        loop = asyncio.get_running_loop()
        try:
            await self._converse_in(ws, slot)
        except Exception as exc:  # the server must survive anything a session does
            log.exception("session failed")
            if not ws.closed:
                await ws.send_bytes(P.pack_error(f"internal error: {exc}"))
        finally:
            self._live.pop(slot, None)
            try:
                # In the engine thread: after any step still holding this slot's frame.
                await loop.run_in_executor(self._executor, self.batch.release, slot)
            finally:
                self._free.add(slot)
            if not ws.closed:
                await ws.close()

    def _ensure_scheduler(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
        if self._scheduler is None or self._scheduler.done():
            self._scheduler = asyncio.create_task(self._schedule(self._wake))
        return self._wake

    async def _converse_in(self, ws: web.WebSocketResponse, slot: int) -> None:
        loop = asyncio.get_running_loop()
        wake = self._ensure_scheduler()
        seed = self.default_seed if self.default_seed is not None else secrets.randbits(63)
        await loop.run_in_executor(self._executor, lambda: self.batch.open(self.default_sampling, seed, slot=slot))
        s = _SlotSession(ws, frames=_WakingQueue(wake), slot=slot)
        await ws.send_bytes(P.pack(P.Kind.HANDSHAKE))
        await ws.send_bytes(P.pack_json({"type": "session", **self.batch.describe(slot)}))
        self._live[slot] = s
        sender = asyncio.create_task(self._send_results(s))
        receiver = asyncio.create_task(self._receive(s))
        done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        self._live.pop(slot, None)  # from here the scheduler takes no more of its frames
        if sender in done:
            # The engine failed on a step with this conversation (or its socket broke while sending).
            receiver.cancel()
            exc = sender.exception()
            if exc is not None and not ws.closed:
                await ws.send_bytes(P.pack_error(f"engine error, session ended: {exc}"))
            await ws.close()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
            if exc is not None:
                log.error("engine failed: %s", exc)
            return
        # The client is gone or closed: nobody will hear what it queued; stop its sender.
        s.results.put_nowait(None)
        await sender

    async def _send_results(self, s: _SlotSession) -> None:
        while True:
            r = await s.results.get()
            if r is None:
                return
            if isinstance(r, BaseException):
                raise r
            if not s.ws.closed:
                await self._send_result(s, r)

    def _apply_params(self, s: _Conversation | None, seed: int | None, changes: dict[str, Any]) -> None:
        assert isinstance(s, _SlotSession)
        self.batch.set_params(s.slot, seed=seed, **changes)

    # ---- the scheduler ---------------------------------------------------------------------------
    async def _schedule(self, wake: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await wake.wait()
            wake.clear()
            sessions = {slot: s for slot, s in self._live.items() if not s.frames.empty()}
            if not sessions:
                continue
            frames = {slot: s.frames.get_nowait() for slot, s in sessions.items()}
            try:
                results = await loop.run_in_executor(self._executor, self.batch.step, frames)
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


def serve_multi(engine: BatchEngine, host: str = "127.0.0.1", port: int = 8998, token: str | None = None) -> None:
    """Run the multi-session server in the foreground (the CLI's ``serve --max-sessions N``)."""
    app = MultiChatServer(engine, token=token).make_app()
    web.run_app(app, host=host, port=port, print=lambda msg: log.info(msg))


__all__ = ["MultiChatServer", "serve_multi"]
