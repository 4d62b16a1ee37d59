"""Ratings given on the talk page (``serve --record DIR --rate``), read like the listening test's.

Each rated conversation has ``rating.json`` beside its recording (``DIR/<participant>/<conversation>/``).
``read_talk_ratings(DIR)`` returns them in the listening test's DataFrame shape (``listening.COLUMNS``:
``kind="mos"``, ``rater`` = participant, ``trial`` = conversation, ``system`` = the setting's name,
``clip`` = the recording folder) plus ``overall`` and ``comment``, so ``talk_mos_table`` gives the same
MOS ± 95 % CI table per setting as ``listening.mos_table``, with the overall score as a third criterion.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.record_writer import SESSION_FILE
from ..serve.record import RATING_FILE, RATING_SCORES
from .listening import COLUMNS, mos_table

if TYPE_CHECKING:
    import pandas as pd


def _system_of(session_doc: dict[str, Any]) -> str:
    """The setting a conversation was given (its name, else its neutral label), or the config's name."""
    setting = (session_doc.get("meta") or {}).get("setting") or {}
    config = session_doc.get("config") or {}
    return str(setting.get("name") or setting.get("label") or config.get("name") or "default")


def read_talk_ratings(folder: str | Path) -> pd.DataFrame:
    """Every talk-page rating under ``folder`` (a ``serve --record`` folder), one row each.

    Parameters:
        folder: the recordings folder.

    Returns:
        A DataFrame with ``listening.COLUMNS`` plus ``overall``, ``comment`` and ``source`` (the rating
        file); unreadable ratings are named in a warning each and in ``df.attrs["skipped"]``.
    """
    import pandas as pd

    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such recordings folder")
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for path in sorted(root.glob(f"*/*/{RATING_FILE}")):
        try:
            rating = json.loads(path.read_text(encoding="utf-8"))
            session_doc = json.loads((path.parent / SESSION_FILE).read_text(encoding="utf-8"))
            scores = {k: int(rating[k]) for k in RATING_SCORES}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            skipped.append(f"{path}: {exc}")
            continue
        if not all(1 <= v <= 5 for v in scores.values()):
            skipped.append(f"{path}: a score outside 1-5")
            continue
        rows.append(
            {
                "time_utc": rating.get("time_utc", ""),
                "rater": path.parent.parent.name,
                "trial": path.parent.name,
                "kind": "mos",
                "clip": str(path.parent),
                "system": _system_of(session_doc),
                **scores,
                "comment": rating.get("comment", ""),
                "source": str(path),
            }
        )
    for s in skipped:
        warnings.warn(f"talk rating skipped: {s}", stacklevel=2)
    df = pd.DataFrame(rows, columns=[*COLUMNS, "overall", "comment", "source"])
    df.attrs["skipped"] = skipped
    return df


def talk_mos_table(df: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """MOS ± CI per setting for naturalness, meaningfulness and overall (``listening.mos_table``'s table)."""
    return mos_table(df, confidence, criteria=RATING_SCORES)


__all__ = ["read_talk_ratings", "talk_mos_table"]
