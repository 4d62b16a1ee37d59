"""Shared fixtures: an isolated cache with the tiny checkpoint, Japanese speech, real servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import jmoshi_serve

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


@pytest.fixture(scope="module")
def server_url(tiny_path: Path) -> Iterator[str]:
    """A real ``jmoshi-nb serve`` process on 127.0.0.1 with the tiny model."""
    with jmoshi_serve("--seed", "42") as url:
        yield url
