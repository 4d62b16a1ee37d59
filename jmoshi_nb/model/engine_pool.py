"""The loaded engine kept for reuse across jobs (sweeps in this process, the Modal sweep worker).

One engine at a time, keyed by (model, revision, slots): a 7B model fills a 24 GB GPU, so asking for
another key drops the engine held before loading the next.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .engine_factory import load_engine

if TYPE_CHECKING:
    from .batch_engine import BatchEngine
    from .engine import Engine

PoolKey = tuple[str, str | None, int]


class EnginePool:
    """The engine for (model, revision, slots), loaded on first use (``engine_factory.load_engine``).

    ``loader(model, revision, device)``: loads single-conversation engines instead (tests use it to
    make sure an engine they put is reused); batched engines always load through ``load_engine``.
    """

    def __init__(
        self,
        device: str | None = None,
        loader: Callable[[str, str | None, str | None], Engine] | None = None,
    ) -> None:
        self.device = device
        self._loader = loader
        self._key: PoolKey | None = None
        self._engine: Engine | BatchEngine | None = None
        self.loads = 0

    def put(self, model: str, revision: str | None, engine: Engine | BatchEngine) -> None:
        """Hold ``engine`` (already loaded) for ``model``/``revision``, keyed by its slot count."""
        self._drop()
        self._key, self._engine = (model, revision, engine.n_slots), engine

    def get(self, model: str, revision: str | None = None, slots: int = 1) -> Engine | BatchEngine:
        """The engine for ``model``/``revision`` with ``slots`` conversations (1: an ``Engine``), loading it
        (and dropping the one held) if it is not the one held."""
        key = (model, revision, slots)
        if self._key == key and self._engine is not None:
            return self._engine
        self._drop()  # make room first: two 7B models do not fit one 24 GB GPU
        if slots == 1 and self._loader is not None:
            engine: Engine | BatchEngine = self._loader(model, revision, self.device)
        else:
            engine = load_engine(model, slots, revision=revision, device=self.device)
        self.loads += 1
        self._key, self._engine = key, engine
        return engine

    def _drop(self) -> None:
        if self._engine is not None:
            self._key, self._engine = None, None
            _free_device_memory()

    def __contains__(self, key: tuple[str, str | None] | PoolKey) -> bool:
        """Whether the engine for ``(model, revision)`` (one slot) or ``(model, revision, slots)`` is held."""
        return self._engine is not None and (key if len(key) == 3 else (*key, 1)) == self._key


def _free_device_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
