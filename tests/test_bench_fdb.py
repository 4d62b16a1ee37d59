"""FDB's v1 rules (``score(dir, rules="fdb")``) against answers computed by hand from FDB's rules.

Each scene is scored by both rule sets: the kit's verdict is stated beside FDB's, so the test shows
where the two differ and why. Words come from hand-written output.json files (FDB's ASR shape) or
from a kit recording of the model's text stream (timed by frame: a piece at frame f starts at
f x 0.08 s and its word ends at (f + 1) x 0.08 s).
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_bench_score import ANSWER, LONG, QUESTION, TOL, clip, dur, item, scene, text_events

from jmoshi_nb.research.bench import BenchError, score
from jmoshi_nb.research.bench.fdb_rules import backchannel_jsd, backchannel_verdict, is_turn, segment_words
from jmoshi_nb.research.bench.words import Word, split_words, words_from_text_events

pytest.importorskip("pyopenjtalk")
NO_SILERO = importlib.util.find_spec("silero_vad") is None
NEEDS_SILERO = pytest.mark.skipif(NO_SILERO, reason="pip install 'jmoshi-nb[bench]'")
F = 0.08  # one frame


def output_json(folder: Path, words: list[tuple[str, float | None, float | None]]) -> None:
    chunks = [{"text": t, "timestamp": [s, e]} for t, s, e in words]
    doc = {"text": " ".join(t for t, _, _ in words), "chunks": chunks}
    (folder / "output.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


def turn_taking_json(folder: Path, user_end: float, total: float) -> None:
    (folder / "turn_taking.json").write_text(json.dumps([{"text": "[TURN-TAKING]", "timestamp": [user_end, total]}]))


def by_id(scores: dict, task: str) -> dict[str, dict]:
    return {it["id"]: it for it in scores[task]["items"]}


def test_turn_taking_items_by_both_rule_sets(tmp_path: Path) -> None:
    q = clip(QUESTION)
    end = round(0.5 + dur(q), 3)
    total = end + 6.0
    user = scene(total, [(0.5, q)])
    un = clip("うん", 0.8)
    # 1. Two うん 3 s apart, from the text stream: FDB's span rule makes them one turn.
    f1 = math.ceil((end + 0.5) / F)
    f2 = f1 + 37
    two = item(tmp_path, "turn_taking", "two_un", user, scene(total, [(f1 * F, un), (f2 * F, un)]))
    turn_taking_json(two, end, total)
    text_events(two, [(f1 * F + 0.001, "うん"), (f2 * F + 0.001, "うん")])
    # 2. An answer starting 0.4 s before the user's end: FDB's TOR 1, latency 0 (raw -0.4).
    early = item(tmp_path, "turn_taking", "early", user, scene(total, [(end - 0.4, clip(LONG))]))
    turn_taking_json(early, end, total)
    output_json(early, [("はい", end - 0.4, end - 0.1), ("友達", end, end + 0.4), ("と", end + 0.4, end + 0.5),
                        ("京都", end + 0.5, end + 0.9), ("へ", end + 0.9, end + 1.0)])  # fmt: skip
    # 3. Silence: no words, TOR 0 (an empty text stream).
    silent = item(tmp_path, "turn_taking", "silent", user, scene(total, []))
    turn_taking_json(silent, end, total)
    text_events(silent, [])
    both = score(tmp_path, rules="both")
    fdb, kit = by_id(both["fdb"], "turn_taking"), by_id(both["kit"], "turn_taking")

    assert fdb["two_un"]["takeover"] == 1 and fdb["two_un"]["words"] == 2
    assert fdb["two_un"]["span_s"] == pytest.approx((f2 + 1 - f1) * F)
    assert fdb["two_un"]["latency_s"] == pytest.approx(f1 * F - end, abs=1e-3)
    assert fdb["two_un"]["words_source"] == "model text stream"
    assert (kit["two_un"]["takeover"], kit["two_un"]["backchannels"]) == (False, 2)  # two aizuchi, no turn

    assert (fdb["early"]["takeover"], fdb["early"]["latency_s"]) == (1, 0.0)
    assert fdb["early"]["latency_raw_s"] == pytest.approx(-0.4, abs=1e-3)
    assert kit["early"]["takeover"] is True and kit["early"]["latency_s"] == pytest.approx(-0.4, abs=TOL)

    assert (fdb["silent"]["takeover"], fdb["silent"]["latency_s"], fdb["silent"]["words"]) == (0, None, 0)
    assert kit["silent"]["takeover"] is False

    summary = both["fdb"]["turn_taking"]["summary"]
    assert summary["TOR"] == pytest.approx(2 / 3, abs=1e-4)
    assert summary["latency_mean_s"] == pytest.approx((f1 * F - end + 0.0) / 2, abs=1e-3)  # negatives count as 0
    # The text stream's words were written for FDB's scripts; the hand-written output.json is untouched.
    written = json.loads((two / "output.json").read_text(encoding="utf-8"))
    assert written["source"] == "model text stream"
    expected = [[f1 * F, (f1 + 1) * F], [f2 * F, (f2 + 1) * F]]
    assert [c["timestamp"] for c in written["chunks"]] == [pytest.approx(x) for x in expected]
    assert json.loads((silent / "output.json").read_text(encoding="utf-8"))["chunks"] == []
    assert "source" not in json.loads((early / "output.json").read_text(encoding="utf-8"))
    assert (tmp_path / "scores.json").exists() and (tmp_path / "scores_fdb.json").exists()


def test_pause_with_a_slow_two_word_aizuchi(tmp_path: Path) -> None:
    """A slow そう・ですね of 1.2 s in the user's pause: FDB's span rule makes it a turn (TOR 1); the kit's
    aizuchi lexicon keeps it a backchannel (no takeover)."""
    a, b = clip("昨日、駅の近くで、えーと"), clip("新しいカフェを見つけました。")
    t_b = 0.5 + dur(a) + 2.5
    total = t_b + dur(b) + 1.5
    slow = clip("そうですね", 0.45)
    t = 0.5 + dur(a) + 0.6
    assert 1.0 < dur(slow) < 2.0
    folder = item(tmp_path, "pause_handling", "slow", scene(total, [(0.5, a), (t_b, b)]), scene(total, [(t, slow)]))
    output_json(folder, [("そう", t, t + 0.5), ("ですね", t + 0.6, t + 1.2)])
    text_events(folder, [(t, "そう"), (t + 0.4, "です"), (t + 0.8, "ね")])
    before = (folder / "output.json").read_bytes()
    both = score(tmp_path, rules="both", tasks=["pause_handling"])
    fdb, kit = both["fdb"]["pause_handling"]["items"][0], both["kit"]["pause_handling"]["items"][0]
    assert (fdb["takeover"], fdb["words"], fdb["span_s"], fdb["latency_s"]) == (1, 2, 1.2, None)
    assert fdb["words_source"] == "output.json"
    assert (kit["takeover"], kit["backchannels"]) == (False, 1)
    assert (folder / "output.json").read_bytes() == before  # an existing output.json is never overwritten


def test_interruption_model_that_never_stops(tmp_path: Path) -> None:
    """The model talks on through the whole barge-in: FDB's TOR 1 (its words after the interruption pass the
    turn rule); the kit's rules see no new turn after the model stops (it never does)."""
    talk = clip(LONG + LONG)
    barge = clip("ちょっと待ってください。", 1.0, 3.0)
    cut = 2.0
    b_end = round(cut + dur(barge), 3)
    total = min(0.5 + dur(talk), b_end + 3.0)
    folder = item(tmp_path, "interruption", "on", scene(total, [(cut, barge)]), scene(total, [(0.5, talk)]))
    (folder / "interrupt.json").write_text(json.dumps(
        [{"context": "京都のおすすめは?", "interrupt": "ちょっと待ってください。", "timestamp": [cut, b_end]}]),
        encoding="utf-8")  # fmt: skip
    frames = list(range(7, int(total / F), 5))  # the text stream: うん every 5 frames, all along
    text_events(folder, [(f * F + 0.001, "うん") for f in frames])
    after = [f for f in frames if f * F >= b_end]
    ratings = []

    def judge(context: str, interruption: str, response: str) -> float:
        ratings.append((context, interruption, response))
        return 4

    both = score(tmp_path, rules="both", judge=judge)
    fdb, kit = both["fdb"]["interruption"]["items"][0], both["kit"]["interruption"]["items"][0]
    assert fdb["takeover"] == 1 and fdb["words"] == len(after)
    assert fdb["latency_s"] == pytest.approx(after[0] * F - b_end, abs=1e-3)
    assert fdb["relevance"] == 4 and both["fdb"]["interruption"]["summary"]["relevance"] == 4
    assert ratings == [("京都のおすすめは?", "ちょっと待ってください。", " ".join(["うん"] * len(after)))]
    assert kit["takeover"] is False and kit["response_latency_s"] is None
    chunks = json.loads((folder / "output.json").read_text(encoding="utf-8"))["chunks"]
    assert chunks[0]["timestamp"][0] == pytest.approx(after[0] * F)  # only what FDB transcribes: after the end
    # Without a judge the relevance is not computed, and says so.
    assert score(tmp_path, rules="fdb")["interruption"]["summary"]["relevance"] == "not computed"


@NEEDS_SILERO
def test_backchannel_items_by_both_rule_sets(tmp_path: Path) -> None:
    story = [clip(s) for s in ("先月、初めて一人で沖縄へ行きました。", "空港に着いたら、すごく暑くてびっくりしました。",
                               "レンタカーを借りて、海沿いをずっと走りました。")]  # fmt: skip
    parts, t = [], 0.5
    for s in story:
        parts.append((t, s))
        t += dur(s) + 1.0
    total = round(t + 0.5, 2)
    user = scene(total, parts)
    gaps = [parts[i][0] + dur(parts[i][1]) + 0.2 for i in range(3)]
    un, slow = clip("はい", 0.5), clip("そうですね", 0.35)  # long enough for Silero (250 ms minimum)
    assert 0.3 < dur(un) < 0.6 and 1.2 < dur(slow) < 2.5
    # A: three short はい: 3 backchannels, TOR 0, 3 / total per second.
    a = item(tmp_path, "backchannel", "000", user, scene(total, [(g, un) for g in gaps]))
    output_json(a, [("はい", g, g + dur(un)) for g in gaps])
    # B: はい, then a slow そうですね (1-3 s): the last segment's verdict (a turn) decides: TOR 1, and both count.
    b = item(tmp_path, "backchannel", "001", user, scene(total, [(gaps[0], un), (gaps[1], slow)]))
    g0, g1 = gaps[0], gaps[1]
    output_json(b, [("はい", g0, g0 + 0.3), ("そう", g1, g1 + 0.6), ("ですね", g1 + 0.7, g1 + 1.3)])
    text_events(b, [(gaps[0], "はい"), (gaps[1], "そう"), (gaps[1] + 0.6, "ですね")])
    # C: はい, then a long turn (> 3 s), then はい: the walk stops at the long one: 1 backchannel, TOR 1.
    talk = clip(LONG.replace("、", ""))  # no commas: one segment of speech without a pause
    assert dur(talk) > 3.5
    c = item(tmp_path, "backchannel", "002", user,
             scene(total, [(0.3, un), (gaps[0], talk), (gaps[0] + dur(talk) + 1.0, un)]))  # fmt: skip
    output_json(c, [])
    reference = tmp_path.parent / f"{tmp_path.name}-reference.json"
    n_bins = int(total / 0.2) + 1
    reference.write_text(json.dumps({"000": [1.0 / n_bins] * n_bins, "001": [1.0 / n_bins] * n_bins}))
    both = score(tmp_path, rules="both", reference=reference)
    fdb, kit = by_id(both["fdb"], "backchannel"), by_id(both["kit"], "backchannel")

    assert (fdb["000"]["takeover"], fdb["000"]["backchannels"]) == (0, 3)
    assert fdb["000"]["frequency_per_s"] == pytest.approx(3 / total, abs=1e-4)
    assert (kit["000"]["takeover"], kit["000"]["backchannels"]) == (False, 3)

    assert (fdb["001"]["takeover"], fdb["001"]["backchannels"]) == (1, 2)
    assert (kit["001"]["takeover"], kit["001"]["backchannels"]) == (False, 2)  # the kit's aizuchi lexicon

    assert [e - s > 3.0 for s, e in fdb["002"]["segments"]] == [False, True, False]
    assert (fdb["002"]["takeover"], fdb["002"]["backchannels"]) == (1, 1)
    assert kit["002"]["takeover"] is True and kit["002"]["backchannels"] == 2

    summary = both["fdb"]["backchannel"]["summary"]
    assert summary["TOR"] == pytest.approx(2 / 3, abs=1e-4)
    assert summary["frequency_mean_per_s"] == pytest.approx((3 + 2 + 1) / 3 / total, abs=1e-4)
    assert (summary["jsd_n"], fdb["002"]["jsd"]) == (2, None)
    assert any("'002'" in w and "reference" in w for w in fdb["002"]["warnings"])
    for name in ("000", "001"):  # each item's JSD from its own segments, by FDB's binning
        segs = [tuple(s) for s in fdb[name]["segments"]]
        counted = backchannel_verdict(segs, [])[1]
        expected = backchannel_jsd(counted, total, [1.0 / n_bins] * n_bins)
        assert fdb[name]["jsd"] == pytest.approx(expected, abs=1e-4) and 0 < expected < 0.9
    for it in fdb.values():  # Silero's times, rounded to 0.1 s as FDB gets them
        assert all(round(x, 1) == x for seg in it["segments"] for x in seg)
    assert [s for s, _ in fdb["000"]["segments"]] == pytest.approx(gaps, abs=0.15)


def test_backchannel_walk_and_jsd_known_answers() -> None:
    """FDB's walk and JSD on segments given by hand."""
    w = [Word("うん", 0.1, 0.3), Word("そう", 2.0, 2.3), Word("です", 2.3, 2.5), Word("ね", 2.5, 2.6)]
    assert backchannel_verdict([(0.0, 0.4), (2.0, 2.7)], w) == (1, [(0.0, 0.4), (2.0, 2.7)])  # 3 words < 1 s: a turn
    assert backchannel_verdict([(0.0, 0.4)], w) == (0, [(0.0, 0.4)])
    assert backchannel_verdict([(0.0, 0.4), (1.0, 4.5), (5.0, 5.2)], w) == (1, [(0.0, 0.4)])
    assert backchannel_verdict([(1.0, 2.5), (3.0, 3.4)], []) == (0, [(1.0, 2.5), (3.0, 3.4)])  # the last decides
    assert segment_words((0.3, 0.5), [Word("a", 0.1, 0.4), Word("b", 0.5, None), Word("c", 0.45, None)]) == ["a", "b"]
    # 1 s -> 6 bins of 0.2 s; a segment 0.2-0.3 fills bin 1.
    assert backchannel_jsd([(0.2, 0.3)], 1.0, [0, 1, 0, 0, 0, 0]) == pytest.approx(0.0, abs=1e-4)
    assert backchannel_jsd([(0.2, 0.3)], 1.0, [1, 0, 0, 0, 0, 0]) == pytest.approx(math.sqrt(math.log(2)), abs=1e-4)
    # A 2-point reference is stretched linearly to 6 bins: [1, .8, .6, .4, .2, 0] (before normalising).
    p = np.array([0, 1, 0, 0, 0, 0]) + 1e-10
    q = np.array([1, 0.8, 0.6, 0.4, 0.2, 0.0])
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        return float(sum(x * math.log(x / y) for x, y in zip(a, b, strict=True) if x > 0))

    assert backchannel_jsd([(0.2, 0.3)], 1.0, [1, 0]) == pytest.approx(math.sqrt((kl(p, m) + kl(q, m)) / 2), abs=1e-6)
    assert backchannel_jsd([], 1.0, [1, 0]) == 1.0  # no backchannel: JSD 1
    assert is_turn([Word("a", 0.0, 0.2), Word("b", 0.3, 0.5), Word("c", 0.5, 0.6), Word("d", 0.6, 0.7)])
    assert not is_turn([Word("a", 0.0, 0.2), Word("b", 0.3, 0.5), Word("c", 0.5, 0.6)])
    assert not is_turn([Word("a", 0.0, 0.2), Word("b", 0.9, None)])  # a null end: measured to its start
    assert is_turn([Word("a", 0.0, 0.2), Word("b", 1.0, None)])


def test_words_from_the_text_stream() -> None:
    assert [w for w, _, _ in split_words("はい、2025年に ABC を見ました!")] == \
        ["はい、", "2025", "年", "に", "ABC", "を", "見", "まし", "た!"]  # fmt: skip
    got = words_from_text_events([(10, "はい、"), (12, "京"), (13, "都"), (15, "へ"), (40, "うん")])
    assert [(w.text, w.start, w.end) for w in got.words] == [
        ("はい、", 0.8, 0.88), ("京都", 0.96, 1.12), ("へ", 1.2, 1.28), ("うん", 3.2, 3.28)]  # fmt: skip
    assert got.after(1.0).text == "へ うん"


# ---- bad input -------------------------------------------------------------------------------------------
def test_bad_input_is_named_and_the_other_items_scored(tmp_path: Path) -> None:
    user, model = scene(4.0, [(0.5, clip("はい"))]), scene(4.0, [(2.0, clip(ANSWER))])
    good = item(tmp_path, "turn_taking", "good", user, model)
    turn_taking_json(good, 1.0, 4.0)
    output_json(good, [("はい", 2.0, 2.3), ("友達", None, 2.6), ("と", 2.8, 2.7), ("京都", 2.9, 3.3)])
    shape = item(tmp_path, "turn_taking", "shape", user, model)
    turn_taking_json(shape, 1.0, 4.0)
    (shape / "output.json").write_text(json.dumps({"segments": [{"word": "x", "start": 0}]}))
    no_ts = item(tmp_path, "turn_taking", "no_timestamp", user, model)
    (no_ts / "turn_taking.json").write_text(json.dumps([{"text": "[TURN-TAKING]"}]))
    output_json(no_ts, [])
    no_words = item(tmp_path, "turn_taking", "no_words", user, model)
    turn_taking_json(no_words, 1.0, 4.0)
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    got = score(tmp_path, rules="fdb")
    items = by_id(got, "turn_taking")
    # Null start and reversed chunks: skipped, counted, named; the item is still scored (2 words over 1.3 s).
    assert (items["good"]["takeover"], items["good"]["words"], items["good"]["skipped_chunks"]) == (1, 2, 2)
    assert items["good"]["latency_s"] == pytest.approx(1.0)
    notes = " ".join(items["good"]["warnings"])
    assert "turn_taking/good" in notes and "null start" in notes and "ending before they start" in notes
    assert "turn_taking/shape" in items["shape"]["error"] and "not FDB's ASR shape" in items["shape"]["error"]
    no_ts_error = items["no_timestamp"]["error"]
    assert "turn_taking/no_timestamp" in no_ts_error and "no timestamp" in no_ts_error
    assert "turn_taking/no_words" in items["no_words"]["error"] and "words=" in items["no_words"]["error"]
    assert got["turn_taking"]["summary"]["n"] == 1 and got["turn_taking"]["summary"]["errors"] == 3
    # Nothing changed but the score file.
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert set(after) - set(files) == {tmp_path / "scores_fdb.json"}
    assert all(after[p] == files[p] for p in files)
    with pytest.raises(BenchError, match="unknown rules"):
        score(tmp_path, rules="english")
    with pytest.raises(BenchError, match="apply to FDB's rules"):
        score(tmp_path, reference={"good": [1.0]})
    bad_reference = tmp_path.parent / f"{tmp_path.name}-bad.json"
    bad_reference.write_text(json.dumps(["not", "a", "mapping"]))
    with pytest.raises(BenchError, match="per-item distributions"):
        score(tmp_path, rules="fdb", reference=bad_reference)


def test_words_hook_and_legacy_recording(tmp_path: Path) -> None:
    user, model = scene(4.0, [(0.5, clip("はい"))]), scene(4.0, [])
    folder = item(tmp_path, "pause_handling", "000", user, model)
    seen = []

    def asr(path: Path) -> list[dict]:
        seen.append(path)
        return [{"text": "えっと", "timestamp": [1.0, 1.4]}, {"text": "はい", "timestamp": [2.5, 2.8]}]

    it = score(tmp_path, rules="fdb", words=asr)["pause_handling"]["items"][0]
    assert seen == [folder / "output.wav"]
    assert (it["takeover"], it["words"], it["words_source"]) == (1, 2, "words hook asr")
    assert json.loads((folder / "output.json").read_text(encoding="utf-8"))["source"] == "words hook asr"
    # A folder recorded before the recording moved out of the item (``<id>/recording/``) is still read.
    other = item(tmp_path / "old", "pause_handling", "000", user, model)
    (other / "recording").mkdir()
    line = {"type": "text", "frame": 20, "token": 1, "text": "うん", "t": 1.6}
    (other / "recording" / "events.jsonl").write_text(json.dumps(line, ensure_ascii=False) + "\n", encoding="utf-8")
    old = score(tmp_path / "old", rules="fdb")["pause_handling"]["items"][0]
    assert (old["takeover"], old["words"], old["text"]) == (0, 1, "うん")


def test_cli_rules_fdb_and_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from jmoshi_nb.cli import main

    q = clip(QUESTION)
    end = round(0.5 + dur(q), 3)
    total = end + 3.0
    folder = item(tmp_path, "turn_taking", "000", scene(total, [(0.5, q)]), scene(total, [(end + 0.5, clip(ANSWER))]))
    turn_taking_json(folder, end, total)
    output_json(folder, [("はい", end + 0.5, end + 0.8), ("友達", end + 0.9, end + 1.6)])  # a turn: 1.1 s
    assert main(["bench", "score", str(tmp_path), "--rules", "fdb"]) == 0
    out = capsys.readouterr().out
    assert "TOR" in out and "scores_fdb.json" in out and not (tmp_path / "scores.json").exists()
    assert main(["bench", "score", str(tmp_path), "--rules", "both"]) == 0
    out = capsys.readouterr().out
    assert "kit rules" in out and "FDB rules" in out and (tmp_path / "scores.json").exists()
    row = next(line for line in out.splitlines() if line.startswith("turn_taking") and "latency" in line)
    assert row.split()[-1] == "0.500"  # FDB: first word's start minus the user's end
    assert float(row.split()[-2]) == pytest.approx(0.5, abs=TOL)  # the kit: voice activity
    missing = tmp_path.parent / f"{tmp_path.name}-none.json"
    assert main(["bench", "score", str(tmp_path), "--rules", "fdb", "--reference", str(missing)]) == 2
    assert "not readable JSON" in capsys.readouterr().err


def test_fdb_files_after_a_run(tmp_path: Path) -> None:
    """What a run writes into an item: FDB's metadata (kept if there), output.json from the text stream
    (a foreign one set aside, the kit's own rewritten), only the words after an interruption."""
    from jmoshi_nb.core.recording import Recording
    from jmoshi_nb.research.bench.fdb_files import SET_ASIDE, write_fdb_files
    from jmoshi_nb.research.bench.layout import Item

    folder = item(tmp_path, "interruption", "000", scene(4.0, []), scene(4.0, []))
    timing = {"user_end": 3.0, "interrupt": [2.0, 3.0], "text": ["京都のおすすめは?", "ちょっと待って。"]}
    (folder / "timing.json").write_text(json.dumps(timing, ensure_ascii=False), encoding="utf-8")
    output_json(folder, [("ASR", 0.5, 0.9)])
    rec = Recording()
    for frame, text in ((10, "清水寺"), (38, "はい"), (40, "それは")):
        rec.add_text(frame, 1, text)
    it = Item("interruption", folder)
    assert write_fdb_files(it, rec) == ["interrupt.json", "output.json"]
    meta = json.loads((folder / "interrupt.json").read_text(encoding="utf-8"))
    assert meta == [{"context": "京都のおすすめは?", "interrupt": "ちょっと待って。", "timestamp": [2.0, 3.0]}]
    words = json.loads((folder / "output.json").read_text(encoding="utf-8"))
    assert [c["text"] for c in words["chunks"]] == ["はい", "それ", "は"] and words["source"] == "model text stream"
    assert json.loads((folder / SET_ASIDE).read_text(encoding="utf-8"))["chunks"][0]["text"] == "ASR"
    (folder / SET_ASIDE).unlink()
    rec.add_text(45, 1, "です")
    assert write_fdb_files(it, rec) == ["output.json"]  # interrupt.json kept, the kit's own output.json rewritten
    assert not (folder / SET_ASIDE).exists()
    assert json.loads((folder / "output.json").read_text(encoding="utf-8"))["text"].endswith("です")
