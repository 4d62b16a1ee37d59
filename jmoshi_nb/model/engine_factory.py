"""The one engine factory: one conversation slot is an ``Engine``, more are slots of a ``BatchEngine``.

Every caller that makes an engine (the local server, ``jmoshi-nb serve``, the Modal containers, sweeps,
prompted continuation, the benchmark) goes through ``load_engine`` (from a checkpoint) or
``engine_from_parts`` (from models already in memory), so the rule is written once. torch is imported
when an engine is made, not with this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .batch_engine import BatchEngine
    from .checkpoints import ResolvedModel
    from .engine import Engine
    from .moshi_api import LMModel, MimiModel



def load_engine(
    model: str = "tiny",
    slots: int = 1,
    *,
    revision: str | None = None,
    device: str | None = None,
    dtype: torch.dtype | None = None,
    **options: Any,
) -> Engine | BatchEngine:
    """A ready engine for ``model`` with ``slots`` conversations: an ``Engine`` for 1, a ``BatchEngine`` above.

    Parameters
    ----------
    model, revision, device, dtype:
        As ``Engine.load`` (``model``: a registry name, a local folder or a hub repo id).
    slots:
        Conversations held at once (1..``engine.MAX_SLOTS``; checked before the weights load).
    options:
        ``sampling``, ``seed``, ``warmup``: as ``Engine.from_parts``.

    Returns
    -------
    The engine, warmed up unless ``warmup=False``.
    """
    from .engine import check_slots

    check_slots(slots)
    if slots > 1:
        from .batch_engine import BatchEngine

        return BatchEngine.load(model, slots=slots, revision=revision, device=device, dtype=dtype, **options)
    from .engine import Engine

    return Engine.load(model, revision=revision, device=device, dtype=dtype, **options)


def engine_from_parts(
    resolved: ResolvedModel,
    mimi: MimiModel,
    lm: LMModel,
    tokenizer: Any,
    device: str,
    slots: int = 1,
    **options: Any,
) -> Engine | BatchEngine:
    """``load_engine`` for models already loaded (moved to ``device``), e.g. restored from a memory snapshot.

    Parameters
    ----------
    resolved, mimi, lm, tokenizer, device:
        As ``Engine.from_parts``.
    slots:
        Conversations held at once: an ``Engine`` for 1, a ``BatchEngine`` above.
    options:
        ``sampling``, ``seed``, ``warmup``.

    Returns
    -------
    The engine.
    """
    from .engine import check_slots

    check_slots(slots)
    if slots > 1:
        from .batch_engine import BatchEngine

        return BatchEngine.from_parts(resolved, mimi, lm, tokenizer, device, slots=slots, **options)
    from .engine import Engine

    return Engine.from_parts(resolved, mimi, lm, tokenizer, device, **options)


def batch_slots(batch_size: int, jobs: int) -> int:
    """The slot count of the engine that runs ``jobs`` jobs at ``batch_size`` at a time.

    ``batch_size`` 1: one slot (an ``Engine``). Above 1: ``min(batch_size, jobs)`` slots, at least 2, so
    that the jobs run on a ``BatchEngine`` however few there are: a job's tokens are then the same at
    every ``batch_size`` > 1 (a batched engine's rows come in blocks of four, so two slots cost what one
    does).

    Parameters
    ----------
    batch_size:
        Jobs at once (checked: 1..``engine.MAX_SLOTS``; the error names ``batch_size``).
    jobs:
        How many jobs will run.

    Returns
    -------
    The slot count for ``load_engine``.
    """
    from .engine import check_slots

    check_slots(batch_size, what="batch_size")
    return 1 if batch_size == 1 else max(2, min(batch_size, jobs))


def is_batched(engine: Any) -> bool:
    """Whether ``engine`` holds its conversations as slots (a ``BatchEngine``)."""
    from .batch_engine import BatchEngine

    return isinstance(engine, BatchEngine)


__all__ = ["load_engine", "engine_from_parts", "batch_slots", "is_batched"]
