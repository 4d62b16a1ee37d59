"""``TalkWidget``: the browser half of a conversation (microphone, speaker, text), on anywidget.

The ESM (``talk.js``) captures the microphone with an AudioWorklet (``capture-worklet.js``), cuts it
into frames of ``FRAME_SIZE`` samples at ``SAMPLE_RATE`` and sends each as a binary buffer of float32
on the widget's comm; model audio comes back the same way and plays through a second worklet
(``player-worklet.js``) with a small jitter buffer. The audio format, the worklet sources and the
label texts all come from here as synced traits. This class only moves bytes: the session
(``jmoshi_nb.notebook.session``) decides what to do with them.

Handlers registered with ``on_frame`` run on whichever kernel thread delivers comm messages (the
shell thread, or a subshell thread with JupyterLab 4 + ipykernel 7): keep them short and hand the
work over to an event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import traitlets as t

from ...core.audio import FRAME_SIZE, SAMPLE_RATE
from ...core.labels import Bilingual
from ...serve.pages import worklet_sources
from .labelled import LabelledWidget

log = logging.getLogger("jmoshi_nb.notebook.widgets")

FrameHandler = Callable[[int, np.ndarray], None]
EndHandler = Callable[[], None]
WavHandler = Callable[[str, bytes | None], None]  # (file name or kernel-side path, file bytes or None)
MAX_WAV_BYTES = 64 * 1024 * 1024  # an uploaded input file: about 11 minutes of 48 kHz 16-bit stereo


TALK_LABELS: dict[str, Bilingual] = {
    "mic_on": ("● マイク開始", "Start mic"),
    "mic_off": ("■ マイク停止", "Stop mic"),
    "mute": ("マイクをミュート", "Mute mic"),
    "unmute": ("ミュート解除", "Unmute mic"),
    "speaker": ("▶ スピーカー開始", "Start speaker"),
    "volume": ("音量", "Volume"),
    "aec": ("エコー除去", "Echo cancel"),
    "ns": ("ノイズ抑制", "Noise supp."),
    "agc": ("自動ゲイン", "Auto gain"),
    "wav_input": ("入力: WAV", "Input: WAV"),
    "end": ("■ 終了", "End"),
    "no_mic": ("マイクが使えません", "No microphone"),
    "no_mic_api": (
        "この表示ではブラウザのマイクを使えません（VS Code のノートブック、http の非 localhost ページなど）",
        "this view offers no browser microphone (VS Code's notebook view, a non-localhost http page...)",
    ),
    "mic_denied": ("許可されていません", "permission denied"),
    "mic_missing": ("入力デバイスがありません", "no input device"),
    "mic_unfit": ("この設定に合うデバイスがありません", "no device fits the settings"),
    "mic_unreadable": ("デバイスを開けません", "the device cannot be opened"),
    "use_wav": ("代わりに WAV ファイルを入力にできます", "Use a WAV file as the input instead"),
    "wav_path": ("またはカーネル側のファイルパス", "or a file path on the kernel's machine"),
    "play": ("▶ 再生", "Play"),
    "text": ("モデルの発話テキスト", "Model text"),
    "sent": ("送信", "sent"),
    "played": ("再生", "played"),
    "buffer": ("バッファ", "buffer"),
    "latency": ("遅延", "latency"),
    "underruns": ("途切れ", "underruns"),
}


class TalkWidget(LabelledWidget, assets="talk"):
    """Microphone on/off, mute, volume, the model's text and live counters, in one bar."""

    LABELS = TALK_LABELS

    # kernel -> browser
    sample_rate = t.Int(SAMPLE_RATE, read_only=True, help="Hz, of every buffer either way").tag(sync=True)
    frame_size = t.Int(FRAME_SIZE, read_only=True, help="samples in each microphone frame").tag(sync=True)
    worklets = t.Dict(help="{capture, player}: the AudioWorklet sources, loaded as Blob URLs").tag(sync=True)
    active = t.Bool(True, help="the session accepts input").tag(sync=True)
    input_mode = t.Unicode("mic", help="'mic' or 'wav' (the mic button is disabled for WAV input)").tag(sync=True)
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

    @t.default("worklets")
    def _read_worklets(self) -> dict[str, str]:
        return worklet_sources()

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
        """Call ``handler(seq, pcm)`` for every microphone frame (float32, FRAME_SIZE samples at SAMPLE_RATE)."""
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
        """Queue model audio (``SAMPLE_RATE`` mono) for playback in every open view."""
        data = np.ascontiguousarray(pcm, dtype=np.float32)
        if data.size:
            self.send({"type": "audio", "n": int(data.size)}, buffers=[data.tobytes()])

    def frame_done(self, seq: int) -> None:
        """Tell the browser the server finished its frame ``seq`` (its mic-to-model latency probe)."""
        self.send({"type": "done", "seq": seq})

    def stop_mic(self) -> None:
        """Release the microphone in every view (the session ended)."""
        self.send({"type": "stop_mic"})
