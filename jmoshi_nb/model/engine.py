"""The streaming engine: Mimi + LMGen + tokenizer, one ``step`` per 80 ms frame.

The loop is moshi.server's: encode one 1920-sample frame with Mimi, feed each code frame to
``LMGen.step``, decode the generated audio codes with Mimi. On the first frame of a session Mimi's
encoder state is reset after encoding (the frame is "in the past" for the model), as moshi.server
does, so the tokens equal those of a plain moshi loop for the same checkpoint, seed and input.

Sampling parameters and the seed can change between frames: ``set_params`` stores them and the next
``step`` applies them before sampling. On CUDA moshi captures the depformer (which samples the audio
tokens) in a CUDA graph, freezing ``temp``/``top_k`` at capture; the engine re-captures that graph
when they change, so changes hold there too.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np
import torch

from ..core.audio import FRAME_SIZE, SAMPLE_RATE
from ..core.config import ConfigError, Sampling, parse_sampling
from ..core.text import PieceDecoder
from .checkpoints import ResolvedModel, resolve
from .moshi_api import LMGen, LMModel, MimiModel


@dataclass
class FrameResult:
    """What one frame produced.

    ``pcm`` is None while the LM is still in its initial delay. ``tokens`` holds the text token
    and the model's 8 audio codes (``[text, a1..a8]``) once generated.
    """

    index: int
    pcm: np.ndarray | None
    text_token: int | None
    text: str  # the piece as display text ("" for padding)
    tokens: np.ndarray | None
    encode_ms: float
    lm_ms: float
    decode_ms: float
    total_ms: float
    sampling: Sampling
    seed: int | None
    params_changed: bool = False  # new sampling parameters or seed took effect at this frame

    def metrics(self) -> dict[str, Any]:
        """The per-frame record sent as metadata and stored in recordings (JSON-ready)."""
        return {
            "frame": self.index,
            "encode_ms": round(self.encode_ms, 3),
            "lm_ms": round(self.lm_ms, 3),
            "decode_ms": round(self.decode_ms, 3),
            "total_ms": round(self.total_ms, 3),
            "text_token": self.text_token,
            "text": self.text,
            "params": self.sampling.model_dump(),
            "seed": self.seed,
            "audio": self.pcm is not None,
        }


@dataclass
class _Pending:
    """Parameters scheduled for the next frame (guarded by the engine's ``_lock``)."""

    sampling: Sampling | None = None
    seed: int | None = None


class _StageClock:
    """Times encode / LM / decode. On CUDA with events, so timing adds no synchronisation to the
    frame (the copy of the output audio to the CPU is the frame's one sync point, as in moshi.server)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.start = time.perf_counter()
        self.walls = [self.start]
        self.events: list[torch.cuda.Event] = []
        if self.cuda:
            self.events.append(torch.cuda.Event(enable_timing=True))
            self.events[0].record()

    def mark(self) -> None:
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self.events.append(ev)
        else:
            self.walls.append(time.perf_counter())

    def finish(self) -> tuple[float, float, float, float]:
        """(encode, lm, decode, total) in ms; total is wall time of the whole step."""
        self.mark()
        if self.cuda:
            self.events[-1].synchronize()
            stages = [a.elapsed_time(b) for a, b in zip(self.events, self.events[1:], strict=False)]
        else:
            stages = [(b - a) * 1e3 for a, b in zip(self.walls, self.walls[1:], strict=False)]
        total = (time.perf_counter() - self.start) * 1e3
        return stages[0], stages[1], stages[2], total


def recapture_depformer_graph(lm_gen: LMGen) -> bool:
    """Make moshi capture the depformer's CUDA graph again at the next step; True if there was one.

    The kit's one reach into moshi's private state, and why: on CUDA, ``LMGen`` runs the depformer
    (which samples the audio tokens) as a CUDA graph captured with the ``temp``/``top_k`` in force at
    capture time, and moshi offers no public way to change them afterwards. Resetting that graph
    (``_streaming_state.graphed_depth``, a ``moshi.utils.compile.CUDAGraphed``) makes new values
    hold. ``tests/test_engine.py`` fails if moshi's internals change under this.
    """
    state = lm_gen._streaming_state
    graph = getattr(state, "graphed_depth", None) if state is not None else None
    if graph is None:
        return False
    graph.reset(warmup_steps=0)
    return True


def load_parts(
    model: str, revision: str | None = None, device: str | None = None, dtype: torch.dtype | None = None
) -> tuple[ResolvedModel, MimiModel, LMModel, Any, str]:
    """Resolve a checkpoint (``checkpoints.resolve``) and load Mimi, the LM and the tokenizer on ``device``.

    ``dtype`` None: bf16 on GPUs (what the real weights are and what they run fast; fp16 on GPUs without
    bf16, e.g. T4/V100), fp32 on CPUs (faster there).
    """
    resolved = resolve(model, revision=revision)
    device = device or default_device()
    if dtype is None:
        if device.startswith("cuda"):
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dtype = torch.float32
    info = resolved.info
    mimi, lm = info.get_mimi(device=device), info.get_moshi(device=device, dtype=dtype)
    return resolved, mimi, lm, info.get_text_tokenizer(), device


def checkpoint_sampling(resolved: ResolvedModel, sampling: Sampling | None = None) -> tuple[Sampling, dict[str, Any]]:
    """(the sampling in force: ``sampling`` or the checkpoint's ``lm_gen_config``, the other LMGen arguments)."""
    base = dict(resolved.info.lm_gen_config)
    sampling = sampling or parse_sampling({k: base[k] for k in Sampling.model_fields if k in base})
    return sampling, {k: v for k, v in base.items() if k not in Sampling.model_fields}


def describe_model(model: ResolvedModel, device: torch.device, lm: LMModel) -> dict[str, Any]:
    """Facts about a loaded model that every session description starts with."""
    return {
        "model": model.model_id,
        "source": model.source,
        "location": model.location,
        "revision": model.revision,
        "commit": model.commit,
        "device": str(device),
        "dtype": str(lm.dtype).removeprefix("torch."),
        "sample_rate": SAMPLE_RATE,
        "frame_size": FRAME_SIZE,
        "card": lm.card,
        "text_card": lm.text_card,
        "pad_tokens": [lm.end_of_text_padding_id, lm.text_padding_token_id],
    }


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def seed_everything(seed: int) -> None:
    """Seed the RNG moshi samples from (torch's global generator, CPU and CUDA)."""
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


MAX_SLOTS = 64  # a hard ceiling on conversations per engine; memory may allow fewer (``BatchEngine``)


def check_slots(slots: int, capacity: int = MAX_SLOTS, what: str = "slots") -> int:
    """``slots`` if 1 <= slots <= capacity, else a ConfigError that names the limit."""
    if isinstance(slots, bool) or not isinstance(slots, int):
        raise ConfigError(f"{what} must be an integer, got {slots!r}")
    if slots < 1:
        raise ConfigError(f"{what}={slots} is out of range: allowed 1..{capacity}")
    if slots > capacity:
        raise ConfigError(
            f"{what}={slots} is more than this engine can hold: at most {capacity} conversations on this model "
            "and device"
        )
    return slots


def check_frame(pcm: np.ndarray, where: str = "") -> None:
    """A ValueError unless ``pcm`` is one frame: ``FRAME_SIZE`` samples (``where``: e.g. "slot 2: ")."""
    if np.shape(pcm) != (FRAME_SIZE,):
        raise ValueError(f"{where}a frame is {FRAME_SIZE} samples at {SAMPLE_RATE} Hz, got shape {np.shape(pcm)}")


@dataclass
class Conversation:
    """One conversation on an engine: the sampling and seed in force, those scheduled for its next frame
    (``pending``, guarded by the engine's lock), its frame counter and its text decoder. ``row``: its row in
    the engine's batch."""

    sampling: Sampling
    seed: int | None
    pieces: PieceDecoder
    row: int = 0
    frame: int = 0
    pending: _Pending = field(default_factory=_Pending)


class EngineBase(ABC):
    """What both engines share: the loaded model and its facts, loading from a checkpoint, each conversation's
    parameter schedule, restart and frame results. A subclass says how sampling and seeds reach the model
    (``_apply_sampling``, ``_reseed``) and how a frame is stepped.

    ``__init__`` sets the shared attributes, then calls ``_capacity`` and, last, ``_start_streaming``: a
    subclass builds its own state there, not in an ``__init__`` of its own.
    """

    lm_gen_class: ClassVar[type[LMGen]] = LMGen
    default_slots: ClassVar[int] = 1  # conversations held at once when ``slots`` is not given

    def __init__(
        self,
        model: ResolvedModel,
        mimi: MimiModel,
        lm_gen: LMGen,
        tokenizer: Any,
        device: str,
        sampling: Sampling,
        seed: int | None,
        *,
        slots: int | None = None,
    ) -> None:
        self.model, self.mimi, self.lm_gen, self.tokenizer = model, mimi, lm_gen, tokenizer
        self.device = torch.device(device)
        lm = lm_gen.lm_model
        self.card, self.text_card, self.dep_q = lm.card, lm.text_card, lm.dep_q
        # Text tokens that carry no text: the LM's own ids (moshi's defaults are 0 and 3, text.PAD_TOKENS).
        self.pad_tokens = (lm.end_of_text_padding_id, lm.text_padding_token_id)
        self.capacity = self._capacity()
        self.n_slots = check_slots(self.default_slots if slots is None else slots, self.capacity)
        sampling.check_cards(self.card, self.text_card)
        self.default_sampling, self.default_seed = sampling, seed
        self._lock = threading.Lock()  # guards each conversation's ``pending``; never replaced
        self._stepping = threading.Lock()  # one step at a time: a second caller is an error
        self._start_streaming()

    def _capacity(self) -> int:
        """How many conversations this engine can hold at once."""
        return 1

    @abstractmethod
    def _start_streaming(self) -> None:
        """Make the conversations and put Mimi and the LM in streaming mode (the end of ``__init__``)."""

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        model: str = "tiny",
        revision: str | None = None,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        **options: Any,
    ) -> Self:
        """Load a checkpoint (see ``load_parts``) and build a ready engine; ``options`` as ``from_parts``
        (``sampling``, ``seed``, ``warmup``, ``slots``)."""
        resolved, mimi, lm, tokenizer, device = load_parts(model, revision, device, dtype)
        return cls.from_parts(resolved, mimi, lm, tokenizer, device, **options)

    @classmethod
    def from_parts(
        cls,
        resolved: ResolvedModel,
        mimi: MimiModel,
        lm: LMModel,
        tokenizer: Any,
        device: str,
        sampling: Sampling | None = None,
        seed: int | None = 42,
        warmup: bool = True,
        *,
        slots: int | None = None,
    ) -> Self:
        """An engine from loaded models (moved to ``device``), e.g. ones restored from a memory snapshot.

        The checkpoint's ``lm_gen_config`` gives the default sampling unless ``sampling`` is given.
        """
        sampling, gen_kwargs = checkpoint_sampling(resolved, sampling)
        lm_gen = cls.lm_gen_class(lm.to(device), **gen_kwargs)
        engine = cls(resolved, mimi.to(device), lm_gen, tokenizer, device, sampling, seed, slots=slots)
        if warmup:
            engine.warmup()  # on CUDA this captures the CUDA graphs before the first client arrives
        return engine

    @abstractmethod
    def warmup(self, frames: int = 4) -> None:
        """Run a few silent frames (CUDA graphs are captured here), then start afresh."""

    # ---- a conversation's parameters -----------------------------------------------------------
    @abstractmethod
    def _apply_sampling(self, conv: Conversation, sampling: Sampling) -> None:
        """Put ``sampling`` in force for ``conv`` (and record it there)."""

    @abstractmethod
    def _reseed(self, conv: Conversation) -> None:
        """Restart ``conv``'s random stream from ``conv.seed``."""

    def _schedule(self, conv: Conversation, sampling: Sampling | None, seed: int | None, changes: dict) -> Sampling:
        """``set_params``: validate now, apply at the conversation's next frame; the parameters that will hold."""
        with self._lock:
            base = conv.pending.sampling or conv.sampling
            new = sampling if sampling is not None else base.updated(**changes)
            new.check_cards(self.card, self.text_card)
            conv.pending.sampling = new
            if seed is not None:
                conv.pending.seed = seed
            return new

    def _restart(
        self, conv: Conversation, sampling: Sampling | None, seed: int | None, mask: torch.Tensor | None = None
    ) -> None:
        """A fresh conversation: nothing scheduled, new parameters (None keeps them), the streaming state of
        its row (``mask``; None: the whole batch) reset, the seed applied, frame 0."""
        with self._lock:
            conv.pending = _Pending()
        if sampling is not None:
            sampling.check_cards(self.card, self.text_card)
            self._apply_sampling(conv, sampling)
        if seed is not None:
            conv.seed = seed
        self.mimi.reset_streaming(mask)
        self.lm_gen.reset_streaming(mask)
        self._reseed(conv)
        conv.frame = 0
        conv.pieces = PieceDecoder(self.tokenizer)

    def _apply_pending(self, conv: Conversation) -> bool:
        """Put the parameters scheduled for ``conv`` in force; True if any were."""
        with self._lock:
            pending, conv.pending = conv.pending, _Pending()
        if pending.sampling is None and pending.seed is None:
            return False
        if pending.sampling is not None and pending.sampling != conv.sampling:
            self._apply_sampling(conv, pending.sampling)
        if pending.seed is not None:
            conv.seed = pending.seed
            self._reseed(conv)
        return True

    # ---- the frame ---------------------------------------------------------------------------
    @contextmanager
    def _stepping_alone(self, hint: str = "") -> Iterator[None]:
        if not self._stepping.acquire(blocking=False):
            raise RuntimeError(f"engine busy: another caller is stepping it{hint}")
        try:
            yield
        finally:
            self._stepping.release()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def _frame_result(
        self,
        conv: Conversation,
        pcm: np.ndarray | None,
        tokens: np.ndarray | None,
        times: tuple[float, float, float, float],
        changed: bool,
    ) -> FrameResult:
        """``conv``'s result for this frame (its text piece decoded from ``tokens``), and its frame counter on."""
        text_token = None if tokens is None else int(tokens[0])
        text = ""
        if text_token is not None and text_token not in self.pad_tokens:
            text = conv.pieces.decode_id(text_token)
        encode_ms, lm_ms, decode_ms, total_ms = times
        result = FrameResult(
            index=conv.frame,
            pcm=pcm,
            text_token=text_token,
            text=text,
            tokens=tokens,
            encode_ms=encode_ms,
            lm_ms=lm_ms,
            decode_ms=decode_ms,
            total_ms=total_ms,
            sampling=conv.sampling,
            seed=conv.seed,
            params_changed=changed,
        )
        conv.frame += 1
        return result

    def _describe(self, conv: Conversation | None) -> dict[str, Any]:
        """Facts about the loaded model and ``conv``'s sampling and seed (None: the engine's defaults)."""
        return describe_model(self.model, self.device, self.lm_gen.lm_model) | {
            "sampling": (conv.sampling if conv else self.default_sampling).model_dump(),
            "seed": conv.seed if conv else self.default_seed,
        }


class Engine(EngineBase):
    """One model, one conversation at a time. Not thread-safe except ``set_params``."""

    def _start_streaming(self) -> None:
        self._conv = Conversation(self.default_sampling, self.default_seed, PieceDecoder(self.tokenizer))
        self._apply_sampling(self._conv, self.default_sampling)
        self.mimi.streaming_forever(1)
        self.lm_gen.streaming_forever(1)
        self.reset()

    # ---- session control ---------------------------------------------------------------------
    @property
    def sampling(self) -> Sampling:
        """The sampling parameters in force (a ``set_params`` change holds from the next frame)."""
        return self._conv.sampling

    @property
    def seed(self) -> int | None:
        """The seed the conversation's random stream last started from."""
        return self._conv.seed

    @property
    def frame_index(self) -> int:
        """Frames stepped since the conversation started."""
        return self._conv.frame

    def set_params(self, sampling: Sampling | None = None, seed: int | None = None, **changes: Any) -> Sampling:
        """Schedule new sampling parameters (and/or a new seed) for the next frame.

        ``changes`` are field names of ``Sampling``; they are validated now (ConfigError on a bad
        value) and applied at the start of the next ``step``. Returns the parameters that will be
        in force. Safe to call from another thread.
        """
        return self._schedule(self._conv, sampling, seed, changes)

    def reset(self, sampling: Sampling | None = None, seed: int | None = None) -> None:
        """Start a new conversation: fresh streaming state, seed applied, frame counter at 0.

        ``sampling``/``seed`` of None keep the current ones.
        """
        self._restart(self._conv, sampling, seed)

    def warmup(self, frames: int = 4) -> None:
        """Run a few silent frames (CUDA graphs are captured here), then reset."""
        silence = np.zeros(FRAME_SIZE, dtype=np.float32)
        for _ in range(frames):
            self.step(silence)
        self._sync()
        self.reset()

    # ---- the frame loop ----------------------------------------------------------------------
    def _apply_sampling(self, conv: Conversation, sampling: Sampling) -> None:
        gen = self.lm_gen
        audio_changed = (gen.temp, gen.top_k) != (sampling.temp, sampling.top_k)
        gen.temp, gen.temp_text = sampling.temp, sampling.temp_text
        gen.top_k, gen.top_k_text = sampling.top_k, sampling.top_k_text
        conv.sampling = sampling
        if audio_changed:
            recapture_depformer_graph(gen)

    def _reseed(self, conv: Conversation) -> None:
        if conv.seed is not None:
            seed_everything(conv.seed)

    @torch.no_grad()
    def step(self, pcm: np.ndarray, forced_audio: np.ndarray | None = None) -> FrameResult:
        """Process one 80 ms frame of user audio (1920 float32 samples at 24 kHz).

        ``forced_audio``: the model's own audio tokens for this step (``dep_q`` codes, already
        delayed as the LM samples them), used instead of sampling: teacher forcing of the model
        channel, as in prompted dialogue continuation (see ``model.forcing.ModelChannelForcer``).
        """
        check_frame(pcm)
        with self._stepping_alone(" (one conversation per engine)"):
            return self._step(pcm, forced_audio)

    def _step(self, pcm: np.ndarray, forced_audio: np.ndarray | None) -> FrameResult:
        conv = self._conv
        clock = _StageClock(self.device)  # from here: parameter changes (a graph re-capture) count too
        replace = None
        if forced_audio is not None:
            replace = torch.as_tensor(forced_audio, dtype=torch.long, device=self.device).view(1, -1, 1)
        changed = self._apply_pending(conv)
        chunk = torch.from_numpy(np.ascontiguousarray(pcm, dtype=np.float32)).to(self.device)[None, None]
        codes = self.mimi.encode(chunk)
        if conv.frame == 0:
            # As moshi.server: the first frame is in the model's past; re-apply the left padding.
            self.mimi.reset_streaming()
        clock.mark()
        tokens = None
        for c in range(codes.shape[-1]):
            tokens = self.lm_gen.step(codes[:, :, c : c + 1], replace)
        clock.mark()
        out_pcm = None
        tokens_np = None
        if tokens is not None:
            out = self.mimi.decode(tokens[:, 1:])
            out_pcm = out[0, 0].float().cpu().numpy()
            tokens_np = tokens[0, :, 0].cpu().numpy()
        return self._frame_result(conv, out_pcm, tokens_np, clock.finish(), changed)

    def describe(self) -> dict[str, Any]:
        """Facts about the loaded model, sent to clients at the start of a session."""
        return self._describe(self._conv)
