"""End to end in a real browser: JupyterLab + headless Chromium with a fake microphone speaking Japanese.

The test opens a notebook it writes, starts a tiny session and shows the panel, clicks the mic
button and checks, from both ends: the kernel received the speech (frames, energy), the model's
audio played in the page (the widget's played-sample counter), the model's text appeared in the
panel, and a slider moved in the page changed the parameters the server used (recording.params and
the per-frame metrics). The panel's End button ends the session; the next cell's ``finish()`` gets
the recording and its static figure shows as a picture in JupyterLab. A second tab, whose page has no
microphone API (as VS Code's notebook view), shows the panel's fallback: it says why and takes a WAV
path instead. Screenshots go to ``test-output/browser/``.
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
rec = session.finish()  # End was pressed on the panel: the recording
display(jmoshi_nb.plot_recording(rec))
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

NO_MIC_FINISH = """\
import json
from pathlib import Path
rec = session.finish()  # the WAV chosen in the panel: waits for it, then stops
Path("no_mic.json").write_text(json.dumps({"frames": len(rec.metrics), "input": session.input}))
print("saved")"""

NO_MIC_API = "Object.defineProperty(Navigator.prototype, 'mediaDevices', {get: () => undefined, configurable: true});"


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
    H.write_notebook(root / "no_mic.ipynb", [START, NO_MIC_FINISH])  # the same start; that tab has no microphone
    wav = H.fake_microphone_wav(tmp_path / "mic.wav")

    with H.jupyter_lab(root, tmp_path / "lab") as lab, sync_playwright() as pw:
        context = H.chromium(pw, wav, tmp_path / "profile", executable=chromium_exe)
        page = H.first_page(context)
        try:
            with H.explain_failure(context, OUT / "talk-failure", lab):
                H.run_first_cell_until(page, lab, "talk.ipynb", ".jmoshi-mic:not([disabled])")

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
                    lambda: (
                        '"temp":0.3' in H.widget_data(page).get("params", "") and H.widget_data(page).get("paramsFrom")
                    ),
                    timeout=30,
                    what="the server to report temp=0.3 in force",
                )
                time.sleep(1.5)  # a few frames with the new value, on the plots too
                page.locator(".jmoshi-panel").screenshot(path=str(OUT / "panel.png"))
                page.screenshot(path=str(OUT / "page.png"), full_page=True)
                data = H.widget_data(page)

                page.click(".jmoshi-end")  # the user ends the conversation on the panel
                H.wait_for(
                    lambda: H.widget_data(page).get("active") == "false", timeout=60, what="End to stop the session"
                )
                H.run_cell(page, 1)
                H.wait_for(lambda: (root / "result.json").exists(), timeout=90, what="the FINISH cell's result.json")
                figure = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea-output img")
                H.wait_for(lambda: figure.count() > 0, timeout=30, what="the static figure as a picture")
                figure.first.screenshot(path=str(OUT / "figure.png"))
                figure_box = figure.first.bounding_box()
                outputs_text = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea").inner_text()

                # A page without a microphone API: the panel says so and takes a WAV path.
                no_mic = context.new_page()
                no_mic.add_init_script(NO_MIC_API)
                H.run_first_cell_until(no_mic, lab, "no_mic.ipynb", ".jmoshi-fallback:not([hidden])")
                reason = no_mic.locator(".jmoshi-fallback-reason").inner_text()
                assert no_mic.locator(".jmoshi-mic").is_disabled()
                no_mic.locator(".jmoshi-talk").screenshot(path=str(OUT / "no-mic-fallback.png"))
                no_mic.fill(".jmoshi-wav-path", str(wav.with_suffix(".24k.wav")))
                no_mic.click(".jmoshi-wav-play")
                H.wait_for(
                    lambda: _number(H.widget_data(no_mic), "framesDone") >= 10,
                    timeout=60,
                    what="the WAV to reach the model",
                )
                no_mic.locator(".jmoshi-panel").screenshot(path=str(OUT / "no-mic-panel.png"))
                H.run_cell(no_mic, 1)
                H.wait_for(lambda: (root / "no_mic.json").exists(), timeout=120, what="the no-mic FINISH cell")
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
    # The static figure is a picture in JupyterLab, not "<Figure size ...>" text.
    assert figure_box and figure_box["width"] > 400 and "Figure size" not in outputs_text
    # Without a microphone the panel said why, and the WAV given by path was the input.
    assert "マイクが使えません / No microphone" in reason and "VS Code" in reason
    no_mic_result = json.loads((root / "no_mic.json").read_text(encoding="utf-8"))
    assert no_mic_result["frames"] >= 25 and no_mic_result["input"].endswith(".24k.wav")
