"""Talk to J-Moshi from a notebook: ``jmoshi_nb.start()`` → ``session.talk()`` → ``session.stop()``.

    session = jmoshi_nb.start(backend="tiny")        # or "local" / "modal", config=... (object or file)
    session.talk()                                    # the panel: mic, speaker, text, sliders, live plots
    session.talk(input="speech.wav")                  # no microphone: stream a WAV instead
    session.set_params(temp=0.5)                      # what the sliders do, from code
    session.config.save("calm.yaml")                  # the sliders' values as a shareable config
    rec = session.stop()                              # the recording stays: rec.save("runs/calm")

The conversation runs on a background thread with its own asyncio loop (the kit's WebSocket client
and the tasks that feed it), so notebook cells return at once and the kernel stays free. Microphone
frames arrive on the widget's comm (shell or subshell thread) and are handed to that loop with
``call_soon_threadsafe``; model audio, text and plots go back to the browser from it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
import warnings
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ..core.audio import FRAME_SIZE, AudioFileError, decode_audio, read_wav, sha256_of
from ..core.config import Sampling, SessionConfig, check_seed, describe_params, load_config
from ..core.models import GPU_DEFAULT
from ..core.recording import Recording
from ..serve.backends import ServerHandle
from ..serve.client import ChatClient, paced_frames
from ..serve.loop_thread import LoopThread
from ..serve.talk_page import ShareLink, page_link
from .conversation import Conversation
from .servers import start_server

if TYPE_CHECKING:
    from .widgets import TalkPanel

log = logging.getLogger("jmoshi_nb.notebook.session")
T = TypeVar("T")
MIC_LIVE_NOTICE = (
    "会話中です。パネルで話し、終わったら「■ 終了 / End」を押してから、このセルと以降のセルを実行し直してください。\n"
    "The conversation is live: talk on the panel, press 「■ 終了 / End」 when you are done, "
    "then run this cell and the ones below again."
)
LATENCY_PROBE_EVERY = 4  # tell the browser every 4th frame is done (its latency probe; fewer messages)
HEAR = ("main", "shadow")  # the conversations the speaker can play


_LIVE: weakref.WeakSet[NotebookSession] = weakref.WeakSet()  # sessions not stopped yet


class NotebookSession:
    """One conversation with a server (started here for ``tiny`` / ``local`` / ``modal``, or at ``url``).

    Use ``jmoshi_nb.start()`` to make one. Thread-safe: call its methods from any cell.
    """

    def __init__(
        self,
        backend: str = "tiny",
        config: SessionConfig | str | Path | None = None,
        *,
        url: str | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        lang: str = "both",
        update_hz: float = 10.0,
        window_s: float = 20.0,
        connect_timeout: float = 600.0,
        model: str | None = None,
        revision: str | None = None,
        out: str | Path | None = None,
        **server_kwargs: Any,
    ) -> None:
        if isinstance(config, str | Path):
            config = load_config(config)
        config = config or SessionConfig(model="tiny" if backend == "tiny" else GPU_DEFAULT)
        if model is not None or revision is not None:  # start(backend="modal", model="j-moshi-ext")
            data = config.model_dump()
            data.update({k: v for k, v in {"model": model, "revision": revision}.items() if v is not None})
            config = SessionConfig.from_dict(data)
        self._initial = config
        self.out = Path(out) if out is not None else None  # the recording streams there; stop() completes it
        self.backend = backend if url is None else "url"
        self.lang, self.update_hz, self.window_s = lang, update_hz, window_s
        self.panel: TalkPanel | None = None  # once talk() is called
        self.input: str | None = None  # "mic" or the WAV path of the latest talk()/play_wav()
        self._sampling: Sampling = self._initial.sampling
        self._seed: int | None = self._initial.seed
        self._conversation = Conversation(
            self._initial,
            on_audio=lambda pcm: self._forward_audio("main", pcm),
            on_frame_done=self._frame_done,
            on_error=self._show_error,
        )
        self._closing = asyncio.Event()  # set by stop(): the loop then finishes the conversation
        self._server: ServerHandle | None = None
        self._shared: ServerHandle | None = None  # share(): a second server with the current setting
        self._stopped = False
        self.ended_by_panel = False  # the user pressed the panel's End button
        self._stop_lock = threading.Lock()
        self._final: Recording | None = None  # the recording, once stopped
        self._shadow: Conversation | None = None  # talk(shadow=...): a second slot, same input
        self.hearing = "main"  # which conversation the speaker plays ("main" or "shadow")
        self.audio_samples_sent = dict.fromkeys(HEAR, 0)  # model audio forwarded to the browser, per source
        self._error: BaseException | None = None
        self._wav: concurrent.futures.Future[Recording] | None = None
        self.mic_frames = 0
        self._mic_energy = 0.0
        self.refresh_ms: list[float] = []
        if url is None:
            self._server = start_server(backend, self._initial, **server_kwargs)
            url, token = self._server.url, self._server.token
        self.url, self._token = url, token
        self._connect_kwargs: dict[str, Any] = {"headers": headers} if headers else {}
        self._lt = LoopThread("jmoshi-nb-session")
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._main = self._lt.submit(self._run(ready))
        try:
            ready.result(timeout=connect_timeout)
        except BaseException:
            self._shutdown_threads()
            raise
        _LIVE.add(self)

    # ---- the loop-side life of the session -----------------------------------------------------
    async def _run(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            await self._conversation.open(self.url, self._token, self.out, **self._connect_kwargs)
        except BaseException as exc:
            ready.set_exception(exc)
            return
        self._seed = self._conversation.seed
        tick = asyncio.create_task(self._tick_loop())
        ready.set_result(None)
        try:
            await self._closing.wait()
            await self._finish(tick)
        except BaseException as exc:
            self._error = exc
            raise

    @property
    def _client(self) -> ChatClient | None:
        return self._conversation.client

    @property
    def _recording(self) -> Recording | None:
        return self._conversation.client.recording if self._conversation.client is not None else None

    @property
    def frame_latency_ms(self) -> list[float]:
        """Kernel -> server -> kernel time of each frame of the main conversation (the last 500), ms."""
        return self._conversation.latency.round_trips_ms

    def _forward_audio(self, source: str, pcm: np.ndarray) -> None:
        """Model audio of ``source`` ("main" / "shadow") to the speaker, if that is the one heard."""
        if self.panel is not None and source == self.hearing:
            self.panel.audio.send_audio(pcm)
            self.audio_samples_sent[source] += len(pcm)

    def _frame_done(self, seq: int) -> None:
        """A microphone frame's result came back: tell the browser (its latency probe), now and then."""
        if self.panel is not None and seq % LATENCY_PROBE_EVERY == 0:
            self.panel.audio.frame_done(seq)

    def _show_error(self, message: str) -> None:
        if self.panel is not None:
            self.panel.audio.error = message

    async def _tick_loop(self) -> None:
        period = 1.0 / self.update_hz
        while True:
            await asyncio.sleep(period)
            try:
                self._refresh()
            except Exception:  # a drawing problem must not end the conversation
                log.exception("panel refresh failed")

    def _refresh(self, force: bool = False) -> None:
        if self.panel is None or self._recording is None:
            return
        t0 = time.perf_counter()
        self.panel.refresh(self._recording, self.stats(), force=force)
        if self._shadow is not None:
            self.panel.refresh_shadow(self._shadow.recording)
        self.refresh_ms.append((time.perf_counter() - t0) * 1e3)
        if len(self.refresh_ms) > 2000:
            del self.refresh_ms[:1000]

    async def _finish(self, tick: asyncio.Task[None]) -> None:
        if self._wav is not None and not self._wav.done():
            self._wav.cancel()
        if self._shadow is not None:
            await self._shadow.close()
        await self._conversation.close(timeout=30)
        tick.cancel()
        await asyncio.gather(tick, return_exceptions=True)
        self._refresh(force=True)

    # ---- inputs --------------------------------------------------------------------------------
    def _on_mic_frame(self, seq: int, pcm: np.ndarray) -> None:
        """Comm thread: hand a microphone frame to the loop."""
        self._lt.call(self._enqueue_mic, seq, pcm)

    def _enqueue_mic(self, seq: int, pcm: np.ndarray) -> None:
        if self._stopped or (self._wav is not None and not self._wav.done()):
            return  # one input at a time: a playing WAV owns the stream
        self.mic_frames += 1
        self._mic_energy += float(np.dot(pcm, pcm))
        self._conversation.send(pcm, seq)
        if self._shadow is not None:
            self._shadow.send(pcm)

    def play_wav(self, path: str | Path | np.ndarray, realtime: bool = True, wait: bool = False) -> Any:
        """Stream a WAV (path or 24 kHz mono array) as the user's voice, paced at 80 ms per frame if realtime.

        Returns a ``concurrent.futures.Future`` resolving to the recording once the server has
        processed the last frame (or, with ``wait=True``, that recording).
        """
        self._check_running()
        if self._wav is not None and not self._wav.done():
            raise RuntimeError("a WAV is already playing into this session: wait() for it or stop() first")
        pcm = path if isinstance(path, np.ndarray) else read_wav(path)
        self.input = "array" if isinstance(path, np.ndarray) else str(path)
        if self._recording is not None:
            self._recording.meta.setdefault("inputs", []).append(
                {"input": self.input, "sha256": sha256_of(pcm), "from_frame": int(self._conversation.frames_sent)}
            )
        self._wav = self._lt.submit(self._play(pcm, realtime))
        return self._wav.result() if wait else self._wav

    async def _play(self, pcm: np.ndarray, realtime: bool) -> Recording:
        client = self._client
        assert client is not None
        async for frame in paced_frames(client, pcm, realtime, timeout=120):
            self._conversation.send(frame)
            if self._shadow is not None:
                self._shadow.send(frame)
        await self._conversation.drain(timeout=120)
        return client.recording

    def wait(self, timeout: float | None = None) -> Recording:
        """Block until the WAV being played has been processed; returns the recording."""
        if self._wav is not None:
            self._wav.result(timeout=timeout)
        return self.recording

    # ---- the panel -----------------------------------------------------------------------------
    def talk(
        self,
        input: str | Path | None = None,
        realtime: bool = True,
        plots: bool = True,
        shadow: SessionConfig | str | Path | None = None,
    ) -> TalkPanel:
        """Show the panel (the cell's result) and start listening.

        ``input``: ``"mic"`` (the default unless the config says ``input.source: wav``) or a WAV
        path, streamed at once (real time unless ``realtime=False``) while the panel shows the text
        and plots. The conversation runs in the background; ``stop()`` ends it.

        ``shadow``: another config (or its file) for a second conversation on the same server (a
        second ``Conversation``), fed exactly the same microphone or WAV frames, so a researcher hears
        how another setting answers the same speech. The server must hold two conversations:
        ``jmoshi_nb.start(..., max_sessions=2)`` for the tiny / local backends, or a server run with
        ``--max-sessions 2``. The panel shows both text streams and frame plots, a toggle picks the one
        the speaker plays (``hear()``), ``shadow_recording`` holds its recording (streamed to
        ``out/shadow`` with ``out``).
        """
        self._check_running()
        from .widgets import TalkPanel

        cfg_in = self._initial.input
        if input is None:
            input = cfg_in.wav if cfg_in.source == "wav" and cfg_in.wav else "mic"
        mode = "mic" if str(input) == "mic" else "wav"
        if self.panel is None:
            info = self._client.info if self._client else {}
            self.panel = TalkPanel(
                self._sampling,
                self._seed,
                on_change=self._on_slider,
                session_label=f"{info.get('model', '?')} · {info.get('device', '?')} · {self.backend}",
                card=int(info.get("card", 2048)),
                text_card=int(info.get("text_card", 32000)),
                lang=self.lang,
                input_mode=mode,
                plots=plots,
                window_s=self.window_s,
                audio_options={
                    "echo_cancellation": cfg_in.echo_cancellation,
                    "noise_suppression": cfg_in.noise_suppression,
                    "auto_gain_control": cfg_in.auto_gain_control,
                },
            )
            self.panel.audio.on_frame(self._on_mic_frame)
            self.panel.audio.on_end(self._on_end_button)
            self.panel.audio.on_wav(self._on_wav_choice)
        else:
            self.panel.audio.input_mode = mode
        if shadow is not None and self._shadow is None:
            self._open_shadow(shadow)
        self.panel.show_status(self.stats())
        if mode == "wav":
            self.play_wav(input, realtime=realtime)  # type: ignore[arg-type]
        else:
            self.input = "mic"
        return self.panel

    def _open_shadow(self, shadow: SessionConfig | str | Path) -> None:
        config = load_config(shadow) if isinstance(shadow, str | Path) else shadow
        conversation = Conversation(config, on_audio=lambda pcm: self._forward_audio("shadow", pcm))
        out = self.out / "shadow" if self.out is not None else None
        try:
            opening = conversation.open(self.url, self._token, out, meta={"shadow": True}, **self._connect_kwargs)
            self._lt.submit(opening).result(timeout=60)
        except Exception as exc:
            raise RuntimeError(
                f"the shadow conversation could not open ({exc}): the server must hold two conversations, "
                "e.g. jmoshi_nb.start(..., max_sessions=2) or jmoshi-nb serve --max-sessions 2"
            ) from exc
        self._shadow = conversation
        assert self.panel is not None
        self.panel.add_shadow(describe_params(config.sampling.model_dump(), config.seed), self.hear)

    def hear(self, which: str) -> None:
        """Play ``"main"`` or ``"shadow"`` on the speaker (what the panel's toggle does)."""
        if which not in HEAR:
            raise ValueError(f"hear({which!r}): one of {', '.join(HEAR)}")
        if which == "shadow" and self._shadow is None:
            raise RuntimeError("there is no shadow conversation: talk(shadow=config) first")
        self.hearing = which
        if self.panel is not None and self.panel.hear is not None and self.panel.hear.value != which:
            self.panel.hear.value = which

    @property
    def shadow_recording(self) -> Recording | None:
        """The shadow conversation's recording (None without one)."""
        return self._shadow.recording if self._shadow is not None else None

    def _on_end_button(self) -> None:
        """Comm thread: the panel's End button. Stopping waits for the server, so it runs aside."""
        self.ended_by_panel = True
        threading.Thread(target=self.stop, name="jmoshi-nb-end", daemon=True).start()

    def _on_wav_choice(self, name: str, data: bytes | None) -> None:
        """Comm thread: a WAV picked in the panel (no microphone here) becomes the user's voice."""
        panel = self.panel
        try:
            pcm = decode_audio(data) if data is not None else read_wav(name)
            self.play_wav(pcm, realtime=True)
        except (AudioFileError, RuntimeError) as exc:
            if panel is not None:
                panel.audio.error = f"{name}: {exc}"
            return
        self.input = name
        if panel is not None:
            panel.audio.error = ""
            panel.audio.input_mode = "wav"

    def _on_slider(self, changes: dict[str, Any]) -> None:
        seed = changes.pop("seed", None)
        self.set_params(seed=seed, **changes)

    # ---- parameters ----------------------------------------------------------------------------
    def set_params(self, seed: int | None = None, **changes: Any) -> Sampling:
        """Change sampling (temp, temp_text, top_k, top_k_text) and/or the seed from the next frame.

        Validated here (``ConfigError``); the server answers with a ``params`` message that lands
        in ``recording.params`` with the frame the change took effect at.
        """
        self._check_running()
        client = self._client
        assert client is not None
        new = self._sampling.updated(**changes)
        if client.info.get("card"):
            new.check_cards(client.info["card"], client.info["text_card"])
        check_seed(seed)
        future = self._lt.submit(client.set_params(seed=seed, **changes))
        if not self._lt.here():
            future.result(timeout=30)
        self._sampling = new
        if seed is not None:
            self._seed = seed
        if self.panel is not None:
            self.panel.show_params(new, self._seed)
        return new

    @property
    def sampling(self) -> Sampling:
        """The sampling parameters last set (sliders or ``set_params``)."""
        return self._sampling

    @property
    def config(self) -> SessionConfig:
        """The session's config with the current slider values (``session.config.save("calm.yaml")``)."""
        cfg = self._initial.model_copy(deep=True)
        cfg.sampling, cfg.seed = self._sampling, self._seed
        if self.panel is not None:
            a = self.panel.audio
            cfg.input.echo_cancellation = a.echo_cancellation
            cfg.input.noise_suppression = a.noise_suppression
            cfg.input.auto_gain_control = a.auto_gain_control
        if self.input and self.input not in ("mic", "array"):
            cfg.input.source, cfg.input.wav = "wav", self.input
        return SessionConfig.from_dict(cfg.model_dump())

    # ---- state ---------------------------------------------------------------------------------
    @property
    def recording(self) -> Recording:
        """Everything so far (live while running, final after ``stop()``)."""
        if self._recording is None:
            raise RuntimeError("the session has no recording: it never connected")
        return self._recording

    @property
    def info(self) -> dict[str, Any]:
        """The server's description of the session (model, device, vocabulary sizes...)."""
        return dict(self._client.info) if self._client else {}

    @property
    def running(self) -> bool:
        return not self._stopped and self._client is not None and not self._client.closed

    def stats(self) -> dict[str, Any]:
        """Kernel-side counters (what the panel shows and the browser test checks)."""
        rec = self._recording
        last = rec.metrics[-1] if rec and rec.metrics else {}
        n = self.mic_frames * FRAME_SIZE
        return {
            "frames_in": self.mic_frames,
            "user_rms": round(float(np.sqrt(self._mic_energy / n)), 6) if n else 0.0,
            "frames_sent": int(self._conversation.frames_sent),
            "frames_done": self._client.frames_done if self._client else 0,
            "model_samples": self._client.model_samples if self._client else 0,
            "params": last.get("params", {}),
            "seed": last.get("seed"),
            "from_frame": rec.params[-1]["from_frame"] if rec and rec.params else None,
            "text_pieces": len(rec.text) if rec else 0,
            "dropped": len(rec.meta.get("dropped_frames", [])) if rec else 0,
            "frame_latency_ms": self._conversation.latency.median_ms(),
        }

    def status(self) -> str:
        """The status line the panel shows (model, device, backend, time, parameters, round trip)."""
        from .widgets.panel import status_text

        info = self.info
        label = f"{info.get('model', '?')} · {info.get('device', '?')} · {self.backend}"
        return status_text(label, self.stats(), self._sampling.model_dump(), self._stopped, self.ended_by_panel)

    # ---- the end -------------------------------------------------------------------------------
    def _check_running(self) -> None:
        if self._stopped:
            raise RuntimeError("this session is stopped: start a new one with jmoshi_nb.start()")
        if self._client is None or self._client.closed:
            raise RuntimeError(f"the connection to the server is closed ({self._error or 'no error reported'})")

    def finish(self, timeout: float | None = None) -> Recording | None:
        """The recording, once the conversation is over: what a notebook's "stop" cell calls.

        * WAV input: waits until the file has been processed, stops the session, returns the recording.
        * Microphone: the conversation lasts as long as the user talks, so while it runs this does not
          stop it (Run All would end it at 0 s): it says so and returns None. Press 「■ 終了 / End」 on
          the panel when done, then run the cell again (or call ``stop()``).
        * Already stopped (End pressed, or ``stop()``): returns the recording.
        """
        if self._stopped:
            return self.stop()
        if self._wav is not None or self.panel is None:
            self.wait(timeout)
            return self.stop()
        print(MIC_LIVE_NOTICE)
        return None

    def stop(self, timeout: float = 90.0) -> Recording:
        """End the conversation (processing what was sent), stop the server; returns the recording.

        Safe from any thread (the panel's End button calls it too); a second call waits for the first.
        """
        with self._stop_lock:
            if self._final is None:
                self._final = self._stop(timeout)
            return self._final

    def _stop(self, timeout: float) -> Recording:
        self._stopped = True
        _LIVE.discard(self)
        if self.panel is not None:
            self.panel.audio.stop_mic()
        self._lt.call(self._closing.set)
        error: BaseException | None = None
        try:
            self._main.result(timeout=timeout)
        except (concurrent.futures.CancelledError, concurrent.futures.TimeoutError, Exception) as exc:
            error = exc  # the recording is kept whatever happened to the connection
            log.warning("session ended with an error: %r", exc)
        finally:
            self._shutdown_threads()
            if self.panel is not None:
                self.panel.close_session(self.stats(), self.ended_by_panel)
        rec = self.recording
        rec.meta["notebook"] = {
            "backend": self.backend,
            "input": self.input,
            "final_sampling": self._sampling.model_dump(),
            "final_seed": self._seed,
        }
        if error is not None or self._error is not None:
            rec.meta["notebook"]["error"] = repr(error or self._error)
        if self.out is not None:
            rec.save(self.out)
        return rec

    def share(self, host: str = "127.0.0.1", port: int = 0) -> ShareLink:
        """A talk-page link to this session's current setting (``config``), shown as a clickable link.

        On a server this session did not start here (Modal, ``url=``), the link is that server's page.
        Otherwise a second server with the current setting starts on ``host``:``port`` with a fresh
        token (this session's own server holds this conversation); it stops with the session.

        Returns:
            The link (a ``str``), with its token.
        """
        if self._server is None or self.backend == "modal":
            return ShareLink(page_link(self.url, self._token))
        if self._shared is None:
            import secrets

            from ..serve.backends import LocalServer

            config = self.config
            self._shared = LocalServer(
                model=config.model, revision=config.revision, config=config, host=host, port=port,
                token=secrets.token_urlsafe(16), name="jmoshi-nb-share",
            ).start()  # fmt: skip
        return ShareLink(page_link(self._shared.url, self._shared.token))

    def _shutdown_threads(self) -> None:
        self._lt.stop()
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._shared is not None:
            self._shared.stop()
            self._shared = None

    def save(self, folder: str | Path) -> Path:
        """Save the recording (stop first for a complete one)."""
        return self.recording.save(folder)

    def __enter__(self) -> NotebookSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "running"
        return f"<NotebookSession {state} backend={self.backend} url={self.url}>"


def start(
    backend: str = "tiny",
    config: SessionConfig | str | Path | None = None,
    **kwargs: Any,
) -> NotebookSession:
    """Start a server for ``backend`` (``tiny`` | ``local`` | ``modal``) and open a session on it.

    ``config``: a SessionConfig or a YAML/JSON file. Keyword arguments: ``url``/``token`` (and
    ``headers``) to use a running server instead, ``out`` (a folder: the recording streams there while
    the session runs, completed by ``stop()``), ``lang`` ("ja", "en", "both") for labels, ``update_hz``
    for the plots, and anything the backend accepts: ``max_sessions=2`` (tiny / local) serves the model
    as two slots, so that ``session.talk(shadow=other_config)`` can run a second setting beside the first.
    Use as ``with jmoshi_nb.start() as session:`` to stop at the end.
    """
    running = [s for s in _LIVE if s.running]
    if running:
        # Re-running a notebook's start cell is common; each session keeps its server (and model) alive.
        warnings.warn(
            f"{len(running)} session(s) still running ({', '.join(repr(s) for s in running)}): "
            "call session.stop() on sessions you are done with to free their server and model",
            stacklevel=2,
        )
    return NotebookSession(backend, config, **kwargs)


__all__ = ["NotebookSession", "start"]
