"""The talk widget, live plots and the kit's Jupyter config, without a browser.

The AudioWorklet files (microphone framing/resampling, speaker jitter buffer) run under Node when it
is installed, with the few AudioWorklet globals stubbed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jmoshi_nb.core.audio import FRAME_SIZE, SAMPLE_RATE
from jmoshi_nb.core.labels import bilingual, label_texts
from jmoshi_nb.core.recording import Recording
from jmoshi_nb.core.text import display_width
from jmoshi_nb.notebook.live_plots import TITLE_MIN_PX, LivePlots, describe_params
from jmoshi_nb.notebook.widgets import ListeningWidget, TalkPanel, TalkWidget
from jmoshi_nb.notebook.widgets.listening import LISTENING_LABELS
from jmoshi_nb.notebook.widgets.talk_widget import TALK_LABELS
from jmoshi_nb.research.listening import ListeningTest

WIDGETS = Path(__file__).resolve().parents[1] / "jmoshi_nb" / "notebook" / "widgets"


# ---- the Python side of the widget ---------------------------------------------------------------
def test_widget_assets_and_defaults() -> None:
    w = TalkWidget()
    assert "createObjectURL" in w._esm and ".jmoshi-talk" in w._css
    # The worklets travel as sources (the page makes Blob URLs of them), the audio format as numbers.
    assert 'registerProcessor("jmoshi-capture"' in w.worklets["capture"]
    assert 'registerProcessor("jmoshi-player"' in w.worklets["player"]
    assert (w.sample_rate, w.frame_size) == (SAMPLE_RATE, FRAME_SIZE)
    assert not re.search(r"\b(24000|1920|0\.08)\b", w._esm)  # the JS repeats none of them
    # Research defaults: the browser's voice processing is off unless asked for.
    assert (w.echo_cancellation, w.noise_suppression, w.auto_gain_control) == (False, False, False)
    synced = {name for name in w.trait_names() if w.trait_metadata(name, "sync")}
    assert {"muted", "volume", "tokens", "stats", "browser_stats", "mic_on", "active"} <= synced
    assert {"sample_rate", "frame_size", "worklets", "labels"} <= synced


def test_one_label_picker() -> None:
    assert [bilingual("開始", "Start", lang) for lang in ("ja", "en", "both")] == ["開始", "Start", "開始 / Start"]
    assert label_texts({"a": ("音声", "Clip"), "b": ("はい", "yes")}, "en") == {"a": "Clip", "b": "yes"}


def _listening_widget() -> ListeningWidget:
    return ListeningWidget(ListeningTest.__new__(ListeningTest))  # no test loaded: the labels only


@pytest.mark.parametrize(
    ("make", "table", "js"),
    [(TalkWidget, TALK_LABELS, "talk.js"), (_listening_widget, LISTENING_LABELS, "listening.js")],
)
def test_widgets_get_their_labels_from_python(
    make: Callable[[], TalkWidget | ListeningWidget], table: dict[str, tuple[str, str]], js: str
) -> None:
    w = make()
    assert w.lang == "both" and w.labels == label_texts(table, "both")
    w.lang = "en"  # a new language: the browser gets the new texts (it re-renders on change:labels)
    assert w.labels == label_texts(table, "en")
    w.lang = "ja"
    assert w.labels == label_texts(table, "ja")
    source = (WIDGETS / js).read_text(encoding="utf-8")
    # The JS looks up keys that have texts, has a use for every text, and holds no Japanese itself.
    looked_up = set(re.findall(r'\bL\("(\w+)"\)', source))
    assert looked_up and looked_up <= set(table)
    assert all(f'"{key}"' in source for key in table), [k for k in table if f'"{k}"' not in source]
    assert not re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", source)


def test_frames_from_the_browser_reach_handlers() -> None:
    w = TalkWidget()
    got: list[tuple[int, np.ndarray]] = []
    w.on_frame(lambda seq, pcm: got.append((seq, pcm)))
    frame = np.linspace(-1, 1, FRAME_SIZE, dtype=np.float32)
    w._on_custom(w, {"type": "frame", "seq": 5}, [memoryview(frame.tobytes())])
    w._on_custom(w, {"type": "frame", "seq": 6}, [np.zeros(100, np.float32).tobytes()])  # wrong size
    w._on_custom(w, {"type": "nonsense"}, [])
    assert len(got) == 1 and got[0][0] == 5 and np.array_equal(got[0][1], frame)
    assert (w.frames_received, w.bad_messages) == (1, 2)


def test_model_audio_goes_out_as_float32() -> None:
    w = TalkWidget()
    sent: list[tuple[dict[str, Any], list[bytes]]] = []
    w.send = lambda content, buffers=None: sent.append((content, buffers or []))  # type: ignore[method-assign]
    pcm = np.array([0.5, -0.25, 0.0], dtype=np.float64)
    w.send_audio(pcm)
    w.send_audio(np.zeros(0))
    assert len(sent) == 1 and sent[0][0] == {"type": "audio", "n": 3}
    assert np.array_equal(np.frombuffer(sent[0][1][0], np.float32), pcm.astype(np.float32))


def test_panel_sliders_call_back_and_show_errors() -> None:
    from jmoshi_nb.core.config import ConfigError, Sampling

    calls: list[dict[str, Any]] = []

    def on_change(changes: dict[str, Any]) -> None:
        if changes.get("top_k") == 3:
            raise ConfigError("top_k=3 refused")
        calls.append(changes)

    panel = TalkPanel(Sampling(), 42, on_change, card=256, text_card=256, plots=False)
    panel.sliders["temp"].value = 0.5
    panel.sliders["top_k"].value = 3
    assert calls == [{"temp": 0.5}] and panel.audio.error == "top_k=3 refused"
    panel.show_params(Sampling(temp=1.2), 9)  # from code: moves sliders, no callback
    assert panel.values()["temp"] == 1.2 and panel.values()["seed"] == 9 and len(calls) == 1
    assert panel.sliders["top_k"].max == 256
    assert {"jmoshi-slider-temp", "jmoshi-slider-top-k-text"} <= {
        c for w in panel.sliders.values() for c in w._dom_classes
    }


# ---- live plots ----------------------------------------------------------------------------------
def _recording(frames: int) -> Recording:
    rec = Recording()
    rec.session = {"sampling": {"temp": 0.8, "temp_text": 0.7, "top_k": 250, "top_k_text": 25}, "seed": 42}
    for i in range(frames):
        rec.add_user(np.full(FRAME_SIZE, 0.1, np.float32))
        rec.add_model(np.full(FRAME_SIZE, -0.2, np.float32))
        rec.add_metrics({"frame": i, "encode_ms": 5.0, "lm_ms": 20.0, "decode_ms": 4.0, "total_ms": 29.0})
        rec.add_text(i, 100 + i, "あ" if i % 2 else "")
    rec.add_params(100, {"temp": 0.3, "temp_text": 0.7, "top_k": 250, "top_k_text": 25}, 42)
    return rec


def test_live_plots_window_text_and_params() -> None:
    plots = LivePlots(window_s=10.0)
    rec = _recording(300)  # 24 s
    plots.update(rec)
    # The window pages forward a quarter at a time: 24 s of data shows as 15-25 s.
    assert plots.x_scale.max == pytest.approx(25.0) and plots.x_scale.min == pytest.approx(15.0)
    assert plots.ms_lines.x.min() >= 15.0 and plots.ms_lines.y.shape[0] == 4
    assert plots.user_wave.y.max() == pytest.approx(1.1) and plots.model_wave.y.min() == pytest.approx(-1.2)
    # Pieces are merged into phrases (no pause between them here); every phrase has a tick mark.
    assert all(set(t) == {"あ"} and len(t) > 1 for t in plots.text_mark.text)
    assert len(plots.text_ticks.x) >= len(plots.text_mark.x)
    assert_labels_do_not_overlap(plots)
    # The change at frame 100 (8 s) is outside the 15-25 s window; it was consumed with its label.
    assert plots._params == [(100, "temp=0.3")] and plots.ms_params.visible is False
    plots.window_s = 20.0
    plots.update(rec)
    assert plots.ms_params.visible is True and list(plots.params_labels.text) == ["temp=0.3"]


def assert_labels_do_not_overlap(plots: LivePlots) -> None:
    rows: dict[float, list[tuple[float, str]]] = {}
    for x, y, text in zip(plots.text_mark.x, plots.text_mark.y, plots.text_mark.text, strict=True):
        rows.setdefault(float(y), []).append((float(x), str(text)))
    for labels in rows.values():
        labels.sort()
        for (x0, t0), (x1, _) in zip(labels, labels[1:], strict=False):
            assert x0 + plots._label_s(t0) <= x1 + 1e-9, f"{t0!r} at {x0} runs into the label at {x1}"


def _spoken(phrases: list[tuple[int, str]], frames: int) -> Recording:
    """A recording whose model says each phrase one character a frame from its start frame."""
    rec = _recording(frames)
    rec.text = []
    for start, phrase in phrases:
        for i, ch in enumerate(phrase):
            rec.add_text(start + i, 100, ch)
    return rec


def test_live_text_is_merged_into_phrases_at_pauses() -> None:
    rec = _spoken([(10, "こんにちは"), (30, "元気ですか"), (36, "はい")], 60)
    plots = LivePlots(window_s=10.0)
    plots.update(rec)
    # "元気ですか" ends at frame 34; "はい" starts 2 frames later: no pause, one phrase.
    assert list(plots.text_mark.text) == ["こんにちは", "元気ですかはい"]
    assert list(plots.text_mark.x) == pytest.approx([0.8, 2.4])


def test_live_text_is_thinned_at_full_range_and_in_narrow_columns() -> None:
    """A minute of dense speech on a narrow plot: labels never overlap, the rest are tick marks."""
    rec = _spoken([(f, "今日はいい天気ですね") for f in range(0, 740, 14)], 750)
    plots = LivePlots(window_s=60.0, plot_px=400)
    plots.update(rec)
    n_phrases = len(plots._phrases.phrases)
    assert 0 < len(plots.text_mark.text) < n_phrases == len(plots.text_ticks.x)
    assert_labels_do_not_overlap(plots)
    wide = LivePlots(window_s=60.0, plot_px=1600)
    wide.update(rec)
    assert len(wide.text_mark.text) > len(plots.text_mark.text)  # more room, more labels
    assert_labels_do_not_overlap(wide)


@pytest.mark.parametrize("plot_px", [850.0, 425.0, 283.0])
def test_titles_fit_their_plot(plot_px: float) -> None:
    plots = LivePlots(plot_px=plot_px)
    for fig in (plots.fig_text, plots.fig_compute, plots.fig_wave):
        size = int(fig.title_style["font-size"].removesuffix("px"))
        assert display_width(fig.title) * size <= 0.95 * plot_px or size == TITLE_MIN_PX
        assert "予算 80" in plots.fig_compute.title and "80 budget" in plots.fig_compute.title


def test_live_plots_update_is_cheap() -> None:
    plots = LivePlots()
    rec = _recording(250)
    plots.update(rec)
    for _ in range(20):
        rec.add_user(np.zeros(FRAME_SIZE, np.float32))
        plots.update(rec)
    assert np.median(plots.update_ms) < 30.0  # without a frontend; ~1-3 ms measured


def test_describe_params_names_what_changed() -> None:
    entry = {"params": {"temp": 0.3, "top_k": 250}, "seed": 7}
    assert describe_params(entry, {"params": {"temp": 0.8, "top_k": 250}, "seed": 42}) == "temp=0.3 seed=7"
    assert describe_params(entry) == "temp=0.3 top_k=250 seed=7"
    assert describe_params(entry, entry) == "(same)"


# ---- the worklets, under Node --------------------------------------------------------------------
NODE_HARNESS = r"""
// argv: the capture worklet, the player worklet (ES modules, as the page loads them), {rate, frame}.
const [capturePath, playerPath, format] = process.argv.slice(1);
const { rate, frame } = JSON.parse(format);
const posted = [];
globalThis.AudioWorkletProcessor = class {
  constructor() { this.port = { postMessage: (m) => posted.push(m) }; }
};
const procs = {};
globalThis.registerProcessor = (name, cls) => { procs[name] = cls; };
const out = {};

// Microphone at 48 kHz -> frames at the model's rate.
globalThis.sampleRate = 48000;
await import(capturePath);
const cap = new procs["jmoshi-capture"]({ processorOptions: { frameSize: frame, targetRate: rate } });
let n = 0;
for (let b = 0; b < 375; b++) {  // 1 s in 128-sample render quanta
  const x = new Float32Array(128);
  for (let i = 0; i < 128; i++, n++) x[i] = Math.sin(2 * Math.PI * 440 * n / 48000);
  cap.process([[x]]);
}
out.frames = posted.length;
out.frameSizes = [...new Set(posted.map((f) => f.length))];
const all = posted.flatMap((f) => [...f]);
let crossings = 0;
for (let i = 1; i < all.length; i++) if (all[i - 1] < 0 && all[i] >= 0) crossings++;
out.crossingsPerSecond = crossings * rate / all.length;

// Speaker: the model's audio into a 48 kHz context, 160 ms jitter buffer.
posted.length = 0;
await import(playerPath);
const options = { processorOptions: { sourceRate: rate, jitterMs: 160, maxJitterMs: 480, maxMs: 1500 } };
const player = new procs["jmoshi-player"](options);
const render = (quanta) => {
  let s = 0;
  for (let q = 0; q < quanta; q++) {
    const o = [[new Float32Array(128)]];
    player.process([], o);
    s += o[0][0].reduce((a, v) => a + Math.abs(v), 0);
  }
  return s;
};
player.port.onmessage({ data: { type: "audio", pcm: new Float32Array(frame).fill(0.5) } });  // 80 ms: below the buffer
out.silentWhileBuffering = render(10) === 0;
for (let k = 0; k < 2; k++) {  // 240 ms: over the buffer, plays
  player.port.onmessage({ data: { type: "audio", pcm: new Float32Array(frame).fill(0.5) } });
}
out.energyOnceBuffered = render(10) > 0;
render(200);  // runs dry
const last = posted[posted.length - 1];
out.played = last.played; out.received = last.received; out.underruns = last.underruns;
out.jitterAfterUnderrun = last.jitter_ms;
console.log(JSON.stringify(out));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed: worklet code not exercised")
def test_worklets_frame_resample_and_buffer(tmp_path: Path) -> None:
    modules = []
    sources = TalkWidget().worklets  # the worklet sources the page gets (with the shared resampler)
    for name in ("capture", "player"):  # .mjs: node loads them as ES modules, like the page
        modules.append(tmp_path / f"{name}-worklet.mjs")
        modules[-1].write_text(sources[name], encoding="utf-8")
    fmt = json.dumps({"rate": SAMPLE_RATE, "frame": FRAME_SIZE})
    result = subprocess.run(
        ["node", "--input-type=module", "-e", NODE_HARNESS, *map(str, modules), fmt],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["frames"] == 12 and out["frameSizes"] == [FRAME_SIZE]  # 1 s at 24 kHz = 12.5 frames
    assert out["crossingsPerSecond"] == pytest.approx(440, rel=0.01)  # pitch survives resampling
    assert out["silentWhileBuffering"] and out["energyOnceBuffered"]
    assert out["received"] == 3 * FRAME_SIZE and abs(out["played"] - 3 * FRAME_SIZE) <= 2 and out["underruns"] == 1
    assert out["jitterAfterUnderrun"] == pytest.approx(200)  # adaptive: +40 ms per underrun


# ---- the kit's Jupyter config --------------------------------------------------------------------
def test_nodelay_patch_sets_the_socket_option_first() -> None:
    import asyncio

    from jupyter_server.services.kernels.websocket import KernelWebsocketHandler

    from jmoshi_nb.notebook import jupyter_config

    original = KernelWebsocketHandler.open
    calls: list[Any] = []

    async def fake_open(self: Any, *args: Any, **kwargs: Any) -> str:
        calls.append(("open", kwargs))
        return "opened"

    KernelWebsocketHandler.open = fake_open  # type: ignore[method-assign]
    try:
        assert jupyter_config.patch_kernel_websocket() is True
        assert jupyter_config.patch_kernel_websocket() is False  # idempotent

        class Handler:
            def set_nodelay(self, value: bool) -> None:
                calls.append(("nodelay", value))

        result = asyncio.run(KernelWebsocketHandler.open(Handler(), kernel_id="k1"))  # type: ignore[arg-type]
        assert result == "opened" and calls == [("nodelay", True), ("open", {"kernel_id": "k1"})]
    finally:
        KernelWebsocketHandler.open = original  # type: ignore[method-assign]
    cfg = jupyter_config.config_dir()
    assert (cfg / "jupyter_server_config.py").read_text().count("jmoshi_nb.notebook.jupyter_config") == 1


def test_the_panel_builds_the_status_line() -> None:
    from jmoshi_nb.notebook.widgets.panel import status_text

    stats = {"frames_done": 25, "params": {}, "seed": 3, "from_frame": None, "frame_latency_ms": None}
    sampling = {"temp": 0.8, "temp_text": 0.7, "top_k": 250, "top_k_text": 25}
    line = status_text("tiny · cpu · tiny", stats, sampling)
    assert line.startswith("tiny · cpu · tiny · 2.0 s · ") and "temp=0.8" in line and line.endswith("seed=3")
    live = {**stats, "params": {**sampling, "temp": 0.5}, "from_frame": 12, "frame_latency_ms": 41.6}
    running = status_text("m", live, sampling)
    assert "temp=0.5" in running and "(frame 12~)" in running and running.endswith("server RT 42 ms")
    assert status_text("m", stats, sampling, stopped=True) == "m · 終了 / stopped · 2.0 s"
    assert status_text("m", stats, sampling, stopped=True, ended_by_panel=True).endswith("run the cells below")
