"""Every benchmark script still starts: its imports resolve and its options parse (``--help``).

The scripts print figures and are not run in CI; this catches a script left behind by a change in
the package (a moved module, a removed name).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scripts import BENCHMARKS

SCRIPTS = sorted(BENCHMARKS.glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_starts(script: Path) -> None:
    result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage" in result.stdout.lower()
