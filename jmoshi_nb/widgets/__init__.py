"""Notebook widgets: ``TalkWidget`` (mic / speaker / text, anywidget) and ``TalkPanel`` (the whole panel)."""

from .audio import TalkWidget
from .panel import TalkPanel

__all__ = ["TalkPanel", "TalkWidget"]
