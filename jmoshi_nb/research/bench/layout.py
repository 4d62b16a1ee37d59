"""The benchmark's folder layout (Full-Duplex-Bench's) and its timing metadata.

    DIR/<task folder>/<id>/input.wav      the user (any sample rate)
    DIR/<task folder>/<id>/output.wav     the model, same duration (within one 80 ms frame)
    DIR/<task folder>/<id>/timing.json    the kit's timing metadata (written by ``tasks.build``)
    DIR/<task folder>/<id>/output.json    the model's words with times (FDB's ASR shape; ``words``)
    DIR/<task folder>/<id>/turn_taking.json | pause.json | interrupt.json   FDB's metadata files
    DIR/_recordings/<task folder>/<id>/   the kit's recording of the run (text events, metrics)
    DIR/scores.json                       written by ``score`` (kit rules)
    DIR/scores_fdb.json                   written by ``score(rules="fdb")`` (FDB's v1 rules)

An item folder holds no subfolder: FDB's interruption evaluator walks every folder below the task
folder as an item, so the kit's recording lives outside the task folders, under ``_recordings``
(which ``find_tasks`` skips, as every name starting with ``_`` or ``.``). Folders written before
this layout kept it in ``<id>/recording/``; that place is still read.

A task folder belongs to the task whose key its name contains, so FDB's own folder names
(``candor_turn_taking``, ``synthetic_pause_handling``, ``icc_backchannel``,
``synthetic_user_interruption``) work as they are. FDB's metadata files are read where the kit's
``timing.json`` is absent: ``pause.json`` and ``turn_taking.json`` (``[{"timestamp": [t0, t1]}]``),
``interrupt.json`` (v1.0, ``[{"timestamp": [start, end], ...}]``) and ``metadata.json`` (v1.5,
``{"timestamps": [start, end], ...}``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core.folders import existing_folder

TASKS = ("pause_handling", "turn_taking", "backchannel", "interruption")
TIMING_FILE = "timing.json"
RECORDINGS_DIR = "_recordings"
LEGACY_RECORDING_DIR = "recording"  # inside the item folder, before FDB's layout was followed exactly
SCORES_FILE = "scores.json"


class BenchError(ValueError):
    """A benchmark folder or item that cannot be used; the message names it."""


def task_of(name: str) -> str | None:
    """The task key a folder name contains (``None`` if none)."""
    return next((task for task in TASKS if task in name), None)


def check_tasks(tasks: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """The tasks asked for (all of ``TASKS`` when none); :class:`BenchError` names any unknown one."""
    wanted = tuple(tasks) if tasks else TASKS
    unknown = sorted(set(wanted) - set(TASKS))
    if unknown:
        raise BenchError(f"unknown task(s) {', '.join(unknown)}; the tasks are {', '.join(TASKS)}")
    return wanted


@dataclass
class Item:
    """One benchmark item: a folder holding input.wav (and, after a run, output.wav)."""

    task: str
    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def input(self) -> Path:
        return self.path / "input.wav"

    @property
    def output(self) -> Path:
        return self.path / "output.wav"

    @property
    def recording(self) -> Path:
        """Where a run records this item: ``<task folder>/../_recordings/<task folder>/<id>``.

        Outside the item folder, because FDB's walkers take any subfolder for an item.
        """
        return self.path.parent.parent / RECORDINGS_DIR / self.path.parent.name / self.path.name

    @property
    def recorded(self) -> Path:
        """The recording to read: ``recording``, or ``<id>/recording/`` in a folder written before it moved."""
        legacy = self.path / LEGACY_RECORDING_DIR
        return legacy if legacy.is_dir() and not self.recording.exists() else self.recording


@dataclass
class TaskFolder:
    task: str
    path: Path
    items: list[Item] = field(default_factory=list)


def _item_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def find_tasks(root: str | Path, tasks: list[str] | tuple[str, ...] | None = None) -> list[TaskFolder]:
    """The task folders under ``root`` (or ``root`` itself when its own name names a task).

    Raises :class:`BenchError` when there is none (``root`` is then no benchmark folder).
    """
    root = existing_folder(root, "benchmark folder", BenchError)
    wanted = check_tasks(tasks)
    found: list[TaskFolder] = []
    own = task_of(root.name)
    if own is not None and any((p / "input.wav").exists() for p in _item_dirs(root)):
        candidates = [(own, root)]
    else:
        candidates = [(t, p) for p in _item_dirs(root) if (t := task_of(p.name)) is not None]
    for task, path in candidates:
        if task in wanted:
            found.append(TaskFolder(task, path, [Item(task, d) for d in _item_dirs(path)]))
    if not found:
        names = ", ".join(wanted)
        raise BenchError(
            f"{root}: no task folders (a folder whose name contains one of {names}, holding <id>/input.wav)"
        )
    return found


def score_folder(
    folder: str | Path,
    score_one: Callable[[Item], dict[str, Any]],
    summarize_task: Callable[[str, list[dict[str, Any]]], dict[str, Any]],
    out_file: str | None,
    tasks: list[str] | tuple[str, ...] | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Score every item under ``folder`` with ``score_one``, each task with ``summarize_task``.

    The walk both rule sets share (the kit's ``scoring.score``, FDB's ``fdb_rules.score``).

    Parameters
    ----------
    folder:
        A folder in FDB's layout (``find_tasks``).
    score_one:
        An item's scores (a dict); an exception names the item in an ``{"id", "folder", "error"}``
        entry and the other items are still scored.
    summarize_task:
        ``(task, items) -> summary``.
    out_file:
        The file written in ``folder`` (``scores.json``, ``scores_fdb.json``); None writes nothing.
    tasks, limit:
        Only these tasks; only the first ``limit`` items of each task folder (by name).

    Returns
    -------
    dict
        ``{"<task>": {"summary": {...}, "items": [...]}}``, as written.
    """
    folder = Path(folder)
    result: dict[str, Any] = {}
    for tf in find_tasks(folder, tasks):
        entry = result.setdefault(tf.task, {"summary": {}, "items": []})
        if not tf.items:
            error = f"{tf.path}: no item folders (<id>/input.wav) in this task folder"
            entry["items"].append({"id": tf.path.name, "folder": tf.path.name, "error": error})
        for item in tf.items[:limit]:
            try:
                entry["items"].append(score_one(item))
            except Exception as exc:  # one bad item must not stop the others from being scored
                msg = str(exc) if isinstance(exc, BenchError) else f"{item.task}/{item.id}: {exc}"
                entry["items"].append({"id": item.id, "folder": tf.path.name, "error": msg})
    for task, entry in result.items():
        entry["summary"] = summarize_task(task, entry["items"])
    if out_file is not None:
        text = json.dumps(result, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        (folder / out_file).write_text(text, encoding="utf-8")
    return result


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchError(f"{path}: not readable JSON ({exc})") from None


def _span(value: Any) -> tuple[float, float] | None:
    if isinstance(value, (list, tuple)) and len(value) >= 2 and value[0] is not None and value[1] is not None:
        return float(value[0]), float(value[1])
    return None


def _fdb_timestamp(doc: Any) -> Any:
    if isinstance(doc, list) and doc and isinstance(doc[0], dict):
        return doc[0].get("timestamp")
    if isinstance(doc, dict):
        return doc.get("timestamps") or doc.get("timestamp")
    return None


def read_timing(item: Item) -> dict[str, Any]:
    """The item's timing metadata as ``{"user_end", "pause", "interrupt", "source"}`` (missing keys absent).

    The kit's ``timing.json`` first, else FDB's files; times in seconds from the start of input.wav.
    """
    own = item.path / TIMING_FILE
    if own.exists():
        doc = read_json(own)
        out: dict[str, Any] = {"source": TIMING_FILE}
        if doc.get("user_end") is not None:
            out["user_end"] = float(doc["user_end"])
        for key in ("pause", "interrupt"):
            if (span := _span(doc.get(key))) is not None:
                out[key] = span
        return out
    if (p := item.path / "turn_taking.json").exists():
        ts = _fdb_timestamp(read_json(p))
        if ts:
            # FDB's turn-taking scorer takes the first timestamp as the end of the user's turn.
            return {"source": p.name, "user_end": float(ts[0])}
    if (p := item.path / "pause.json").exists() and (span := _span(_fdb_timestamp(read_json(p)))):
        return {"source": p.name, "pause": span}
    for name in ("interrupt.json", "metadata.json"):
        if (p := item.path / name).exists() and (span := _span(_fdb_timestamp(read_json(p)))):
            return {"source": p.name, "interrupt": span}
    return {}
