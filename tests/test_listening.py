"""The listening test's logic without a browser: clips, blind randomized trials, the ratings CSV, stats."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from jmoshi_nb.core.audio import SAMPLE_RATE
from jmoshi_nb.core.recording import Recording
from jmoshi_nb.research.listening import (
    COLUMNS,
    ListeningTest,
    RatingsFileError,
    append_rating,
    collect_clips,
    mean_ci,
    mos_table,
    plot_summary,
    preference_table,
    read_ratings,
)


def make_run(folder: Path, item: str, seconds: float, level: float) -> Path:
    rec = Recording()
    rec.add_user(np.full(int(seconds * SAMPLE_RATE), level, np.float32))
    rec.add_model(np.full(int(seconds * SAMPLE_RATE), -level, np.float32))
    rec.meta["input_sha256"] = item
    return rec.save(folder)


def make_runs(root: Path, levels: dict[str, float], seconds: dict[str, float]) -> Path:
    """``root/<system>/<item>``: every system (its signal level) on every item (its duration), as a sweep saves."""
    for system, level in levels.items():
        for item, sec in seconds.items():
            make_run(root / system / item, item, sec, level)
    return root


@pytest.fixture()
def sweep(tmp_path: Path) -> Path:
    """Two settings (systems) x two inputs (items), as a sweep's out_dir per setting."""
    return make_runs(tmp_path / "runs", {"cool": 0.1, "warm": 0.2}, {"q1": 1.0, "q2": 1.5})


def test_clips_of_any_rate_load_at_24k_and_unusable_ones_are_named(sweep: Path, tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    sf.write(files / "a16k.wav", np.full(16000, 0.1, np.float32), 16000)  # 1 s mono at 16 kHz
    sf.write(files / "b44k.wav", np.full((44100 * 2, 2), 0.1, np.float32), 44100)  # 2 s stereo at 44.1 kHz
    sf.write(files / "empty.wav", np.zeros(0, np.float32), 16000)
    (files / "broken.wav").write_bytes(b"RIFF not really")
    with pytest.warns(UserWarning, match="cannot be used"):
        test = ListeningTest.create({"cool": sweep / "cool", "warm": sweep / "warm", "other": files},
                                    tmp_path / "r.csv")  # fmt: skip
    assert set(test.skipped) == {str(files / "empty.wav"), str(files / "broken.wav")}
    assert "no audio" in test.skipped[str(files / "empty.wav")]
    assert "not a readable audio file" in test.skipped[str(files / "broken.wav")]
    by_name = {c.path.name: c for c in test.clips}
    assert test.audio[by_name["a16k.wav"].id].shape == (SAMPLE_RATE, 1)
    assert test.audio[by_name["b44k.wav"].id].shape == (2 * SAMPLE_RATE, 2)
    assert test.audio[by_name["q2"].id].shape == (int(1.5 * SAMPLE_RATE), 2)
    data, rate = sf.read(__import__("io").BytesIO(test.wav(by_name["a16k.wav"])))
    assert rate == SAMPLE_RATE and len(data) == SAMPLE_RATE
    assert test.systems == ["cool", "other", "warm"]


def test_a_sweep_folder_gives_one_system_per_run(sweep: Path) -> None:
    clips = collect_clips(sweep)
    assert sorted({c.system for c in clips}) == ["cool", "warm"] and len(clips) == 4
    assert {c.item for c in clips} == {"q1", "q2"}
    with pytest.raises(FileNotFoundError, match="no such"):
        collect_clips({"x": sweep / "missing"})


def test_trials_are_blind_randomized_per_rater_and_stable(sweep: Path, tmp_path: Path) -> None:
    test = ListeningTest.create(sweep, tmp_path / "r.csv", ab=True, seed=3)
    a1, a2, b = test.trials("Aiko"), test.trials("Aiko"), test.trials("Ben")
    assert [t.id for t in a1] == [t.id for t in a2]  # a rater who comes back sees the same order
    assert [t.id for t in a1] != [t.id for t in b]
    assert [t.kind for t in a1] == ["mos"] * 4 + ["ab"] * 2
    for t in a1:
        assert "cool" not in t.id and "warm" not in t.id
    for t in a1[4:]:  # A/B pairs: same input, different systems
        x, y = t.clips
        assert x.item == y.item and x.system != y.system


def test_answers_are_appended_at_once_and_a_rater_resumes(sweep: Path, tmp_path: Path) -> None:
    ratings = tmp_path / "ratings.csv"
    test = ListeningTest.create(sweep, ratings, ab=True)
    trials = test.remaining("Aiko")
    test.answer("Aiko", trials[0], naturalness=4, meaningfulness=3)
    rows = list(csv.DictReader(ratings.open(encoding="utf-8")))
    assert len(rows) == 1 and rows[0]["naturalness"] == "4" and rows[0]["system"] in ("cool", "warm")
    with pytest.raises(ValueError, match="naturalness must be 1-5"):
        test.answer("Aiko", trials[1], naturalness=6, meaningfulness=3)
    with pytest.raises(ValueError, match="rater"):
        test.answer(" ", trials[1], naturalness=3, meaningfulness=3)
    ab = next(t for t in trials if t.kind == "ab")
    test.answer("Aiko", ab, choice="B")
    assert len(list(csv.DictReader(ratings.open(encoding="utf-8")))) == 2  # nothing written for bad answers
    again = ListeningTest.create(sweep, ratings, ab=True)  # the tab was closed: a new session
    left = again.remaining("Aiko")
    assert len(left) == len(trials) - 2 and trials[0].id not in {t.id for t in left}
    assert len(again.remaining("Ben")) == len(trials)


def test_foreign_rows_are_named_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    good = {"rater": "A", "trial": "mos:1", "kind": "mos", "system": "s1", "naturalness": 4, "meaningfulness": 5}
    append_rating(path, good)
    with path.open("a", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["", "A", "mos:2", "mos", "c", "s1", "", "7", "3", *[""] * 8])  # line 3: out of scale
        w.writerow(["", "A", "x:1", "poll", *[""] * 13])  # line 4: unknown kind
        w.writerow(["just", "three", "fields"])  # line 5
        fh.write(",A,mos:3,mos,c,s1,,4")  # line 6: torn by a crash
    append_rating(path, {**good, "trial": "mos:4"})  # goes on a new line after the torn one
    with pytest.warns(UserWarning) as caught:
        df = read_ratings(path)
    messages = [str(w.message) for w in caught]
    assert any(f"{path}:3: naturalness '7'" in m for m in messages)
    assert any(f"{path}:4: kind 'poll'" in m for m in messages)
    assert any(f"{path}:5: wrong number of fields" in m for m in messages)
    assert any(f"{path}:6: wrong number of fields" in m for m in messages)
    assert len(df.attrs["skipped"]) == 4 and list(df["trial"]) == ["mos:1", "mos:4"]

    other = tmp_path / "other.csv"
    other.write_text("name,score\nx,3\n", encoding="utf-8")
    with pytest.raises(RatingsFileError, match="not a ratings file"):
        append_rating(other, good)
    with pytest.warns(UserWarning, match="missing columns"):
        assert read_ratings(other).empty


def test_mos_ci_and_preference_binomial_on_known_counts(tmp_path: Path) -> None:
    mean, half = mean_ci([4, 5, 3, 4])
    # sd = sqrt(2/3), sem = sd / 2, t(0.975, 3 dof) = 3.1824
    assert mean == 4 and half == pytest.approx(3.1824 * np.sqrt(2 / 3) / 2, rel=1e-4)
    assert mean_ci([3])[1] != mean_ci([3])[1]  # NaN with one rating
    a, b = tmp_path / "aiko.csv", tmp_path / "ben.csv"
    for i, (n, m) in enumerate([(4, 2), (5, 3)]):
        append_rating(a, {"rater": "Aiko", "trial": f"mos:x{i}", "kind": "mos", "system": "X",
                          "naturalness": n, "meaningfulness": m})  # fmt: skip
    for i, (n, m) in enumerate([(3, 4), (4, 4)]):
        append_rating(b, {"rater": "Ben", "trial": f"mos:x{i}", "kind": "mos", "system": "X",
                          "naturalness": n, "meaningfulness": m})  # fmt: skip
    append_rating(b, {"rater": "Ben", "trial": "mos:y", "kind": "mos", "system": "Y", "naturalness": 2,
                      "meaningfulness": 1})  # fmt: skip
    # A/B: X preferred 8 times, Y twice, one tie; X is A or B on different trials
    for i in range(11):
        choice, sa, sb = ("same", "X", "Y") if i == 10 else (("A", "X", "Y") if i < 4 else ("B", "Y", "X"))
        if i in (8, 9):
            choice = "A"  # Y (as A) wins twice
        append_rating(b, {"rater": "Ben", "trial": f"ab:{i}", "kind": "ab", "system_a": sa, "system_b": sb,
                          "choice": choice})  # fmt: skip
    df = read_ratings([a, b])  # two raters' files merge
    mos = mos_table(df)
    assert mos.loc["X", "naturalness"] == 4 and mos.loc["X", "meaningfulness"] == pytest.approx(3.25)
    assert mos.loc["X", "n"] == 4 and mos.loc["X", "raters"] == 2 and mos.loc["Y", "n"] == 1
    assert mos.loc["X", "naturalness_ci95"] == pytest.approx(3.1824 * np.sqrt(2 / 3) / 2, rel=1e-4)
    pref = preference_table(df)
    row = pref.iloc[0]
    assert (row.system_1, row.system_2, row.wins_1, row.wins_2, row.ties) == ("X", "Y", 8, 2, 1)
    assert row.rate_1 == pytest.approx(0.8)
    assert row.p_value == pytest.approx(112 / 1024)  # two-sided: P(X >= 8) + P(X <= 2), n = 10
    fig = plot_summary(df)
    assert len(fig.axes) == 2


def test_columns_are_the_documented_ones() -> None:
    assert COLUMNS[:4] == ("time_utc", "rater", "trial", "kind")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mos_table(read_ratings([])).empty
