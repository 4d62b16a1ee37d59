"""The rater page's server over real HTTP on 127.0.0.1: saved tests, quality controls, resuming, bad input.

The page's trial logic is ``ListeningTest``'s; these tests drive the server the way the page does
(``rater_client.rate_all``) and read what is on disk.
"""

from __future__ import annotations

import asyncio
import csv
import errno
import json
import random
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from test_listening import make_runs

from jmoshi_nb.cli import main
from jmoshi_nb.core.audio import SAMPLE_RATE
from jmoshi_nb.research import listening
from jmoshi_nb.research.listening import ListeningTest, mos_table, preference_table, read_ratings
from jmoshi_nb.research.listening_quality import (
    QualityControls,
    headphone_audio,
    screening_report,
    trap_audio,
)
from jmoshi_nb.research.listening_server import PAGE_DIR, RaterServer, random_answer, rate_all, simulate_raters

QUALITY = QualityControls(traps=1, gold_bad=1, headphone_trials=2)


@pytest.fixture(scope="module")
def saved_test(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved test (2 systems x 2 inputs, MOS + A/B, a trap, a gold clip, 2 headphone trials), made once."""
    root = tmp_path_factory.mktemp("listen")
    runs = make_runs(root / "runs", {"cool": 0.1, "warm": 0.2}, {"q1": 1.0, "q2": 1.5})
    ListeningTest.create(runs, out=root / "test", ab=True, seed=2, quality=QUALITY)
    return root / "test"


@pytest.fixture()
def test_dir(saved_test: Path, tmp_path: Path) -> Path:
    """A fresh copy of the saved test (no ratings yet), somewhere else: a saved test is self-contained."""
    return Path(shutil.copytree(saved_test, tmp_path / "moved-test"))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _get(url: str, **params: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.get(url, params=params) as res:
        return res.status, await res.json(content_type=None)


async def _post(url: str, body: Any, **params: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.post(url, json=body, params=params) as res:
        return res.status, await res.json(content_type=None)


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def right_answer(test: ListeningTest, rater: str, listened: float | None = None, trap: int | None = None) -> None:
    """Answer ``rater``'s next trial as an attentive rater would (``trap``: the rating given to a trap)."""
    trial = test.remaining(rater)[0]
    expected = test.expected(trial)
    listened = test.seconds(trial) + 0.5 if listened is None else listened
    if trial.kind == "headphone":
        test.answer(rater, trial, choice=expected, listened_s=listened)
    elif trial.kind == "ab":
        test.answer(rater, trial, choice="A", listened_s=listened)
    else:
        value = 4
        if trial.kind == "trap":
            value = trap if trap is not None else int(expected)
        elif trial.kind == "gold":
            value = int(expected.split("-")[0])
        test.answer(rater, trial, naturalness=value, meaningfulness=value, listened_s=listened)


# ---- the saved test and its controls ---------------------------------------------------------------
def test_a_saved_test_opens_anywhere_with_the_same_trials_and_its_controls(saved_test: Path, test_dir: Path) -> None:
    here, moved = ListeningTest.open(saved_test), ListeningTest.open(test_dir)
    assert [t.id for t in here.trials("aiko")] == [t.id for t in moved.trials("aiko")]
    trials = moved.trials("aiko")
    kinds = [t.kind for t in trials]
    assert kinds[:2] == ["headphone", "headphone"]  # the check comes first
    assert kinds.count("trap") == 1 and kinds.count("gold") == 1 and kinds.count("mos") == 4
    assert kinds[2] == "mos" and kinds[-2:] == ["ab", "ab"]  # never a control first; A/B last
    trap = next(t for t in trials if t.kind == "trap")
    assert moved.expected(trap) == "2" and moved.expected(next(t for t in trials if t.kind == "gold")) == "1-2"
    assert moved.seconds(trap) > 1.0  # the spoken instruction lengthens a 1 s clip
    meta = json.loads((test_dir / "test.json").read_text(encoding="utf-8"))
    assert all(not Path(c["path"]).is_absolute() for c in meta["clips"] + meta["controls"])
    with pytest.raises(FileExistsError, match="already holds a listening test"):
        ListeningTest.create(test_dir.parent, out=test_dir)


def test_headphone_trial_tones_follow_woods_et_al() -> None:
    pcm = headphone_audio(quiet_position=2, antiphase_position=0)
    n, gap = SAMPLE_RATE, SAMPLE_RATE // 2
    tones = [pcm[gap + i * (n + gap) : gap + i * (n + gap) + n] for i in range(3)]
    rms = [float(np.sqrt(np.mean(t[:, 0] ** 2))) for t in tones]
    assert 20 * np.log10(rms[2] / rms[0]) == pytest.approx(-6, abs=0.01)  # the softer one, -6 dB
    assert np.abs(tones[0].sum(axis=1)).max() < 1e-6  # antiphase: cancels when both ears mix (loudspeakers)
    assert np.allclose(tones[1][:, 0], tones[1][:, 1])  # the reference: in phase
    crossings = np.count_nonzero(np.diff(np.sign(tones[1][SAMPLE_RATE // 10 : -SAMPLE_RATE // 10, 0])) != 0)
    assert crossings / 0.8 == pytest.approx(2 * 200, rel=0.02)  # 200 Hz


def test_a_trap_clip_speaks_its_instruction_over_the_clip() -> None:
    background = np.full((SAMPLE_RATE, 2), 0.1, np.float32)
    out = trap_audio(background, 2)
    start = SAMPLE_RATE // 3
    assert np.allclose(out[: start - 1], 0.04)  # the clip, quieter
    speech = out[start:, 0] - np.concatenate([np.full(SAMPLE_RATE - start, 0.04), np.zeros(len(out) - SAMPLE_RATE)])
    assert float(np.abs(speech).max()) > 0.3 and len(out) > SAMPLE_RATE  # speech on top, clip lengthened


# ---- over HTTP ------------------------------------------------------------------------------------
def test_a_rater_goes_through_the_page_api_resumes_and_gets_a_verifiable_code(test_dir: Path) -> None:
    test = ListeningTest.open(test_dir)
    order = [t.id for t in test.trials("aiko")]
    answer = random_answer(random.Random(1))

    async def go(server: RaterServer, limit: int | None) -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as s:
            return await rate_all(s, server.url, "aiko", answer, limit=limit)

    with RaterServer(test).start() as server:
        status, page = 0, ""

        async def fetch_page() -> None:
            nonlocal status, page
            async with aiohttp.ClientSession() as s, s.get(server.url) as res:
                status, page = res.status, await res.text()

        run(fetch_page())
        assert status == 200 and "自然さ" in page and "Naturalness" in page and "static/rater.js" in page
        first = run(go(server, 5))
    assert [a["index"] for a in first[:-1]] == [1, 2, 3, 4, 5]
    with RaterServer(ListeningTest.open(test_dir)).start() as server:  # the tab closed, the server restarted
        rest = run(go(server, None))
    assert rest[0]["index"] == 6  # continues at the right trial
    final = rest[-1]["final"]
    assert final["finished"] and final["answered"] == final["total"] == len(order)
    assert test.verify_code("aiko", final["code"]) and not test.verify_code("ben", final["code"])
    rows = rows_of(test_dir / "ratings" / "aiko.csv")
    assert [r["trial"] for r in rows] == order  # every answer, in the rater's order, each once
    sent = [a for a in first[:-1] + rest[:-1]]
    for row, a in zip(rows, sent, strict=True):
        if a["kind"] == "rate":
            assert (row["naturalness"], row["meaningfulness"]) == (str(a["naturalness"]), str(a["meaningfulness"]))
        else:
            assert row["choice"] == a["choice"]
    assert all(float(r["listened_s"]) >= 0 and float(r["clip_s"]) > 0 for r in rows)
    assert "cool" not in json.dumps(first) and "warm" not in json.dumps(first) and "trap" not in json.dumps(first)


def test_bad_input_is_refused_and_nothing_recorded_is_lost(test_dir: Path) -> None:
    test = ListeningTest.open(test_dir)
    with RaterServer(test, token="s3cret").start() as server:
        base = server.url.split("?")[0]
        assert run(_get(f"{base}api/state", rater="aiko"))[0] == 401
        for bad in ("../../etc/passwd", "a/b", "", "x" * 65, ".hidden", "a b"):
            status, body = run(_get(f"{base}api/state", rater=bad, token="s3cret"))
            assert status == 400 and "not allowed" in body["error"], bad
        status, state = run(_get(f"{base}api/state", rater="aiko", token="s3cret"))
        assert status == 200 and state["trial"]["kind"] == "headphone"
        tid = state["trial"]["id"]
        ok = {"rater": "aiko", "trial": tid, "choice": "1"}
        assert run(_post(f"{base}api/answer", {**ok, "trial": "0123456789ab"}, token="s3cret"))[0] == 409
        assert run(_post(f"{base}api/answer", {**ok, "choice": "4"}, token="s3cret"))[0] == 400
        assert run(_post(f"{base}api/answer", ok, token="s3cret"))[0] == 200
        assert run(_post(f"{base}api/answer", ok, token="s3cret"))[0] == 409  # no double rating
        state = run(_get(f"{base}api/state", rater="aiko", token="s3cret"))[1]
        ok = {**ok, "trial": state["trial"]["id"]}
        run(_post(f"{base}api/answer", ok, token="s3cret"))  # the second headphone trial
        state = run(_get(f"{base}api/state", rater="aiko", token="s3cret"))[1]
        assert state["trial"]["kind"] == "rate"
        rate = {"rater": "aiko", "trial": state["trial"]["id"], "naturalness": 3, "meaningfulness": 3}
        for bad in ({"naturalness": 6}, {"meaningfulness": 0}, {"naturalness": "3"}, {"naturalness": True}):
            status, body = run(_post(f"{base}api/answer", {**rate, **bad}, token="s3cret"))
            assert status == 400, bad
        skip = {**rate, "trial": server.public_id(test.remaining("aiko")[1])}
        assert run(_post(f"{base}api/answer", skip, token="s3cret"))[0] == 409  # cannot skip ahead
        assert run(_post(f"{base}api/answer", rate, token="s3cret"))[0] == 200
    rows = rows_of(test_dir / "ratings" / "aiko.csv")
    assert [r["kind"] for r in rows] == ["headphone", "headphone", "mos"] and rows[2]["naturalness"] == "3"


def test_a_full_disk_is_reported_and_the_answer_not_counted(test_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    test = ListeningTest.open(test_dir)
    csv_path = test_dir / "ratings" / "aiko.csv"
    with RaterServer(test).start() as server:
        state = run(_get(f"{server.url}api/state", rater="aiko"))[1]
        assert run(_post(f"{server.url}api/answer", {"rater": "aiko", "trial": state["trial"]["id"], "choice": "2"}))[0]
        size = csv_path.stat().st_size
        state = run(_get(f"{server.url}api/state", rater="aiko"))[1]
        body = {"rater": "aiko", "trial": state["trial"]["id"], "choice": "3"}

        def full(fd: int) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(listening.os, "fsync", full)
        status, answer = run(_post(f"{server.url}api/answer", body))
        assert status == 507 and "could not be saved" in answer["error"] and "No space" in answer["error"]
        assert csv_path.stat().st_size == size  # cut back: not half a row, not a row counted later
        assert run(_get(f"{server.url}api/state", rater="aiko"))[1]["trial"]["id"] == body["trial"]  # not counted
        monkeypatch.undo()
        status, after = run(_post(f"{server.url}api/answer", body))
        assert status == 200 and after["answered"] == 2
    assert [r["choice"] for r in rows_of(csv_path)] == ["2", "3"]
    assert ListeningTest.open(test_dir).done("aiko") == {t.id for t in test.trials("aiko")[:2]}


def test_a_clip_that_cannot_be_decoded_is_named_and_the_rest_served(test_dir: Path) -> None:
    broken = sorted((test_dir / "clips").glob("*.wav"))[0]
    broken.write_bytes(b"RIFF but not audio")
    with pytest.warns(UserWarning, match="cannot be used"):
        test = ListeningTest.open(test_dir)
    assert list(test.skipped) == [str(broken)] and len(test.clips) == 3
    assert all(broken.stem not in t.id for t in test.trials("aiko"))
    with RaterServer(test).start() as server:

        async def go() -> list[dict[str, Any]]:
            async with aiohttp.ClientSession() as s:
                return await rate_all(s, server.url, "aiko", random_answer(random.Random(0)))

        done = run(go())
    assert done[-1]["final"]["finished"] and len(done) - 1 == len(test.trials("aiko"))


def test_twenty_raters_at_once_lose_no_answer_and_write_no_corrupt_row(test_dir: Path) -> None:
    test = ListeningTest.open(test_dir)
    raters = [f"r{i:02d}" for i in range(20)]

    async def everyone(url: str) -> list[list[dict[str, Any]]]:
        limit = asyncio.Semaphore(20)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=40)) as s:

            async def one(i: int, rater: str) -> list[dict[str, Any]]:
                async with limit:
                    return await rate_all(s, url, rater, random_answer(random.Random(i)), fetch_clips=i % 2 == 0)

            return await asyncio.gather(*(one(i, r) for i, r in enumerate(raters)))

    with RaterServer(test).start() as server:
        sent = run(everyone(server.url))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a corrupt row would warn
        df = read_ratings(test_dir / "ratings")
    assert df.attrs["skipped"] == []
    for rater, answers in zip(raters, sent, strict=True):
        mine = df[df["rater"] == rater]
        assert list(mine["trial"]) == [t.id for t in test.trials(rater)]  # each trial once, in order
        assert len(mine) == len(answers) - 1 and answers[-1]["final"]["finished"]


# ---- screening --------------------------------------------------------------------------------------
def test_screening_leaves_out_raters_who_fail_a_trap_or_answer_too_fast(test_dir: Path) -> None:
    test = ListeningTest.open(test_dir)
    total = len(test.trials("x"))
    for _ in range(total):
        right_answer(test, "good")
        right_answer(test, "deaf", trap=4)  # did not hear the instruction to rate 2
        right_answer(test, "hasty", listened=0.2)  # answered before the clip could end
    df = read_ratings(test_dir, screen=True)
    out = df.attrs["screened_out"]
    assert set(out) == {"deaf", "hasty"} and df.attrs["raters_kept"] == 1
    trap = next(t.id for t in test.trials("deaf") if t.kind == "trap")
    assert out["deaf"] == [f"trap {trap}: rated 4/4, asked for 2"]
    assert out["hasty"][0].startswith(f"{total} answer(s) before the clip's end")
    assert set(df["rater"]) == {"good"}
    table = mos_table(df)
    assert list(table["screened_out"]) == [2, 2] and list(table["raters"]) == [1, 1]
    assert list(preference_table(df)["screened_out"]) == [2]  # one pair of systems
    report = screening_report(df)
    assert "screened out: 2 rater(s), kept 1" in report and "deaf: trap" in report
    unscreened = read_ratings(test_dir)
    assert set(unscreened["rater"]) == {"good", "deaf", "hasty"} and "screened_out" not in mos_table(unscreened)


def test_a_failed_headphone_check_screens_a_rater_out(test_dir: Path) -> None:
    test = ListeningTest.open(test_dir)
    for trial in test.trials("speakers"):
        expected = test.expected(trial)
        if trial.kind == "headphone":  # over loudspeakers: picks the antiphase tone, not the softer one
            test.answer("speakers", trial, choice=str(int(expected) % 3 + 1), listened_s=9)
        elif trial.kind == "ab":
            test.answer("speakers", trial, choice="B", listened_s=9)
        else:
            value = int(expected.split("-")[0]) if expected else 3
            test.answer("speakers", trial, naturalness=value, meaningfulness=value, listened_s=9)
    df = read_ratings(test_dir, screen=True)
    assert df.attrs["screened_out"] == {"speakers": ["headphone check: 0 of 2 right (needs 2)"]}


# ---- the page's state logic, under node --------------------------------------------------------------
NODE_CHECK = """
const S = await import(process.argv[1]);
const out = {};
const t = {id: "abc", kind: "rate", index: 3, clips: ["api/clip/abc/0.wav"], seconds: 1.5};
let s = S.newTrialState(t, true);
out.lockedAtStart = !S.unlocked(s) && S.pick(s, "naturalness", 4) === s && S.payload(s, "r1") === null;
s = S.clipEnded(s, 0);
s = S.pick(S.pick(s, "naturalness", 4), "meaningfulness", 9);
out.halfAnswered = S.unlocked(s) && !S.canSend(s);
s = S.pick(s, "meaningfulness", 2);
out.body = S.payload(s, "r1");
s = S.sent(s);
out.noSecondSend = S.payload(s, "r1") === null;
out.retryAfterFailure = S.canSend(S.failed(s));
let ab = S.newTrialState({id: "x", kind: "ab", clips: ["a", "b"]}, true);
ab = S.clipEnded(ab, 0);
out.abNeedsBoth = S.pick(ab, "choice", "A") === ab;
out.abBody = S.payload(S.pick(S.clipEnded(ab, 1), "choice", "same"), "r1");
const hp = {id: "h", kind: "headphone", clips: ["h"]};
out.freeWithoutFullPlay = S.canSend(S.pick(S.newTrialState(hp, false), "choice", "2"));
out.headphoneRejectsFour = !S.canSend(S.pick(S.clipEnded(S.newTrialState(hp, true), 0), "choice", "4"));
out.raters = [S.raterFrom("?rater=aiko-1", null), S.raterFrom("?rater=../x", "kept"), S.raterFrom("", null),
              S.raterFrom("?rater=a%2Fb", null)];
out.url = S.apiUrl("api/state", "aiko", "t k");
out.progress = [S.progressText({total: 9, trial: {index: 3}}, "HP"),
                S.progressText({total: 9, trial: {index: 1, check: [1, 2]}}, "HP")];
console.log(JSON.stringify(out));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed: the page's logic not exercised")
def test_the_pages_trial_state_unlocks_only_after_the_clips_end(tmp_path: Path) -> None:
    module = tmp_path / "rater-state.mjs"
    module.write_text((PAGE_DIR / "rater-state.js").read_text(encoding="utf-8"), encoding="utf-8")
    result = subprocess.run(["node", "--input-type=module", "-e", NODE_CHECK, str(module)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["lockedAtStart"] and out["halfAnswered"] and out["noSecondSend"] and out["retryAfterFailure"]
    assert out["body"] == {"rater": "r1", "trial": "abc", "naturalness": 4, "meaningfulness": 2}
    assert out["abNeedsBoth"] and out["abBody"] == {"rater": "r1", "trial": "x", "choice": "same"}
    assert out["freeWithoutFullPlay"] and out["headphoneRejectsFour"]
    assert out["raters"] == ["aiko-1", "kept", None, None]
    assert out["url"] == "api/state?rater=aiko&token=t+k"
    assert out["progress"] == ["3 / 9", "HP 1 / 2"]
    for name in ("rater.js", "rater-state.js"):
        check = subprocess.run(["node", "--check", str(PAGE_DIR / name)], capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stderr


# ---- the command line ---------------------------------------------------------------------------------
def test_cli_creates_serves_and_refuses_a_missing_test(
    saved_test: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["listen", "serve", str(tmp_path / "nowhere")]) == 2
    assert f"{tmp_path / 'nowhere'}: no such folder" in capsys.readouterr().err
    assert main(["listen", "create", "--system", "bad", "--out", str(tmp_path / "t")]) == 2
    assert "NAME=DIR" in capsys.readouterr().err
    runs = saved_test.parent / "runs"
    args = ["listen", "create", "--system", f"cool={runs / 'cool'}", "--system", f"warm={runs / 'warm'}",
            "--out", str(tmp_path / "t"), "--traps", "0", "--gold-bad", "0", "--headphone-trials", "0"]  # fmt: skip
    assert main(args) == 0
    assert "controls: 0 trap, 0 gold, 0 headphone" in capsys.readouterr().out
    served: dict[str, Any] = {}
    monkeypatch.setattr("jmoshi_nb.research.listening_server.serve_listening", lambda test, **kw: served.update(kw))
    assert main(["listen", "serve", str(tmp_path / "t"), "--host", "0.0.0.0", "--port", "9123"]) == 0
    captured = capsys.readouterr()
    assert "without --token" in captured.err and "http://127.0.0.1:9123/" in captured.out
    assert served == {"host": "0.0.0.0", "port": 9123, "token": None}
    assert main(["listen", "serve", str(tmp_path / "t"), "--token", "tk"]) == 0
    captured = capsys.readouterr()
    assert "without --token" not in captured.err and "?token=tk" in captured.out
    test = ListeningTest.open(tmp_path / "t")
    assert main(["listen", "verify", str(tmp_path / "t"), "ann", test.completion_code("ann")]) == 0
    assert main(["listen", "verify", str(tmp_path / "t"), "ann", "0000000000"]) == 1
    capsys.readouterr()
    for trial in test.trials("ann"):
        test.answer("ann", trial, naturalness=4, meaningfulness=5, listened_s=0.1)  # faster than the clip
    assert main(["listen", "summary", str(tmp_path / "t"), "--no-screen"]) == 0
    out = capsys.readouterr().out
    assert "not screened" in out and "4.0" in out and "5.0" in out
    assert main(["listen", "summary", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    assert "screened out: 1 rater(s), kept 0" in out and "ann: 4 answer(s) before the clip's end" in out
    assert "no ratings left" in out


def test_simulated_raters_take_the_test_through_the_running_page(tmp_path: Path) -> None:
    runs = make_runs(tmp_path / "runs", {"cool": 0.1, "warm": 0.2}, {"q1": 1.0})
    quality = QualityControls(traps=1, gold_bad=0, headphone_trials=0)
    test = ListeningTest.create(runs, out=tmp_path / "t", quality=quality)
    with test.serve() as page:
        assert simulate_raters(page, {"ann": "attentive", "bob": "careless"}, seed=3) == {"ann": 3, "bob": 3}
        assert page.progress() == {r: {"answered": 3, "total": 3, "finished": True} for r in ("ann", "bob")}
    df = read_ratings(tmp_path / "t", screen=True)
    assert set(df["rater"]) == {"ann"} and list(df.attrs["screened_out"]) == ["bob"]
    rows = rows_of(tmp_path / "t" / "ratings" / "ann.csv")
    assert all(float(r["listened_s"]) >= float(r["clip_s"]) for r in rows)  # it listened to the end


def test_the_notebook_widget_takes_a_saved_test_with_its_controls(test_dir: Path) -> None:
    from jmoshi_nb.notebook.widgets import ListeningWidget

    test = ListeningTest.open(test_dir)
    widget = ListeningWidget(test, rater="../x")
    assert "not allowed" in widget.error and widget.trial == {}  # a name that cannot be a file's name
    widget.rater = "wen"
    seen = []
    while not widget.finished:
        trial = widget.current
        assert trial is not None
        seen.append(widget.trial["kind"])
        expected = test.expected(trial)
        if widget.trial["kind"] == "headphone":
            widget.prefer(expected)
        elif widget.trial["kind"] == "ab":
            widget.prefer("same")
        else:
            value = int(expected.split("-")[0]) if expected else 3
            widget.rate(value, value)
        assert widget.error == ""
    assert seen[:2] == ["headphone", "headphone"] and set(seen[2:]) == {"mos", "ab"}  # trap and gold look like MOS
    df = read_ratings(test_dir, screen=True)
    assert list(df.attrs["screened_out"]) == [] and len(df) == len(test.trials("wen"))


def test_a_ratings_file_from_before_the_quality_columns_is_still_read_and_appended(tmp_path: Path) -> None:
    path = tmp_path / "old.csv"
    legacy = listening.COLUMNS[:14]
    path.write_text(",".join(legacy) + "\r\n" + ",A,mos:1,mos,c,s1,q,4,5,,,,,\r\n", encoding="utf-8")
    listening.append_rating(path, {"rater": "A", "trial": "mos:2", "kind": "mos", "system": "s1",
                                   "naturalness": 2, "meaningfulness": 3, "listened_s": "9"})  # fmt: skip
    header, *rows = path.read_text(encoding="utf-8").splitlines()
    assert header.split(",") == list(legacy) and all(len(r.split(",")) == 14 for r in rows)  # its own columns
    df = read_ratings(path, screen=True)
    assert list(df["naturalness"]) == [4, 2] and df.attrs["screened_out"] == {}


def test_the_rater_pages_access_log_never_shows_its_token(test_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The page's requests carry ``?token=``: the access log shows ``token=***``, never the token."""
    import logging
    import urllib.request

    caplog.set_level(logging.INFO, logger="aiohttp.access")
    with RaterServer(ListeningTest.open(test_dir), token="s3cr3t-rater").start() as server:
        for path in ("?token=s3cr3t-rater", "?token=wrong-guess"):
            try:
                urllib.request.urlopen(server.url.split("?")[0] + path, timeout=10).read()
            except OSError:
                pass  # a wrong token is refused: its request is logged all the same
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert len(lines) == 2 and all("token=***" in line for line in lines), lines
    assert not any("s3cr3t-rater" in line or "wrong-guess" in line for line in lines), lines
