"""Notebook widgets: ``TalkWidget`` (mic / speaker / text, anywidget), ``TalkPanel`` (the whole panel),
``ListeningWidget`` (a listening test's rater side)."""

from .listening import ListeningWidget
from .panel import TalkPanel
from .talk_widget import TalkWidget

__all__ = ["ListeningWidget", "TalkPanel", "TalkWidget"]
