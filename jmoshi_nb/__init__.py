"""jmoshi-nb: a Jupyter research kit for J-Moshi, the Japanese full-duplex speech dialogue model.

The names below are imported on first use, so ``import jmoshi_nb`` stays light (no torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "connect": "client",
    "Session": "client",
    "ServerError": "client",
    "Engine": "engine",
    "BatchEngine": "batch_engine",
    "Recording": "recording",
    "SessionConfig": "config",
    "Sampling": "config",
    "ConfigError": "config",
    "load_config": "config",
    "make_tiny": "tiny",
    "run_wav": "runner",
    "start_server": "backends",
    "start": "session",
    "turn_taking": "analysis",
    "sweep": "research",
    "prompted_continuation": "research",
    "plot_recording": "plots",
    "plot_timeline": "plots",
    "plot_sweep_heatmap": "plots",
}

__all__ = [  # noqa: RUF022 - grouped as _EXPORTS
    "connect", "Session", "ServerError", "Engine", "BatchEngine", "Recording", "SessionConfig", "Sampling",
    "ConfigError", "load_config", "make_tiny", "run_wav", "start_server", "start", "turn_taking", "sweep",
    "prompted_continuation", "plot_recording", "plot_timeline", "plot_sweep_heatmap", "__version__",
]
assert set(__all__) == set(_EXPORTS) | {"__version__"}

if TYPE_CHECKING:  # pragma: no cover
    from .analysis import turn_taking
    from .backends import start_server
    from .batch_engine import BatchEngine
    from .client import ServerError, Session, connect
    from .config import ConfigError, Sampling, SessionConfig, load_config
    from .engine import Engine
    from .plots import plot_recording, plot_sweep_heatmap, plot_timeline
    from .recording import Recording
    from .research import prompted_continuation, sweep
    from .runner import run_wav
    from .session import start
    from .tiny import make_tiny


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'jmoshi_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
