"""Praat TextGrids of recordings (written with praatio), for annotators who work in Praat.

Tiers (times in seconds, xmin 0, xmax the recording's duration):

* ``user`` / ``model`` (interval tiers): the speakers' IPUs from ``analysis.turn_taking``, labelled
  ``IPU`` (blank between them);
* ``model text`` (interval tier): the model's text pieces joined into phrases wherever the text
  pauses (``text.merge_pieces``, the rule the plots use, without their length cap), each interval
  from its first piece's frame to its last's end;
* ``params`` (point tier): every sampling-parameter change (the settings at the start included), at
  the start of the frame it applies from, labelled ``temp=0.7 top_k=250 ... seed=…``.

    rec.save_textgrid("run/recording.TextGrid")
    export_textgrids("runs/sweep")        # every recording folder below, one call
    jmoshi-nb textgrid runs/calm          # -> runs/calm/recording.TextGrid
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from praatio import textgrid as tgio

from ..core.audio import FRAME_S
from ..core.config import describe_params
from ..core.folders import existing_folder
from ..core.recording import Recording
from ..core.text import PHRASE_GAP_FRAMES, merge_pieces

TEXTGRID_NAME = "recording.TextGrid"
TIERS = ("user", "model", "model text", "params")
IPU_LABEL = "IPU"


def _clip(entries: list[tuple[float, float, str]], duration: float) -> list[tuple[float, float, str]]:
    out = []
    for start, end, label in entries:
        start, end = max(0.0, round(start, 4)), min(duration, round(end, 4))
        if end - start > 1e-6:
            out.append((start, end, label))
    return out


def recording_textgrid(
    rec: Recording, gap_frames: int = PHRASE_GAP_FRAMES, **turn_taking_kwargs: Any
) -> tgio.Textgrid:
    """The TextGrid of ``rec`` (see the module docstring); ``turn_taking_kwargs`` tune the IPUs."""
    from .turn_taking import turn_taking

    duration = round(rec.duration, 4)
    if duration <= 0:
        raise ValueError("the recording is empty (no audio): a TextGrid needs a duration > 0")
    tt = turn_taking(rec, **turn_taking_kwargs)
    grid = tgio.Textgrid(minTimestamp=0.0, maxTimestamp=duration)
    for speaker in ("user", "model"):
        ipus = [(iv.start, iv.end, IPU_LABEL) for iv in tt.ipus if iv.speaker == speaker]
        grid.addTier(tgio.IntervalTier(speaker, _clip(ipus, duration), 0.0, duration))
    phrases = merge_pieces(((e.frame, e.text) for e in rec.text), gap_frames=gap_frames, max_chars=None)
    words = [(p.start, p.end, p.text.strip()) for p in phrases]
    grid.addTier(tgio.IntervalTier("model text", _clip(words, duration), 0.0, duration))
    points = []
    for p in rec.params:
        t = round(int(p.get("from_frame", 0)) * FRAME_S, 4)
        if t <= duration:
            points.append((t, describe_params(p.get("params") or {}, p.get("seed")) or "params"))
    grid.addTier(tgio.PointTier("params", points, 0.0, duration))
    return grid


def save_textgrid(rec: Recording, path: str | Path, **kwargs: Any) -> Path:
    """Write ``rec``'s TextGrid (Praat's long text format, UTF-8) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = recording_textgrid(rec, **kwargs)
    grid.save(str(path), format="long_textgrid", includeBlankSpaces=True, reportingMode="error")
    return path


def recording_folders(root: str | Path) -> list[Path]:
    """``root`` itself if it is a recording, else every recording folder below it (sorted)."""
    root = Path(root)
    if (root / "session.json").exists():
        return [root]
    return sorted(p.parent for p in root.rglob("session.json"))


def export_textgrids(root: str | Path, **kwargs: Any) -> dict[Path, Path]:
    """Write ``recording.TextGrid`` into every recording folder under ``root`` (a sweep, a benchmark run).

    Returns ``{recording folder: TextGrid path}``. Folders that fail are named in one error raised
    after the others were written.
    """
    root = existing_folder(root)
    folders = recording_folders(root)
    if not folders:
        raise FileNotFoundError(f"{root} is not a recording: session.json is missing, and no folder below holds one")
    written: dict[Path, Path] = {}
    failed: list[str] = []
    for folder in folders:
        try:
            written[folder] = save_textgrid(Recording.load(folder), folder / TEXTGRID_NAME, **kwargs)
        except (OSError, ValueError) as exc:
            failed.append(f"{folder}: {exc}")
    if failed:
        raise ValueError(f"{len(failed)} of {len(folders)} recordings could not be exported:\n" + "\n".join(failed))
    return written


__all__ = ["TIERS", "TEXTGRID_NAME", "export_textgrids", "recording_folders", "recording_textgrid", "save_textgrid"]
