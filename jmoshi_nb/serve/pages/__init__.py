"""Browser code the server serves (the talk page) and the notebook's talk widget shares: plain files.

The AudioWorklets (``capture-worklet.js``, ``player-worklet.js``) share ``resampler.js``; a worklet
module cannot import another file when it is loaded from a Blob URL (the widget), so each is served
joined after the resampler (``worklet_sources``).
"""

from __future__ import annotations

from pathlib import Path

PAGES = Path(__file__).parent
WORKLETS = {"capture": "capture-worklet.js", "player": "player-worklet.js"}  # each after resampler.js


def page_source(*names: str) -> str:
    """The text of the files ``names`` of this folder, one after the other."""
    return "\n".join((PAGES / name).read_text(encoding="utf-8") for name in names)


def worklet_sources() -> dict[str, str]:
    """``{"capture": ..., "player": ...}``: each AudioWorklet's source after the shared resampler."""
    return {name: page_source("resampler.js", file) for name, file in WORKLETS.items()}


__all__ = ["PAGES", "WORKLETS", "page_source", "worklet_sources"]
