"""The talk page in real Chromium (Debian's, fake microphone from a Japanese speech WAV) against a real
``jmoshi-nb serve`` with two settings assigned blind, every conversation recorded, ratings on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness as H
import pytest
from processes import free_port, stop_process, wait_healthy

from jmoshi_nb.core.config import SessionConfig
from jmoshi_nb.core.recording import Recording
from jmoshi_nb.serve.record import RATING_FILE
from jmoshi_nb.serve.talk_page import TALK_PAGE_LABELS

TOKEN = "talk-page-test-token-5f2c"
SCREENS = Path(os.environ.get("JMOSHI_NB_SCREENS", "")) if os.environ.get("JMOSHI_NB_SCREENS") else None


@dataclass
class Served:
    url: str
    record: Path
    log: Path


@pytest.fixture(scope="module")
def served(tiny_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("talk")
    configs = []
    for name, temp in (("calm", 0.5), ("lively", 1.0)):
        path = base / f"{name}.yaml"
        SessionConfig(name=name, model="tiny", seed=None, sampling={"temp": temp}).save(path)
        configs.append(str(path))
    port, record, log = free_port(), base / "recordings", base / "server.log"
    args = [
        sys.executable, "-m", "jmoshi_nb.cli", "-v", "serve", "--port", str(port), "--token", TOKEN,
        "--configs", *configs, "--assign", "balanced", "--record", str(record), "--rate",
    ]  # fmt: skip
    with log.open("wb") as fh:
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/api/health", proc)
        yield Served(f"http://127.0.0.1:{port}", record, log)
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def mic_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return H.fake_microphone_wav(tmp_path_factory.mktemp("mic") / "speech48k.wav")


def data(page: Any) -> dict[str, str]:
    return page.eval_on_selector("#jt", "el => ({...el.dataset})")


def label(key: str) -> str:
    return TALK_PAGE_LABELS[key][0]  # the Japanese half is on the page whatever else is


def recordings(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*") if (p / "session.json").exists())


def talk(page: Any, seconds: float) -> dict[str, str]:
    page.click(".jt-start")
    H.wait_for(lambda: data(page).get("state") == "talking", 60, "the handshake")
    time.sleep(seconds)
    return data(page)


def test_talk_end_rate_and_find_it_on_disk(served: Served, mic_wav: Path, chromium_exe: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = H.chromium(p, mic_wav, tmp_path / "profile", chromium_exe)
        page = H.first_page(context)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_viewport_size({"width": 1280, "height": 800})
        page.goto(f"{served.url}/?token={TOKEN}&p=../../etc/ｐ１")
        assert TOKEN not in page.url and "p=" in page.url  # out of the visible URL, the rest kept
        assert page.inner_text(".jt-system") == ""
        stats = talk(page, 10)
        assert int(stats["framesSent"]) >= 100

        def answered() -> dict[str, str] | None:  # a loaded machine may still be catching up
            d = data(page)
            return d if int(d["framesDone"]) >= 80 and int(d["samplesPlayed"]) > 24000 * 3 else None

        stats = H.wait_for(answered, 60, "80 frames answered and 3 s of model audio played")
        assert int(stats["textChars"]) > 0  # and the model's audio went through the decoder and the speaker
        text = page.inner_text(".jt-text")
        assert any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in text)  # Japanese
        assert page.inner_text(".jt-system") in ("System 1", "System 2")
        assert int(page.eval_on_selector("#jt", "el => el.dataset.elapsedS")) >= 9
        if SCREENS:
            page.screenshot(path=str(SCREENS / "talk-desktop-1280x800.png"))
            page.set_viewport_size({"width": 390, "height": 844})
            page.screenshot(path=str(SCREENS / "talk-phone-390x844.png"))
        page.click(".jt-end")
        page.wait_for_selector(".jt-rating:not([hidden])", timeout=20_000)
        page.click(".jt-submit")  # nothing chosen: the page asks for all three
        assert label("rate_missing") in page.inner_text(".jt-rate-error")
        if SCREENS:
            page.screenshot(path=str(SCREENS / "talk-phone-rating-390x844.png"), full_page=True)
        for key, score in (("naturalness", 4), ("meaningfulness", 2), ("overall", 3)):
            page.click(f".jt-choices input[name={key}][value='{score}'] >> xpath=..")
        page.fill(".jt-comment textarea", "ちょっと早口でした")
        page.click(".jt-submit")
        page.wait_for_selector(".jt-thanks:not([hidden])", timeout=20_000)
        if SCREENS:
            page.screenshot(path=str(SCREENS / "talk-phone-rated-390x844.png"), full_page=True)
        body = page.inner_text("body")
        assert "calm" not in body and "lively" not in body  # blind: no setting name on the page
        context.close()
    assert errors == []

    (folder,) = recordings(served.record)
    assert folder.resolve().is_relative_to(served.record.resolve())
    assert folder.parent.name == "etc_ｐ１"  # the participant id, made path-safe
    rec = Recording.load(folder)
    assert not rec.cut_short and rec.duration > 8 and len(rec.metrics) > 80
    assert rec.transcript() and rec.meta["setting"]["label"] == "System 1"
    assert rec.meta["setting"]["name"] == "calm" and rec.config is not None and rec.config.sampling.temp == 0.5
    assert isinstance(rec.meta["seed"], int) and rec.meta["participant"] == "etc_ｐ１"
    assert rec.user_pcm.std() > 0.01  # the user's decoded speech
    rating = (folder / RATING_FILE).read_text(encoding="utf-8")
    assert '"naturalness": 4' in rating and "ちょっと早口でした" in rating
    assert TOKEN not in served.log.read_text(errors="replace")  # the access log redacts it
    assert "token=***" in served.log.read_text(errors="replace")


def test_killed_browser_leaves_a_cut_short_recording_with_the_other_setting(
    served: Served, mic_wav: Path, chromium_exe: str, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    browser = subprocess.Popen(
        [chromium_exe, *H.CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={mic_wav}",
         f"--remote-debugging-port={port}", f"--user-data-dir={tmp_path / 'profile'}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    before = set(recordings(served.record))
    try:
        with sync_playwright() as p:
            cdp = H.wait_for(lambda: _connect(p, port), 30, "chromium's debugging port")
            page = cdp.contexts[0].pages[0]
            page.goto(f"{served.url}/?token={TOKEN}&p=kill-test")
            stats = talk(page, 5)
            assert int(stats["framesSent"]) > 30
            assert page.inner_text(".jt-system") == "System 2"  # balanced: the other setting
            os.killpg(browser.pid, signal.SIGKILL)  # the browser dies mid-conversation
            browser.wait(timeout=10)
    finally:
        if browser.poll() is None:
            os.killpg(browser.pid, signal.SIGKILL)
    new = H.wait_for(
        lambda: [
            f for f in set(recordings(served.record)) - before if Recording.load(f).meta.get("state") != "recording"
        ],
        30,
        "the server to finish the cut recording",
    )
    rec = Recording.load(new[0])
    assert rec.cut_short and rec.meta["cut_short"] == "connection lost"
    assert rec.meta["setting"]["label"] == "System 2" and rec.meta["setting"]["name"] == "lively"
    assert rec.duration > 3 and rec.transcript()


def _connect(p: Any, port: int) -> Any:
    try:
        return p.chromium.connect_over_cdp(f"http://127.0.0.1:{port}")
    except Exception:  # not listening yet
        return None


def test_the_page_says_what_is_wrong(served: Served, mic_wav: Path, chromium_exe: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = H.chromium(p, mic_wav, tmp_path / "profile", chromium_exe)
        page = H.first_page(context)
        response = page.goto(f"{served.url}/?token=wrong")
        assert response is not None and response.status == 401
        assert label("unauthorized") in page.inner_text("body")
        page.add_init_script("delete window.AudioEncoder; delete window.AudioDecoder;")
        page.goto(f"{served.url}/?token={TOKEN}")
        page.wait_for_selector(".jt-error:not([hidden])")
        assert label("no_webcodecs") in page.inner_text(".jt-error") and "Firefox 130" in page.inner_text(".jt-error")
        assert page.is_disabled(".jt-start")
        # One conversation at a time on this server: a second page is told "busy" in the page's words.
        talking = context.new_page()
        talking.goto(f"{served.url}/?token={TOKEN}")
        talk(talking, 0)
        waiting = context.new_page()
        waiting.goto(f"{served.url}/?token={TOKEN}")
        waiting.click(".jt-start")
        waiting.wait_for_selector(".jt-error:not([hidden])", timeout=20_000)
        assert label("busy") in waiting.inner_text(".jt-error")
        talking.click(".jt-end")
        context.close()
        # No microphone permission: Chromium without the fake permission prompt refuses it.
        browser = p.chromium.launch(executable_path=chromium_exe, headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"{served.url}/?token={TOKEN}")
        page.click(".jt-start")
        page.wait_for_selector(".jt-error:not([hidden])", timeout=20_000)
        assert label("mic_denied") in page.inner_text(".jt-error") or label("mic_missing") in page.inner_text(
            ".jt-error"
        )
        assert data(page)["state"] == "idle"
        browser.close()


def test_show_controls_sliders_set_the_conversation(
    tiny_path: Path, mic_wav: Path, chromium_exe: str, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright
    from processes import jmoshi_serve

    with jmoshi_serve("--show-controls") as ws_url, sync_playwright() as p:
        url = ws_url.replace("ws://", "http://")
        context = H.chromium(p, mic_wav, tmp_path / "profile", chromium_exe)
        page = H.first_page(context)
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(url + "/")
        assert page.locator(".jt-sliders input[type=range]").count() == 4
        page.eval_on_selector(
            ".jt-sliders input[name=top_k]", "el => { el.value = '7'; el.dispatchEvent(new Event('input')); }"
        )
        page.eval_on_selector(
            ".jt-sliders input[name=temp_text]", "el => { el.value = '0.3'; el.dispatchEvent(new Event('input')); }"
        )
        if SCREENS:
            page.screenshot(path=str(SCREENS / "talk-phone-controls-390x844.png"), full_page=True)
        talk(page, 1)
        session = page.evaluate("() => window.jmoshiTalk.conversation.session")
        assert session["sampling"]["top_k"] == 7 and session["sampling"]["temp_text"] == 0.3
        page.click(".jt-end")
        context.close()


def test_the_page_talks_to_moshis_own_server(tiny_path: Path, mic_wav: Path, chromium_exe: str, tmp_path: Path) -> None:
    """``python -m moshi.server --static`` serving the exported page: text and audio, no kit metadata."""
    import torch
    from playwright.sync_api import sync_playwright
    from processes import running
    from test_moshi_server_compat import SHIM

    from jmoshi_nb.model.tiny import install_in_hf_cache
    from jmoshi_nb.serve.talk_page import export_static

    cache = tmp_path / "hub"
    install_in_hf_cache(tiny_path, cache, repo_id="jmoshi-nb/tiny")
    static = export_static(tmp_path / "static", model="tiny")
    port = free_port()
    args = [sys.executable, "-c", SHIM, "--hf-repo", "jmoshi-nb/tiny", "--static", str(static),
            "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    if not torch.cuda.is_available():
        args += ["--device", "cpu"]
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "NO_TORCH_COMPILE": "1"}
    with running(args, f"http://127.0.0.1:{port}/", env=env), sync_playwright() as p:
        context = H.chromium(p, mic_wav, tmp_path / "profile", chromium_exe)
        page = H.first_page(context)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"http://127.0.0.1:{port}/")
        talk(page, 0)

        def heard() -> dict[str, str] | None:
            d = data(page)
            return d if int(d.get("samplesPlayed", 0)) > 24000 * 2 and int(d.get("textChars", 0)) else None

        stats = H.wait_for(heard, 90, "2 s of moshi's audio played and its text shown")
        assert int(stats["framesDone"]) == 0  # moshi's server sends no kit metrics: the page did without them
        assert page.inner_text(".jt-text").strip()
        page.click(".jt-end")
        context.close()
    assert errors == []
