"""Notebook hygiene. Running them is ``pytest --nbmake notebooks/`` (tiny backend, WAV input: notebooks/conftest.py).

Every notebook is committed without outputs; the kit's own notebooks start with a parameters cell
that reads the backend and input from the environment, so CI and reproducible runs need no edits.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SESSION_NOTEBOOKS = ("01_quickstart", "02_tuning", "03_recordings")


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_committed_without_outputs(path: Path) -> None:
    nb = _load(path)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, f"{path.name}: clear outputs"


@pytest.mark.parametrize("name", SESSION_NOTEBOOKS)
def test_parameters_cell_reads_the_environment(name: str) -> None:
    nb = _load(NOTEBOOKS / f"{name}.ipynb")
    params = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, "one cell tagged 'parameters'"
    source = "".join(params[0]["source"])
    assert "JMOSHI_NB_BACKEND" in source and "JMOSHI_NB_INPUT" in source
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    # Bilingual prose: the first cell has Japanese and English.
    intro = "".join(nb["cells"][0]["source"])
    assert any("\u3040" <= ch <= "\u30ff" for ch in intro) and any(ch.isascii() and ch.isalpha() for ch in intro)


PUBLIC_PLACES = ("jmoshi_nb", "jmoshi_nb.bench", "jmoshi_nb.listening")


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebooks_import_the_kit_only_from_its_public_places(path: Path) -> None:
    import ast
    import importlib

    nb = _load(path)
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        for node in ast.walk(ast.parse("".join(cell["source"]))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jmoshi_nb"):
                assert node.module in PUBLIC_PLACES, f"{path.name} imports from {node.module}"
                place = importlib.import_module(node.module)
                for alias in node.names:
                    assert getattr(place, alias.name) is not None
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("jmoshi_nb") or alias.name in PUBLIC_PLACES, alias.name
