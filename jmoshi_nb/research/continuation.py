"""Prompted dialogue continuation.

``prompted_continuation`` follows the J-Moshi paper's evaluation: the first ``prompt_s`` seconds of
a recorded dialogue are given to the model (the user channel as input, the model channel forced
into the model's own audio stream), then the model goes on alone for ``continuation_s`` seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..core.audio import FRAME_SIZE, SAMPLE_RATE, read_wav, sha256_of
from ..core.config import SessionConfig
from ..core.recording import Recording
from ..model.engine_factory import batch_slots, is_batched, load_engine
from .engine_run import EngineInput, run_all_on_engine

if TYPE_CHECKING:
    from ..model.batch_engine import BatchEngine
    from ..model.engine import Engine

from ..core.audio import AUDIO_SUFFIXES

# ---- prompted continuation --------------------------------------------------------------------------


@dataclass
class DialogueInput:
    path: Path
    user: np.ndarray
    model: np.ndarray | None  # None for a mono file: the whole mix is the user side


def read_dialogue(path: str | Path, model_channel: int = 0) -> DialogueInput:
    """A stereo dialogue (``model_channel`` is the side the model plays) or a mono recording."""
    stereo = read_wav(path, channel=None)
    if stereo.shape[1] == 1:
        return DialogueInput(Path(path), stereo[:, 0], None)
    if stereo.shape[1] != 2:
        raise ValueError(f"{path}: dialogue files are mono or stereo, this one has {stereo.shape[1]} channels")
    if model_channel not in (0, 1):
        raise ValueError(f"model_channel must be 0 (left) or 1 (right), got {model_channel}")
    return DialogueInput(Path(path), stereo[:, 1 - model_channel], stereo[:, model_channel])


def dialogue_files(source: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(source, (str, Path)):
        src = Path(source)
        if src.is_dir():
            files = sorted(p for p in src.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
            if not files:
                raise FileNotFoundError(f"{src}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in this folder")
            return files
        return [src]
    return [Path(p) for p in source]


@dataclass(frozen=True)
class ContinuationPlan:
    """One prompted continuation's timing: ``prompt_s`` of the dialogue, then ``continuation_s`` more,
    with the user channel silent (``"silence"``) or going on with the recording (``"continue"``)."""

    prompt_s: float = 10.0
    continuation_s: float = 20.0
    user_after_prompt: Literal["silence", "continue"] = "silence"

    def user_input(self, dialogue: DialogueInput) -> tuple[np.ndarray, int, int]:
        """The user channel the model hears, the prompt's frame count and the total frame count."""
        if self.prompt_s <= 0 or self.continuation_s <= 0:
            raise ValueError(f"prompt_s and continuation_s must be > 0, got {self.prompt_s} and {self.continuation_s}")
        n_prompt = int(round(self.prompt_s * SAMPLE_RATE / FRAME_SIZE))
        n_total = n_prompt + int(round(self.continuation_s * SAMPLE_RATE / FRAME_SIZE))
        if len(dialogue.user) < n_prompt * FRAME_SIZE:
            raise ValueError(
                f"{dialogue.path}: {len(dialogue.user) / SAMPLE_RATE:.1f} s of audio is shorter "
                f"than the {self.prompt_s} s prompt"
            )
        user = np.zeros(n_total * FRAME_SIZE, dtype=np.float32)
        keep = n_prompt * FRAME_SIZE if self.user_after_prompt == "silence" else min(len(dialogue.user), len(user))
        user[:keep] = dialogue.user[:keep]
        return user, n_prompt, n_total

    def meta(self, dialogue: DialogueInput, n_prompt: int, forced: bool) -> dict[str, Any]:
        """What the recording of ``dialogue``'s continuation says about how it was made."""
        return {
            "task": "prompted_continuation",
            "source": str(dialogue.path),
            "input_sha256": sha256_of(dialogue.user),
            "prompt_s": self.prompt_s,
            "continuation_s": self.continuation_s,
            "prompt_frames": n_prompt,
            "model_channel_forced": forced,
            "user_after_prompt": self.user_after_prompt,
        }


    def engine_input(
        self, dialogue: DialogueInput, config: SessionConfig, out: str | Path | None = None
    ) -> EngineInput:
        """``dialogue``'s continuation for the engine-run loop: the user channel as input, the model's
        channel (if any) forced during the prompt, ``out``: stream the recording there."""
        user, n_prompt, _n_total = self.user_input(dialogue)
        meta = self.meta(dialogue, n_prompt, dialogue.model is not None)
        return EngineInput(user, config, meta=meta, out=out, forcing=(dialogue.model, n_prompt))


def continue_dialogue(
    engine: Engine | BatchEngine,
    dialogue: DialogueInput,
    config: SessionConfig,
    prompt_s: float = 10.0,
    continuation_s: float = 20.0,
    user_after_prompt: Literal["silence", "continue"] = "silence",
    out: str | Path | None = None,
) -> Recording:
    """One prompted continuation on ``engine``; see ``prompted_continuation`` (``out``: stream it there).

    ``config.seed`` None draws a seed, which the recording keeps (``meta["seed"]``).
    """
    plan = ContinuationPlan(prompt_s, continuation_s, user_after_prompt)
    return run_all_on_engine(engine, [plan.engine_input(dialogue, config, out)])[0]


def continue_dialogues_batched(
    engine: BatchEngine,
    dialogues: Sequence[DialogueInput],
    config: SessionConfig,
    plan: ContinuationPlan | None = None,
) -> list[Recording]:
    """Prompted continuations as slots of one batched engine, ``engine.slots`` dialogues at a time.

    Each dialogue's recording is what it gets alone in the batched engine (own slot, own forcer, own
    random stream seeded with ``config.seed``, or a seed drawn for it when that is None).
    ``plan``: the prompt and continuation (default: 10 s + 20 s).
    """
    plan = plan or ContinuationPlan()
    return run_all_on_engine(engine, [plan.engine_input(d, config) for d in dialogues])


def prompted_continuation(
    source: str | Path | Sequence[str | Path],
    config: SessionConfig | None = None,
    prompt_s: float = 10.0,
    continuation_s: float = 20.0,
    out_dir: str | Path | None = None,
    model_channel: int = 0,
    user_after_prompt: Literal["silence", "continue"] = "silence",
    engine: Engine | BatchEngine | None = None,
    batch_size: int = 1,
) -> list[Recording]:
    """Prompt the model with the start of each dialogue in ``source`` and let it continue.

    ``source``: a folder of dialogue WAVs, a file, or a list of files. Stereo files: channel
    ``model_channel`` (0 = left) is the side the model plays and is forced into its audio stream
    during the prompt; the other is the user. Mono files are the user side only. After the prompt
    the user channel is silent (``user_after_prompt="silence"``: what follows is the model's own) or
    goes on with the recording (``"continue"``: the model reacts to the real partner).
    Each run streams into ``out_dir/<file stem>`` if given. ``config.seed`` None: each dialogue draws
    its own seed, kept in its recording.

    ``batch_size`` > 1 runs that many dialogues at once as slots of a batched engine (``engine`` may be
    a ``BatchEngine``); each recording is the same at any ``batch_size`` > 1.
    """
    config = config or SessionConfig()
    files = dialogue_files(source)
    slots = batch_slots(batch_size, len(files))
    plan = ContinuationPlan(prompt_s, continuation_s, user_after_prompt)
    outs = [Path(out_dir) / path.stem if out_dir is not None else None for path in files]
    dialogues = [read_dialogue(path, model_channel) for path in files]
    for dialogue in dialogues:
        plan.user_input(dialogue)  # a dialogue too short for the prompt is named before any work
    if engine is None or (slots > 1 and not is_batched(engine)):
        engine = load_engine(config.model, slots, revision=config.revision, sampling=config.sampling, seed=config.seed)
    # Each recording streams into its folder as it runs.
    inputs = [plan.engine_input(dialogue, config, out) for dialogue, out in zip(dialogues, outs, strict=True)]
    recordings = run_all_on_engine(engine, inputs)
    for rec, out in zip(recordings, outs, strict=True):
        if out is not None:
            rec.save(out)
    return recordings
