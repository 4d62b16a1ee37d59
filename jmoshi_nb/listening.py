"""Listening tests in one place: the design, the rater widget, the ratings and their statistics.

    from jmoshi_nb import listening
    test = listening.ListeningTest.create({"A": "runs/a", "B": "runs/b"}, "ratings/me.csv", ab=True)
    listening.ListeningWidget(test)                              # the rater side, in a notebook
    ratings = listening.read_ratings(["ratings/me.csv"])
    listening.mos_table(ratings), listening.preference_table(ratings), listening.plot_summary(ratings)

The design and statistics live in ``research.listening``, the quality controls and screening in
``research.listening_quality``, the rater page in ``research.listening_server``, the widget in
``notebook.widgets`` and the live progress view in ``notebook.listening_live``.
"""

from __future__ import annotations

from .notebook.listening_live import watch_ratings
from .notebook.widgets.listening import ListeningWidget
from .research.listening import (
    CRITERIA,
    Clip,
    ListeningTest,
    RatingsFileError,
    Trial,
    append_rating,
    collect_clips,
    load_clip_audio,
    mean_ci,
    mos_table,
    plot_summary,
    preference_table,
    read_ratings,
    summarize,
)
from .research.listening_quality import QualityControls, screening_report
from .research.listening_server import simulate_raters

__all__ = [
    "CRITERIA",
    "Clip",
    "ListeningTest",
    "ListeningWidget",
    "QualityControls",
    "RatingsFileError",
    "Trial",
    "append_rating",
    "collect_clips",
    "load_clip_audio",
    "mean_ci",
    "mos_table",
    "plot_summary",
    "preference_table",
    "read_ratings",
    "screening_report",
    "simulate_raters",
    "summarize",
    "watch_ratings",
]
