"""Async client: send 24 kHz frames, receive model audio, text and per-frame metrics, record everything.

    async with jmoshi_nb.connect("ws://127.0.0.1:8998") as s:
        for frame in frames(pcm):
            await s.send_frame(frame)
        await s.drain()
    s.recording.save("runs/first")

It also talks to ``python -m moshi.server`` (which sends no metrics): text then comes from the 0x02
messages and frames are counted from the audio it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np
import sphn
from yarl import URL

from ..core.audio import FRAME_S, FRAME_SIZE, SAMPLE_RATE, frames, sha256_of
from ..core.config import Sampling, SessionConfig, check_seed, resolve_seed
from ..core.recording import Recording
from . import protocol as P


@functools.cache
def opus_delay() -> int:
    """Samples by which an Opus encode + decode (sphn, 24 kHz) delays audio, measured once."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(FRAME_SIZE * 6) * 0.2).astype(np.float32)
    x[:FRAME_SIZE] = 0
    writer, reader = sphn.OpusStreamWriter(SAMPLE_RATE), sphn.OpusStreamReader(SAMPLE_RATE)
    y = np.concatenate([reader.append_bytes(writer.append_pcm(f)) for f in x.reshape(6, FRAME_SIZE)])
    corr = np.correlate(y, x, "full")
    return max(0, int(np.argmax(corr)) - (len(x) - 1))


class ServerError(RuntimeError):
    """The server refused the session (busy, bad token) or reported an error."""


@dataclass
class Event:
    """One thing that came back: kind is 'audio' | 'text' | 'metrics' | 'params' | 'dropped' | 'error'."""

    kind: str
    data: Any
    t: float


def chat_url(url: str) -> str:
    """Accept ``ws://host:port``, ``http://host:port`` or a full ``.../api/chat`` URL (a query is kept)."""
    parsed = URL(url)
    if parsed.scheme in ("http", "https"):
        parsed = parsed.with_scheme("ws" + parsed.scheme.removeprefix("http"))
    path = parsed.path.rstrip("/")
    if not path.endswith(P.CHAT_PATH):
        parsed = parsed.with_path(path + P.CHAT_PATH).with_query(parsed.query)
    return str(parsed)


def kit_chat_url(url: str) -> str:
    """``chat_url(url)`` asking for the kit's per-frame metadata (``?metrics=1``, see ``protocol``)."""
    return str(URL(chat_url(url)).update_query({P.METRICS_QUERY: "1"}))


class ChatClient:
    """A live conversation. Create it with ``connect``."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, config: SessionConfig | None) -> None:
        self._ws = ws
        self._writer = sphn.OpusStreamWriter(SAMPLE_RATE)
        self._reader = sphn.OpusStreamReader(SAMPLE_RATE)
        self.recording = Recording(config=config)
        self.info: dict[str, Any] = {}
        self.errors: list[str] = []
        self.frames_sent = 0
        self.frames_done = 0  # frames the server reported (metrics + dropped), or audio frames from moshi.server
        self._has_metrics = False
        self.model_samples = 0  # model audio samples decoded so far (moshi.server: its frame clock)
        self._model_frames = 0  # frames placed in the recording's model channel (kit server)
        self._metrics_count = 0
        self._dropped: list[int] = []  # indices of frames the server dropped
        self._pending_drops: list[int] = []
        # Opus delays audio by one codec lookahead each way: the recording is kept on the model's
        # frame grid (what it heard vs what it said), like sessions run on the engine directly.
        self._opus_delay = opus_delay()
        self._trim = self._opus_delay
        self.recording.meta["opus_delay_samples"] = self._opus_delay
        self._progress = asyncio.Condition()
        self._subscribers: list[asyncio.Queue[Event]] = []
        self._receiver: asyncio.Task[None] | None = None
        self.closed = False

    # ---- start ---------------------------------------------------------------------------------
    async def _start(self, timeout: float) -> None:
        msg = await self._ws.receive(timeout=timeout)
        if msg.type != aiohttp.WSMsgType.BINARY:
            raise ServerError(f"server closed the connection before the handshake ({msg.type.name})")
        kind, payload = P.unpack(msg.data)
        if kind == P.Kind.ERROR:
            raise ServerError(payload.decode("utf-8", "replace"))
        if kind != P.Kind.HANDSHAKE:
            raise ServerError(f"expected a handshake, got {kind.name}")
        self.recording.started = time.monotonic()
        self._receiver = asyncio.create_task(self._receive_loop())
        # The kit's server describes the session right after the handshake; moshi.server does not.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                async with self._progress:
                    await self._progress.wait_for(lambda: bool(self.info))

    # ---- sending -------------------------------------------------------------------------------
    async def send_frame(self, pcm: np.ndarray) -> None:
        """Send one frame (or any number of samples) of 24 kHz float32 audio."""
        pcm = np.ascontiguousarray(pcm, dtype=np.float32)
        if pcm.ndim != 1:
            raise ValueError(f"expected mono audio (1-D), got shape {pcm.shape}")
        if not self.recording.user_chunks:
            self.recording.add_user(np.zeros(self._opus_delay, np.float32))  # the server hears it this late
        self.recording.add_user(pcm)
        opus = self._writer.append_pcm(pcm)
        self.frames_sent += len(pcm) / FRAME_SIZE
        if opus:
            await self._ws.send_bytes(P.pack(P.Kind.AUDIO, opus))

    async def apply_config(self, config: SessionConfig) -> int:
        """Make the server's sampling and seed those of ``config`` (before the first frame); returns the seed.

        ``seed=None`` draws a fresh seed, kept in ``recording.meta["seed"]`` so the run can be repeated.
        """
        seed = resolve_seed(config.seed)
        self.recording.meta["seed"] = seed
        wanted = config.sampling.model_dump()
        changes = wanted if self.info.get("sampling") and self.info["sampling"] != wanted else {}
        if changes or self.info.get("seed") != seed:
            await self.set_params(seed=seed, **changes)
        return seed

    async def set_params(self, seed: int | None = None, **changes: Any) -> Sampling:
        """Change sampling parameters from the next frame on; validated here first (ConfigError)."""
        current = Sampling.model_validate(self.info.get("sampling", {}))
        if self.recording.params:
            current = Sampling.model_validate(self.recording.params[-1]["params"])
        new = current.updated(**changes)
        if self.info.get("card"):
            new.check_cards(self.info["card"], self.info["text_card"])
        check_seed(seed)
        msg: dict[str, Any] = {"type": "set_params", **changes}
        if seed is not None:
            msg["seed"] = seed
        await self._ws.send_bytes(P.pack_json(msg))
        return new

    async def send_raw(self, message: bytes) -> None:
        """Send a message as is (tests of the server's handling of bad input)."""
        await self._ws.send_bytes(message)

    # ---- receiving -----------------------------------------------------------------------------
    def subscribe(self) -> asyncio.Queue[Event]:
        """A queue that receives every Event from now on (live plots, speakers)."""
        q: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.append(q)
        return q

    def _emit(self, kind: str, data: Any) -> None:
        ev = Event(kind, data, self.recording.elapsed())
        for q in self._subscribers:
            q.put_nowait(ev)

    async def _receive_loop(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.BINARY:
                    continue
                try:
                    kind, payload = P.unpack(msg.data)
                except P.ProtocolError as exc:
                    self.errors.append(f"from server: {exc}")
                    continue
                await self._on_message(kind, payload)
        finally:
            self.closed = True
            async with self._progress:
                self._progress.notify_all()

    async def _on_message(self, kind: P.Kind, payload: bytes) -> None:
        rec = self.recording
        if kind == P.Kind.AUDIO:
            pcm = self._reader.append_bytes(payload)
            if pcm.shape[-1]:
                if not self._has_metrics and self.model_samples == 0:
                    rec.add_model_silence(FRAME_SIZE)  # moshi.server: the LM's one-frame delay
                cut = min(self._trim, pcm.shape[-1])
                self._trim -= cut
                rec.add_model(pcm[cut:])
                self.model_samples += pcm.shape[-1]
                self._emit("audio", pcm)
                if not self._has_metrics:
                    await self._advance(self.model_samples // FRAME_SIZE + 1)
        elif kind == P.Kind.TEXT:
            text = payload.decode("utf-8", "replace")
            if not self._has_metrics:
                ev_frame = self.model_samples // FRAME_SIZE
                rec.add_text(ev_frame, -1, text)
                self._emit("text", rec.text[-1])
        elif kind == P.Kind.METADATA:
            obj = P.parse_json(payload)
            typ = obj.pop("type")
            if typ == "session":
                self.info = obj
                rec.session = obj
                async with self._progress:
                    self._progress.notify_all()
            elif typ == "metrics":
                self._has_metrics = True
                rec.add_metrics(obj)
                if not obj.get("audio"):
                    rec.add_model_silence(FRAME_SIZE)
                self._model_frames += 1
                self._fill_drops()
                if obj.get("text"):
                    rec.add_text(obj["frame"], obj["text_token"], obj["text"])
                    self._emit("text", rec.text[-1])
                self._emit("metrics", obj)
                self._metrics_count += 1
                await self._advance(self._metrics_count + len(self._dropped))
            elif typ == "dropped":
                # The server was behind and dropped the frame at this index of our stream.
                self._dropped.append(int(obj["index"]))
                self._pending_drops.append(int(obj["index"]))
                self._fill_drops()
                rec.meta["dropped_frames"] = list(self._dropped)
                self._emit("dropped", obj)
                await self._advance(self._metrics_count + len(self._dropped))
            elif typ == "params":
                rec.add_params(obj["from_frame"], obj["params"], obj.get("seed"))
                self._emit("params", obj)
        elif kind == P.Kind.ERROR:
            text = payload.decode("utf-8", "replace")
            self.errors.append(text)
            self._emit("error", text)
            async with self._progress:
                self._progress.notify_all()

    def _fill_drops(self) -> None:
        """Silence on the model side where a dropped frame sits, keeping the channels aligned."""
        while self._pending_drops and self._pending_drops[0] <= self._model_frames:
            self._pending_drops.pop(0)
            self.recording.add_model_silence(FRAME_SIZE)
            self._model_frames += 1

    async def _advance(self, done: int) -> None:
        async with self._progress:
            self.frames_done = max(self.frames_done, done)
            self._progress.notify_all()

    # ---- waiting and closing -------------------------------------------------------------------
    async def wait_frames(self, n: int, timeout: float = 30.0) -> None:
        """Wait until the server has processed ``n`` frames of this session."""
        async with asyncio.timeout(timeout):
            async with self._progress:
                await self._progress.wait_for(lambda: self.frames_done >= n or self.closed)

    async def wait_error(self, count: int = 1, timeout: float = 10.0) -> str:
        """Wait for the ``count``-th error message from the server and return it."""
        async with asyncio.timeout(timeout):
            async with self._progress:
                await self._progress.wait_for(lambda: len(self.errors) >= count or self.closed)
        if len(self.errors) < count:
            raise ServerError("connection closed without the expected error message")
        return self.errors[count - 1]

    async def drain(self, timeout: float = 60.0) -> None:
        """Wait until every whole frame sent has come back processed."""
        await self.wait_frames(int(self.frames_sent), timeout=timeout)

    async def close(self) -> None:
        if not self._ws.closed:
            await self._ws.close()
        if self._receiver is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._receiver
        self.closed = True


@contextlib.asynccontextmanager
async def connect(
    url: str = "ws://127.0.0.1:8998",
    token: str | None = None,
    config: SessionConfig | None = None,
    timeout: float = 30.0,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[ChatClient]:
    """Open a conversation; the session closes (and its recording stays) when the block ends.

    ``token`` travels as an ``Authorization: Bearer`` header (never in the URL, where proxies log
    it); ``headers`` adds others (e.g. Modal proxy-auth keys).
    """
    all_headers = dict(headers or {})
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as http:
        try:
            ws = await http.ws_connect(
                kit_chat_url(url), max_msg_size=0, timeout=aiohttp.ClientWSTimeout(ws_close=5), headers=all_headers
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 401:
                raise ServerError(f"the server refused the token (HTTP 401) at {url}") from None
            raise ServerError(f"cannot open a session at {url}: HTTP {exc.status}") from None
        except aiohttp.ClientConnectionError as exc:
            raise ServerError(f"cannot reach a server at {url}: {exc}") from None
        session = ChatClient(ws, config)
        try:
            await session._start(timeout)
            yield session
        finally:
            await session.close()


IN_FLIGHT_FRAMES = 8  # faster than real time: at most this many frames sent ahead of the server


async def paced_frames(
    session: ChatClient, pcm: np.ndarray, realtime: bool = True, timeout: float = 60.0
) -> AsyncIterator[np.ndarray]:
    """The frames of mono 24 kHz ``pcm``, each yielded when it is due: every 80 ms if ``realtime``,
    else as soon as the server is at most ``IN_FLIGHT_FRAMES`` behind what ``session`` has sent."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i, frame in enumerate(frames(pcm)):
        if realtime:
            delay = start + i * FRAME_S - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        else:  # so the receive side never falls far behind
            await session.wait_frames(int(session.frames_sent) - IN_FLIGHT_FRAMES, timeout=timeout)
        yield frame


async def stream_pcm(
    session: ChatClient, pcm: np.ndarray, realtime: bool = True, tail_timeout: float = 60.0
) -> Recording:
    """Send mono 24 kHz audio frame by frame (paced at 80 ms if ``realtime``) and wait for the end."""
    session.recording.meta["input_sha256"] = sha256_of(pcm)
    async for frame in paced_frames(session, pcm, realtime, tail_timeout):
        await session.send_frame(frame)
    await session.drain(timeout=tail_timeout)
    return session.recording

