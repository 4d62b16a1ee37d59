"""The benchmark scorer against known answers: synthesized speech placed at known times.

Each scene writes a paired input.wav (user) / output.wav (model) whose speech starts and ends where
the test put it (clips are trimmed to their audible part first), then checks every metric within
0.15 s and every count and boolean exactly, with both voice activity detectors.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from jmoshi_nb.core.audio import SAMPLE_RATE, resample, write_wav
from jmoshi_nb.research.bench import BenchError, score
from jmoshi_nb.research.bench.scoring import Rules, classify, headline, is_aizuchi

pytest.importorskip("pyopenjtalk")

TOL = 0.15
NO_SILERO = pytest.mark.skipif(importlib.util.find_spec("silero_vad") is None, reason="pip install 'jmoshi-nb[bench]'")
VADS = ["webrtc", pytest.param("silero", marks=NO_SILERO)]


@functools.cache
def clip(text: str, speed: float = 1.0, half_tone: float = 0.0) -> np.ndarray:
    """Synthesized speech trimmed to its audible part, so its start and end are known exactly."""
    from jmoshi_nb.research.speech import synthesize

    pcm = synthesize(text, speed=speed, half_tone=half_tone)
    loud = np.flatnonzero(np.abs(pcm) > 0.01)
    return pcm[loud[0] : loud[-1] + 1].copy()


def dur(pcm: np.ndarray) -> float:
    return len(pcm) / SAMPLE_RATE


def scene(duration: float, parts: list[tuple[float, np.ndarray]], rate: int = SAMPLE_RATE) -> np.ndarray:
    """``parts`` [(start_s, 24 kHz clip)] laid on silence of ``duration`` s, at ``rate`` Hz."""
    out = np.zeros(int(round(duration * SAMPLE_RATE)), dtype=np.float32)
    for start, pcm in parts:
        i = int(round(start * SAMPLE_RATE))
        out[i : i + len(pcm)] += pcm[: len(out) - i]
    return resample(out, SAMPLE_RATE, rate)


def item(root: Path, task: str, name: str, user: np.ndarray, model: np.ndarray,
         user_rate: int = SAMPLE_RATE, model_rate: int = SAMPLE_RATE) -> Path:  # fmt: skip
    folder = root / task / name
    write_wav(folder / "input.wav", user, user_rate)
    write_wav(folder / "output.wav", model, model_rate)
    return folder


def text_events(folder: Path, events: list[tuple[float, str]]) -> None:
    """A minimal kit recording: the model's text at given times (where a run records it)."""
    rec = folder.parent.parent / "_recordings" / folder.parent.name / folder.name
    rec.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"type": "text", "frame": int(t / 0.08), "token": 1, "text": s, "t": t}, ensure_ascii=False)
             for t, s in events]  # fmt: skip
    (rec / "events.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


USER_A = "えーと、昨日の話なんですけど、あの"
USER_B = "駅の近くに新しいお店ができたんです。"
QUESTION = "週末はどこかへ出かけましたか。"
ANSWER = "はい、友達と京都へ行ってきました。"
LONG = "京都ではお寺をいくつか回って、おいしいお豆腐を食べて、夜は川沿いを散歩しました。"


@pytest.mark.parametrize("vad", VADS)
def test_model_silent_through_a_pause_is_no_takeover(tmp_path: Path, vad: str) -> None:
    a, b = clip(USER_A, 1.0, 2.0), clip(USER_B, 1.0, 2.0)
    t_b = 0.5 + dur(a) + 2.0  # a 2 s pause after the filler
    total = t_b + dur(b) + 1.5
    item(tmp_path, "pause_handling", "p1", scene(total, [(0.5, a), (t_b, b)], 16000), scene(total, [], 24000),
         user_rate=16000)  # fmt: skip
    # The same user with a model that talks through the pause: a takeover.
    talk = clip(LONG, 1.1)
    item(tmp_path, "pause_handling", "p2", scene(total, [(0.5, a), (t_b, b)], 16000),
         scene(total, [(0.5 + dur(a) + 0.4, talk)]), user_rate=16000)  # fmt: skip
    items = {it["id"]: it for it in score(tmp_path, vad=vad)["pause_handling"]["items"]}
    assert items["p1"]["takeover"] is False
    assert items["p1"]["backchannels"] == 0
    assert items["p2"]["takeover"] is True
    assert items["p1"]["user_end_s"] == pytest.approx(t_b + dur(b), abs=TOL)


@pytest.mark.parametrize("vad", VADS)
def test_model_starting_half_a_second_after_the_user(tmp_path: Path, vad: str) -> None:
    q, ans = clip(QUESTION, 0.95, -1.0), clip(ANSWER)
    end = 0.7 + dur(q)
    total = end + 0.5 + dur(ans) + 1.0
    item(tmp_path, "turn_taking", "t1", scene(total, [(0.7, q)], 44100), scene(total, [(end + 0.5, ans)], 8000),
         user_rate=44100, model_rate=8000)  # fmt: skip
    got = score(tmp_path, vad=vad)["turn_taking"]
    it = got["items"][0]
    assert it["takeover"] is True
    assert it["latency_s"] == pytest.approx(0.5, abs=TOL)
    assert it["user_end_s"] == pytest.approx(end, abs=TOL)
    assert got["summary"]["TOR"] == 1.0 and got["summary"]["n"] == 1
    assert got["summary"]["latency_mean_s"] == pytest.approx(0.5, abs=TOL)
    assert (tmp_path / "scores.json").exists()


SILERO_MISSES_SHORT_UN = pytest.mark.xfail(
    strict=True, reason="Silero at FDB's settings (min speech 250 ms) drops a 0.16 s うん: why webrtc is the default"
)


@pytest.mark.parametrize("vad", ["webrtc", pytest.param("silero", marks=[NO_SILERO, SILERO_MISSES_SHORT_UN])])
def test_two_aizuchi_in_the_users_pauses(tmp_path: Path, vad: str) -> None:
    s1, s2, s3 = clip(USER_A + "。"), clip(USER_B), clip("それで友達を誘って行ってみました。")
    un, hai = clip("うん", 0.7), clip("はい", 0.8)
    t2 = 0.5 + dur(s1) + 1.2
    t3 = t2 + dur(s2) + 1.2
    total = t3 + dur(s3) + 1.0
    user = scene(total, [(0.5, s1), (t2, s2), (t3, s3)])
    model_parts = [(0.5 + dur(s1) + 0.3, un), (t2 + dur(s2) + 0.3, hai)]
    item(tmp_path, "backchannel", "b1", user, scene(total, model_parts))
    # A silent model gives none; a long model turn is a takeover.
    item(tmp_path, "backchannel", "b2", user, scene(total, []))
    item(tmp_path, "backchannel", "b3", user, scene(total, [(t2 + dur(s2) + 0.3, clip(LONG))]))
    got = score(tmp_path, vad=vad)["backchannel"]
    items = {it["id"]: it for it in got["items"]}
    assert (items["b1"]["takeover"], items["b1"]["backchannels"]) == (False, 2)
    starts = [s for s, _, kind in items["b1"]["model_segments"] if kind == "backchannel"]
    assert starts == pytest.approx([t for t, _ in model_parts], abs=TOL)
    assert (items["b2"]["takeover"], items["b2"]["backchannels"]) == (False, 0)
    assert items["b3"]["takeover"] is True
    assert got["summary"]["TOR"] == pytest.approx(1 / 3, abs=1e-3)
    assert got["summary"]["backchannels_per_min"] == pytest.approx(2 / (3 * total / 60), rel=0.01)


@pytest.mark.parametrize("vad", VADS)
def test_model_stopping_1_5_s_after_the_user_cuts_in(tmp_path: Path, vad: str) -> None:
    talk = clip(LONG + LONG)
    cut_in = 3.0
    model_stop = cut_in + 1.5
    head = talk[: int((model_stop - 0.5) * SAMPLE_RATE)]
    loud = np.flatnonzero(np.abs(head) > 0.01)
    head = head[: loud[-1] + 1]  # the model's speech ends where the audio falls silent
    stop = 0.5 + dur(head)
    barge = clip("ちょっと待ってください、それはいつの話ですか。", 1.0, 3.0)
    b_end = cut_in + dur(barge)
    reply = clip(ANSWER)
    total = b_end + 0.7 + dur(reply) + 0.8
    item(tmp_path, "interruption", "i1", scene(total, [(cut_in, barge)], 22050),
         scene(total, [(0.5, head), (b_end + 0.7, reply)]), user_rate=22050)  # fmt: skip
    it = score(tmp_path, vad=vad)["interruption"]["items"][0]
    assert stop - cut_in == pytest.approx(1.5, abs=0.1)  # the scene is what it claims
    assert it["stop_latency_s"] == pytest.approx(stop - cut_in, abs=TOL)
    assert it["response_latency_s"] == pytest.approx(0.7, abs=TOL)
    assert it["takeover"] is True


def answered_question() -> tuple[np.ndarray, np.ndarray, float]:
    """The user asks QUESTION from 0.5 s, the model answers 0.5 s after it ends: (user, model, question's end)."""
    q, ans = clip(QUESTION), clip(ANSWER)
    end = 0.5 + dur(q)
    total = end + 0.5 + dur(ans) + 0.5
    return scene(total, [(0.5, q)]), scene(total, [(end + 0.5, ans)]), end


def test_timing_metadata_overrides_voice_activity(tmp_path: Path) -> None:
    """FDB's turn_taking.json gives the user's end; the kit's timing.json likewise."""
    user, model, end = answered_question()
    folder = item(tmp_path, "candor_turn_taking", "x", user, model)
    (folder / "turn_taking.json").write_text(json.dumps([{"text": "q", "timestamp": [end - 0.2, end + 0.5]}]))
    it = score(tmp_path)["turn_taking"]["items"][0]
    assert it["timing_source"] == "turn_taking.json"
    assert it["latency_s"] == pytest.approx(0.7, abs=TOL)
    assert it["folder"] == "candor_turn_taking"


def test_japanese_text_rules(tmp_path: Path) -> None:
    """A 1.2 s そうですね is a backchannel with the model's text, a turn without it; a short wordy one is a turn."""
    story = clip(LONG)
    slow = clip("そうですね", 0.45)
    assert 1.0 < dur(slow) < 3.0
    total = 0.5 + dur(story) + 0.5 + dur(slow) + 1.0
    t = 0.5 + dur(story) + 0.5
    user = scene(total, [(0.5, story)])
    with_text = item(tmp_path, "backchannel", "text", user, scene(total, [(t, slow)]))
    text_events(with_text, [(t, "そう"), (t + 0.3, "です"), (t + 0.6, "ね")])
    item(tmp_path, "backchannel", "audio_only", user, scene(total, [(t, slow)]))
    items = {it["id"]: it for it in score(tmp_path)["backchannel"]["items"]}
    assert (items["text"]["takeover"], items["text"]["backchannels"]) == (False, 1)
    assert items["text"]["text"] == "そうですね"
    assert (items["audio_only"]["takeover"], items["audio_only"]["backchannels"]) == (True, 0)
    rules = Rules()
    assert classify(0.6, "駅の近くにできた新しい店", "turn_taking", rules) == "turn"
    assert classify(0.6, "はい", "turn_taking", rules) == "backchannel"
    assert classify(0.6, None, "turn_taking", rules) == "backchannel"
    assert classify(3.5, "うんうん", "backchannel", rules) == "turn"
    assert is_aizuchi("▁うん、うん。") and is_aizuchi("はい、そうですね") and not is_aizuchi("はい、行きました")


# ---- bad input ---------------------------------------------------------------------------------------
def test_folder_without_task_folders(tmp_path: Path) -> None:
    (tmp_path / "misc" / "a").mkdir(parents=True)
    with pytest.raises(BenchError, match=r"no task folders"):
        score(tmp_path)
    with pytest.raises(BenchError, match="no such benchmark folder"):
        score(tmp_path / "missing")


def test_bad_items_are_named_and_the_others_scored(tmp_path: Path) -> None:
    user, model, _ = answered_question()
    item(tmp_path, "turn_taking", "good", user, model)
    item(tmp_path, "turn_taking", "short", user, model[: len(model) - 2400])  # 0.1 s short: > one frame
    item(tmp_path, "turn_taking", "within_a_frame", user, model[: len(model) - 960])  # 0.04 s: fine
    (tmp_path / "turn_taking" / "no_input").mkdir()
    write_wav(tmp_path / "turn_taking" / "no_input" / "output.wav", model)
    broken = item(tmp_path, "turn_taking", "broken", user, model)
    (broken / "output.wav").write_bytes(b"RIFF not really a wave file")
    item(tmp_path, "backchannel", "no_output", user, model).joinpath("output.wav").unlink()
    got = score(tmp_path)
    tt = {it["id"]: it for it in got["turn_taking"]["items"]}
    assert tt["good"]["latency_s"] == pytest.approx(0.5, abs=TOL)
    assert "error" not in tt["within_a_frame"]
    assert "turn_taking/short" in tt["short"]["error"] and "within one frame" in tt["short"]["error"]
    assert "turn_taking/no_input" in tt["no_input"]["error"] and "input.wav" in tt["no_input"]["error"]
    assert "turn_taking/broken" in tt["broken"]["error"] and "not readable" in tt["broken"]["error"]
    assert "backchannel/no_output" in got["backchannel"]["items"][0]["error"]
    assert got["turn_taking"]["summary"]["n"] == 2 and got["turn_taking"]["summary"]["errors"] == 3
    assert got["backchannel"]["summary"]["n"] == 0 and got["backchannel"]["summary"]["TOR"] is None
    saved = json.loads((tmp_path / "scores.json").read_text(encoding="utf-8"))
    assert saved["turn_taking"]["items"][0]["id"] == "broken"  # sorted by folder name, errors kept
    row = headline(got)
    assert row["turn_taking_TOR"] == 1.0 and np.isnan(row["pause_handling_TOR"])


def test_package_names_stay_functions_after_submodule_imports() -> None:
    import jmoshi_nb
    import jmoshi_nb.research.bench.plots  # noqa: F401 - imports every submodule
    import jmoshi_nb.research.bench.runner  # noqa: F401
    from jmoshi_nb.research import bench

    assert jmoshi_nb.bench is bench  # the public name: jmoshi_nb.bench.run / .score
    assert callable(bench.score) and callable(bench.run) and callable(bench.build)


def test_fdb_metadata_files_and_a_task_folder_scored_directly(tmp_path: Path) -> None:
    """FDB's pause.json, interrupt.json (v1.0) and metadata.json (v1.5); a task folder given as the root."""
    talk, barge = clip(LONG), clip("ちょっと待ってください。")
    total = 0.5 + dur(talk) + 1.0
    cut = 2.0
    head = talk[: int((cut + 1.0 - 0.5) * SAMPLE_RATE)]
    head = head[: np.flatnonzero(np.abs(head) > 0.01)[-1] + 1]  # ends where the audio falls silent
    assert 0.5 + dur(head) > cut + 0.3
    user = scene(total, [(cut, barge)])
    model = scene(total, [(0.5, head)])
    span = [cut, cut + dur(barge)]
    for name, doc in (("interrupt.json", [{"interrupt": "x", "context": "y", "timestamp": span}]),
                      ("metadata.json", {"current_turn_text": "x", "timestamps": span})):  # fmt: skip
        folder = item(tmp_path, "synthetic_user_interruption", name.split(".")[0], user, model)
        (folder / name).write_text(json.dumps(doc), encoding="utf-8")
    user_a = scene(total, [(0.5, clip(USER_A))])
    pause = item(tmp_path / "v1", "synthetic_pause_handling", "1", user_a, scene(total, []))
    (pause / "pause.json").write_text(json.dumps([{"timestamp": [0.5 + dur(clip(USER_A)), total]}]), encoding="utf-8")
    items = score(tmp_path)["interruption"]["items"]
    for it in items:
        assert it["timing_source"] in ("interrupt.json", "metadata.json")
        assert it["stop_latency_s"] == pytest.approx(0.5 + len(head) / SAMPLE_RATE - cut, abs=TOL)
    got = score(tmp_path / "v1" / "synthetic_pause_handling")  # the task folder itself
    assert got["pause_handling"]["items"][0]["timing_source"] == "pause.json"
    assert got["pause_handling"]["items"][0]["takeover"] is False
    assert (tmp_path / "v1" / "synthetic_pause_handling" / "scores.json").exists()


@NO_SILERO
def test_silero_segments_are_the_packages_own_at_known_times() -> None:
    from jmoshi_nb.research.vad import silero_segments

    a, b = clip("今日はいい天気ですね"), clip("そうですね")  # no comma: one stretch of speech each
    pcm = scene(6.0, [(1.0, a), (4.0, b)], rate=48000)  # any rate: resampled to Silero's 16 kHz
    found = silero_segments(pcm, 48000)
    assert len(found) == 2
    for (start, end), (want_start, want_end) in zip(found, [(1.0, 1.0 + dur(a)), (4.0, 4.0 + dur(b))], strict=True):
        assert start == pytest.approx(want_start, abs=0.1) and end == pytest.approx(want_end, abs=0.15)
    assert silero_segments(pcm, 48000, min_speech_duration_ms=5000) == []  # options go to the package
