"""The one loop that runs an engine on inputs and records: frames in, a Recording per input out.

Sweeps (both executors, the Modal sweep worker included), prompted continuation, the benchmark and
``run_wav(engine=)`` run their inputs through ``run_on_engine`` (one input) or ``run_all_on_engine``
(many), on an ``Engine`` (one input after the other) or a ``BatchEngine`` (inputs as slots: every free
slot takes the next input, each step feeds every running input its next frame, a finished input frees
its slot).

Per input (``EngineInput``):

* the seed is resolved once (``core.config.resolve_seed``: ``seed=None`` draws one), the engine (or
  the slot) is reset to the config's sampling and that seed, and the recording keeps the seed
  (``meta["seed"]``, the params event), so the run can be repeated;
* ``forcing = (model_pcm, frames)`` forces the model's channel for the first ``frames`` frames
  (teacher forcing through ``model.forcing.ModelChannelForcer``); the frames' metrics then say
  ``forced``;
* ``out`` streams the recording into that folder as it runs (``Recording.save(out)`` completes it).

The frames go straight to ``step`` (no WebSocket, no Opus): the model hears exactly the input samples
and the recording holds exactly what it produced. The recording has the layout a client session
records (user audio, model audio with one silent frame per frame without audio, text events,
per-frame metrics, params, the engine's session description), so every analysis reads both alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.audio import frames, sha256_of
from ..core.config import SessionConfig, resolve_seed
from ..core.recording import Recording

if TYPE_CHECKING:
    from ..model.batch_engine import BatchEngine
    from ..model.engine import Engine, EngineBase, FrameResult

Forcing = tuple[np.ndarray | None, int]  # (the model channel, 24 kHz mono or None; frames to force)


log = logging.getLogger(__name__)

@dataclass
class EngineInput:
    """One input for the loop: user audio (24 kHz mono float32) and its config, and how it is recorded.

    ``name`` goes to ``meta["job"]``; ``meta`` is added to the recording's (the loop's ``seed`` wins);
    ``out`` streams the recording there; ``forcing`` = ``(model_pcm, frames)`` forces the model's channel
    for the first ``frames`` frames (``model_pcm`` None: nothing is forced, the metrics still say so).
    """

    pcm: np.ndarray
    config: SessionConfig
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    out: str | Path | None = None
    forcing: Forcing | None = None


class _Run:
    """One input while it runs: its frames, its recording, its forcer, how far it is."""

    def __init__(self, index: int, item: EngineInput, engine: EngineBase, seed: int, session: dict[str, Any]) -> None:
        from ..model.forcing import ModelChannelForcer

        self.index = index
        pcm = np.ascontiguousarray(item.pcm, dtype=np.float32)
        self.frames = list(frames(pcm))
        self.done = 0
        self.started = time.perf_counter()
        rec = self.rec = Recording(config=item.config)
        rec.session = session
        rec.meta.update({"input_sha256": sha256_of(pcm), "path": "engine", **item.meta, "seed": seed})
        if item.name:
            rec.meta["job"] = item.name
        if item.out is not None:
            rec.stream_to(item.out)
        rec.add_params(0, item.config.sampling.model_dump(), seed)
        self.marks_forced = item.forcing is not None
        model_pcm, self.forced_frames = item.forcing if item.forcing is not None else (None, 0)
        self.forcer = ModelChannelForcer(engine, model_pcm) if model_pcm is not None and self.forced_frames else None

    @property
    def finished(self) -> bool:
        return self.done == len(self.frames)

    @property
    def frame(self) -> np.ndarray:
        return self.frames[self.done]

    def forced_tokens(self) -> np.ndarray | None:
        """The audio tokens to force at this step, or None when the model samples its own."""
        if self.forcer is None or self.done >= self.forced_frames:
            return None
        return self.forcer.tokens_for_step(self.done)

    def record(self, result: FrameResult, forced: bool) -> None:
        extra = {"forced": forced} if self.marks_forced else {}
        self.rec.add_frame(self.frame, result, queued=0, **extra)
        self.done += 1
        if self.finished:
            self.rec.meta["wall_s"] = round(time.perf_counter() - self.started, 3)


def run_on_engine(
    engine: Engine | BatchEngine,
    pcm: np.ndarray,
    config: SessionConfig,
    name: str = "",
    meta: dict[str, Any] | None = None,
    out: str | Path | None = None,
    forcing: Forcing | None = None,
) -> Recording:
    """One input on ``engine``, frames fed directly; returns what a client would have recorded.

    Parameters
    ----------
    engine:
        An ``Engine`` (reset to the config's sampling and seed first) or a ``BatchEngine`` (one slot).
    pcm, config, name, meta, out, forcing:
        As the fields of ``EngineInput``.

    Returns
    -------
    The recording (streamed into ``out`` if given: ``save(out)`` completes it).
    """
    return run_all_on_engine(engine, [EngineInput(pcm, config, name, dict(meta or {}), out, forcing)])[0]


def _close_cut_short(runs: Sequence[_Run], exc: BaseException) -> None:
    """A step failed: each running input's streamed recording is saved, marked cut short (nothing lost)."""
    for run in runs:
        if run.rec.streaming_to is None:
            continue
        run.rec.meta["cut_short"] = f"engine error: {type(exc).__name__}: {exc}"
        try:
            run.rec.save(run.rec.streaming_to)
        except Exception:  # noqa: BLE001 - the original error is the one to report
            log.exception("could not save the cut-short recording in %s", run.rec.streaming_to)


def run_all_on_engine(
    engine: Engine | BatchEngine,
    inputs: Sequence[EngineInput],
    on_done: Callable[[int, Recording], None] | None = None,
) -> list[Recording]:
    """Every input on ``engine``: one after the other on an ``Engine``, as slots on a ``BatchEngine``.

    Parameters
    ----------
    engine:
        The engine. A ``BatchEngine``'s slots are all released first; a recording then also says its
        ``slot`` and the ``batch_size`` (the engine's slots).
    inputs:
        What to run.
    on_done:
        Called with ``(index, recording)`` as each input finishes.

    Returns
    -------
    The recordings, in the order of ``inputs``.
    """
    from ..model.engine_factory import is_batched

    if is_batched(engine):
        return _run_slots(engine, inputs, on_done)  # type: ignore[arg-type]
    recs: list[Recording] = []
    for i, item in enumerate(inputs):
        seed = resolve_seed(item.config.seed)
        engine.reset(item.config.sampling, seed)  # type: ignore[call-arg]
        run = _Run(i, item, engine, seed, engine.describe())  # type: ignore[call-arg]
        try:
            while not run.finished:
                forced = run.forced_tokens()
                run.record(engine.step(run.frame, forced_audio=forced), forced is not None)  # type: ignore[arg-type]
        except BaseException as exc:
            _close_cut_short([run], exc)
            raise
        recs.append(run.rec)
        if on_done is not None:
            on_done(i, run.rec)
    return recs


def _run_slots(
    engine: BatchEngine, inputs: Sequence[EngineInput], on_done: Callable[[int, Recording], None] | None
) -> list[Recording]:
    recs: list[Recording | None] = [None] * len(inputs)
    todo = list(range(len(inputs)))
    running: dict[int, _Run] = {}
    for slot in engine.busy_slots:
        engine.release(slot)
    while todo or running:
        while todo and engine.free_slots:
            i = todo.pop(0)
            item = inputs[i]
            seed = resolve_seed(item.config.seed)
            slot = engine.open(item.config.sampling, seed)
            session = {k: v for k, v in engine.describe(slot).items() if k not in ("slot", "slots")}
            meta = {**item.meta, "batch_size": engine.slots, "slot": slot}
            item = EngineInput(item.pcm, item.config, item.name, meta, item.out, item.forcing)
            running[slot] = _Run(i, item, engine, seed, session)
        forced = {s: t for s, r in running.items() if (t := r.forced_tokens()) is not None}
        try:
            results = engine.step({slot: r.frame for slot, r in running.items()}, forced_audio=forced or None)
        except BaseException as exc:
            _close_cut_short(list(running.values()), exc)
            raise
        for slot, result in results.items():
            run = running[slot]
            run.record(result, slot in forced)
            if run.finished:
                recs[run.index] = run.rec
                engine.release(slot)
                del running[slot]
                if on_done is not None:
                    on_done(run.index, run.rec)
    return recs  # type: ignore[return-value]


__all__ = ["EngineInput", "Forcing", "run_on_engine", "run_all_on_engine"]
