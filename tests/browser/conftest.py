"""The browser tests need Debian's chromium; without it they are skipped, saying how to install it."""

from __future__ import annotations

import harness as H
import pytest


@pytest.fixture(scope="module")
def chromium_exe() -> str:
    exe = H.chromium_path()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium): browser test skipped")
    return exe
