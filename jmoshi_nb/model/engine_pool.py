"""Loaded engines kept for reuse across jobs (sweeps in this process, the Modal sweep worker)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .batch_engine import BatchEngine
    from .engine import Engine


class EnginePool:
    """Engines by (model, revision), loaded on first use, at most ``max_models`` kept (LRU)."""

    def __init__(
        self,
        device: str | None = None,
        max_models: int = 1,
        loader: Callable[[str, str | None, str | None], Engine] | None = None,
    ) -> None:
        self.device = device
        self.max_models = max_models
        self._loader = loader
        self._engines: OrderedDict[tuple[str, str | None], Engine] = OrderedDict()
        self.loads = 0

    def _load(self, model: str, revision: str | None) -> Engine:
        if self._loader is not None:
            return self._loader(model, revision, self.device)
        from .engine import Engine

        return Engine.load(model, revision=revision, device=self.device)

    def put(self, model: str, revision: str | None, engine: Engine) -> None:
        self._engines[(model, revision)] = engine
        self._engines.move_to_end((model, revision))
        self._evict()

    def _evict(self) -> None:
        while len(self._engines) > self.max_models:
            self._engines.popitem(last=False)
            _free_device_memory()

    def get(self, model: str, revision: str | None = None) -> Engine:
        key = (model, revision)
        if key in self._engines:
            self._engines.move_to_end(key)
            return self._engines[key]
        # Make room first: two 7B models do not fit one 24 GB GPU.
        while self._engines and len(self._engines) >= self.max_models:
            self._engines.popitem(last=False)
            _free_device_memory()
        engine = self._load(model, revision)
        self.loads += 1
        self._engines[key] = engine
        return engine

    def get_batch(self, model: str, revision: str | None, slots: int) -> BatchEngine:
        """A ``BatchEngine`` with ``slots`` slots, held like the single engines (they share ``max_models``)."""
        key = (model, revision, slots)
        if key in self._engines:
            self._engines.move_to_end(key)  # type: ignore[arg-type]
            return self._engines[key]  # type: ignore[index,return-value]
        while self._engines and len(self._engines) >= self.max_models:
            self._engines.popitem(last=False)
            _free_device_memory()
        from .batch_engine import BatchEngine

        engine = BatchEngine.load(model, slots=slots, revision=revision, device=self.device)
        self.loads += 1
        self._engines[key] = engine  # type: ignore[index,assignment]
        return engine

    def __contains__(self, key: tuple[str, str | None]) -> bool:
        return key in self._engines


def _free_device_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
