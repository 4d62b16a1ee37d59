"""Shared fixtures: an isolated cache with the tiny checkpoint, Japanese speech, real servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never wait on hub retries in tests
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def kit_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test run builds the tiny checkpoint afresh in its own cache (tests the builder too)."""
    if "JMOSHI_NB_TEST_CACHE" in os.environ:
        path = Path(os.environ["JMOSHI_NB_TEST_CACHE"])
    else:
        path = tmp_path_factory.mktemp("jmoshi-cache")
    os.environ["JMOSHI_NB_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def tiny_path(kit_cache: Path) -> Path:
    from jmoshi_nb.model.checkpoints import tiny_dir

    return tiny_dir()


@pytest.fixture(scope="session")
def speech_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from jmoshi_nb.research.speech import speech_wav

    return speech_wav(tmp_path_factory.mktemp("speech") / "ja.wav", lines=["こんにちは、今日はいい天気ですね。"])


@pytest.fixture(scope="session")
def speech_pcm(speech_path: Path):  # type: ignore[no-untyped-def]
    from jmoshi_nb.core.audio import read_wav

    return read_wav(speech_path)


@pytest.fixture(scope="session")
def engine(tiny_path: Path):  # type: ignore[no-untyped-def]
    from jmoshi_nb.model.engine import Engine

    return Engine.load("tiny", seed=42)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 90.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise RuntimeError(f"server exited with {proc.returncode}:\n{out}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status in (200, 404, 405):
                    return
        except OSError as exc:
            if getattr(exc, "code", None) in (404, 405, 426):
                return
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer in {timeout} s")


def start_process(args: list[str], health_url: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        wait_healthy(health_url, proc)
    except BaseException:
        proc.kill()
        raise
    return proc


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def server_url(tiny_path: Path) -> Iterator[str]:
    """A real ``jmoshi-nb serve`` process on 127.0.0.1 with the tiny model."""
    port = free_port()
    proc = start_process(
        [sys.executable, "-m", "jmoshi_nb.cli", "serve", "--port", str(port), "--seed", "42"],
        f"http://127.0.0.1:{port}/api/health",
    )
    yield f"ws://127.0.0.1:{port}"
    stop_process(proc)
