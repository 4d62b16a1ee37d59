"""``TalkWidget``: the browser half of a conversation (microphone, speaker, text), on anywidget.

The ESM (``talk.js``) captures the microphone with an AudioWorklet, cuts it into 1920-sample frames
at 24 kHz and sends each as a binary buffer of float32 on the widget's comm; model audio comes back
the same way and plays through a second worklet with a small jitter buffer. This class only moves
bytes: the session (``jmoshi_nb.session``) decides what to do with them.

Handlers registered with ``on_frame`` run on whichever kernel thread delivers comm messages (the
shell thread, or a subshell thread with JupyterLab 4 + ipykernel 7): keep them short and hand the
work over to an event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets as t

FRAME_SIZE = 1920
log = logging.getLogger("jmoshi_nb.widgets")

FrameHandler = Callable[[int, np.ndarray], None]
EndHandler = Callable[[], None]
WavHandler = Callable[[str, bytes | None], None]  # (file name or kernel-side path, file bytes or None)
MAX_WAV_BYTES = 64 * 1024 * 1024  # an uploaded input file: about 11 minutes of 48 kHz 16-bit stereo


class TalkWidget(anywidget.AnyWidget):
    """Microphone on/off, mute, volume, the model's text and live counters, in one bar."""

    _esm = Path(__file__).with_name("talk.js")
    _css = Path(__file__).with_name("talk.css")

    # kernel -> browser
    active = t.Bool(True, help="the session accepts input").tag(sync=True)
    input_mode = t.Unicode("mic", help="'mic' or 'wav' (the mic button is disabled for WAV input)").tag(sync=True)
    lang = t.Unicode("both", help="labels: 'ja', 'en' or 'both'").tag(sync=True)
    tokens: t.List[Any] = t.List(help="[frame, text, t_received] of the latest text pieces").tag(sync=True)
    status = t.Unicode("").tag(sync=True)
    stats = t.Dict(help="kernel-side counters: frames_in, user_rms, frames_done, params, from_frame").tag(sync=True)
    error = t.Unicode("").tag(sync=True)
    jitter_ms = t.Int(160, help="speaker jitter buffer: audio held before playback starts").tag(sync=True)
    max_jitter_ms = t.Int(480, help="the buffer grows by 40 ms per underrun up to this").tag(sync=True)
    # both ways
    muted = t.Bool(False, help="send silence instead of the microphone (the model keeps running)").tag(sync=True)
    volume = t.Float(1.0, min=0.0, max=1.0).tag(sync=True)
    speaker_muted = t.Bool(False).tag(sync=True)
    echo_cancellation = t.Bool(False).tag(sync=True)
    noise_suppression = t.Bool(False).tag(sync=True)
    auto_gain_control = t.Bool(False).tag(sync=True)
    # browser -> kernel
    mic_on = t.Bool(False).tag(sync=True)
    mic_problem = t.Unicode(
        "", help="why the browser gives no microphone ('no_mic_api', or the getUserMedia error); '' if none"
    ).tag(sync=True)
    browser_stats = t.Dict(help="frames_sent, samples_played, underruns, buffered_ms, latency_ms").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._frame_handlers: list[FrameHandler] = []
        self._end_handlers: list[EndHandler] = []
        self._wav_handlers: list[WavHandler] = []
        self.frames_received = 0
        self.bad_messages = 0
        self.on_msg(self._on_custom)

    # ---- browser -> kernel -----------------------------------------------------------------------
    def on_frame(self, handler: FrameHandler) -> None:
        """Call ``handler(seq, pcm)`` for every microphone frame (float32, 1920 samples at 24 kHz)."""
        self._frame_handlers.append(handler)

    def on_end(self, handler: EndHandler) -> None:
        """Call ``handler()`` when the user presses the panel's End button."""
        self._end_handlers.append(handler)

    def on_wav(self, handler: WavHandler) -> None:
        """Call ``handler(name, data)`` when the user picks a WAV file (``data``: its bytes) or types a
        path on the kernel's machine (``data`` None): the input where no microphone can be used."""
        self._wav_handlers.append(handler)

    def _on_custom(self, _widget: object, content: dict[str, Any], buffers: list[Any]) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "frame" and buffers:
            pcm = np.frombuffer(bytes(buffers[0]), dtype=np.float32)
            if pcm.shape != (FRAME_SIZE,):
                self.bad_messages += 1
                log.warning("microphone frame of %d samples ignored (expected %d)", pcm.size, FRAME_SIZE)
                return
            self.frames_received += 1
            seq = int(content.get("seq", -1))
            for handler in self._frame_handlers:
                handler(seq, pcm)
        elif kind == "end":
            for end in self._end_handlers:
                end()
        elif kind == "wav" and buffers:
            data = bytes(buffers[0])
            name = str(content.get("name") or "upload.wav")
            if len(data) > MAX_WAV_BYTES:
                self.error = f"{name}: {len(data) / 2**20:.0f} MiB is too large (at most {MAX_WAV_BYTES >> 20} MiB)"
                return
            for wav in self._wav_handlers:
                wav(name, data)
        elif kind == "wav_path" and content.get("path"):
            for wav in self._wav_handlers:
                wav(str(content["path"]), None)
        elif kind == "ping":
            self.send({"type": "pong", "id": content.get("id"), "t": content.get("t")})
        else:
            self.bad_messages += 1

    # ---- kernel -> browser -----------------------------------------------------------------------
    def send_audio(self, pcm: np.ndarray) -> None:
        """Queue model audio (24 kHz mono) for playback in every open view."""
        data = np.ascontiguousarray(pcm, dtype=np.float32)
        if data.size:
            self.send({"type": "audio", "n": int(data.size)}, buffers=[data.tobytes()])

    def frame_done(self, seq: int) -> None:
        """Tell the browser the server finished its frame ``seq`` (its mic-to-model latency probe)."""
        self.send({"type": "done", "seq": seq})

    def stop_mic(self) -> None:
        """Release the microphone in every view (the session ended)."""
        self.send({"type": "stop_mic"})
