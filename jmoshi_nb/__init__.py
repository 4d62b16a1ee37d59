"""jmoshi-nb: a Jupyter research kit for J-Moshi, the Japanese full-duplex speech dialogue model.

The names below are imported on first use, so ``import jmoshi_nb`` stays light (no torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .core.lazy_exports import lazy_getattr

__version__ = "0.1.0"

_EXPORTS = {
    "connect": "serve.client",
    "ChatClient": "serve.client",
    "Session": "serve.client",
    "ServerError": "serve.client",
    "Engine": "model.engine",
    "BatchEngine": "model.batch_engine",
    "Recording": "core.recording",
    "SessionConfig": "core.config",
    "Sampling": "core.config",
    "ConfigError": "core.config",
    "load_config": "core.config",
    "make_tiny": "model.tiny",
    "run_wav": "research.runner",
    "start_server": "serve.backends",
    "start": "notebook.session",
    "turn_taking": "research.turn_taking",
    "sweep": "research.sweeps",
    "prompted_continuation": "research.continuation",
    "plot_recording": "research.plots",
    "plot_timeline": "research.plots",
    "plot_sweep_heatmap": "research.plots",
    "bench": "research.bench",
}

__all__ = [  # noqa: RUF022 - grouped as _EXPORTS
    "connect", "ChatClient", "Session", "ServerError", "Engine",
    "BatchEngine", "Recording", "SessionConfig", "Sampling", "ConfigError", "load_config", "make_tiny",
    "run_wav", "start_server", "start", "turn_taking", "sweep", "prompted_continuation", "plot_recording",
    "plot_timeline", "plot_sweep_heatmap", "bench", "__version__",
]
assert set(__all__) == set(_EXPORTS) | {"__version__"}

if TYPE_CHECKING:  # pragma: no cover
    from .core.config import ConfigError, Sampling, SessionConfig, load_config
    from .core.recording import Recording
    from .model.batch_engine import BatchEngine
    from .model.engine import Engine
    from .model.tiny import make_tiny
    from .notebook.session import start
    from .research import bench
    from .research.continuation import prompted_continuation
    from .research.plots import plot_recording, plot_sweep_heatmap, plot_timeline
    from .research.runner import run_wav
    from .research.sweeps import sweep
    from .research.turn_taking import turn_taking
    from .serve.backends import start_server
    from .serve.client import ChatClient, ServerError, Session, connect

__getattr__ = lazy_getattr(__name__, _EXPORTS)
