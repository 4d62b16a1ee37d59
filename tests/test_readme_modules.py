"""README's module table ("How it is built") names every source file of the package, in its folder's row."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "jmoshi_nb"
SOURCES = (".py", ".js", ".css", ".html")


def module_table() -> dict[str, str]:
    """The table's rows: the first cell's folder or file names -> the row's text."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("| folder | holds |")
    rows: dict[str, str] = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        first, rest = line.split("|")[1], "|".join(line.split("|")[2:])
        for name in re.findall(r"`([^`]+)`", first):
            rows[name] = rest
    return rows


def test_every_source_file_is_named_in_its_folders_row() -> None:
    rows = module_table()
    missing = []
    for path in sorted(PACKAGE.rglob("*")):
        if path.suffix not in SOURCES or "__pycache__" in path.parts:
            continue
        rel = path.relative_to(PACKAGE)
        if len(rel.parts) == 1:  # a top-level file has a row of its own
            if rel.name not in rows and rel.name != "__main__.py":
                missing.append(str(rel))
            continue
        if rel.name == "__init__.py" and len(rel.parts) == 2:
            continue  # a layer's package marker
        row = rows.get(f"{rel.parts[0]}/")
        if row is None:
            missing.append(f"{rel} (no row for {rel.parts[0]}/)")
            continue
        # a module is named by its name; a page's or config folder's other files may go by the folder's name
        in_named_folder = any(f"`{part}/`" in row for part in rel.parts[1:-1])
        if rel.name in ("__init__.py", "__main__.py") and in_named_folder:
            continue
        if f"`{rel.name}`" not in row and not (in_named_folder and rel.suffix != ".py"):
            missing.append(str(rel))
    assert not missing, "README's module table does not name: " + ", ".join(missing)


def test_the_table_names_no_file_that_is_gone() -> None:
    rows = module_table()
    names = {p.name for p in PACKAGE.rglob("*") if p.suffix in SOURCES} | {
        f"{p.name}/" for p in PACKAGE.rglob("*") if p.is_dir()
    }
    gone = sorted(
        {n for row in rows.values() for n in re.findall(r"`([\w./-]+\.(?:py|js|css|html)|[\w-]+/)`", row)} - names
    )
    assert not gone, f"README's module table names files that are not in the package: {gone}"
