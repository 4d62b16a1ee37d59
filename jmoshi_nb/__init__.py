"""jmoshi-nb: a Jupyter research kit for J-Moshi, the Japanese full-duplex speech dialogue model.

The names below are imported on first use, so ``import jmoshi_nb`` stays light (no torch). The public
places are this package and its modules ``jmoshi_nb.bench`` (the benchmark: build, run, score, plot)
and ``jmoshi_nb.listening`` (listening tests); everything a notebook calls is reachable from them.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from .core.lazy_exports import lazy_getattr

__version__ = "0.1.0"

_EXPORTS = {
    "connect": "serve.client",
    "ChatClient": "serve.client",
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
    "start_server": "notebook.servers",
    "start": "notebook.session",
    "NotebookSession": "notebook.session",
    "speech_wav": "research.speech",
    "dialogue_wav": "research.speech",
    "replay": "notebook.replay",
    "side_by_side": "notebook.replay",
    "save_textgrid": "research.textgrid",
    "export_textgrids": "research.textgrid",
    "iter_recordings": "research.sweeps",
    "run_metrics": "research.sweeps",
    "listening": "listening",
    "turn_taking": "research.turn_taking",
    "sweep": "research.sweeps",
    "prompted_continuation": "research.continuation",
    "plot_recording": "research.plots",
    "plot_timeline": "research.plots",
    "plot_sweep_heatmap": "research.plots",
    "bench": "research.bench",
}

__all__ = [  # noqa: RUF022 - grouped as _EXPORTS
    "connect", "ChatClient", "ServerError", "Engine",
    "BatchEngine", "Recording", "SessionConfig", "Sampling", "ConfigError", "load_config", "make_tiny",
    "run_wav", "start_server", "start", "NotebookSession", "speech_wav", "dialogue_wav", "replay", "side_by_side",
    "save_textgrid", "export_textgrids", "iter_recordings", "run_metrics", "listening",
    "turn_taking", "sweep", "prompted_continuation", "plot_recording",
    "plot_timeline", "plot_sweep_heatmap", "bench", "__version__",
]
assert set(__all__) == set(_EXPORTS) | {"__version__"}

if TYPE_CHECKING:  # pragma: no cover
    from . import listening
    from .core.config import ConfigError, Sampling, SessionConfig, load_config
    from .core.recording import Recording
    from .model.batch_engine import BatchEngine
    from .model.engine import Engine
    from .model.tiny import make_tiny
    from .notebook.replay import replay, side_by_side
    from .notebook.servers import start_server
    from .notebook.session import NotebookSession, start
    from .research import bench
    from .research.continuation import prompted_continuation
    from .research.plots import plot_recording, plot_sweep_heatmap, plot_timeline
    from .research.runner import run_wav
    from .research.speech import dialogue_wav, speech_wav
    from .research.sweeps import iter_recordings, run_metrics, sweep
    from .research.textgrid import export_textgrids, save_textgrid
    from .research.turn_taking import turn_taking
    from .serve.client import ChatClient, ServerError, connect

_lazy = lazy_getattr(__name__, _EXPORTS)


def __getattr__(name: str) -> Any:
    if name == "Session":  # deprecated in 0.2, removed in 0.3
        warnings.warn(
            "jmoshi_nb.Session is deprecated and goes in 0.3: it is the WebSocket client, jmoshi_nb.ChatClient "
            "(what jmoshi_nb.start() returns is jmoshi_nb.NotebookSession)",
            DeprecationWarning,
            stacklevel=2,
        )
        return _lazy("ChatClient")
    return _lazy(name)
