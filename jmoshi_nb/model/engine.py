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
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..core.audio import FRAME_SIZE, SAMPLE_RATE
from ..core.config import Sampling, parse_sampling
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
    """Parameters scheduled for the next frame (guarded by ``Engine._lock``)."""

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


class Engine:
    """One model, one conversation at a time. Not thread-safe except ``set_params``."""

    def __init__(
        self,
        model: ResolvedModel,
        mimi: MimiModel,
        lm_gen: LMGen,
        tokenizer: Any,
        device: str,
        sampling: Sampling,
        seed: int | None,
    ) -> None:
        self.model = model
        self.mimi = mimi
        self.lm_gen = lm_gen
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.card = lm_gen.lm_model.card
        self.text_card = lm_gen.lm_model.text_card
        # Text tokens that carry no text: the LM's own ids (moshi's defaults are 0 and 3, text.PAD_TOKENS).
        self.pad_tokens = (lm_gen.lm_model.end_of_text_padding_id, lm_gen.lm_model.text_padding_token_id)
        sampling.check_cards(self.card, self.text_card)
        self._sampling = sampling
        self._seed = seed
        self._lock = threading.Lock()  # guards _pending; never replaced
        self._stepping = threading.Lock()  # one step at a time: a second caller is an error
        self._pending = _Pending()
        self._frame = 0
        self._pieces = PieceDecoder(tokenizer)
        self._apply_sampling(sampling)
        mimi.streaming_forever(1)
        lm_gen.streaming_forever(1)

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        model: str = "tiny",
        revision: str | None = None,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        sampling: Sampling | None = None,
        seed: int | None = 42,
        warmup: bool = True,
    ) -> Engine:
        """Load a checkpoint (see ``load_parts``) and build a ready engine."""
        resolved, mimi, lm, tokenizer, device = load_parts(model, revision, device, dtype)
        return cls.from_parts(resolved, mimi, lm, tokenizer, device, sampling, seed, warmup)

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
    ) -> Engine:
        """An engine from loaded models (moved to ``device``), e.g. ones restored from a memory snapshot.

        The checkpoint's ``lm_gen_config`` gives the default sampling unless ``sampling`` is given.
        """
        sampling, gen_kwargs = checkpoint_sampling(resolved, sampling)
        lm_gen = LMGen(lm.to(device), **gen_kwargs)
        engine = cls(resolved, mimi.to(device), lm_gen, tokenizer, device, sampling, seed)
        if warmup:
            engine.warmup()  # on CUDA this captures the CUDA graphs before the first client arrives
        engine.reset()
        return engine

    # ---- session control ---------------------------------------------------------------------
    @property
    def sampling(self) -> Sampling:
        return self._sampling

    @property
    def seed(self) -> int | None:
        return self._seed

    @property
    def frame_index(self) -> int:
        return self._frame

    def set_params(self, sampling: Sampling | None = None, seed: int | None = None, **changes: Any) -> Sampling:
        """Schedule new sampling parameters (and/or a new seed) for the next frame.

        ``changes`` are field names of ``Sampling``; they are validated now (ConfigError on a bad
        value) and applied at the start of the next ``step``. Returns the parameters that will be
        in force. Safe to call from another thread.
        """
        with self._lock:
            base = self._pending.sampling or self._sampling
            new = sampling if sampling is not None else base.updated(**changes)
            new.check_cards(self.card, self.text_card)
            self._pending.sampling = new
            if seed is not None:
                self._pending.seed = seed
            return new

    def reset(self, sampling: Sampling | None = None, seed: int | None = None) -> None:
        """Start a new conversation: fresh streaming state, seed applied, frame counter at 0.

        ``sampling``/``seed`` of None keep the current ones.
        """
        with self._lock:
            self._pending = _Pending()
        if sampling is not None:
            sampling.check_cards(self.card, self.text_card)
            self._apply_sampling(sampling)
        if seed is not None:
            self._seed = seed
        self.mimi.reset_streaming()
        self.lm_gen.reset_streaming()
        if self._seed is not None:
            seed_everything(self._seed)
        self._frame = 0
        self._pieces = PieceDecoder(self.tokenizer)

    def warmup(self, frames: int = 4) -> None:
        """Run a few silent frames (CUDA graphs are captured here), then reset."""
        silence = np.zeros(FRAME_SIZE, dtype=np.float32)
        for _ in range(frames):
            self.step(silence)
        self._sync()
        self.reset()

    # ---- the frame loop ----------------------------------------------------------------------
    def _apply_sampling(self, sampling: Sampling) -> None:
        gen = self.lm_gen
        audio_changed = (gen.temp, gen.top_k) != (sampling.temp, sampling.top_k)
        gen.temp, gen.temp_text = sampling.temp, sampling.temp_text
        gen.top_k, gen.top_k_text = sampling.top_k, sampling.top_k_text
        self._sampling = sampling
        if audio_changed:
            recapture_depformer_graph(gen)

    def _apply_pending(self) -> bool:
        with self._lock:
            pending, self._pending = self._pending, _Pending()
        if pending.sampling is None and pending.seed is None:
            return False
        if pending.sampling is not None and pending.sampling != self._sampling:
            self._apply_sampling(pending.sampling)
        if pending.seed is not None:
            self._seed = pending.seed
            seed_everything(pending.seed)
        return True

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    @torch.no_grad()
    def step(self, pcm: np.ndarray, forced_audio: np.ndarray | None = None) -> FrameResult:
        """Process one 80 ms frame of user audio (1920 float32 samples at 24 kHz).

        ``forced_audio``: the model's own audio tokens for this step (``dep_q`` codes, already
        delayed as the LM samples them), used instead of sampling: teacher forcing of the model
        channel, as in prompted dialogue continuation (see ``research.ModelChannelForcer``).
        """
        if pcm.shape != (FRAME_SIZE,):
            raise ValueError(f"a frame is {FRAME_SIZE} samples at {SAMPLE_RATE} Hz, got shape {pcm.shape}")
        if not self._stepping.acquire(blocking=False):
            raise RuntimeError("engine busy: another caller is stepping it (one conversation per engine)")
        try:
            return self._step(pcm, forced_audio)
        finally:
            self._stepping.release()

    def _step(self, pcm: np.ndarray, forced_audio: np.ndarray | None) -> FrameResult:
        clock = _StageClock(self.device)  # from here: parameter changes (a graph re-capture) count too
        replace = None
        if forced_audio is not None:
            replace = torch.as_tensor(forced_audio, dtype=torch.long, device=self.device).view(1, -1, 1)
        changed = self._apply_pending()
        chunk = torch.from_numpy(np.ascontiguousarray(pcm, dtype=np.float32)).to(self.device)[None, None]
        codes = self.mimi.encode(chunk)
        if self._frame == 0:
            # As moshi.server: the first frame is in the model's past; re-apply the left padding.
            self.mimi.reset_streaming()
        clock.mark()
        tokens = None
        for c in range(codes.shape[-1]):
            tokens = self.lm_gen.step(codes[:, :, c : c + 1], replace)
        clock.mark()
        out_pcm = None
        text_token = None
        text = ""
        tokens_np = None
        if tokens is not None:
            out = self.mimi.decode(tokens[:, 1:])
            out_pcm = out[0, 0].float().cpu().numpy()
            tokens_np = tokens[0, :, 0].cpu().numpy()
            text_token = int(tokens_np[0])
            if text_token not in self.pad_tokens:
                text = self._pieces.decode_id(text_token)
        encode_ms, lm_ms, decode_ms, total_ms = clock.finish()
        result = FrameResult(
            index=self._frame,
            pcm=out_pcm,
            text_token=text_token,
            text=text,
            tokens=tokens_np,
            encode_ms=encode_ms,
            lm_ms=lm_ms,
            decode_ms=decode_ms,
            total_ms=total_ms,
            sampling=self._sampling,
            seed=self._seed,
            params_changed=changed,
        )
        self._frame += 1
        return result

    def describe(self) -> dict[str, Any]:
        """Facts about the loaded model, sent to clients at the start of a session."""
        return describe_model(self.model, self.device, self.lm_gen.lm_model) | {
            "sampling": self._sampling.model_dump(),
            "seed": self._seed,
        }
