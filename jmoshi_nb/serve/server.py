"""The aiohttp server: moshi's protocol at ``/api/chat`` plus the kit's metadata, and a health check.

One conversation per engine at a time; a second client gets an 0x05 error saying the server is busy
and a clean close. The engine runs in one worker thread so the event loop keeps receiving audio and
control messages while a frame is computed. A malformed message gets an 0x05 error naming the
problem; the session goes on where it can, and the server always goes on serving the next client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import sphn
import torch
from aiohttp import WSCloseCode, WSMsgType, web

from ..core.audio import FRAME_SIZE, SAMPLE_RATE
from ..core.config import ConfigError, Sampling, check_seed, resolve_seed
from ..model.checkpoints import ResolvedModel
from ..model.engine import Engine, FrameResult
from . import protocol as P

log = logging.getLogger("jmoshi_nb.serve.server")

_SAMPLING_KEYS = set(Sampling.model_fields)


def _bind_device(device: torch.device) -> None:
    """Engine thread initializer: the current CUDA device is per thread (``cuda:1`` must stay cuda:1)."""
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)


def check_ogg_page(payload: bytes) -> None:
    """Raise ProtocolError unless ``payload`` is one or more whole Ogg pages (structure only)."""
    pos = 0
    if not payload:
        raise P.ProtocolError("audio message has no payload: expected Ogg Opus pages")
    while pos < len(payload):
        header = payload[pos : pos + 27]
        if len(header) < 27 or header[:4] != P.OGG_MAGIC:
            raise P.ProtocolError("audio payload is not Ogg Opus: expected an Ogg page starting with 'OggS'")
        if header[4] != 0:
            raise P.ProtocolError(f"audio payload is not Ogg Opus: unsupported Ogg version {header[4]}")
        nseg = header[26]
        table = payload[pos + 27 : pos + 27 + nseg]
        body = sum(table)
        end = pos + 27 + nseg + body
        if len(table) < nseg or end > len(payload):
            raise P.ProtocolError("audio payload is a truncated Ogg page")
        pos = end


def client_gone(exc: BaseException | None) -> bool:
    """The error is the client's socket going away (a disconnect), not a failure of the engine.

    aiohttp raises ``ClientConnectionResetError`` ("Cannot write to closing transport"), a
    ``ConnectionResetError``, when a send meets a connection the client closed or dropped.
    """
    return isinstance(exc, ConnectionError)


@dataclass
class _Conversation:
    ws: web.WebSocketResponse
    reader: sphn.OpusStreamReader = field(default_factory=lambda: sphn.OpusStreamReader(SAMPLE_RATE))
    writer: sphn.OpusStreamWriter = field(default_factory=lambda: sphn.OpusStreamWriter(SAMPLE_RATE))
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    frames: asyncio.Queue[np.ndarray | None] = field(default_factory=asyncio.Queue)
    received: int = 0  # whole frames received from the client (queued or dropped)


ConversationT = TypeVar("ConversationT", bound=_Conversation)
R = TypeVar("R")


class ServedEngine(Protocol):
    """What the server reads of the engine it serves (an ``Engine`` or a ``BatchEngine``)."""

    model: ResolvedModel
    device: torch.device


def token_ok(request: web.Request, token: str | None) -> bool:
    """Whether ``request`` presents ``token`` (``?token=`` or ``Authorization: Bearer``); True without one."""
    if not token:
        return True
    given = request.query.get("token", "")
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        given = auth.removeprefix("Bearer ")
    return hmac.compare_digest(given.encode(), token.encode())


def busy_message(max_sessions: int) -> str:
    """The 0x05 error for a client beyond ``max_sessions`` conversations."""
    held = "one conversation" if max_sessions == 1 else f"{max_sessions} conversations"
    return f"busy: this server holds {held} at a time; try again later"


class ConversationServer(ABC, Generic[ConversationT]):
    """The app and one conversation's life, whatever way the engine is shared between conversations.

    The app (chat, health, shutdown), the token check, the busy answer, the handshake, the messages
    and their checks, sending results and ending a conversation are here, once. A subclass says how
    a conversation gets its place on the engine (``_claim_slot``, ``_start_conversation``,
    ``_release_slot``) and how its results are computed (``_next_result``, ``_stop_results``,
    ``_apply_params``). The engine runs in one worker thread (``_in_engine_thread``).
    """

    engine: ServedEngine

    def __init__(
        self,
        engine: ServedEngine,
        default_sampling: Sampling,
        default_seed: int | None,
        token: str | None = None,
        max_lag_frames: int = 250,
        max_sessions: int = 1,
    ) -> None:
        self.engine = engine
        self.max_sessions = max_sessions  # conversations held at once; a client beyond them is told "busy"
        self.default_sampling, self.default_seed = default_sampling, default_seed
        self.token = token
        self.max_lag_frames = max_lag_frames
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="jmoshi-engine", initializer=_bind_device, initargs=(engine.device,)
        )
        self._open: set[web.WebSocketResponse] = set()
        self.sessions_served = 0

    async def _in_engine_thread(self, fn: Callable[..., R], *args: Any) -> R:
        """``fn(*args)`` in the engine thread (the event loop goes on receiving meanwhile)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ---- app -----------------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(P.CHAT_PATH, self.handle_chat)
        app.router.add_get(P.HEALTH_PATH, self.handle_health)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, _app: web.Application) -> None:
        # Close live conversations first (their handlers then finish), then stop the engine thread.
        for ws in list(self._open):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    @abstractmethod
    def busy(self) -> bool:
        """Whether a new client would be told the server is busy."""

    def health(self) -> dict[str, Any]:
        """The ``/api/health`` answer."""
        return {"status": "ok", "busy": self.busy, "sessions_served": self.sessions_served} | {
            "model": self.engine.model.model_id,
            "device": str(self.engine.device),
        }

    async def handle_health(self, _request: web.Request) -> web.Response:
        return web.json_response(self.health())

    # ---- a conversation ------------------------------------------------------------------------
    async def handle_chat(self, request: web.Request) -> web.StreamResponse:
        if not token_ok(request, self.token):
            return web.json_response(
                {"error": "missing or wrong token: pass ?token=... or 'Authorization: Bearer ...'"}, status=401
            )
        ws = web.WebSocketResponse(max_msg_size=P.MAX_MESSAGE_BYTES * 4, heartbeat=None)
        await ws.prepare(request)
        self._open.add(ws)
        try:
            await self._serve(ws)
        finally:
            self._open.discard(ws)
        return ws

    async def _serve(self, ws: web.WebSocketResponse) -> None:
        slot = await self._claim_slot()
        if slot is None:
            await ws.send_bytes(P.pack_error(busy_message(self.max_sessions)))
            await ws.close()
            return
        self.sessions_served += 1
        try:
            await self._converse(ws, slot)
        except Exception as exc:  # the server must survive anything a session does
            log.exception("session failed")
            if not ws.closed:
                await ws.send_bytes(P.pack_error(f"internal error: {exc}"))
        finally:
            # The place is free before the client sees the close: a client that reconnects at once is served.
            try:
                await self._release_slot(slot)
            finally:
                if not ws.closed:
                    await ws.close()

    def _draw_seed(self) -> int:
        """The seed a new conversation starts with: the server's default, or a fresh draw without one."""
        return resolve_seed(self.default_seed)

    async def _converse(self, ws: web.WebSocketResponse, slot: int) -> None:
        # Every conversation starts from the server's defaults; clients change them with set_params.
        # With no default seed each conversation draws one (and reports it in its description).
        session, description = await self._start_conversation(ws, slot, self._draw_seed())
        await ws.send_bytes(P.pack(P.Kind.HANDSHAKE))
        await ws.send_bytes(P.pack_json({"type": "session", **description}))
        sender = asyncio.create_task(self._send_results(session))
        receiver = asyncio.create_task(self._receive(session))
        done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        self._detach(session)
        if sender in done:
            # The engine failed (or the socket broke while sending): tell the client, end the session.
            receiver.cancel()
            exc = sender.exception()
            gone = client_gone(exc)
            if exc is not None and not gone and not ws.closed:
                await ws.send_bytes(P.pack_error(f"engine error, session ended: {exc}"))
            await ws.close()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await receiver
            if gone:
                log.info("client disconnected while results were being sent (%s)", exc)
            elif exc is not None:
                log.error("engine failed: %s", exc)
            return
        # The client is gone or closed: drop what it queued (nobody will hear it), stop the sender.
        rexc = receiver.exception()
        if client_gone(rexc):
            log.info("client disconnected (%s)", rexc)
        elif rexc is not None:
            log.error("session input failed: %s", rexc)
        while not session.frames.empty():
            session.frames.get_nowait()
        await self._stop_results(session)
        try:
            await sender
        except ConnectionError as exc:  # a result was on its way when the socket closed
            log.info("client disconnected while results were being sent (%s)", exc)

    async def _receive(self, s: ConversationT) -> None:
        async for msg in s.ws:
            if msg.type == WSMsgType.BINARY:
                try:
                    await self._handle_message(s, msg.data)
                except P.ProtocolError as exc:
                    await s.ws.send_bytes(P.pack_error(str(exc)))
                except ConfigError as exc:
                    await s.ws.send_bytes(P.pack_error(f"bad parameters: {exc}"))
            elif msg.type == WSMsgType.TEXT:
                await s.ws.send_bytes(P.pack_error("text WebSocket frames are not part of the protocol; send binary"))
            elif msg.type == WSMsgType.ERROR:
                log.warning("websocket error: %s", s.ws.exception())
                break

    async def _handle_message(self, s: ConversationT, data: bytes) -> None:
        kind, payload = P.unpack(data)
        if kind == P.Kind.AUDIO:
            check_ogg_page(payload)
            try:
                pcm = s.reader.append_bytes(payload)
            except ValueError as exc:
                raise P.ProtocolError(f"audio payload could not be decoded as Ogg Opus: {exc}") from None
            if pcm.shape[-1]:
                s.pending = np.concatenate((s.pending, pcm))
            while s.pending.shape[-1] >= FRAME_SIZE:
                frame, s.pending = s.pending[:FRAME_SIZE], s.pending[FRAME_SIZE:]
                if s.frames.qsize() >= self.max_lag_frames:
                    # Keep latency bounded: drop the frame, and say so, so the client keeps its
                    # recording aligned (silence on the model side) and its frame count right.
                    await s.ws.send_bytes(P.pack_json({"type": "dropped", "index": s.received}))
                    s.received += 1
                    continue
                s.received += 1
                await s.frames.put(frame)
        elif kind == P.Kind.METADATA:
            obj = P.parse_json(payload)
            if obj["type"] != "set_params":
                raise P.ProtocolError(f"unknown metadata type {obj['type']!r}: the server accepts 'set_params'")
            self._set_params(obj, s)
        elif kind == P.Kind.PING:
            await s.ws.send_bytes(P.pack(P.Kind.PING))
        elif kind == P.Kind.CONTROL:
            pass  # moshi's web client sends start/pause controls; the stream itself is the clock
        else:
            raise P.ProtocolError(f"message kind {kind.name.lower()} (0x{kind:02x}) is not accepted from clients")

    def _set_params(self, obj: dict[str, Any], s: ConversationT) -> None:
        changes = {k: v for k, v in obj.items() if k != "type"}
        unknown = sorted(set(changes) - _SAMPLING_KEYS - {"seed"})
        if unknown:
            raise P.ProtocolError(
                f"set_params: unknown parameter(s) {', '.join(unknown)}; allowed: "
                + ", ".join(sorted(_SAMPLING_KEYS | {"seed"}))
            )
        seed = changes.pop("seed", None)
        check_seed(seed)
        self._apply_params(s, seed, changes)

    async def _send_results(self, s: ConversationT) -> None:
        while (r := await self._next_result(s)) is not None:
            if not s.ws.closed:
                await self._send_result(s, r)

    async def _send_result(self, s: ConversationT, r: FrameResult) -> None:
        if r.params_changed:
            await s.ws.send_bytes(
                P.pack_json(
                    {"type": "params", "params": r.sampling.model_dump(), "seed": r.seed, "from_frame": r.index}
                )
            )
        if r.pcm is not None:
            opus = s.writer.append_pcm(r.pcm)
            if opus:
                await s.ws.send_bytes(P.pack(P.Kind.AUDIO, opus))
        if r.text:
            await s.ws.send_bytes(P.pack_text(r.text))
        await s.ws.send_bytes(P.pack_json({"type": "metrics", **r.metrics(), "queued": s.frames.qsize()}))

    # ---- how conversations share the engine (one subclass each) -----------------------------------
    @abstractmethod
    async def _claim_slot(self) -> int | None:
        """Take a place on the engine for a new conversation; None when the server is busy."""

    @abstractmethod
    async def _release_slot(self, slot: int) -> None:
        """Give back the place a finished conversation held."""

    @abstractmethod
    async def _start_conversation(
        self, ws: web.WebSocketResponse, slot: int, seed: int
    ) -> tuple[ConversationT, dict[str, Any]]:
        """Reset the conversation's engine state to the defaults and ``seed``; its state and description."""

    def _detach(self, s: ConversationT) -> None:
        """The conversation is ending: its frames are no longer taken for engine steps."""

    @abstractmethod
    async def _next_result(self, s: ConversationT) -> FrameResult | None:
        """The conversation's next result (raising the engine's error); None once ``_stop_results`` is called."""

    @abstractmethod
    async def _stop_results(self, s: ConversationT) -> None:
        """Make ``_next_result`` return None once the results already under way are out."""

    @abstractmethod
    def _apply_params(self, s: ConversationT, seed: int | None, changes: dict[str, Any]) -> None:
        """Apply a checked ``set_params`` to the conversation's engine state."""


class ChatServer(ConversationServer[_Conversation]):
    """Serves one engine. ``token``: if set, clients must present it (``?token=`` or Bearer header)."""

    engine: Engine

    def __init__(self, engine: Engine, token: str | None = None, max_lag_frames: int = 250) -> None:
        super().__init__(engine, engine.sampling, engine.seed, token, max_lag_frames)
        self._busy = asyncio.Lock()

    @property
    def busy(self) -> bool:
        return self._busy.locked()

    async def _claim_slot(self) -> int | None:
        if self._busy.locked():
            return None
        await self._busy.acquire()
        return 0

    async def _release_slot(self, slot: int) -> None:
        self._busy.release()

    async def _start_conversation(
        self, ws: web.WebSocketResponse, slot: int, seed: int
    ) -> tuple[_Conversation, dict[str, Any]]:
        await self._in_engine_thread(self.engine.reset, self.default_sampling, seed)
        return _Conversation(ws), self.engine.describe()

    async def _next_result(self, s: _Conversation) -> FrameResult | None:
        # The engine steps this conversation's frames one by one, in the engine thread.
        frame = await s.frames.get()
        if frame is None:
            return None
        return await self._in_engine_thread(self.engine.step, frame)

    async def _stop_results(self, s: _Conversation) -> None:
        await s.frames.put(None)

    def _apply_params(self, s: _Conversation, seed: int | None, changes: dict[str, Any]) -> None:
        self.engine.set_params(seed=seed, **changes)


__all__ = ["ChatServer", "ConversationServer", "check_ogg_page"]
