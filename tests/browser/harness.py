"""JupyterLab + headless Chromium for the end-to-end test and the round-trip benchmark.

* ``jupyter_lab(root)``: JupyterLab on 127.0.0.1 (free port, random token) launched the README's
  way (the kit's config folder first on ``JUPYTER_CONFIG_PATH``), with throwaway settings,
  workspaces and runtime folders so nothing of the user's Lab state leaks in or out.
* ``chromium(playwright, wav, user_data_dir)``: Debian's ``/usr/bin/chromium`` through Playwright
  (never ``playwright install``), fake microphone fed from a Japanese speech WAV.
* small page helpers: open a notebook, run a cell, read the talk widget's counters.
* ``explain_failure(context, out, lab)``: on any failure inside it, a screenshot of every open tab
  and the text of every open JupyterLab dialog (``.jp-Dialog``), the page consoles and Lab's log are
  saved in ``out`` and their paths printed, so that a failure explains itself.

Ports and process stops come from ``tests/processes.py`` (``tests/`` must be on ``sys.path``, as under pytest).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processes import free_port, stop_process

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]


def chromium_path() -> str | None:
    """Debian's chromium (or ``$JMOSHI_NB_CHROMIUM``), None if absent."""
    for candidate in (os.environ.get("JMOSHI_NB_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path
    process: subprocess.Popen[bytes]

    def workspace_url(self) -> str:
        """Lab in a new, empty workspace of its own (each tab: no layout restored from another tab)."""
        return f"{self.url}/lab/workspaces/{secrets.token_hex(4)}?token={self.token}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _lab_state_dirs(base: Path) -> dict[str, str]:
    """Throwaway Jupyter folders; a test config dir that turns off Lab's news prompt."""
    extra = base / "config"
    (extra / "labconfig").mkdir(parents=True, exist_ok=True)
    page = {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}
    (extra / "labconfig" / "page_config.json").write_text(json.dumps(page))
    env = {
        "JUPYTER_CONFIG_PATH": str(extra),  # scripts/lab.sh puts the kit's config in front of it
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "IPYTHONDIR": str(base / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    for key in ("JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR", "IPYTHONDIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    return env


@contextlib.contextmanager
def jupyter_lab(root: Path, state: Path, nodelay: bool = True, timeout: float = 90.0) -> Iterator[Lab]:
    """JupyterLab serving ``root``, started by ``scripts/lab.sh`` as the README says.

    ``nodelay=False`` starts plain ``jupyter lab`` without the kit's config (for comparisons).
    """
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, **_lab_state_dirs(state), "JMOSHI_NB_PYTHON": sys.executable}
    log = state / "lab.log"
    launcher = ["bash", str(REPO / "scripts" / "lab.sh")] if nodelay else [sys.executable, "-m", "jupyterlab"]
    cmd = [
        *launcher, "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=root)
    lab = Lab(f"http://127.0.0.1:{port}", token, root, log, proc)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{lab.log_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{lab.url}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"JupyterLab did not start in {timeout:.0f} s:\n{lab.log_text()[-3000:]}")
            time.sleep(0.3)
        yield lab
    finally:
        stop_process(proc, timeout=15)


def fake_microphone_wav(path: Path) -> Path:
    """Japanese speech as 16-bit PCM mono WAV at 48 kHz (what Chromium's fake capture reads best)."""
    import numpy as np
    import soundfile as sf

    from jmoshi_nb.core.audio import read_wav, resample
    from jmoshi_nb.research.speech import speech_wav

    speech = read_wav(speech_wav(path.with_suffix(".24k.wav")))
    pcm48 = resample(np.asarray(speech), 24000, 48000)
    sf.write(str(path), np.clip(pcm48, -1, 1), 48000, subtype="PCM_16")
    return path


def chromium(playwright: Any, wav: Path, user_data_dir: Path, executable: str | None = None) -> Any:
    """A persistent Chromium context (empty profile) with the fake microphone playing ``wav``."""
    args = CHROMIUM_FLAGS + [f"--use-file-for-fake-audio-capture={wav}"]
    context = playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=executable or chromium_path(),
        headless=True,
        args=args,
        viewport={"width": 1280, "height": 1600},
        locale="ja-JP",
    )
    context.grant_permissions(["microphone"])
    return context


def write_notebook(path: Path, cells: list[str]) -> Path:
    """A notebook of code cells, with the python3 kernelspec (no kernel-picker dialog)."""
    nb = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [],
             "source": src}
            for i, src in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }  # fmt: skip
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path


DIALOG_TEXT = """() => [...document.querySelectorAll('.jp-Dialog')].map(d => ({
  header: d.querySelector('.jp-Dialog-header')?.innerText ?? '',
  body: d.querySelector('.jp-Dialog-body')?.innerText ?? '',
  buttons: [...d.querySelectorAll('.jp-Dialog-footer button')].map(b => b.innerText),
}))"""


def open_dialogs(page: Any) -> list[dict[str, Any]]:
    """Every JupyterLab dialog open in ``page``: its header, body and button labels."""
    return page.evaluate(DIALOG_TEXT)


def watch_console(context: Any) -> list[str]:
    """Collect the console messages and page errors of every tab of ``context``, present and future."""
    lines: list[str] = []

    def attach(page: Any) -> None:
        tab = len(context.pages)
        page.on("console", lambda m: lines.append(f"[tab {tab}] {m.type}: {m.text}"))
        page.on("pageerror", lambda e: lines.append(f"[tab {tab}] pageerror: {e}"))

    for page in context.pages:
        attach(page)
    context.on("page", attach)
    return lines


def save_failure_state(context: Any, out: Path, lab: Lab | None = None, console: list[str] | None = None) -> list[Path]:
    """Screenshots of every tab, the text of every open dialog, consoles and Lab's log, saved in ``out``.

    Returns
    -------
    The paths written. Whatever cannot be read (a closed tab, a dead browser) is noted in the dialog
    file instead, so that saving never hides the original failure.
    """
    out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    report: list[str] = []
    for index, page in enumerate(context.pages):
        shot = out / f"failure-tab{index}.png"
        try:
            report.append(f"tab {index}: {page.url}")
            page.screenshot(path=str(shot), full_page=True)
            saved.append(shot)
            dialogs = open_dialogs(page)
            report += [f"  dialog: {json.dumps(d, ensure_ascii=False)}" for d in dialogs] or ["  no dialog open"]
        except Exception as err:  # noqa: BLE001 - the page may be gone; say so and go on
            report.append(f"  could not read this tab: {err}")
    dialog_file = out / "dialogs.txt"
    dialog_file.write_text("\n".join(report) + "\n", encoding="utf-8")
    saved.append(dialog_file)
    if console is not None:
        (out / "console.log").write_text("\n".join(console), encoding="utf-8")
        saved.append(out / "console.log")
    if lab is not None:
        (out / "lab.log").write_text(lab.log_text(), encoding="utf-8")
        saved.append(out / "lab.log")
    return saved


@contextlib.contextmanager
def explain_failure(context: Any, out: Path, lab: Lab | None = None) -> Iterator[list[str]]:
    """Run the body; on any failure, save the browser's state (``save_failure_state``) and print where.

    Yields the console lines being collected (every tab's console and page errors).
    """
    console = watch_console(context)
    try:
        yield console
    except BaseException:
        try:
            saved = save_failure_state(context, out, lab, console)
            print("browser state at the failure:", *(f"  {path}" for path in saved), sep="\n")
        except Exception as err:  # noqa: BLE001 - never hide the original failure
            print(f"could not save the browser state: {err}")
        raise


def first_page(context: Any) -> Any:
    """The browser context's first tab (a persistent context opens with one)."""
    return context.pages[0] if context.pages else context.new_page()


def open_notebook(page: Any, lab: Lab, name: str, timeout_ms: int = 90_000) -> None:
    """Open notebook ``name`` as a user does, and wait until its kernel is idle and no dialog is open.

    JupyterLab picks a notebook's kernel from its list of kernelspecs. A notebook opened from its URL
    while Lab starts can look for its kernel before that list has arrived; Lab then finds no kernel
    and shows its modal "Select Kernel" dialog, although ``python3`` is there (Lab 4.6's
    ``SessionContext.startKernel``: ``getDefaultKernel`` returns null while ``specs`` is null). That
    is the dialog that covered the first cell on a machine's first run (slow first
    ``/api/kernelspecs``) and under CPU load: reproduced here, its text saved by ``explain_failure``.
    So Lab starts on an empty workspace of this tab's own, the launcher's notebook cards (drawn from
    that list, so only once it is there) are awaited, and the notebook is opened from the file
    browser. A dialog still open afterwards fails at once, with its text.
    """
    page.goto(lab.workspace_url())
    page.wait_for_selector(".jp-LauncherCard[data-category='Notebook']", timeout=timeout_ms)
    page.locator(".jp-DirListing-content").get_by_text(name, exact=True).dblclick(timeout=timeout_ms)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=timeout_ms)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=timeout_ms)
    dialogs = open_dialogs(page)
    if dialogs:
        raise AssertionError(f"JupyterLab shows a dialog after opening {name}: {dialogs}")


def run_first_cell_until(page: Any, lab: Lab, name: str, selector: str, timeout_ms: int = 120_000) -> None:
    """Open notebook ``name``, run its first cell and wait until ``selector`` shows (its widget is up)."""
    open_notebook(page, lab, name)
    run_cell(page, 0)
    page.wait_for_selector(selector, timeout=timeout_ms)


def run_cell(page: Any, index: int, attempts: int = 3) -> None:
    """Select cell ``index`` and run it (Shift+Enter), as a user would; retried until it is queued."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    prompt = cell.locator(".jp-InputArea-prompt")
    for _ in range(attempts):
        prompt.click()
        page.keyboard.press("Shift+Enter")
        try:
            wait_for(lambda: "[ ]" not in prompt.inner_text(), timeout=10, what=f"cell {index} to start")
            return
        except TimeoutError:
            continue
    raise TimeoutError(f"cell {index} did not start after {attempts} attempts")


def widget_data(page: Any, selector: str = ".jmoshi-talk") -> dict[str, str]:
    """The talk widget's ``data-*`` counters (first view)."""
    return page.eval_on_selector(selector, "el => ({...el.dataset})")


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.25) -> Any:
    """Poll ``predicate()`` until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
