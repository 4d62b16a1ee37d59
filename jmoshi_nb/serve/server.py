"""The aiohttp server: moshi's protocol at ``/api/chat`` plus the kit's metadata, a health check, and
the talk page at ``/`` (``talk_page``) with its rating form at ``/api/rating``.

Each conversation starts from its setting (``settings``: ``serve --config/--configs``, or the
engine's defaults) changed by the URL's sampling parameters (``protocol.parse_chat_query``), and is
recorded by the server when it has a ``record.ServerRecorder`` (``serve --record``).

One conversation per engine at a time; a second client gets an 0x05 error saying the server is busy
and a clean close. The engine runs in one worker thread so the event loop keeps receiving audio and
control messages while a frame is computed. A malformed message gets an 0x05 error naming the
problem; the session goes on where it can, and the server always goes on serving the next client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import sphn
import torch
from aiohttp import WSCloseCode, WSMsgType, web

from ..core.access import TOKEN_COOKIE, token_ok
from ..core.audio import FRAME_SIZE, SAMPLE_RATE
from ..core.config import ConfigError, Sampling, SessionConfig, check_seed, package_versions, resolve_seed
from ..core.recording import Recording
from ..model.checkpoints import ResolvedModel
from ..model.engine import Engine, FrameResult
from . import protocol as P
from . import talk_page
from .record import ServerRecorder
from .settings import Setting, SettingAssigner

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
class ConversationPlan:
    """What a new conversation starts with: the setting it was given, the URL's changes, its seed."""

    sampling: Sampling
    seed: int
    query: P.ChatQuery
    setting: Setting | None = None


@dataclass
class _Conversation:
    ws: web.WebSocketResponse
    reader: sphn.OpusStreamReader = field(default_factory=lambda: sphn.OpusStreamReader(SAMPLE_RATE))
    writer: sphn.OpusStreamWriter = field(default_factory=lambda: sphn.OpusStreamWriter(SAMPLE_RATE))
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    frames: asyncio.Queue[np.ndarray | None] = field(default_factory=asyncio.Queue)
    received: int = 0  # whole frames received from the client (queued or dropped)
    kit: bool = False  # the client asked for the kit's 0x04 messages (?metrics=1 or a hello)
    last_sent: float = field(default_factory=time.monotonic)
    recording: Recording | None = None  # the server's own recording (serve --record)
    heard: deque[tuple[np.ndarray, bool]] = field(default_factory=deque)  # user frames not yet recorded; True: dropped
    ended: bool = False  # the client said {"type": "end"}
    closed_cleanly: bool = False  # the client closed the socket meaning to (a close frame other than 1001)
    page_closed: bool = False  # the client's page went away (close code 1001: the tab closed or navigated)
    description: dict[str, Any] = field(default_factory=dict)  # the kit's session description

    async def send(self, message: bytes) -> None:
        await self.ws.send_bytes(message)
        self.last_sent = time.monotonic()

    async def send_kit(self, obj: dict[str, Any]) -> None:
        """An 0x04 message of the kit's, sent only to a client that asked for them."""
        if self.kit:
            await self.send(P.pack_json(obj))


ConversationT = TypeVar("ConversationT", bound=_Conversation)
ConversationServerT = TypeVar("ConversationServerT", bound="ConversationServer[Any]")
R = TypeVar("R")


class ServedEngine(Protocol):
    """What the server reads of the engine it serves (an ``Engine`` or a ``BatchEngine``)."""

    model: ResolvedModel
    device: torch.device

    def describe(self) -> dict[str, Any]: ...




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
        assigner: SettingAssigner | None = None,
        recorder: ServerRecorder | None = None,
    ) -> None:
        self.engine = engine
        self.assigner = assigner  # serve --config/--configs: each conversation's setting
        self.recorder = recorder  # serve --record DIR: every conversation recorded here
        self.ping_interval_s = P.PING_INTERVAL_S
        self.show_controls = False  # the talk page shows sampling sliders (serve --show-controls)
        self.rate = False  # the talk page asks for a rating after each conversation (serve --rate)
        info = engine.describe()
        self._cards = (int(info["card"]), int(info["text_card"]))
        self._ignored_logged: set[str] = set()
        self._shutting_down = False
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
        app.router.add_get("/", self.handle_page)
        app.router.add_get("/favicon.ico", talk_page.no_icon)
        app.router.add_get("/pages/worklet/{name}", talk_page.worklet_file)
        app.router.add_get("/pages/{name}", talk_page.static_file)
        app.router.add_post(talk_page.RATING_PATH, self.handle_rating)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def handle_page(self, request: web.Request) -> web.Response:
        """``GET /``: the talk page (with the token), a 401 page that says why (without it)."""
        if not token_ok(request, self.token):
            return talk_page.unauthorized_page()
        config = talk_page.page_config(self.show_controls, self.rate, self.default_sampling, *self._cards)
        response = web.Response(text=talk_page.render_page(config), content_type="text/html", charset="utf-8")
        response.headers["Cache-Control"] = "no-store"
        if self.token and request.query.get("token"):
            # The page's WebSocket and rating carry the token as this cookie; its URL no longer needs it.
            response.set_cookie(
                TOKEN_COOKIE, self.token, httponly=True, samesite="Strict", secure=request.secure, path="/"
            )
        return response

    async def handle_rating(self, request: web.Request) -> web.Response:
        """``POST /api/rating``: a participant's rating of the conversation just held (``serve --rate``)."""
        if not token_ok(request, self.token):
            return web.json_response({"error": "missing or wrong token"}, status=401)
        if not self.rate or self.recorder is None:
            return web.json_response({"error": "this server takes no ratings (serve --rate --record DIR)"}, status=404)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "the rating is not JSON"}, status=400)
        try:
            path = await asyncio.to_thread(self.recorder.save_rating, body)
        except (ValueError, KeyError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"saved": path.name})

    async def _on_shutdown(self, _app: web.Application) -> None:
        # Close live conversations first (their handlers then finish), then stop the engine thread.
        self._shutting_down = True
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
        # autoclose=False: a client's close frame is answered once its place is free (see _serve).
        ws = web.WebSocketResponse(max_msg_size=P.MAX_MESSAGE_BYTES * 4, heartbeat=None, autoclose=False)
        await ws.prepare(request)
        self._open.add(ws)
        try:
            try:
                query = P.parse_chat_query(request.query)
            except ConfigError as exc:
                await ws.send_bytes(P.pack_error(f"bad parameters in the URL: {exc}"))
                await ws.close()
            else:
                await self._serve(ws, query)
        finally:
            self._open.discard(ws)
        return ws

    def plan(self, query: P.ChatQuery) -> ConversationPlan:
        """A new conversation's setting, sampling and seed: the assigned setting (or the server's
        defaults), changed by the URL's parameters, checked like ``set_params`` (ConfigError)."""
        check_seed(query.seed)
        setting = self.assigner.assign() if self.assigner is not None else None
        try:
            base = setting.sampling if setting is not None else self.default_sampling
            sampling = base.updated(**query.sampling)
            sampling.check_cards(*self._cards)
        except ConfigError:
            if setting is not None and self.assigner is not None:
                self.assigner.counts[setting.index] -= 1  # never served: not counted
            raise
        seed = query.seed
        if seed is None:
            seed = setting.seed if setting is not None else self.default_seed
        return ConversationPlan(sampling, seed if seed is not None else self._draw_seed(), query, setting)

    async def _serve(self, ws: web.WebSocketResponse, query: P.ChatQuery) -> None:
        slot = await self._claim_slot()
        if slot is None:
            await ws.send_bytes(P.pack_error(busy_message(self.max_sessions)))
            await ws.close()
            return
        try:
            plan = self.plan(query)
        except ConfigError as exc:
            await self._release_slot(slot)
            await ws.send_bytes(P.pack_error(f"bad parameters in the URL: {exc}"))
            await ws.close()
            return
        self.sessions_served += 1
        try:
            await self._converse(ws, slot, plan)
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

    def _log_ignored(self, ignored: dict[str, str]) -> None:
        """Name once per server (INFO) each URL parameter of moshi's that the kit does not apply."""
        for name in sorted(set(ignored) - self._ignored_logged):
            self._ignored_logged.add(name)
            log.info(
                "URL parameter %s=%s has no counterpart in jmoshi-nb: ignored (recorded in each conversation)",
                name,
                ignored[name],
            )

    def _describe(self, description: dict[str, Any], plan: ConversationPlan) -> dict[str, Any]:
        """The kit's session description: the engine's, the URL parameters ignored, the setting's label."""
        extra: dict[str, Any] = {"ignored_params": plan.query.ignored}
        if plan.setting is not None:
            extra["setting_label"] = plan.setting.label
        return description | extra

    def _open_recording(self, plan: ConversationPlan, description: dict[str, Any]) -> Recording | None:
        if self.recorder is None:
            return None
        config = SessionConfig.from_dict(
            {
                **(plan.setting.config.model_dump() if plan.setting is not None else {}),
                "model": self.engine.model.model_id if plan.setting is None else plan.setting.config.model,
                "sampling": plan.sampling.model_dump(),
                "seed": plan.seed,
            }
        )
        meta: dict[str, Any] = {"seed": plan.seed, "recorded_by": "server", "ignored_params": plan.query.ignored}
        if plan.setting is not None:
            meta["setting"] = plan.setting.record(self.assigner.mode if self.assigner is not None else None)
        return self.recorder.open(plan.query.participant, config, description, meta)

    async def _keepalive(self, s: ConversationT) -> None:
        """A ping whenever nothing went out for ``ping_interval_s`` (model loading, a stalled step)."""
        while not s.ws.closed:
            wait = s.last_sent + self.ping_interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            try:
                await s.send(P.pack(P.Kind.PING))
            except (ConnectionError, RuntimeError):  # the socket is closing: the conversation ends elsewhere
                return

    async def _converse(self, ws: web.WebSocketResponse, slot: int, plan: ConversationPlan) -> None:
        # Every conversation starts from its setting (or the server's defaults), changed by the URL's
        # parameters; clients change them later with set_params. The seed is the plan's.
        session, description = await self._start_conversation(ws, slot, plan.sampling, plan.seed)
        description = self._describe(description, plan)
        session.description = description
        session.kit = plan.query.metrics
        session.recording = self._open_recording(plan, description)
        if session.recording is not None:
            session.description = description | {"conversation": session.recording.meta["conversation"]}
        self._log_ignored(plan.query.ignored)
        await session.send(P.pack(P.Kind.HANDSHAKE))
        if session.kit:
            await session.send_kit({"type": "session", **session.description})
        else:
            version = package_versions().get("jmoshi-nb", "unknown")
            info = P.server_info(plan.sampling, self.engine.model.location, "jmoshi-nb", version)
            await session.send(P.pack_json(info))
        keepalive = asyncio.create_task(self._keepalive(session))
        try:
            await self._talk(session)
        finally:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await keepalive
            await self._close_recording(session)

    async def _close_recording(self, s: ConversationT) -> None:
        """Finish the server's recording; a conversation the client did not end says it was cut short."""
        rec = s.recording
        if rec is None or rec.streaming_to is None:
            return
        while s.heard:  # frames heard but never stepped (the conversation ended first)
            s.heard.popleft()
        if not (s.ended or s.closed_cleanly):
            rec.meta["cut_short"] = (
                "server shut down" if self._shutting_down else "page closed" if s.page_closed else "connection lost"
            )
        assert self.recorder is not None  # only the recorder opens server recordings
        folder = await asyncio.to_thread(self.recorder.finish, rec)
        log.info("conversation recorded in %s%s", folder, " (cut short)" if rec.cut_short else "")

    async def _talk(self, session: ConversationT) -> None:
        ws = session.ws
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
                await session.send(P.pack_error(f"engine error, session ended: {exc}"))
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
        while True:
            msg = await s.ws.receive()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING):
                # A close frame: the client meant to go, unless its page went away (a browser sends
                # 1001 when the tab closes or navigates; the talk page's End button sends 1000).
                s.page_closed = msg.data == WSCloseCode.GOING_AWAY
                s.closed_cleanly = not s.page_closed
                break
            if msg.type == WSMsgType.CLOSED:
                break  # the connection went away without a close frame
            if msg.type == WSMsgType.BINARY:
                try:
                    await self._handle_message(s, msg.data)
                except P.ProtocolError as exc:
                    await s.send(P.pack_error(str(exc)))
                except ConfigError as exc:
                    await s.send(P.pack_error(f"bad parameters: {exc}"))
            elif msg.type == WSMsgType.TEXT:
                await s.send(P.pack_error("text WebSocket frames are not part of the protocol; send binary"))
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
                    await s.send_kit({"type": "dropped", "index": s.received})
                    s.received += 1
                    if s.recording is not None:
                        s.heard.append((frame, True))
                    continue
                s.received += 1
                if s.recording is not None:
                    s.heard.append((frame, False))
                await s.frames.put(frame)
        elif kind == P.Kind.METADATA:
            obj = P.parse_json(payload)
            if obj["type"] == "set_params":
                self._set_params(obj, s)
            elif obj["type"] == "hello":
                if obj.get("metrics") and not s.kit:
                    s.kit = True
                    await s.send_kit({"type": "session", **s.description})
            elif obj["type"] == "end":
                s.ended = True
            else:
                raise P.ProtocolError(
                    f"unknown metadata type {obj['type']!r}: the server accepts 'set_params', 'hello' and 'end'"
                )
        elif kind == P.Kind.PING:
            await s.send(P.pack(P.Kind.PING))
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
            self._record(s, r)
            if not s.ws.closed:
                await self._send_result(s, r)

    def _record(self, s: ConversationT, r: FrameResult) -> None:
        """The frame in the server's recording: the user's frame it stepped on, the model's output."""
        rec = s.recording
        if rec is None:
            return
        while s.heard and s.heard[0][1]:  # frames dropped before this one: heard, never answered
            rec.add_user(s.heard.popleft()[0])
            rec.add_model_silence(FRAME_SIZE)
        if r.params_changed:
            rec.add_params(r.index, r.sampling.model_dump(), r.seed)
        user = s.heard.popleft()[0] if s.heard else np.zeros(FRAME_SIZE, np.float32)
        rec.add_frame(user, r, queued=s.frames.qsize())

    async def _send_result(self, s: ConversationT, r: FrameResult) -> None:
        if r.params_changed:
            await s.send_kit(
                {"type": "params", "params": r.sampling.model_dump(), "seed": r.seed, "from_frame": r.index}
            )
        if r.pcm is not None:
            opus = s.writer.append_pcm(r.pcm)
            if opus:
                await s.send(P.pack(P.Kind.AUDIO, opus))
        if r.text:
            await s.send(P.pack_text(r.text))
        await s.send_kit({"type": "metrics", **r.metrics(), "queued": s.frames.qsize()})

    # ---- how conversations share the engine (one subclass each) -----------------------------------
    @abstractmethod
    async def _claim_slot(self) -> int | None:
        """Take a place on the engine for a new conversation; None when the server is busy."""

    @abstractmethod
    async def _release_slot(self, slot: int) -> None:
        """Give back the place a finished conversation held."""

    @abstractmethod
    async def _start_conversation(
        self, ws: web.WebSocketResponse, slot: int, sampling: Sampling, seed: int
    ) -> tuple[ConversationT, dict[str, Any]]:
        """Reset the conversation's engine state to ``sampling`` and ``seed``; its state and description."""

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

    def __init__(
        self,
        engine: Engine,
        token: str | None = None,
        max_lag_frames: int = 250,
        assigner: SettingAssigner | None = None,
        recorder: ServerRecorder | None = None,
    ) -> None:
        super().__init__(
            engine, engine.sampling, engine.seed, token, max_lag_frames, assigner=assigner, recorder=recorder
        )
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
        self, ws: web.WebSocketResponse, slot: int, sampling: Sampling, seed: int
    ) -> tuple[_Conversation, dict[str, Any]]:
        await self._in_engine_thread(self.engine.reset, sampling, seed)
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


def run_server(server: ConversationServer[Any], host: str = "127.0.0.1", port: int = 8998) -> None:
    """Run ``server`` in the foreground; the access log (``-v``) never shows a token."""
    web.run_app(
        server.make_app(),
        host=host,
        port=port,
        print=lambda msg: log.info(msg),
        access_log_class=talk_page.RedactingAccessLogger,
    )


def configure(
    server: ConversationServerT,
    assigner: SettingAssigner | None = None,
    recorder: ServerRecorder | None = None,
    show_controls: bool = False,
    rate: bool = False,
) -> ConversationServerT:
    """``server`` with the talk page's options: settings, recording, sliders, rating form."""
    server.assigner, server.recorder = assigner, recorder
    server.show_controls, server.rate = show_controls, rate
    return server


__all__ = ["ChatServer", "ConversationServer", "check_ogg_page", "configure", "run_server"]
