"""Folders the kit reads from: the one check that a folder named by the user is there."""

from __future__ import annotations

from pathlib import Path


def existing_folder(path: str | Path, what: str = "folder", error: type[Exception] = FileNotFoundError) -> Path:
    """``path`` as a Path if it is a folder; else ``error("<path>: no such <what>")``.

    ``what`` says which folder was expected (``"benchmark folder"``); ``error`` is the exception the
    caller documents (``FileNotFoundError`` unless it has its own, e.g. ``BenchError``).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise error(f"{folder}: no such {what}")
    return folder
