"""The settings a server gives its conversations: one (``serve --config``) or several, assigned blind.

``serve --configs a.yaml b.yaml --assign random|balanced`` serves one model with several sampling
settings, for A/B studies. Each new conversation gets one setting: ``random`` draws it, ``balanced``
gives the setting with the fewest conversations so far (the first of them on a tie), so N settings and
N conversations get each setting once. A participant sees only a neutral label ("System 1"); the
recording names the setting in full (``Setting.record``).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..core.config import ConfigError, Sampling, SessionConfig, load_config

ASSIGN_MODES = ("random", "balanced")
AssignMode = Literal["random", "balanced"]


@dataclass(frozen=True)
class Setting:
    """One setting a conversation can be given; ``label`` is all a participant sees of it."""

    index: int
    label: str
    config: SessionConfig
    source: str | None = None  # the file it came from

    @property
    def sampling(self) -> Sampling:
        return self.config.sampling

    @property
    def seed(self) -> int | None:
        return self.config.seed

    def as_dict(self) -> dict[str, Any]:
        """The setting as plain JSON data (``from_dict`` makes it again): how a deploy ships it to Modal."""
        return {"index": self.index, "label": self.label, "config": self.config.model_dump(mode="json"),
                "source": self.source}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Setting:
        """The setting ``as_dict`` wrote (its config validated again: ConfigError naming the field)."""
        config = SessionConfig.from_dict(data["config"])
        return cls(int(data["index"]), str(data["label"]), config, data.get("source"))

    def record(self, mode: str | None) -> dict[str, Any]:
        """What the recording keeps of the assignment (the page shows ``label`` only)."""
        return {
            "index": self.index,
            "label": self.label,
            "name": self.config.name,
            "source": self.source,
            "assign": mode,
        }


def neutral_label(index: int) -> str:
    """The label a participant sees for setting ``index`` (counted from 0)."""
    return f"System {index + 1}"


def load_settings(paths: Sequence[str | Path], model: str | None) -> list[Setting]:
    """The settings of config files ``paths``; ``model``, if given, replaces each file's model.

    Returns:
        One ``Setting`` per file, labelled "System 1", "System 2", ... in the order given.

    Raises:
        ConfigError: a file that does not load (the message names the file and the field), or files
            that name different models (one server serves one model).
    """
    settings: list[Setting] = []
    for i, path in enumerate(paths):
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        config = load_config(path)
        if model is not None and config.model != model:
            config = SessionConfig.from_dict({**config.model_dump(), "model": model})
        settings.append(Setting(i, neutral_label(i), config, str(path)))
    first = settings[0].config.model if settings else None
    for s in settings[1:]:
        if s.config.model != first:
            raise ConfigError(
                f"{s.source}: field 'model' is {s.config.model!r} but {settings[0].source} has {first!r}: one "
                "server serves one model (pass --model to serve both settings on one)"
            )
    return settings


class SettingAssigner:
    """Gives each new conversation a setting (``random`` or ``balanced``) and counts the assignments."""

    def __init__(self, settings: Sequence[Setting], mode: AssignMode = "balanced", seed: int | None = None) -> None:
        if not settings:
            raise ConfigError("no setting to assign")
        if mode not in ASSIGN_MODES:
            raise ConfigError(f"--assign {mode!r}: allowed {', '.join(ASSIGN_MODES)}")
        self.settings = list(settings)
        self.mode: AssignMode = mode
        self.counts = [0] * len(self.settings)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def assign(self) -> Setting:
        """The setting of the next conversation (counted as given)."""
        with self._lock:
            if self.mode == "random":
                i = self._rng.randrange(len(self.settings))
            else:
                i = min(range(len(self.settings)), key=lambda k: self.counts[k])
            self.counts[i] += 1
            return self.settings[i]


__all__ = ["ASSIGN_MODES", "Setting", "SettingAssigner", "load_settings", "neutral_label"]
