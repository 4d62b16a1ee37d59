"""The notebook session's kernel side, against a real LocalServer on 127.0.0.1 with the tiny model.

The browser is simulated at the comm boundary: microphone frames go in through the widget's
custom-message handler (exactly what anywidget delivers) and everything the kernel sends to the
browser is captured from ``widget.send``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jmoshi_nb.core.audio import FRAME_SIZE, frames, read_wav
from jmoshi_nb.core.config import ConfigError, Sampling, SessionConfig, load_config
from jmoshi_nb.notebook.session import NotebookSession, start
from jmoshi_nb.serve.backends import LocalServer


@pytest.fixture(scope="module")
def server(engine: Any) -> Iterator[LocalServer]:
    engine.reset(Sampling(), 42)  # the shared engine may carry another test's settings: the server's defaults
    with LocalServer(engine=engine) as srv:
        yield srv


@pytest.fixture()
def session(server: LocalServer) -> Iterator[NotebookSession]:
    s = start(url=server.url, config=SessionConfig(model="tiny", seed=42), update_hz=20)
    yield s
    s.stop()


class Browser:
    """Stands in for the page: feeds mic frames to the widget, keeps what the kernel sends back."""

    def __init__(self, session: NotebookSession) -> None:
        self.panel = session.talk()
        self.widget = self.panel.audio
        self.sent: list[tuple[dict[str, Any], list[bytes]]] = []
        self.widget.send = lambda content, buffers=None: self.sent.append((content, list(buffers or [])))
        self.seq = 0

    def speak(self, pcm: np.ndarray) -> int:
        n = 0
        for frame in frames(pcm):
            self.widget._on_custom(self.widget, {"type": "frame", "seq": self.seq}, [frame.tobytes()])
            self.seq += 1
            n += 1
        return n

    def messages(self, kind: str) -> list[tuple[dict[str, Any], list[bytes]]]:
        return [(c, b) for c, b in self.sent if c.get("type") == kind]

    def audio(self) -> np.ndarray:
        chunks = [np.frombuffer(b[0], dtype=np.float32) for _, b in self.messages("audio")]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def wait_until(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.02)


def test_mic_frames_in_model_audio_out(session: NotebookSession, speech_pcm: np.ndarray) -> None:
    browser = Browser(session)
    n = browser.speak(speech_pcm[: 30 * FRAME_SIZE])
    wait_until(lambda: session.stats()["frames_done"] >= n)
    wait_until(lambda: len(browser.messages("done")) >= n // 4 - 1)

    rec = session.recording
    assert session.mic_frames == n
    delay = rec.meta.get("opus_delay_samples", 0)  # the recording sits on the model's frame grid
    assert np.allclose(rec.user_pcm[delay : delay + n * FRAME_SIZE], speech_pcm[: n * FRAME_SIZE])
    stats = session.stats()
    assert stats["frames_in"] == n and stats["user_rms"] > 0.01
    # Model audio went to the browser as float32 buffers, as much as the client decoded.
    played = browser.audio()
    assert played.size > 0 and np.abs(played).max() > 0
    assert played.size == session.stats()["model_samples"]
    # Every frame the server finished is reported back under the browser's own sequence number.
    seqs = [c["seq"] for c, _ in browser.messages("done")]
    assert seqs == sorted(seqs) and set(seqs) <= set(range(0, n, 4))


def test_slider_change_reaches_server_and_recording(
    session: NotebookSession, speech_pcm: np.ndarray, tmp_path: Path
) -> None:
    browser = Browser(session)
    first = browser.speak(speech_pcm[: 10 * FRAME_SIZE])
    wait_until(lambda: session.stats()["frames_done"] >= first)

    browser.panel.sliders["temp"].value = 0.3  # what the browser's slider does to the kernel-side model
    browser.panel.sliders["seed"].value = 7
    n = first + browser.speak(speech_pcm[10 * FRAME_SIZE : 20 * FRAME_SIZE])
    wait_until(lambda: session.stats()["frames_done"] >= n)

    rec = session.recording
    # Both changes land before the next frame, so the server applies them together.
    assert all(p["params"]["temp"] == 0.3 for p in rec.params) and rec.params[-1]["seed"] == 7
    from_frame = rec.params[0]["from_frame"]
    assert first <= from_frame < n
    temps = {m["frame"]: m["params"]["temp"] for m in rec.metrics}
    assert all(temps[f] == 0.8 for f in temps if f < from_frame)
    assert all(temps[f] == 0.3 for f in temps if f > rec.params[-1]["from_frame"])
    assert session.stats()["params"]["temp"] == 0.3 and session.stats()["seed"] == 7

    # session.config reflects the sliders and round-trips through a file.
    cfg = session.config
    assert cfg.sampling.temp == 0.3 and cfg.seed == 7
    assert load_config(cfg.save(tmp_path / "calm.yaml")).sampling == cfg.sampling

    # The change is drawn on the live plots.
    plots = browser.panel.plots
    wait_until(lambda: plots is not None and len(plots.params_labels.text) > 0)
    assert plots is not None and "temp=0.3" in str(plots.params_labels.text[-1])


def test_set_params_from_code_moves_sliders_and_validates(session: NotebookSession) -> None:
    panel = session.talk()
    new = session.set_params(top_k_text=5)
    assert new.top_k_text == 5 and panel.sliders["top_k_text"].value == 5
    with pytest.raises(ConfigError, match="top_k"):
        session.set_params(top_k=100_000)  # above the tiny model's 256 codes
    assert session.sampling.top_k == 250
    panel.sliders["temp_text"].value = 0.0
    assert session.sampling.temp_text == 0.0 and panel.audio.error == ""


def test_wav_input_without_microphone(session: NotebookSession, speech_path: Path) -> None:
    browser = Browser(session)
    panel = session.talk(input=str(speech_path), realtime=True)
    assert panel is browser.panel and panel.audio.input_mode == "wav"
    # One input at a time: microphone frames are dropped and a second WAV is refused while it plays.
    browser.speak(np.ones(3 * FRAME_SIZE, np.float32))
    with pytest.raises(RuntimeError, match="already playing"):
        session.play_wav(speech_path)
    rec = session.wait(timeout=60)
    assert session.mic_frames == 0
    assert len(rec.metrics) == -(-read_wav(speech_path).size // FRAME_SIZE)
    assert rec.meta["inputs"][0]["input"] == str(speech_path)
    wait_until(lambda: panel.audio.tokens and panel.plots.updates > 0)
    assert browser.audio().size > 0


def test_stop_keeps_the_recording(server: LocalServer, speech_pcm: np.ndarray, tmp_path: Path) -> None:
    with start(url=server.url) as s:
        s.play_wav(speech_pcm[: 8 * FRAME_SIZE], realtime=False, wait=True)
        panel = s.talk()
    assert not s.running
    rec = s.stop()  # idempotent
    assert rec is s.recording and len(rec.metrics) == 8
    assert rec.meta["notebook"]["backend"] == "url"
    assert panel.audio.active is False and all(w.disabled for w in panel.sliders.values())
    folder = s.save(tmp_path / "run")
    assert (folder / "audio.wav").exists()
    with pytest.raises(RuntimeError, match="stopped"):
        s.talk()


def test_ping_is_answered_at_once(session: NotebookSession) -> None:
    browser = Browser(session)
    browser.widget._on_custom(browser.widget, {"type": "ping", "id": "a", "t": 12.5}, [])
    assert browser.messages("pong") == [({"type": "pong", "id": "a", "t": 12.5}, [])]


def test_start_with_tiny_backend_and_config_file(tmp_path: Path, speech_pcm: np.ndarray) -> None:
    path = SessionConfig(model="tiny", seed=3).save(tmp_path / "c.yaml")
    with start("tiny", config=path) as s:
        assert s.info["model"] and s.config.seed == 3
        s.play_wav(speech_pcm[: 4 * FRAME_SIZE], realtime=False, wait=True)
    assert len(s.recording.metrics) == 4


def test_second_session_warns_and_busy_server_refuses(server: LocalServer, session: NotebookSession) -> None:
    from jmoshi_nb.serve.client import ServerError

    with pytest.warns(UserWarning, match="still running"), pytest.raises(ServerError, match="busy"):
        start(url=server.url, connect_timeout=10)  # one conversation per server: refused, cleanly
    assert session.running


def test_no_seed_draws_one_and_keeps_it(server: LocalServer, speech_pcm: np.ndarray) -> None:
    with start(url=server.url, config=SessionConfig(model="tiny", seed=None)) as s:
        s.play_wav(speech_pcm[: 3 * FRAME_SIZE], realtime=False, wait=True)
    seed = s.recording.meta["seed"]
    assert isinstance(seed, int) and s.config.seed == seed
    assert {m["seed"] for m in s.recording.metrics} == {seed}


def test_model_and_revision_arguments_name_the_model(server: LocalServer) -> None:
    """start(backend="modal", model="j-moshi-ext") style: the config carries the model asked for."""
    s = start(url=server.url, config=SessionConfig(seed=1), model="j-moshi", revision="abc123")
    try:
        assert s.config.model == "j-moshi" and s.config.revision == "abc123" and s.config.seed == 1
    finally:
        s.stop()
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        start(url=server.url, model="nope")


# ---- Run All in microphone mode, the End button, and a WAV where no microphone can be used -----------
def test_finish_leaves_a_microphone_session_live_until_end_is_pressed(
    session: NotebookSession, speech_pcm: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    browser = Browser(session)
    assert session.finish() is None  # Run All reaches the stop cell: the conversation goes on
    assert "■ 終了 / End" in capsys.readouterr().out
    assert session.running
    n = browser.speak(speech_pcm[: 12 * FRAME_SIZE])
    wait_until(lambda: session.stats()["frames_done"] >= n)
    browser.widget._on_custom(browser.widget, {"type": "end"}, [])  # the user presses End
    wait_until(lambda: not session.running and browser.panel.audio.active is False)
    rec = session.finish()  # the stop cell, run again
    assert rec is not None and len(rec.metrics) == n and not rec.empty
    assert "run the cells below" in browser.panel.audio.status
    assert session.stop() is rec


def test_finish_waits_for_a_wav_input(session: NotebookSession, speech_path: Path) -> None:
    session.talk(input=str(speech_path), realtime=False)
    rec = session.finish()
    assert rec is not None and not session.running
    assert len(rec.metrics) * FRAME_SIZE >= len(read_wav(speech_path))


def test_a_wav_chosen_in_the_panel_is_the_input_where_no_microphone_exists(
    session: NotebookSession, speech_path: Path, tmp_path: Path
) -> None:
    browser = Browser(session)
    widget = browser.widget
    widget.mic_problem = "no_mic_api"  # what the page reports in VS Code's notebook view
    widget._on_custom(widget, {"type": "wav", "name": "broken.wav"}, [b"not audio"])
    assert "broken.wav" in widget.error and session.running  # named, and nothing else changes
    widget._on_custom(widget, {"type": "wav_path", "path": str(tmp_path / "missing.wav")}, [])
    assert "missing.wav" in widget.error
    widget._on_custom(widget, {"type": "wav", "name": "ja.wav"}, [speech_path.read_bytes()])
    assert widget.error == "" and widget.input_mode == "wav" and session.input == "ja.wav"
    rec = session.finish()
    assert rec is not None and len(rec.metrics) * FRAME_SIZE >= len(read_wav(speech_path))
    assert rec.meta["inputs"][0]["sha256"]


# ---- the shadow setting: a second slot fed the same microphone ---------------------------------------
def test_a_shadow_conversation_hears_the_same_microphone_with_its_own_setting(
    tiny_path: Path, speech_pcm: np.ndarray, tmp_path: Path
) -> None:
    from jmoshi_nb.model.batch_engine import BatchEngine

    engine = BatchEngine.load("tiny", slots=2, seed=42)
    with LocalServer(engine=engine) as srv:
        s = start(url=srv.url, config=SessionConfig(model="tiny", seed=42), update_hz=20, out=tmp_path / "rec")
        try:
            calm = SessionConfig(model="tiny", seed=7, sampling=Sampling(temp=0.3, temp_text=0.3))
            browser = Browser(s)  # the panel, before the shadow joins it
            s.talk(shadow=calm)
            assert s.panel is not None and s.panel.hear.value == "main"
            n = browser.speak(speech_pcm[: 12 * FRAME_SIZE])
            shadow = s.shadow_recording
            assert shadow is not None
            wait_until(lambda: len(s.recording.metrics) >= n and len(shadow.metrics) >= n, timeout=60)
            assert s.audio_samples_sent["main"] > 0 and s.audio_samples_sent["shadow"] == 0  # the main is heard
            s.hear("shadow")  # what the panel's toggle does
            assert s.panel.hear.value == "shadow"
            n2 = browser.speak(speech_pcm[12 * FRAME_SIZE : 20 * FRAME_SIZE])
            wait_until(lambda: len(shadow.metrics) >= n + n2 and s.audio_samples_sent["shadow"] > 0, timeout=60)
            main = s.stop()
        finally:
            s.stop()
    # Both heard exactly the same input; each answered with its own setting.
    assert len(main.metrics) == len(shadow.metrics) == n + n2
    delay = main.meta.get("opus_delay_samples", 0)
    np.testing.assert_array_equal(main.user_pcm[delay:], shadow.user_pcm[delay:])
    assert {m["params"]["temp"] for m in shadow.metrics} == {0.3}
    assert {m["params"]["temp"] for m in main.metrics} == {0.8}
    assert shadow.meta["seed"] == 7 and shadow.meta["shadow"] is True
    assert (tmp_path / "rec" / "shadow" / "session.json").exists()  # both recorded
    with pytest.raises(ValueError, match="one of main, shadow"):
        s.hear("both")


def test_a_shadow_needs_a_server_with_room_for_two(session: NotebookSession) -> None:
    session.talk()
    with pytest.raises(RuntimeError, match="max_sessions=2"):
        session.talk(shadow=SessionConfig(model="tiny", seed=7))


def test_frame_latency_pairs_each_result_with_the_oldest_frame_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    from jmoshi_nb.notebook import conversation

    clock = iter([10.0, 10.1, 10.2, 10.5, 10.9])  # sent 0, 1, 2; results at 10.5 and 10.9
    monkeypatch.setattr(conversation.time, "monotonic", lambda: next(clock))
    latency = conversation.FrameLatency()
    assert latency.finished() is None and latency.median_ms() is None  # nothing in flight
    latency.sent(0, seq=7)
    latency.sent(1)  # a WAV frame: no browser sequence number
    latency.sent(2, seq=9)
    latency.dropped(1)  # the server skipped frame 1: its result never comes
    assert latency.finished() == 7 and latency.finished() == 9
    assert latency.round_trips_ms == pytest.approx([500.0, 700.0]) and latency.median_ms() == pytest.approx(600.0)
