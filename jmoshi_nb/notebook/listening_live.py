"""A listening test's results while it runs: progress per rater, MOS ± 95 % CI and A/B, from the files on disk.

The rater page (``ListeningTest.serve()``) writes each answer to the rater's CSV; ``watch_ratings``
re-reads those files every few seconds and redraws one output in place: the progress of each rater,
who the screening leaves out and why, and the screened MOS and A/B tables (which state that count).
Nothing here talks to the page: what is shown is what is on disk.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from typing import Any

from ..research.listening import ListeningTest, mos_table, preference_table, read_ratings
from ..research.listening_quality import screening_report
from ..research.listening_server import progress_table


def ratings_snapshot(test: ListeningTest, screen: bool = True) -> dict[str, Any]:
    """What is on disk now: ``progress`` (per rater), ``report`` (screening), ``mos`` and ``ab`` tables.

    Parameters
    ----------
    test: a saved test (``ListeningTest.open`` / ``create(..., out=)``).
    screen: leave out the raters who failed a quality control (``read_ratings(screen=True)``).

    Returns
    -------
    A dict of ``progress`` (DataFrame), ``report`` (str), ``mos`` and ``ab`` (DataFrames; None while
    there is no rating yet).
    """
    progress = progress_table(test)
    files = sorted(test.ratings.glob("*.csv")) if test.ratings.is_dir() else [test.ratings]
    files = [f for f in files if f.exists()]
    if not files:
        return {"progress": progress, "report": "まだ評価がありません / no ratings yet", "mos": None, "ab": None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a row being written right now is not an error
        df = read_ratings(files, screen=screen)
    return {"progress": progress, "report": screening_report(df), "mos": mos_table(df), "ab": preference_table(df)}


def watch_ratings(
    test: ListeningTest,
    seconds: float = 600.0,
    every_s: float = 3.0,
    screen: bool = True,
    wait_for: Iterable[str] = (),
) -> None:
    """Show ``ratings_snapshot`` in one output, redrawn every ``every_s`` s for ``seconds`` (or until stopped).

    Parameters
    ----------
    test: a saved test.
    seconds: how long to keep redrawing. Interrupt the kernel (■) to stop sooner; the page keeps running.
    every_s: seconds between two reads of the files.
    screen: leave out the raters who failed a quality control.
    wait_for: rater ids: stop as soon as all of them have finished (e.g. simulated raters).
    """
    from IPython.display import display

    handle = display(display_id=True)
    waited = set(wait_for)
    end = time.monotonic() + seconds
    try:
        while True:
            snap = ratings_snapshot(test, screen)
            handle.update(_Snapshot(snap))
            done = set(snap["progress"].index[snap["progress"]["finished"]])
            if (waited and waited <= done) or time.monotonic() >= end:
                return
            time.sleep(every_s)
    except KeyboardInterrupt:
        return


class _Snapshot:
    """A snapshot as one HTML block (or text in a terminal)."""

    def __init__(self, snap: dict[str, Any]) -> None:
        self.snap = snap

    def _parts(self) -> list[tuple[str, Any]]:
        s = self.snap
        parts = [("進捗 / progress", s["progress"]), ("選別 / screening", s["report"])]
        if s["mos"] is not None:
            parts += [("MOS ± 95% CI", s["mos"].round(2)), ("A/B", s["ab"].round(3))]
        return parts

    def _repr_html_(self) -> str:
        import html

        out = []
        for title, part in self._parts():
            body = part.to_html() if hasattr(part, "to_html") else f"<pre>{html.escape(str(part))}</pre>"
            out.append(f"<h4>{html.escape(title)}</h4>{body}")
        return "\n".join(out)

    def __repr__(self) -> str:
        return "\n\n".join(f"{title}\n{part}" for title, part in self._parts())


__all__ = ["ratings_snapshot", "watch_ratings"]
