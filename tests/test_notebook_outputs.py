"""Every notebook, executed alone in a clean folder, shows what it promises.

nbmake only proves that no cell raised; a figure that shows as ``<Figure size ...>`` text passes it.
Here each notebook runs on its own (a fresh kernel, an empty ``runs/``, the tiny model, WAV input) and
its outputs are inspected:

* no cell has an error output;
* each cell tagged ``expect-image`` shows a PNG picture, each tagged ``expect-widget`` a widget view;
* the numbers a cell tagged ``summary`` prints are present and sane (per notebook, below).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
FRAME_S = 0.08
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

pytestmark = pytest.mark.slow


def text_of(outputs: list[dict[str, Any]]) -> str:
    parts = []
    for out in outputs:
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
    return "".join(parts)


def mimes(outputs: list[dict[str, Any]]) -> set[str]:
    return {mime for out in outputs for mime in out.get("data", {})}


def tagged(nb: Any, tag: str) -> list[Any]:
    return [c for c in nb.cells if c.cell_type == "code" and tag in c.metadata.get("tags", [])]


def frames_match(duration: float, frames: int) -> bool:
    return duration > 1.0 and abs(frames - duration / FRAME_S) <= 2


def check_01(nb: Any) -> None:
    out = text_of(tagged(nb, "summary")[0].outputs)
    m = re.search(r"([\d.]+) s, (\d+) frames, (\d+) text pieces", out)
    assert m, f"no summary line in {out!r}"
    assert frames_match(float(m.group(1)), int(m.group(2))), out


def check_02(nb: Any) -> None:
    out = text_of(tagged(nb, "summary")[0].outputs)
    assert "from_frame" in out and "0.4" in out, f"the parameter change is not in the table: {out!r}"


def check_03(nb: Any) -> None:
    out = text_of(tagged(nb, "summary")[0].outputs)
    assert "no recording; recording a synthesized WAV" in out, "a clean folder must record one first"
    m = re.search(r"([\d.]+) s, (\d+) frames, model (\S+)", out)
    assert m and m.group(3) == "tiny" and frames_match(float(m.group(1)), int(m.group(2))), out


def check_04(nb: Any) -> None:
    out = text_of(tagged(nb, "summary")[0].outputs)  # the sweep table (pandas wraps its columns)
    runs = re.findall(r"^\d\s+(\d{3}-\S+)\s+([\d.]+)\s+(\d+)\s", out, re.M)
    grid = {(float(temp), int(top_k)) for _, temp, top_k in runs}
    assert grid == {(0.6, 50), (0.6, 250), (1.0, 50), (1.0, 250)}, f"a 2 x 2 grid gives 4 runs: {out!r}"
    p50 = [float(v) for v in re.findall(r"^\d\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+([\d.]+)\s*$", out, re.M)]
    assert len(p50) == 4 and all(0 < v < 10_000 for v in p50), f"frame_ms_p50 of each run: {out!r}"


def check_05(nb: Any) -> None:
    out = text_of(tagged(nb, "summary")[0].outputs)  # the re-scored table: one row per task
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:] if line.strip()}
    assert set(rows) == {"pause_handling", "turn_taking", "backchannel", "interruption"}, out
    for task, cells in rows.items():
        n, tor, errors = int(cells[0]), float(cells[1]), int(cells[-1])
        assert n >= 1 and 0.0 <= tor <= 1.0 and errors == 0, f"{task}: {cells}"
    both = text_of(tagged(nb, "rules-both")[0].outputs)  # the kit's and FDB's rules side by side
    assert "kit rules" in both and "FDB rules" in both, both
    tor_rows = [line.split() for line in both.splitlines() if len(line.split()) == 4 and line.split()[1] == "TOR"]
    assert {r[0] for r in tor_rows} == set(rows) and all(0.0 <= float(r[3]) <= 1.0 for r in tor_rows), both


def check_06(nb: Any) -> None:
    out = text_of(tagged(nb, "summary")[0].outputs)  # MOS per system, then preferences
    assert "no ratings yet" not in out, out
    means = [float(v) for v in re.findall(r"\b([1-5]\.\d{1,2})\b", out)]
    assert means and all(1.0 <= v <= 5.0 for v in means), out


CHECKS: dict[str, Callable[[Any], None]] = {
    "01_quickstart": check_01,
    "02_tuning": check_02,
    "03_recordings": check_03,
    "04_sweeps_and_turn_taking": check_04,
    "05_benchmark": check_05,
    "06_listening_test": check_06,
}


@pytest.fixture(scope="module")
def kernel_env(kit_cache: Path, tiny_path: Path) -> dict[str, str]:
    """What the kernel sees: the tiny model (already built in the test cache), WAV input."""
    return {**os.environ, "JMOSHI_NB_BACKEND": "tiny", "JMOSHI_NB_INPUT": "wav", "JMOSHI_NB_CACHE": str(kit_cache)}


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebook_alone_in_a_clean_folder(path: Path, tmp_path: Path, kernel_env: dict[str, str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(path, work / path.name)  # an empty runs/: nothing from other notebooks
    nb = nbformat.read(work / path.name, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}, allow_errors=True
    )
    old_env = dict(os.environ)
    os.environ.update(kernel_env)
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old_env)

    errors = [
        (i, out.get("ename"), out.get("evalue"))
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.get("output_type") == "error"
    ]
    assert not errors, f"{path.name}: cells raised {errors}"
    for cell in tagged(nb, "expect-image"):
        shown = text_of(cell.outputs)
        assert "image/png" in mimes(cell.outputs), f"{path.name}: no picture from\n{cell.source}\n{shown}"
    for cell in tagged(nb, "expect-widget"):
        assert WIDGET_MIME in mimes(cell.outputs), f"{path.name}: no widget view from\n{cell.source}"
    figure_text = [c.source for c in nb.cells if c.cell_type == "code" and "<Figure size" in text_of(c.outputs)]
    assert not figure_text, f"{path.name}: figures shown as text: {figure_text}"
    if path.stem in CHECKS:
        CHECKS[path.stem](nb)
