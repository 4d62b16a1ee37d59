"""Static plots: they render (Agg), Japanese uses a real Japanese font, the data lands where it should."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from jmoshi_nb.core.audio import FRAME_SIZE, SAMPLE_RATE  # noqa: E402
from jmoshi_nb.core.fonts import JAPANESE_FONT, font_file, use_japanese_font  # noqa: E402
from jmoshi_nb.core.recording import Recording  # noqa: E402
from jmoshi_nb.research.plots import plot_recording, plot_sweep_heatmap, plot_timeline  # noqa: E402
from jmoshi_nb.research.turn_taking import intervals_from_activity, turn_taking  # noqa: E402

SENTENCE = "もしもし、今日はいい天気ですね。"


@contextmanager
def glyph_warnings_are_errors() -> Iterator[None]:
    """Turn matplotlib's missing-glyph warnings (tofu) into test failures."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*Glyph.*")
        warnings.filterwarnings("error", message=".*missing from font.*")
        yield


def render(fig: Figure) -> bytes:
    buf = io.BytesIO()
    with glyph_warnings_are_errors():
        fig.savefig(buf, format="png", dpi=60)
    data = buf.getvalue()
    assert data.startswith(b"\x89PNG") and len(data) > 1000
    return data


def japanese_texts(fig: Figure) -> list[Text]:
    return [t for t in fig.findobj(Text) if any(ord(ch) > 0x3000 for ch in t.get_text())]


def tone(seconds: float, freq: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def make_recording(frames: int = 40) -> Recording:
    """A hand-built 3.2 s session: model and user audio, text, per-frame metrics, a parameter change."""
    rec = Recording()
    silence = np.zeros(FRAME_SIZE * frames, np.float32)
    model, user = silence.copy(), silence.copy()
    model[FRAME_SIZE * 5 : FRAME_SIZE * 20] = tone(15 * FRAME_SIZE / SAMPLE_RATE, 220)
    user[FRAME_SIZE * 22 : FRAME_SIZE * 30] = tone(8 * FRAME_SIZE / SAMPLE_RATE, 330, 0.2)
    rec.add_model(model)
    rec.add_user(user)
    for frame in range(frames):
        piece = SENTENCE[frame - 4] if 4 <= frame < 4 + len(SENTENCE) else ""
        token = None if frame == 0 else (100 + frame if piece else 3)
        slow = frame in (10, 11)  # two frames over the 80 ms budget
        rec.add_metrics({
            "frame": frame, "encode_ms": 5.0, "lm_ms": 90.0 if slow else 40.0, "decode_ms": 8.0,
            "total_ms": 103.0 if slow else 53.0, "text_token": token, "text": piece,
            "params": {"temp": 0.8}, "seed": 42,
        })  # fmt: skip
        if piece:
            rec.add_text(frame, 100 + frame, piece, t=frame * 0.08)
    rec.add_params(0, {"temp": 0.8, "temp_text": 0.7, "top_k": 250, "top_k_text": 25}, 42)
    rec.add_params(20, {"temp": 1.2, "temp_text": 0.7, "top_k": 100, "top_k_text": 25}, 42)
    return rec


@pytest.fixture(scope="module")
def rec() -> Recording:
    return make_recording()


# ---- fonts ---------------------------------------------------------------------------------------
def test_japanese_font_is_the_default() -> None:
    assert use_japanese_font() == JAPANESE_FONT
    assert use_japanese_font() == JAPANESE_FONT  # idempotent
    assert matplotlib.rcParams["font.family"][0] == JAPANESE_FONT
    assert font_file().name == "ipaexg.ttf"


def test_the_glyph_check_catches_tofu() -> None:
    """Negative control: with matplotlib's default font, Japanese must trip the check."""
    with matplotlib.rc_context({"font.family": ["DejaVu Sans"]}):
        fig = Figure()
        fig.add_subplot().set_title(SENTENCE)
        with pytest.raises(UserWarning, match="missing from font"):
            render(fig)


# ---- plot_recording ------------------------------------------------------------------------------
def test_plot_recording_renders_japanese_with_the_japanese_font(rec: Recording) -> None:
    fig = plot_recording(rec, title="テスト録音")
    render(fig)
    texts = japanese_texts(fig)
    assert SENTENCE in [t.get_text() for t in texts]  # spoken without a pause: one phrase
    for text in texts:
        assert text.get_fontname() == JAPANESE_FONT
        assert font_file(text.get_fontname()).name == "ipaexg.ttf"


def test_plot_recording_layout_and_content(rec: Recording) -> None:
    fig = plot_recording(rec)
    text_ax, timing_ax, wave_model, wave_user, spec_model, spec_user = fig.axes[:6]
    ylabels = ["text", "ms / frame", "model", "user", "model\nkHz", "user\nkHz"]
    assert [ax.get_ylabel() for ax in fig.axes[:6]] == ylabels
    # the pieces, said one a frame without a pause, are one phrase at the start of its first frame (frame 4)
    placed = [(t.get_text(), t.get_position()[0]) for t in text_ax.texts if t.get_text() in SENTENCE]
    assert placed == [(SENTENCE, pytest.approx(4 * 0.08))]
    # the budget line and the over-budget count
    assert any(np.allclose(line.get_ydata(), 80.0) for line in timing_ax.get_lines())
    assert "2 of 40 frames over budget" in timing_ax.get_title(loc="left")
    # parameter changes: a vertical line at 0 s and at 1.6 s on every axis, labelled with what changed
    for ax in fig.axes[:6]:
        xs = sorted({float(np.asarray(line.get_xdata())[0]) for line in ax.get_lines() if line.get_linestyle() == ":"})
        assert xs == pytest.approx([0.0, 1.6])
    labels = [a.get_text() for a in text_ax.texts if "temp=" in a.get_text()]
    assert labels == ["temp=0.8 temp_text=0.7 top_k=250 top_k_text=25 seed=42", "temp=1.2 top_k=100"]
    assert wave_model.get_xlim() == pytest.approx((0.0, 3.2))
    assert spec_model.images and spec_user.images
    assert fig.get_suptitle().endswith("3.2 s")


def test_plot_recording_views_and_zoom(rec: Recording) -> None:
    fig = plot_recording(rec, views=("waveform", "text"), time_range=(1.0, 2.0))
    assert len(fig.axes) == 3
    assert fig.axes[0].get_xlim() == (1.0, 2.0)
    render(fig)
    with pytest.raises(ValueError, match="views"):
        plot_recording(rec, views=("text", "video"))
    with pytest.raises(ValueError, match="views"):
        plot_recording(rec, views=("text", "text"))


def test_dense_text_is_thinned_to_ticks_and_readable_when_zoomed() -> None:
    dense = Recording()
    dense.add_model(np.zeros(SAMPLE_RATE * 60, np.float32))
    for frame in range(0, 750, 2):
        dense.add_text(frame, 100, "あ")
    fig = plot_recording(dense, views=("text",), width=6)
    ax = fig.axes[0]
    labels = [t for t in ax.texts if "あ" in t.get_text()]
    ticks = [line for line in ax.get_lines() if line.get_linestyle() == "-"]
    n_phrases = len(ticks)  # every phrase has its tick mark: 375 pieces, 16 to a phrase
    assert n_phrases == 24 and 0 < len(labels) < n_phrases
    assert any(t.get_text() == f"{n_phrases - len(labels)} of {n_phrases} phrases as ticks: zoom in" for t in ax.texts)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # labels on a lane never overlap, as drawn
    canvas.draw()
    renderer = canvas.get_renderer()
    by_lane: dict[float, list] = {}
    for t in labels:
        by_lane.setdefault(t.get_position()[1], []).append(t.get_window_extent(renderer))
    for boxes in by_lane.values():
        boxes.sort(key=lambda b: b.x0)
        assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:], strict=False))
    zoomed = plot_recording(dense, views=("text",), width=6, time_range=(10.0, 12.0))
    shown = [t.get_text() for t in zoomed.axes[0].texts]
    assert "あ" * 16 in shown and not any("as ticks" in t for t in shown)
    render(zoomed)


def test_plot_recording_without_metrics_or_text() -> None:
    bare = Recording()
    bare.add_user(tone(0.5, 200))
    fig = plot_recording(bare)
    render(fig)
    assert "(no text)" in [t.get_text() for t in fig.axes[0].texts]
    assert "(no per-frame metrics)" in [t.get_text() for t in fig.axes[1].texts]


# ---- plot_timeline -------------------------------------------------------------------------------
def test_plot_timeline_draws_bars_shades_and_text(rec: Recording) -> None:
    tt = turn_taking(rec)
    fig = plot_timeline(tt, rec)
    render(fig)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["model", "user"]
    assert len(ax.collections) == len(tt.ipus) == 2  # one bar per IPU
    assert len(ax.patches) == len(tt.gaps) + len(tt.pauses) + len(tt.overlaps)
    assert tt.gaps and tt.gaps[0].speaker == "user"
    assert [t.get_text() for t in japanese_texts(fig)] == [SENTENCE]
    for text in japanese_texts(fig):
        assert text.get_fontname() == JAPANESE_FONT


def test_plot_timeline_with_overlaps_on_a_given_axis() -> None:
    a = np.zeros(400, bool)
    b = np.zeros(400, bool)
    a[10:200], a[250:350], b[100:150], b[300:390] = True, True, True, True
    tt = intervals_from_activity(a, b, 0.01, 0.2, speakers=("話者A", "話者B"))
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_timeline(tt, ax=ax) is fig
    render(fig)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["話者A", "話者B"]
    assert len(ax.patches) == len(tt.overlaps) + len(tt.gaps) + len(tt.pauses) == 2 + 1 + 0


# ---- plot_sweep_heatmap --------------------------------------------------------------------------
def sweep() -> pd.DataFrame:
    rows = [
        {"temp": temp, "top_k": top_k, "seed": seed, "応答遅延": temp * top_k / 100 + seed}
        for temp in (0.6, 0.8, 1.0)
        for top_k in (50, 250)
        for seed in (0, 1)
        if (temp, top_k) != (1.0, 50)  # one cell without runs
    ]
    return pd.DataFrame(rows)


def test_plot_sweep_heatmap_values_and_labels() -> None:
    fig = plot_sweep_heatmap(sweep(), "応答遅延")
    render(fig)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.6", "0.8", "1"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["50", "250"]
    assert ax.get_xlabel() == "temp" and ax.get_ylabel() == "top_k"
    cells = {(round(t.get_position()[0]), round(t.get_position()[1])): t.get_text() for t in ax.texts}
    assert cells[(0, 0)] == "0.8"  # mean of 0.3 + 0 and 0.3 + 1
    assert cells[(2, 1)] == "3"  # 1.0 * 250 / 100 + 0.5
    assert (2, 0) not in cells  # no runs there: blank
    data = ax.images[0].get_array()
    assert data.mask[0, 2] and not data.mask[0, 0]
    assert "mean over runs" in ax.get_title()
    assert japanese_texts(fig) and all(t.get_fontname() == JAPANESE_FONT for t in japanese_texts(fig))


def test_plot_sweep_heatmap_checks_columns() -> None:
    with pytest.raises(KeyError, match="top_p"):
        plot_sweep_heatmap(sweep(), "応答遅延", y="top_p")
