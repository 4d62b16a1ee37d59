"""A finished recording in the live plots' figures: ``replay(rec)`` and ``side_by_side({name: rec})``.

These are widgets (bqplot), for looking at saved sessions with the same figures as a live one; the
static, savable figures are in ``jmoshi_nb.research.plots``.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from ..core.recording import Recording
from .live_plots import PLOT_PX, LivePlots


def replay(
    rec: Recording, window_s: float | None = None, lang: str = "both", plot_px: float = PLOT_PX
) -> widgets.Widget:
    """The live figures of a finished recording, showing all of it (or the last ``window_s``).

    ``plot_px``: the width the plots will have on screen, so labels are thinned to what fits there.
    """
    plots = LivePlots(window_s=window_s or max(rec.duration, 1.0), lang=lang, plot_px=plot_px)
    plots.update(rec)
    return plots.widget


def side_by_side(recordings: dict[str, Recording], lang: str = "both", width_px: float = PLOT_PX) -> widgets.Widget:
    """Recordings next to each other on the same time span, each titled with its name.

    ``width_px``: the width all columns share on screen (labels and titles are sized to fit).
    """
    span = max([r.duration for r in recordings.values()] + [1.0])
    plot_px = width_px / max(len(recordings), 1)
    columns = []
    for name, rec in recordings.items():
        title = widgets.HTML(f"<b>{html.escape(name)}</b>")
        plots = replay(rec, span, lang, plot_px)
        columns.append(widgets.VBox([title, plots], layout=widgets.Layout(flex="1 1 0", min_width="0")))
    return widgets.HBox(columns, layout=widgets.Layout(width="100%"))
