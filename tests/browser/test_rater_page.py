"""The rater page in headless Chromium: a remote rater takes a saved listening test end to end.

The rater opens the link (an id is made and shown), passes the headphone check, cannot rate a clip
before it has played to its end, rates trials including the trapping clip, closes the tab, comes
back with the same link, continues at the right trial, finishes and gets the completion code, which
verifies. Every answer is in the rater's CSV with the values clicked. Screenshots at desktop and
phone width go to test-output/browser/ (and /work/notes/screens/ when that folder exists).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import harness as H
import numpy as np
import pytest
import soundfile as sf

from jmoshi_nb.research.listening import ListeningTest
from jmoshi_nb.research.listening_quality import QualityControls
from jmoshi_nb.research.listening_server import RaterServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OUT = H.REPO / "test-output" / "browser"
NOTES = Path("/work/notes/screens")


def make_test(root: Path) -> ListeningTest:
    for system, rate, seconds, hz in (("calm", 16000, 1.0, 220), ("wild", 44100, 1.2, 330)):
        (root / system).mkdir(parents=True)
        t = np.arange(int(rate * seconds)) / rate
        sf.write(root / system / "q1.wav", (0.2 * np.sin(2 * np.pi * hz * t)).astype(np.float32), rate)
    quality = QualityControls(traps=1, gold_bad=0, headphone_trials=1)
    return ListeningTest.create({"calm": root / "calm", "wild": root / "wild"}, out=root / "test", ab=True,
                                quality=quality)  # fmt: skip


def shoot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / f"rater-{name}.png"), full_page=True)
    if NOTES.is_dir():
        shutil.copy(OUT / f"rater-{name}.png", NOTES / f"rater-{name}.png")


def answer_current(page, test: ListeningTest, rater: str, clicked: list[tuple[str, str]]) -> str:  # type: ignore[no-untyped-def]
    """Play the current trial's clips to their end, then answer it as an attentive rater; returns its kind."""
    trial = test.remaining(rater)[0]
    expected = test.expected(trial)
    before = page.text_content(".rater-progress")  # read before answering: the next trial may come at once
    answers = page.locator(".rater-value, .rater-choice")
    assert answers.count() > 0 and all(answers.nth(i).is_disabled() for i in range(answers.count()))
    for k in range(len(trial.clips)):
        page.click(f".rater-play[data-k='{k}']")
        if k == 0 and trial.kind in ("mos", "trap"):
            assert page.locator(".rater-value").first.is_disabled()  # playing, not ended: still locked
            assert page.locator(".rater-submit").is_disabled()
        page.wait_for_selector(f".rater-play[data-k='{k}']:has-text('Played')", timeout=30_000)
    if trial.kind == "headphone":
        page.click(f".rater-choice[data-choice='{expected}']:not([disabled])")
        clicked.append((trial.id, expected))
    elif trial.kind == "ab":
        page.click(".rater-choice[data-choice='B']:not([disabled])")
        clicked.append((trial.id, "B"))
    else:
        nat, mean = (int(expected), int(expected)) if trial.kind == "trap" else (4, 3)
        page.click(f"[data-criterion='naturalness'] [data-value='{nat}']:not([disabled])")
        page.click(f"[data-criterion='meaningfulness'] [data-value='{mean}']:not([disabled])")
        page.click(".rater-submit:not([disabled])")
        clicked.append((trial.id, f"{nat}/{mean}"))
    page.wait_for_function(
        f"() => document.querySelector('.rater-code') || "
        f"document.querySelector('.rater-progress').textContent !== {before!r}",
        timeout=30_000,
    )
    return trial.kind


def test_a_remote_rater_takes_the_test_leaves_comes_back_and_finishes(chromium_exe: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    test = make_test(tmp_path / "t")
    total = len(test.trials("x"))  # 1 headphone + 2 MOS + 1 trap + 1 A/B
    clicked: list[tuple[str, str]] = []
    with RaterServer(test, token="tok-123").start() as server, sync_playwright() as pw:
        context = H.chromium(pw, H.fake_microphone_wav(tmp_path / "mic.wav"), tmp_path / "profile", chromium_exe)
        page = H.first_page(context)
        try:
            page.set_viewport_size({"width": 1280, "height": 800})
            page.goto(server.url)
            rater = page.text_content(".rater-id", timeout=30_000) or ""
            assert rater.startswith("r-") and f"rater={rater}" in page.url and "token=tok-123" in page.url
            shoot(page, "desktop-intro")
            page.click(".rater-begin")
            page.wait_for_selector(".rater-progress:text-is('ヘッドホンチェック / Headphone check 1 / 1')")
            shoot(page, "desktop-headphone")
            kinds = [answer_current(page, test, rater, clicked)]
            page.wait_for_selector(".rater-scale")
            shoot(page, "desktop-trial")
            while "trap" not in kinds:
                kinds.append(answer_current(page, test, rater, clicked))
            answered = len(kinds)
            assert answered < total
            page.close()  # the rater leaves ...
            page = context.new_page()  # ... and comes back with the link they were sent
            page.set_viewport_size({"width": 390, "height": 844})
            page.goto(server.url)
            assert page.text_content(".rater-id", timeout=30_000) == rater  # this browser kept the id
            page.click(".rater-begin")
            page.wait_for_selector(f".rater-progress:text-is('{answered + 1} / {total}')")  # the right trial
            shoot(page, "phone-trial")
            while len(kinds) < total:
                if test.remaining(rater)[0].kind == "ab":
                    shoot(page, "phone-ab")
                kinds.append(answer_current(page, test, rater, clicked))
            code = page.text_content(".rater-code", timeout=30_000) or ""
            shoot(page, "phone-done")
            page.set_viewport_size({"width": 1280, "height": 800})
            shoot(page, "desktop-done")
        except BaseException:
            page.screenshot(path=str(OUT / "rater-failure.png"), full_page=True)
            raise
        finally:
            context.close()
    assert test.verify_code(rater, code) and len(code) == 10
    assert sorted(kinds) == sorted(t.kind for t in test.trials(rater))
    with (tmp_path / "t" / "test" / "ratings" / f"{rater}.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    got = [(r["trial"], r["choice"] or f"{r['naturalness']}/{r['meaningfulness']}") for r in rows]
    assert got == clicked  # every answer, as clicked, in order, once
    # each answer came after its clip(s) played to the end (the server's clock)
    assert all(float(r["listened_s"]) >= float(r["clip_s"]) for r in rows)
