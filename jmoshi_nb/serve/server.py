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
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sphn
import torch
from aiohttp import WSCloseCode, WSMsgType, web

from ..core.audio import FRAME_SIZE, SAMPLE_RATE
from ..core.config import ConfigError, Sampling, check_seed
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


def token_ok(request: web.Request, token: str | None) -> bool:
    """Whether ``request`` presents ``token`` (``?token=`` or ``Authorization: Bearer``); True without one."""
    if not token:
        return True
    given = request.query.get("token", "")
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        given = auth.removeprefix("Bearer ")
    return hmac.compare_digest(given.encode(), token.encode())


class ChatServer:
    """Serves one engine. ``token``: if set, clients must present it (``?token=`` or Bearer header)."""

    def __init__(self, engine: Engine, token: str | None = None, max_lag_frames: int = 250) -> None:
        self.engine = engine
        self.default_sampling, self.default_seed = engine.sampling, engine.seed
        self.token = token
        self.max_lag_frames = max_lag_frames
        self._busy = asyncio.Lock()
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="jmoshi-engine", initializer=_bind_device, initargs=(engine.device,)
        )
        self._open: set[web.WebSocketResponse] = set()
        self.sessions_served = 0

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

    async def handle_health(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "busy": self._busy.locked(), "sessions_served": self.sessions_served}
            | {"model": self.engine.model.model_id, "device": str(self.engine.device)}
        )

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
        if self._busy.locked():
            await ws.send_bytes(P.pack_error("busy: this server holds one conversation at a time; try again later"))
            await ws.close()
            return
        async with self._busy:
            self.sessions_served += 1
            try:
                await self._converse(ws)
            except Exception as exc:  # the server must survive anything a session does
                log.exception("session failed")
                if not ws.closed:
                    await ws.send_bytes(P.pack_error(f"internal error: {exc}"))
            finally:
                if not ws.closed:
                    await ws.close()

    async def _converse(self, ws: web.WebSocketResponse) -> None:
        loop = asyncio.get_running_loop()
        # Every conversation starts from the server's defaults; clients change them with set_params.
        # With no default seed each conversation draws one (and reports it in its description).
        seed = self.default_seed if self.default_seed is not None else secrets.randbits(63)
        await loop.run_in_executor(self._executor, self.engine.reset, self.default_sampling, seed)
        session = _Conversation(ws)
        await ws.send_bytes(P.pack(P.Kind.HANDSHAKE))
        await ws.send_bytes(P.pack_json({"type": "session", **self.engine.describe()}))
        worker = asyncio.create_task(self._run_frames(session))
        receiver = asyncio.create_task(self._receive(session))
        done, _ = await asyncio.wait({worker, receiver}, return_when=asyncio.FIRST_COMPLETED)
        if worker in done:
            # The engine failed (or the socket broke while sending): tell the client, end the session.
            receiver.cancel()
            exc = worker.exception()
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
        # The client is gone or closed: drop what it queued (nobody will hear it), stop the worker.
        rexc = receiver.exception()
        if client_gone(rexc):
            log.info("client disconnected (%s)", rexc)
        elif rexc is not None:
            log.error("session input failed: %s", rexc)
        while not session.frames.empty():
            session.frames.get_nowait()
        await session.frames.put(None)
        try:
            await worker
        except ConnectionError as exc:  # a result was on its way when the socket closed
            log.info("client disconnected while results were being sent (%s)", exc)

    async def _receive(self, s: _Conversation) -> None:
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

    async def _handle_message(self, s: _Conversation, data: bytes) -> None:
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

    def _set_params(self, obj: dict[str, Any], s: _Conversation | None = None) -> None:
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

    def _apply_params(self, s: _Conversation | None, seed: int | None, changes: dict[str, Any]) -> None:
        self.engine.set_params(seed=seed, **changes)

    async def _run_frames(self, s: _Conversation) -> None:
        loop = asyncio.get_running_loop()
        while True:
            frame = await s.frames.get()
            if frame is None:
                return
            result: FrameResult = await loop.run_in_executor(self._executor, self.engine.step, frame)
            if s.ws.closed:
                continue
            await self._send_result(s, result)

    async def _send_result(self, s: _Conversation, r: FrameResult) -> None:
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


def serve(engine: Engine, host: str = "127.0.0.1", port: int = 8998, token: str | None = None) -> None:
    """Run the server in the foreground (the CLI's ``serve``)."""
    app = ChatServer(engine, token=token).make_app()
    web.run_app(app, host=host, port=port, print=lambda msg: log.info(msg))


__all__ = ["ChatServer", "serve", "check_ogg_page"]
