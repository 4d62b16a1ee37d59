"""Turn-taking analysis: exact interval logic on hand-built activity, VAD on synthetic audio."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.signal import lfilter

from jmoshi_nb.core.audio import SAMPLE_RATE, AudioFileError, write_wav
from jmoshi_nb.core.recording import Recording
from jmoshi_nb.research.turn_taking import (
    Interval,
    TurnTaking,
    intervals_from_activity,
    text_stats,
    turn_taking,
)
from jmoshi_nb.research.vad import voice_activity

HOP = 0.01
M, U = "model", "user"


def act(n: int, *runs: tuple[int, int]) -> np.ndarray:
    """A bool array of ``n`` hops, True on the [start, end) frame ranges."""
    hops = np.arange(n)
    inside = [(hops >= start) & (hops < end) for start, end in runs]
    return np.any(inside, axis=0) if inside else np.zeros(n, dtype=bool)


def iv(start: float, end: float, speaker: str) -> Interval:
    return Interval(start, end, speaker)


# ---- exact interval logic ------------------------------------------------------------------------
def test_dialogue_with_every_kind() -> None:
    # model: 0.10-1.00, 1.30-2.00 (pause), 2.50-3.00 ; user: 1.60-1.80 (inside model), 2.20-2.60
    a = act(400, (10, 100), (130, 200), (250, 300))
    b = act(400, (160, 180), (220, 260), (330, 380))
    tt = intervals_from_activity(a, b, HOP, 0.2)
    assert tt.duration == 4.0
    assert tt.ipus == [
        iv(0.1, 1.0, M), iv(1.3, 2.0, M), iv(1.6, 1.8, U), iv(2.2, 2.6, U), iv(2.5, 3.0, M), iv(3.3, 3.8, U)
    ]  # fmt: skip
    assert tt.pauses == [iv(1.0, 1.3, M)]
    assert tt.gaps == [iv(2.0, 2.2, U), iv(3.0, 3.3, U)]
    assert tt.overlaps == [iv(1.6, 1.8, U), iv(2.5, 2.6, M)]
    # the user's 0.2 s IPU inside the model's speech is backchannel-like; the 0.4 s one (2.2-2.6)
    # starts in silence after the model stopped, so it is not; the model's 2.5-3.0 starts while the
    # user speaks and the user resumes 0.3 s after it (within the 1 s window): it counts.
    assert tt.backchannels == [iv(1.6, 1.8, U), iv(2.5, 3.0, M)]


def test_min_silence_merging_is_inclusive_at_the_threshold() -> None:
    a = act(100, (0, 10), (25, 40), (60, 70))  # silences of 15 and 20 frames
    tt = intervals_from_activity(a, np.zeros(100, bool), HOP, 0.2)
    assert tt.ipus == [iv(0.0, 0.4, M), iv(0.6, 0.7, M)]  # 0.15 s bridged, 0.20 s separates
    assert tt.pauses == [iv(0.4, 0.6, M)]
    finer = intervals_from_activity(a, np.zeros(100, bool), HOP, 0.1)
    assert finer.ipus == [iv(0.0, 0.1, M), iv(0.25, 0.4, M), iv(0.6, 0.7, M)]
    assert finer.pauses == [iv(0.1, 0.25, M), iv(0.4, 0.6, M)]
    coarser = intervals_from_activity(a, np.zeros(100, bool), HOP, 0.25)
    assert coarser.ipus == [iv(0.0, 0.7, M)]
    assert coarser.pauses == []


def test_bridging_happens_per_speaker_before_the_other_speaker_is_considered() -> None:
    # the model's 0.1 s silence is bridged even though the user speaks in it: an overlap, no gap
    a = act(100, (0, 30), (40, 70))
    b = act(100, (32, 38))
    tt = intervals_from_activity(a, b, HOP, 0.2)
    assert tt.ipus == [iv(0.0, 0.7, M), iv(0.32, 0.38, U)]
    assert tt.overlaps == [iv(0.32, 0.38, U)]
    assert tt.gaps == [] and tt.pauses == []


def test_empty_channel() -> None:
    a = act(300, (20, 80), (120, 200))
    tt = intervals_from_activity(a, np.zeros(300, bool), HOP, 0.2)
    assert tt.ipus == [iv(0.2, 0.8, M), iv(1.2, 2.0, M)]
    assert tt.pauses == [iv(0.8, 1.2, M)]
    assert tt.gaps == tt.overlaps == tt.backchannels == []
    stats = tt.stats()
    assert stats["ipu"][U]["count"] == 0 and math.isnan(stats["ipu"][U]["mean_s"])
    assert stats["ipu"][M]["count"] == 2


def test_one_speaker_only_with_a_shorter_array() -> None:
    tt = intervals_from_activity([], act(50, (10, 20)), HOP, 0.2)
    assert tt.duration == 0.5
    assert tt.ipus == [iv(0.1, 0.2, U)]
    assert tt.pauses == tt.gaps == tt.overlaps == []


def test_nothing_at_all() -> None:
    tt = intervals_from_activity([], [], HOP, 0.2)
    assert tt.duration == 0 and tt.ipus == []
    assert math.isnan(tt.stats()["ipu"]["all"]["per_minute"])
    assert tt.to_frame().loc[("gap", "all"), "count"] == 0


def test_overlap_at_start() -> None:
    # both start on frame 0: the overlap is attributed to both ("model+user")
    tie = intervals_from_activity(act(200, (0, 100)), act(200, (0, 50)), HOP, 0.2)
    assert tie.overlaps == [iv(0.0, 0.5, "model+user")]
    assert tie.backchannels == []  # the model did not speak before the user started
    assert tie.labels() == [M, U, "model+user"]
    assert tie.stats()["overlap"]["model+user"]["count"] == 1
    # the user comes in 0.2 s after the model started: the user started the overlap
    late = intervals_from_activity(act(200, (0, 100)), act(200, (20, 50)), HOP, 0.2)
    assert late.overlaps == [iv(0.2, 0.5, U)]
    assert late.backchannels == [iv(0.2, 0.5, U)]


def test_speaker_change_through_overlap_and_silence_after_it() -> None:
    # model 0-1.0 then 1.5-2.0; user 0.8-1.2. The 1.2-1.5 silence follows the user: a gap, not a pause
    tt = intervals_from_activity(act(250, (0, 100), (150, 200)), act(250, (80, 120)), HOP, 0.2)
    assert tt.overlaps == [iv(0.8, 1.0, U)]
    assert tt.gaps == [iv(1.2, 1.5, M)]
    assert tt.pauses == []
    assert tt.backchannels == [iv(0.8, 1.2, U)]  # model spoke before and resumed 0.3 s after


def test_turn_taken_in_overlap_is_not_a_backchannel() -> None:
    # the user's 0.5 s IPU starts under the model's end; the model is silent for 3.6 s after it
    a, b = act(600, (0, 100), (500, 600)), act(600, (90, 140))
    tt = intervals_from_activity(a, b, HOP, 0.2)
    assert tt.overlaps == [iv(0.9, 1.0, U)]
    assert tt.gaps == [iv(1.4, 5.0, M)]
    assert tt.backchannels == []
    # with a wider window the model holds the floor around it
    wide = intervals_from_activity(a, b, HOP, 0.2, backchannel_window=4.0)
    assert wide.backchannels == [iv(0.9, 1.4, U)]


def test_short_ipu_in_silence_is_a_short_turn() -> None:
    # model 0-1.0 and 1.6-3.0, user 1.2-1.4 in the model's silence: two gaps, no backchannel
    tt = intervals_from_activity(act(300, (0, 100), (160, 300)), act(300, (120, 140)), HOP, 0.2)
    assert tt.gaps == [iv(1.0, 1.2, U), iv(1.4, 1.6, M)]
    assert tt.backchannels == [] and tt.pauses == []


def test_backchannel_max_is_inclusive() -> None:
    a, b = act(500, (0, 400)), act(500, (100, 200))
    assert intervals_from_activity(a, b, HOP, 0.2, backchannel_max=1.0).backchannels == [iv(1.0, 2.0, U)]
    assert intervals_from_activity(a, b, HOP, 0.2, backchannel_max=0.99).backchannels == []


def test_min_speech_drops_blips_after_bridging() -> None:
    a = act(200, (10, 12), (50, 52), (54, 56), (100, 150))
    tt = intervals_from_activity(a, [], HOP, 0.2, min_speech=0.05)
    # 50-52 and 54-56 are bridged into one 0.06 s IPU, which stays; the lone 0.02 s blip goes
    assert tt.ipus == [iv(0.5, 0.56, M), iv(1.0, 1.5, M)]
    assert tt.pauses == [iv(0.56, 1.0, M)]


def test_simultaneous_stop_and_restart() -> None:
    # both stop at 1.0; both restart at 1.5: both continue, a pause of both
    tt = intervals_from_activity(act(200, (0, 100), (150, 200)), act(200, (50, 100), (150, 200)), HOP, 0.2)
    assert tt.pauses == [iv(1.0, 1.5, "model+user")]
    assert tt.gaps == []


def test_custom_speakers_and_bad_arguments() -> None:
    tt = intervals_from_activity(act(10, (0, 5)), act(10, (5, 10)), HOP, 0.0, speakers=("A", "B"))
    assert tt.ipus == [iv(0.0, 0.05, "A"), iv(0.05, 0.1, "B")]
    assert tt.gaps == []  # no silence between them
    with pytest.raises(ValueError, match="different names"):
        intervals_from_activity([], [], HOP, speakers=("A", "A"))
    with pytest.raises(ValueError, match="hop_s"):
        intervals_from_activity([], [], 0.0)
    with pytest.raises(ValueError, match="unknown kind"):
        tt.intervals("turn")


def test_stats_summary_and_frames() -> None:
    a = act(6000, (0, 100), (200, 300), (400, 500))  # 60 s, three 1 s IPUs, two 1 s pauses
    b = act(6000, (1000, 1050))
    tt = intervals_from_activity(a, b, HOP, 0.2)
    stats = tt.stats()
    assert stats["ipu"][M] == {
        "count": 3, "per_minute": 3.0, "mean_s": 1.0, "median_s": 1.0, "total_s": 3.0, "ratio": 0.05
    }  # fmt: skip
    assert stats["ipu"]["all"]["count"] == 4
    assert stats["gap"][U]["count"] == 1 and stats["gap"][U]["mean_s"] == pytest.approx(5.0)
    summary = tt.summary()
    assert summary["duration_s"] == 60.0 and summary["speakers"] == [M, U] and summary["text"] is None
    assert summary["stats"]["overlap"][M]["mean_s"] is None  # NaN: no overlaps
    json.dumps(summary, allow_nan=False)
    frame = tt.to_frame()
    assert list(frame.columns) == ["count", "per_minute", "mean_s", "median_s", "total_s", "ratio"]
    assert frame.loc[("pause", M), "median_s"] == pytest.approx(1.0)
    rows = tt.intervals_frame()
    assert list(rows["kind"][:3]) == ["ipu", "pause", "ipu"]
    assert len(rows) == 4 + 2 + 1


# ---- text stream ---------------------------------------------------------------------------------
def test_text_stats_from_metrics() -> None:
    rec = Recording()
    for frame, token in enumerate([None, None, 3, 3, 100, 0, 200, 3, 3, 300]):
        rec.add_metrics({"frame": frame, "text_token": token})
    stats = text_stats(rec)
    assert stats is not None
    assert (stats.frames, stats.text_tokens, stats.delay_frames) == (8, 3, 2)
    assert stats.text_rate == pytest.approx(3 / (8 * 0.08))
    assert stats.padding_ratio == pytest.approx(5 / 8)


def test_text_stats_without_metrics() -> None:
    rec = Recording()
    rec.add_user(np.zeros(SAMPLE_RATE * 2, np.float32))
    rec.add_text(3, -1, "こん")
    rec.add_text(5, -1, "にちは")
    stats = text_stats(rec)
    assert stats is not None and stats.text_rate == pytest.approx(1.0) and stats.padding_ratio is None
    assert text_stats(Recording()) is None


# ---- from audio ----------------------------------------------------------------------------------
def vowel(seconds: float, f0: float, amp: float = 0.3) -> np.ndarray:
    """A vowel-like buzz: a glottal pulse train through three formant resonators."""
    n = round(seconds * SAMPLE_RATE)
    pulses = np.zeros(n)
    pulses[:: int(SAMPLE_RATE / f0)] = 1.0
    y = pulses
    for freq, bw in ((700, 110), (1220, 120), (2600, 160)):
        r, theta = np.exp(-np.pi * bw / SAMPLE_RATE), 2 * np.pi * freq / SAMPLE_RATE
        y = lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], y)
    return (y / np.abs(y).max() * amp).astype(np.float32)


def track(total: float, clips: list[tuple[float, np.ndarray]]) -> np.ndarray:
    out = np.zeros(round(total * SAMPLE_RATE), np.float32)
    for start, clip in clips:
        i = round(start * SAMPLE_RATE)
        out[i : i + len(clip)] = clip
    return out


# model and user, with every kind once: (start, seconds)
MODEL_SPANS = [(0.5, 0.6), (1.9, 0.55), (2.9, 0.75)]
USER_SPANS = [(1.4, 0.25), (2.2, 0.15), (3.4, 1.2)]


def expected(model: list[tuple[float, float]], user: list[tuple[float, float]]) -> dict[str, list[Interval]]:
    """The intervals the spans above make (see test_dialogue_with_every_kind for the rules)."""
    (m1s, m1e), (m2s, m2e), (m3s, m3e) = model
    (u1s, u1e), (u2s, u2e), (u3s, u3e) = user
    return {
        "ipus": [iv(m1s, m1e, M), iv(u1s, u1e, U), iv(m2s, m2e, M), iv(u2s, u2e, U), iv(m3s, m3e, M),
                 iv(u3s, u3e, U)],
        "gaps": [iv(m1e, u1s, U), iv(u1e, m2s, M)],
        "pauses": [iv(m2e, m3s, M)],
        "overlaps": [iv(u2s, u2e, U), iv(u3s, m3e, U)],
        "backchannels": [iv(u2s, u2e, U)],
    }  # fmt: skip


def assert_close(result: TurnTaking, want: dict[str, list[Interval]], tol: float) -> None:
    for kind, intervals in want.items():
        got = getattr(result, kind)
        assert [g.speaker for g in got] == [w.speaker for w in intervals], (kind, got)
        for g, w in zip(got, intervals, strict=True):
            assert abs(g.start - w.start) <= tol and abs(g.end - w.end) <= tol, (kind, g, w)


def synthetic_recording() -> tuple[Recording, dict[str, list[Interval]]]:
    rec = Recording()
    rec.add_model(track(5.0, [(s, vowel(d, 110)) for s, d in MODEL_SPANS]))
    rec.add_user(track(5.0, [(s, vowel(d, 210, 0.2)) for s, d in USER_SPANS]))
    for frame, token in enumerate([None] + [3, 3, 120, 0] * 15):
        rec.add_metrics({"frame": frame, "text_token": token})
    want = expected([(s, s + d) for s, d in MODEL_SPANS], [(s, s + d) for s, d in USER_SPANS])
    return rec, want


def test_voice_activity_on_vowels_is_frame_exact() -> None:
    pcm = track(3.0, [(0.5, vowel(1.0, 120)), (1.8, vowel(0.4, 120))])
    for vad in ("webrtc", "energy"):
        speech = voice_activity(pcm, SAMPLE_RATE, vad=vad)
        assert len(speech) == 300
        assert np.array_equal(speech, act(300, (50, 150), (180, 220))), vad
    # the WebRTC VAD alone holds its decision after the speech ends (the gate trims that)
    raw = voice_activity(pcm, SAMPLE_RATE, gate_db=None)
    assert raw[150:155].all()


def test_turn_taking_on_synthetic_audio(tmp_path) -> None:
    rec, want = synthetic_recording()
    tt = turn_taking(rec)
    assert_close(tt, want, 0.03)
    assert tt.duration == 5.0
    assert tt.text is not None and tt.text.padding_ratio == pytest.approx(0.75)
    assert tt.text.text_rate == pytest.approx(15 / (60 * 0.08))
    # the same from the saved folder and from its stereo WAV (no text stats there)
    folder = rec.save(tmp_path / "rec")
    assert_close(turn_taking(folder), want, 0.03)
    from_wav = turn_taking(folder / "audio.wav", speakers=("A", "B"))
    assert from_wav.text is None
    assert [i.speaker for i in from_wav.ipus] == ["A", "B", "A", "B", "A", "B"]


def test_turn_taking_on_audio_edge_cases() -> None:
    # one speaker only, with a 0.15 s silence (bridged) and a 0.3 s one (a pause)
    solo = Recording()
    solo.add_model(track(3.0, [(0.0, vowel(0.5, 110)), (0.65, vowel(0.5, 110)), (1.45, vowel(0.8, 110))]))
    solo.add_user(np.zeros(3 * SAMPLE_RATE, np.float32))
    tt = turn_taking(solo)
    assert_close(tt, {"ipus": [iv(0.0, 1.15, M), iv(1.45, 2.25, M)], "pauses": [iv(1.15, 1.45, M)]}, 0.03)
    assert tt.gaps == tt.overlaps == tt.backchannels == []
    # overlap at the very start: both from sample 0, the user stops at 0.4 s
    both = Recording()
    both.add_model(track(2.0, [(0.0, vowel(1.2, 110))]))
    both.add_user(track(2.0, [(0.0, vowel(0.4, 210, 0.2))]))
    tt = turn_taking(both)
    assert_close(tt, {"overlaps": [iv(0.0, 0.4, "model+user")], "gaps": [], "pauses": []}, 0.03)


def test_turn_taking_rejects_a_mono_file(tmp_path) -> None:
    path = write_wav(tmp_path / "mono.wav", np.zeros(2400, np.float32))
    with pytest.raises(AudioFileError, match="stereo"):
        turn_taking(path)


def test_turn_taking_with_a_custom_vad() -> None:
    rec, _ = synthetic_recording()

    def everything(pcm: np.ndarray, rate: int, hop_s: float) -> np.ndarray:
        return np.ones(math.ceil(len(pcm) / (rate * hop_s)), bool)

    tt = turn_taking(rec, vad=everything)
    assert tt.ipus == [iv(0.0, 5.0, M), iv(0.0, 5.0, U)]
    with pytest.raises(ValueError, match="unknown vad"):
        turn_taking(rec, vad="silero")  # type: ignore[arg-type]


def test_turn_taking_on_synthesized_japanese_speech() -> None:
    """Real speech (Open JTalk) at known times, digital silence elsewhere; VAD tolerance 30 ms."""
    pyopenjtalk = pytest.importorskip("pyopenjtalk")
    from jmoshi_nb.core.audio import resample

    def say(text: str) -> np.ndarray:
        pcm, rate = pyopenjtalk.tts(text)
        pcm = resample((pcm / 32768.0).astype(np.float32), rate)
        loud = np.flatnonzero(np.abs(pcm) > 10 ** (-50 / 20))  # trim the synthesizer's near-silence
        return pcm[loud[0] : loud[-1] + 1]

    model_words = [(0.5, "もしもし"), (1.9, "なるほど"), (2.9, "わかりました")]
    user_words = [(1.4, "はい"), (2.2, "うん"), (3.4, "ありがとうございます")]
    model = [(start, say(text)) for start, text in model_words]
    user = [(start, say(text)) for start, text in user_words]
    rec = Recording()
    rec.add_model(track(5.5, model))
    rec.add_user(track(5.5, user))
    spans = [[(s, s + len(pcm) / SAMPLE_RATE) for s, pcm in clips] for clips in (model, user)]
    assert_close(turn_taking(rec), expected(*spans), 0.03)
