"""The listening test clicked in a real browser: JupyterLab + headless Chromium.

A notebook builds a test of two systems from WAV files at 16 kHz and 44.1 kHz (different
durations), shows the widget; the browser types a rater name, checks each clip loads in the audio
element with its own duration, rates the MOS trials and answers the A/B trial by clicking. Every
answer must be in the ratings CSV, with the values clicked.
"""

from __future__ import annotations

import csv
from pathlib import Path

import harness as H
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OUT = H.REPO / "test-output" / "browser"

SETUP = """\
import numpy as np, soundfile as sf
from pathlib import Path
from jmoshi_nb.research.listening import ListeningTest
from jmoshi_nb.notebook.widgets import ListeningWidget
for system, rate, seconds in (("calm", 16000, 1.0), ("wild", 44100, 1.5)):
    Path(system).mkdir(exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    sf.write(f"{system}/q1.wav", (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)
test = ListeningTest.create({"calm": "calm", "wild": "wild"}, "ratings.csv", ab=True)
widget = ListeningWidget(test)
widget"""

DURATIONS = "() => [...document.querySelectorAll('.jmoshi-listen audio')].map(a => a.duration)"


def _durations(page) -> list[float]:  # type: ignore[no-untyped-def]
    values = page.evaluate(DURATIONS)
    return values if values and all(v and v == v and v != float("inf") for v in values) else []


def test_a_rater_clicks_through_the_listening_test(chromium_exe: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    root = tmp_path / "root"
    root.mkdir()
    H.write_notebook(root / "listen.ipynb", [SETUP])
    wav = H.fake_microphone_wav(tmp_path / "mic.wav")
    seen: list[float] = []
    with H.jupyter_lab(root, tmp_path / "lab") as lab, sync_playwright() as pw:
        context = H.chromium(pw, wav, tmp_path / "profile", executable=chromium_exe)
        page = H.first_page(context)
        try:
            with H.explain_failure(context, OUT / "listening-failure", lab):
                H.run_first_cell_until(page, lab, "listen.ipynb", ".jmoshi-listen-rater")
                page.fill(".jmoshi-listen-rater", "Aiko")
                page.click(".jmoshi-listen-start")
                for index, (nat, mean) in enumerate([(4, 2), (5, 3)], start=1):
                    page.wait_for_selector(f".jmoshi-listen-progress:text-is('{index} / 3')", timeout=30_000)
                    (duration,) = H.wait_for(lambda: _durations(page), timeout=30, what="the clip to load")
                    seen.append(duration)
                    page.click(f"[data-criterion='naturalness'] [data-value='{nat}']")
                    page.click(f"[data-criterion='meaningfulness'] [data-value='{mean}']")
                    page.click(".jmoshi-listen-submit:not([disabled])")
                page.wait_for_selector(".jmoshi-listen-progress:text-is('3 / 3')", timeout=30_000)
                pair = H.wait_for(lambda: len(d := _durations(page)) == 2 and d, timeout=30, what="A and B to load")
                page.locator(".jmoshi-listen").screenshot(path=str(OUT / "listening.png"))
                page.click(".jmoshi-listen-choice[data-choice='B']:not([disabled])")
                page.wait_for_selector(".jmoshi-listen-done", timeout=30_000)
        finally:
            context.close()
    # each clip played at its own length, whatever its file's rate (resampled to 24 kHz)
    assert sorted(round(d, 2) for d in seen) == [1.0, 1.5]
    assert sorted(round(d, 2) for d in pair) == [1.0, 1.5]
    rows = list(csv.DictReader((root / "ratings.csv").open(encoding="utf-8")))
    assert [(r["kind"], r["naturalness"], r["meaningfulness"], r["choice"]) for r in rows] == [
        ("mos", "4", "2", ""), ("mos", "5", "3", ""), ("ab", "", "", "B"),
    ]  # fmt: skip
    assert all(r["rater"] == "Aiko" for r in rows) and {rows[0]["system"], rows[1]["system"]} == {"calm", "wild"}
