"""End to end in a real browser: JupyterLab + headless Chromium with a fake microphone speaking Japanese.

The test opens a notebook it writes, starts a tiny session and shows the panel, clicks the mic
button and checks, from both ends: the kernel received the speech (frames, energy), the model's
audio played in the page (the widget's played-sample counter), the model's text appeared in the
panel, and a slider moved in the page changed the parameters the server used (recording.params and
the per-frame metrics). A screenshot of the panel goes to ``test-output/browser/``.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import harness as H
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OUT = H.REPO / "test-output" / "browser"

START = """\
import jmoshi_nb
session = jmoshi_nb.start("tiny", update_hz=10)
session.talk()"""

FINISH = """\
import json
from pathlib import Path
import numpy as np
rec = session.stop()
change = rec.params[-1] if rec.params else {"from_frame": 10**9}
result = {
    "stats": session.stats(),
    "user_rms": float(np.sqrt(np.mean(rec.user_pcm ** 2))) if rec.user_pcm.size else 0.0,
    "frames": len(rec.metrics),
    "params": rec.params,
    "temps_after": sorted({m["params"]["temp"] for m in rec.metrics if m["frame"] >= change["from_frame"]}),
    "temps_before": sorted({m["params"]["temp"] for m in rec.metrics if m["frame"] < change["from_frame"]}),
    "text": rec.transcript(),
    "browser": session.panel.audio.browser_stats,
}
rec.save("recording")
Path("result.json").write_text(json.dumps(result, ensure_ascii=False))
print("saved")"""


@pytest.fixture(scope="module")
def chromium_exe() -> str:
    exe = H.chromium_path()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium): browser end-to-end test skipped")
    return exe


def _number(data: dict[str, str], key: str) -> float:
    try:
        return float(data.get(key) or 0)
    except ValueError:
        return 0.0


def test_talk_panel_in_jupyterlab(chromium_exe: str, tiny_path: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    root = tmp_path / "root"
    root.mkdir()
    H.write_notebook(root / "talk.ipynb", [START, FINISH])
    wav = H.fake_microphone_wav(tmp_path / "mic.wav")

    with H.jupyter_lab(root, tmp_path / "lab") as lab, sync_playwright() as pw:
        context = H.chromium(pw, wav, tmp_path / "profile", executable=chromium_exe)
        page = context.pages[0] if context.pages else context.new_page()
        console: list[str] = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        try:
            H.open_notebook(page, lab, "talk.ipynb")
            H.run_cell(page, 0)
            page.wait_for_selector(".jmoshi-mic:not([disabled])", timeout=120_000)

            # The comm round trip, before audio starts.
            rtts = page.evaluate("jmoshiNb.views[0].ping(20, 10)")
            print(f"browser <-> kernel round trip: p50 {statistics.median(rtts):.1f} ms over {len(rtts)}")

            page.click(".jmoshi-mic")
            H.wait_for(
                lambda: (
                    (d := H.widget_data(page))
                    and _number(d, "kernelFrames") >= 25
                    and _number(d, "samplesPlayed") > 0
                    and _number(d, "textChars") > 0
                ),
                timeout=60,
                what="mic frames in the kernel, model audio played and text in the panel",
            )

            # Move the temperature slider the way a user can: type into its readout.
            readout = page.locator(".jmoshi-slider-temp .widget-readout")
            readout.click()
            readout.fill("0.3")
            readout.press("Enter")
            H.wait_for(
                lambda: '"temp":0.3' in H.widget_data(page).get("params", "") and H.widget_data(page).get("paramsFrom"),
                timeout=30,
                what="the server to report temp=0.3 in force",
            )
            time.sleep(1.5)  # a few frames with the new value, on the plots too
            page.locator(".jmoshi-panel").screenshot(path=str(OUT / "panel.png"))
            page.screenshot(path=str(OUT / "page.png"), full_page=True)
            data = H.widget_data(page)

            H.run_cell(page, 1)
            H.wait_for(lambda: (root / "result.json").exists(), timeout=90, what="the FINISH cell's result.json")
        except BaseException:
            page.screenshot(path=str(OUT / "failure.png"), full_page=True)
            (OUT / "console.log").write_text("\n".join(console), encoding="utf-8")
            (OUT / "lab.log").write_text(lab.log_text(), encoding="utf-8")
            raise
        finally:
            context.close()
        log = lab.log_text()

    result = json.loads((root / "result.json").read_text(encoding="utf-8"))
    # The kernel received the fake microphone's speech.
    assert result["stats"]["frames_in"] >= 25 and result["stats"]["user_rms"] > 0.01
    assert result["user_rms"] > 0.01
    # The model's audio played in the page; its text reached the panel and the recording.
    assert _number(data, "samplesPlayed") > 0 and result["browser"].get("samples_played", 0) > 0
    assert _number(data, "textChars") > 0 and result["text"]
    # The slider change reached the server: in force from a frame on, in the metrics after it only.
    assert result["params"] and result["params"][-1]["params"]["temp"] == 0.3
    assert result["temps_after"] == [0.3] and result["temps_before"] == [0.8]
    # The kit's Jupyter config was active: the kernel websocket had TCP_NODELAY.
    assert "websocket opened with TCP_NODELAY=True" in log
    assert (root / "recording" / "audio.wav").exists()
