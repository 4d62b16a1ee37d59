"""The notebook runner: nbmake with the kit's inspection on top (``notebooks/conftest.py``).

The inspection is tested on notebooks whose verdict is known: hand-made executed notebooks for each
rule, and a real ``pytest --nbmake`` run (its own pytest, its own kernel) over two small notebooks in a
folder laid out like ``notebooks/``: one that shows what it promises, one whose ``expect-image`` cell
prints text. The real notebooks themselves run in the suite's own ``--nbmake notebooks`` pass.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"


def _plugin() -> ModuleType:
    spec = importlib.util.spec_from_file_location("notebooks_conftest", NOTEBOOKS / "conftest.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


plugin = _plugin()


def _cell(source: str, tags: list[str], outputs: list[Any]) -> Any:
    cell = new_code_cell(source, metadata={"tags": tags})
    cell.outputs = outputs
    return cell


PNG = new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})
WIDGET = new_output("display_data", data={plugin.WIDGET_MIME: {"model_id": "x"}, "text/plain": "Panel"})


def _good() -> Any:
    return new_notebook(
        cells=[
            _cell("plot()", ["expect-image"], [PNG]),
            _cell("panel", ["expect-widget"], [WIDGET]),
            _cell(
                "summary()",
                ["summary"],
                [new_output("stream", name="stdout", text="12.0 s, 150 frames, 9 text pieces")],
            ),
        ]
    )


def test_every_notebook_has_a_summary_check() -> None:
    assert {p.stem for p in NOTEBOOKS.glob("*.ipynb")} == set(plugin.SUMMARY_CHECKS)


def test_a_notebook_that_shows_what_it_promises_passes() -> None:
    plugin.inspect_outputs("01_quickstart", _good())


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda nb: nb.cells[0].outputs.__setitem__(0, new_output("stream", name="stdout", text="x")), "no picture"),
        (lambda nb: nb.cells[1].outputs.clear(), "no widget view"),
        (
            lambda nb: nb.cells[0].outputs.append(new_output("error", ename="ValueError", evalue="bad", traceback=[])),
            "cells raised",
        ),
        (
            lambda nb: nb.cells[0].outputs.append(
                new_output("execute_result", data={"text/plain": "<Figure size 640x480 with 1 Axes>"})
            ),
            "figures shown as text",
        ),
        (  # 150 frames cannot be 30 s of audio
            lambda nb: nb.cells[2].outputs.__setitem__(
                0, new_output("stream", name="stdout", text="30.0 s, 150 frames, 9 text pieces")
            ),
            "30.0 s, 150 frames",
        ),
    ],
    ids=["text-instead-of-png", "no-widget", "error-output", "figure-as-text", "insane-summary"],
)
def test_each_rule_catches_its_defect(spoil: Any, message: str) -> None:
    nb = _good()
    spoil(nb)
    with pytest.raises(AssertionError, match=message):
        plugin.inspect_outputs("01_quickstart", nb)


def _write(path: Path, cells: list[Any]) -> None:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nbformat.write(nb, path)


@pytest.mark.slow
def test_pytest_nbmake_runs_each_notebook_alone_and_inspects_it(tmp_path: Path) -> None:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    shutil.copy(NOTEBOOKS / "conftest.py", folder / "conftest.py")
    (folder / "runs").mkdir()  # left by an earlier run: a clean folder must not see it
    where = "import os, json; print(json.dumps({'cwd': os.getcwd(), 'runs': os.path.exists('runs'), "
    where += "'backend': os.environ.get('JMOSHI_NB_BACKEND'), 'cache': os.environ.get('JMOSHI_NB_CACHE')}))"
    _write(folder / "good.ipynb", [new_code_cell(where, metadata={"tags": ["summary"]})])
    _write(folder / "text_figure.ipynb", [new_code_cell("print('just text')", metadata={"tags": ["expect-image"]})])
    committed = {p.name: p.read_bytes() for p in folder.glob("*.ipynb")}
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("JMOSHI_NB_", "PYTEST_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbmake", "notebooks", "-p", "no:cacheprovider", "-q", "-rA"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "1 failed, 1 passed" in out, out
    assert "text_figure: no picture from" in out and "executed notebook:" in out, out
    # The committed notebooks are untouched; the executed copies are kept for reading.
    assert {p.name: p.read_bytes() for p in folder.glob("*.ipynb")} == committed
    executed = nbformat.read(tmp_path / "test-output" / "notebooks" / "good.ipynb", as_version=4)
    seen = json.loads(plugin.text_of(executed.cells[0].outputs))
    assert Path(seen["cwd"]) != folder and not seen["runs"], seen  # alone, in a clean folder
    assert seen["backend"] == "tiny" and seen["cache"] and not seen["cache"].startswith(str(Path.home())), seen
