"""Many conversations on one model: ``BatchEngine`` runs N slots of Mimi + LMGen in one batch.

Each slot is a conversation of its own:

* **state**: Mimi and LMGen stream with batch size N (``streaming_forever(N)``); a slot starts afresh
  with ``reset_streaming(reset_mask)``, which resets that row of every streaming module and leaves the
  other rows as they are;
* **masking**: a step takes the slots that have a frame; the others sit out through moshi's
  ``exec_mask``, which every streaming module of moshi 0.2.13 honours (LMGen's token cache and offsets,
  the transformers' ring KV caches and positions, Mimi's streaming convolutions and transformers): a
  masked row's state is left exactly as it was. Mimi's decoder is masked separately, for the slots whose
  LM has produced no audio yet (its initial delay), as the single engine does not decode then;
* **sampling**: temp, temp_text, top_k and top_k_text are per-row tensors read by the sampler
  (``sample_rows``), so a change is data: it applies from the slot's next frame, and under CUDA graphs
  it needs no re-capture;
* **random stream**: each slot owns a ``torch.Generator`` seeded with its seed. Before each step the
  engine draws, for each executing slot and from that slot's generator only, exactly the exponential
  noise moshi's sampler would draw from the global generator for one conversation (text first, then
  the eight audio codebooks; nothing for greedy or forced streams). Hence a slot's tokens do not depend
  on its neighbours, and a slot alone gives the tokens of the single-conversation ``Engine`` (and of
  moshi's own loop) for the same seed and input;
* **results**: one ``engine.FrameResult`` per stepped slot, as the single engine gives.

moshi's LMGen samples with module-level settings; ``SlotLMGen`` (a subclass) keeps moshi's step and
caches, and replaces the two sampling points: the text token through moshi's ``on_text_logits_hook``
(with ``use_sampling=False`` moshi takes the argmax of the logits, which the hook sets to the token the
per-row sampler drew) and the audio tokens by overriding ``depformer_step`` (moshi's depformer, per-row
sampler). ``support_out_of_sync=True`` makes LMGen report, per row, which slots have no output yet.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core.audio import FRAME_SIZE, SAMPLE_RATE
from ..core.config import ConfigError, Sampling
from ..core.text import PieceDecoder
from .checkpoints import ResolvedModel
from .engine import FrameResult, _Pending, _StageClock, checkpoint_sampling, describe_model, load_parts
from .moshi_api import LMGen, LMModel, MimiModel

MAX_SLOTS = 64  # a hard ceiling; memory may allow fewer (see ``slot_capacity``)
# Rows are a multiple of four (the spare ones always masked): CPU BLAS (torch 2.13 here) multiplies rows
# in blocks of four and the rows left over (one, two or three) with other kernels whose rounding differs,
# and a near-tie in sampling then flips a token. In whole blocks a row's arithmetic was measured to be
# the same whatever the row count, the row's position and its neighbours (GPUs may differ: see README).
ROW_BLOCK = 4


class SlotsFull(RuntimeError):
    """Every slot holds a conversation."""


# ---- the sampler ---------------------------------------------------------------------------------


def sample_rows(logits: torch.Tensor, temp: torch.Tensor, top_k: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """One token per row of ``logits`` [B, V], each row with its own temperature and top-k.

    The draw is moshi's (``moshi.utils.sampling.sample_token``): softmax of ``logits / temp``, the
    ``top_k`` most likely tokens, and among them the argmax of ``prob / q`` with ``q ~ Exp(1)`` (the
    exponential race, which picks token ``i`` with probability ``p_i / sum(p)``). ``noise`` [B, W]
    holds row ``b``'s Exp(1) draws in its first ``top_k[b]`` columns and ``+inf`` after them (those
    candidates score 0 and never win), ``W >= max(top_k)``. Rows with ``temp == 0`` take the argmax.
    All shapes are fixed by ``B``, ``V`` and ``W``, so the function can run inside a CUDA graph.
    """
    width = min(noise.shape[-1], logits.shape[-1])
    noise = noise[:, :width]
    safe_temp = torch.where(temp > 0, temp, torch.ones_like(temp))
    probs = torch.softmax(logits / safe_temp[:, None], dim=-1)
    top_p, top_i = torch.topk(probs, width, dim=-1)
    rank = torch.arange(width, device=logits.device)
    top_p = torch.where(rank[None, :] < top_k[:, None], top_p, torch.zeros_like(top_p))
    pick = (top_p / noise).argmax(dim=-1, keepdim=True)
    sampled = top_i.gather(-1, pick)[:, 0]
    greedy = logits.argmax(dim=-1)
    return torch.where(temp > 0, sampled, greedy)


def draw_noise(generator: torch.Generator, k: int, device: torch.device) -> torch.Tensor:
    """The Exp(1) draws moshi's multinomial makes for one row of ``k`` candidates: ``[k]``."""
    return torch.empty(1, k, device=device).exponential_(1, generator=generator)[0]


@dataclass
class _Rows:
    """The per-row sampling tensors read by ``SlotLMGen`` during a step."""

    temp: torch.Tensor
    temp_text: torch.Tensor
    top_k: torch.Tensor
    top_k_text: torch.Tensor
    noise_text: torch.Tensor
    noise_audio: torch.Tensor  # [B, dep_q, W]
    force_mask: torch.Tensor  # [B] bool: take ``forced`` instead of sampling the audio tokens
    forced: torch.Tensor  # [B, dep_q]


class SlotLMGen(LMGen):
    """moshi's LMGen with per-row sampling (see the module docstring). CFG is not supported."""

    def __init__(self, lm_model: LMModel, **kwargs: Any) -> None:
        for key in ("use_sampling", "support_out_of_sync", "on_text_logits_hook"):
            kwargs.pop(key, None)
        if kwargs.get("cfg_coef", 1.0) != 1.0:
            raise ConfigError("the batched engine does not support classifier-free guidance (cfg_coef != 1)")
        super().__init__(lm_model, use_sampling=False, support_out_of_sync=True, **kwargs)
        self.on_text_logits_hook = self._sample_text
        self.rows: _Rows | None = None
        self.last_text: torch.Tensor | None = None

    def _sample_text(self, text_logits: torch.Tensor) -> None:
        # moshi then takes argmax(text_logits) (use_sampling=False): make that the token drawn here.
        rows = self.rows
        assert rows is not None
        token = sample_rows(text_logits[:, 0, 0].float(), rows.temp_text, rows.top_k_text, rows.noise_text)
        text_logits.zero_()
        text_logits.scatter_(-1, token.view(-1, 1, 1, 1), 1.0)

    def depformer_step(self, text_token: torch.Tensor, transformer_out: torch.Tensor) -> torch.Tensor:
        rows = self.rows
        assert rows is not None
        lm = self.lm_model
        assert lm.depformer is not None
        batch = text_token.shape[0]
        prev = text_token
        tokens: list[torch.Tensor] = []
        with lm.depformer.streaming(batch):
            for cb in range(lm.dep_q):
                logits = lm.forward_depformer(cb, prev[:, None, None], transformer_out)
                token = sample_rows(logits[:, 0, 0].float(), rows.temp, rows.top_k, rows.noise_audio[:, cb])
                token = torch.where(rows.force_mask, rows.forced[:, cb], token)
                tokens.append(token)
                prev = token
        return torch.stack(tokens, dim=1)


# ---- slots ---------------------------------------------------------------------------------------


@dataclass
class _Slot:
    sampling: Sampling
    seed: int | None
    generator: torch.Generator
    busy: bool = False
    frame: int = 0
    pieces: PieceDecoder | None = None
    pending: _Pending = field(default_factory=_Pending)


def slot_bytes(lm: LMModel, mimi: MimiModel) -> int:
    """Memory one slot's streaming state takes: the attention KV caches of the LM and of Mimi."""
    from moshi.modules.transformer import StreamingMultiheadAttention

    total = 0
    for module in (lm, mimi):
        for m in module.modules():
            if isinstance(m, StreamingMultiheadAttention) and not m.cross_attention and m.context:
                item = next(m.parameters()).element_size()
                total += 2 * m.embed_dim // m.kv_repeat * m.context * item
    return total


def slot_capacity(lm: LMModel, mimi: MimiModel, device: torch.device) -> int:
    """How many slots this engine can hold: ``MAX_SLOTS``, or fewer where free GPU memory is short."""
    if device.type != "cuda":
        return MAX_SLOTS
    free, _total = torch.cuda.mem_get_info(device)
    per_slot = max(1, slot_bytes(lm, mimi))
    # Keep a quarter of the free memory for activations, Mimi and CUDA graphs.
    return max(1, min(MAX_SLOTS, int(free * 0.75) // per_slot))


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


class BatchEngine:
    """One model, ``slots`` conversations. ``step`` and slot control from one thread; ``set_params`` from any."""

    def __init__(
        self,
        model: ResolvedModel,
        mimi: MimiModel,
        lm_gen: SlotLMGen,
        tokenizer: Any,
        device: str,
        slots: int,
        sampling: Sampling,
        seed: int | None,
    ) -> None:
        self.model = model
        self.mimi = mimi
        self.lm_gen = lm_gen
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        lm = lm_gen.lm_model
        self.card, self.text_card, self.dep_q = lm.card, lm.text_card, lm.dep_q
        self.pad_tokens = (lm.end_of_text_padding_id, lm.text_padding_token_id)  # as Engine: the LM's own ids
        self.capacity = slot_capacity(lm, mimi, self.device)
        self.n_slots = check_slots(slots, self.capacity)
        sampling.check_cards(self.card, self.text_card)
        self.default_sampling, self.default_seed = sampling, seed
        self._lock = threading.Lock()  # guards each slot's ``pending``
        self._stepping = threading.Lock()
        # Under CUDA graphs every tensor the graphed depformer reads keeps its shape and address: the
        # noise is as wide as the vocabulary. On CPU it is as wide as the largest top-k in use.
        self._static = self.device.type == "cuda"
        self._slots = [_Slot(sampling, seed, torch.Generator(device=self.device)) for _ in range(slots)]
        self.n_rows = b = -(-slots // ROW_BLOCK) * ROW_BLOCK
        dev = self.device
        self.rows = _Rows(
            temp=torch.full((b,), sampling.temp, device=dev),
            temp_text=torch.full((b,), sampling.temp_text, device=dev),
            top_k=torch.full((b,), sampling.top_k, device=dev, dtype=torch.long),
            top_k_text=torch.full((b,), sampling.top_k_text, device=dev, dtype=torch.long),
            noise_text=torch.full((b, self.text_card), torch.inf, device=dev),
            noise_audio=torch.full((b, self.dep_q, self.card), torch.inf, device=dev),
            force_mask=torch.zeros(b, dtype=torch.bool, device=dev),
            forced=torch.zeros((b, self.dep_q), dtype=torch.long, device=dev),
        )
        lm_gen.rows = self.rows
        mimi.streaming_forever(b)
        lm_gen.streaming_forever(b)

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        model: str = "tiny",
        slots: int = 4,
        revision: str | None = None,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        sampling: Sampling | None = None,
        seed: int | None = 42,
        warmup: bool = True,
    ) -> BatchEngine:
        """Load a checkpoint (see ``checkpoints.resolve``) and build a ready engine with ``slots`` slots."""
        check_slots(slots)
        resolved, mimi, lm, tokenizer, device = load_parts(model, revision, device, dtype)
        return cls.from_parts(resolved, mimi, lm, tokenizer, device, slots, sampling, seed, warmup)

    @classmethod
    def from_parts(
        cls,
        resolved: ResolvedModel,
        mimi: MimiModel,
        lm: LMModel,
        tokenizer: Any,
        device: str,
        slots: int = 4,
        sampling: Sampling | None = None,
        seed: int | None = 42,
        warmup: bool = True,
    ) -> BatchEngine:
        """An engine from loaded models (moved to ``device``); the checkpoint's sampling unless ``sampling``."""
        sampling, gen_kwargs = checkpoint_sampling(resolved, sampling)
        lm_gen = SlotLMGen(lm.to(device), **gen_kwargs)
        engine = cls(resolved, mimi.to(device), lm_gen, tokenizer, device, slots, sampling, seed)
        if warmup:
            engine.warmup()
        return engine

    # ---- slots -------------------------------------------------------------------------------
    @property
    def slots(self) -> int:
        return self.n_slots

    @property
    def busy_slots(self) -> list[int]:
        return [i for i, s in enumerate(self._slots) if s.busy]

    @property
    def free_slots(self) -> list[int]:
        return [i for i, s in enumerate(self._slots) if not s.busy]

    def _slot(self, slot: int) -> _Slot:
        if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot < self.n_slots:
            raise ValueError(f"slot {slot!r} does not exist: this engine has slots 0..{self.n_slots - 1}")
        return self._slots[slot]

    def open(self, sampling: Sampling | None = None, seed: int | None = None, slot: int | None = None) -> int:
        """Claim a free slot (the lowest, or ``slot``), start its conversation, return its index.

        ``sampling``/``seed`` of None take the engine's defaults. SlotsFull if none is free.
        """
        if slot is None:
            free = self.free_slots
            if not free:
                raise SlotsFull(f"all {self.n_slots} slots hold a conversation")
            slot = free[0]
        elif self._slot(slot).busy:
            raise SlotsFull(f"slot {slot} holds a conversation")
        self.reset(slot, sampling or self.default_sampling, seed if seed is not None else self.default_seed)
        self._slots[slot].busy = True
        return slot

    def close(self) -> None:
        """End streaming on Mimi and the LM, so the same loaded models can serve another engine.

        moshi ends a ``streaming_forever`` only through its ``_stop_streaming`` (what its own
        ``streaming()`` context calls on exit); the engine is unusable afterwards.
        """
        self.mimi._stop_streaming()
        self.lm_gen._stop_streaming()
        self.lm_gen.lm_model._stop_streaming()  # LMGen starts the LM's streaming inside its own state
        self._slots = []

    def release(self, slot: int) -> None:
        """End the slot's conversation; the slot is free for the next one (its state is reset on ``open``)."""
        s = self._slot(slot)
        s.busy = False
        with self._lock:
            s.pending = _Pending()

    def reset(self, slot: int, sampling: Sampling | None = None, seed: int | None = None) -> None:
        """Start the slot's conversation afresh; the other slots are untouched. None keeps the current value."""
        s = self._slot(slot)
        with self._lock:
            s.pending = _Pending()
        if sampling is not None:
            sampling.check_cards(self.card, self.text_card)
            self._apply_sampling(slot, sampling)
        if seed is not None:
            s.seed = seed
        mask = self._mask([slot])
        self.mimi.reset_streaming(mask)
        self.lm_gen.reset_streaming(mask)
        if s.seed is not None:
            s.generator.manual_seed(s.seed)
        else:
            s.generator.seed()
        s.frame = 0
        s.pieces = PieceDecoder(self.tokenizer)

    def set_params(
        self, slot: int, sampling: Sampling | None = None, seed: int | None = None, **changes: Any
    ) -> Sampling:
        """Schedule new sampling parameters and/or seed for the slot's next frame (validated now)."""
        s = self._slot(slot)
        with self._lock:
            base = s.pending.sampling or s.sampling
            new = sampling if sampling is not None else base.updated(**changes)
            new.check_cards(self.card, self.text_card)
            s.pending.sampling = new
            if seed is not None:
                s.pending.seed = seed
            return new

    def sampling(self, slot: int) -> Sampling:
        return self._slot(slot).sampling

    def seed(self, slot: int) -> int | None:
        return self._slot(slot).seed

    def frame_index(self, slot: int) -> int:
        return self._slot(slot).frame

    def warmup(self, frames: int = 4) -> None:
        """A few silent frames on every slot (CUDA graphs are captured here), then every slot reset."""
        silence = np.zeros(FRAME_SIZE, dtype=np.float32)
        busy = [s.busy for s in self._slots]
        for _ in range(frames):
            self.step(dict.fromkeys(range(self.n_slots), silence))
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        for i, was_busy in enumerate(busy):
            self.reset(i, self.default_sampling, self.default_seed)
            self._slots[i].busy = was_busy

    # ---- the step ----------------------------------------------------------------------------
    def _mask(self, slots: list[int] | set[int]) -> torch.Tensor:
        mask = torch.zeros(self.n_rows, dtype=torch.bool)
        mask[list(slots)] = True
        return mask.to(self.device)

    def _apply_sampling(self, slot: int, sampling: Sampling) -> None:
        rows = self.rows
        rows.temp[slot] = sampling.temp
        rows.temp_text[slot] = sampling.temp_text
        rows.top_k[slot] = sampling.top_k
        rows.top_k_text[slot] = sampling.top_k_text
        self._slots[slot].sampling = sampling

    def _apply_pending(self, slot: int) -> bool:
        s = self._slots[slot]
        with self._lock:
            pending, s.pending = s.pending, _Pending()
        if pending.sampling is None and pending.seed is None:
            return False
        if pending.sampling is not None and pending.sampling != s.sampling:
            self._apply_sampling(slot, pending.sampling)
        if pending.seed is not None:
            s.seed = pending.seed
            s.generator.manual_seed(pending.seed)
        return True

    def _draw_noise(self, active: list[int], forced: set[int]) -> None:
        """Each executing slot's Exp(1) draws for this step, from its own generator, in moshi's order."""
        rows, dev = self.rows, self.device
        if self._static:
            rows.noise_text.fill_(torch.inf)
            rows.noise_audio.fill_(torch.inf)
        else:
            kt = max([min(self._slots[i].sampling.top_k_text, self.text_card) for i in active] + [1])
            ka = max([min(self._slots[i].sampling.top_k, self.card) for i in active] + [1])
            rows.noise_text = torch.full((self.n_rows, kt), torch.inf, device=dev)
            rows.noise_audio = torch.full((self.n_rows, self.dep_q, ka), torch.inf, device=dev)
        for i in active:
            s = self._slots[i]
            sp = s.sampling
            if sp.temp_text > 0:
                k = min(sp.top_k_text, self.text_card)
                rows.noise_text[i, :k] = draw_noise(s.generator, k, dev)
            if sp.temp > 0 and i not in forced:
                k = min(sp.top_k, self.card)
                for cb in range(self.dep_q):
                    rows.noise_audio[i, cb, :k] = draw_noise(s.generator, k, dev)

    @torch.no_grad()
    def step(
        self, frames: Mapping[int, np.ndarray], forced_audio: Mapping[int, np.ndarray] | None = None
    ) -> dict[int, FrameResult]:
        """One 80 ms frame for every slot in ``frames`` (slot -> 1920 float32 samples); the rest sit out.

        ``forced_audio``: slot -> the model's own ``dep_q`` audio tokens for this step, used instead of
        sampling them (teacher forcing, as ``Engine.step(forced_audio=)``). Returns slot -> FrameResult.
        """
        for slot, pcm in frames.items():
            self._slot(slot)
            if np.shape(pcm) != (FRAME_SIZE,):
                raise ValueError(
                    f"slot {slot}: a frame is {FRAME_SIZE} samples at {SAMPLE_RATE} Hz, got shape {np.shape(pcm)}"
                )
        for slot in forced_audio or {}:
            if slot not in frames:
                raise ValueError(f"slot {slot}: forced audio tokens given without a frame")
        if not frames:
            return {}
        if not self._stepping.acquire(blocking=False):
            raise RuntimeError("engine busy: another caller is stepping it")
        try:
            return self._step(frames, forced_audio or {})
        finally:
            self._stepping.release()

    def _step(self, frames: Mapping[int, np.ndarray], forced_audio: Mapping[int, np.ndarray]) -> dict[int, FrameResult]:
        clock = _StageClock(self.device)
        active = sorted(frames)
        changed = {i: self._apply_pending(i) for i in active}
        rows = self.rows
        exec_mask = self._mask(active)

        pcm = np.zeros((self.n_rows, 1, FRAME_SIZE), dtype=np.float32)
        for i in active:
            pcm[i, 0] = frames[i]
        self.mimi.set_exec_mask(exec_mask)
        codes = self.mimi.encode(torch.from_numpy(pcm).to(self.device))
        first = [i for i in active if self._slots[i].frame == 0]
        if first:
            # As the single engine: a slot's first frame is in the model's past; re-apply its left padding.
            self.mimi.reset_streaming(self._mask(first))
        clock.mark()

        rows.force_mask.zero_()
        for i, toks in forced_audio.items():
            rows.forced[i] = torch.as_tensor(np.asarray(toks, dtype=np.int64).reshape(self.dep_q))
            rows.force_mask[i] = True
        self._draw_noise(active, set(forced_audio))
        self.lm_gen.set_exec_mask(exec_mask)
        out = None
        for c in range(codes.shape[-1]):
            out = self.lm_gen.step(codes[:, :, c : c + 1])
        assert out is not None  # support_out_of_sync: a tensor every step, ungenerated rows are negative
        clock.mark()

        tokens = out[:, :, 0]  # [B, 1 + dep_q]
        ready = (tokens >= 0).all(dim=1) & exec_mask
        out_pcm = None
        ready_cpu = ready.cpu().numpy()
        if ready_cpu.any():
            self.mimi.set_exec_mask(ready)
            audio = self.mimi.decode(tokens[:, 1:, None].clamp(min=0))
            out_pcm = audio[:, 0].float().cpu().numpy()
        tokens_np = tokens.cpu().numpy()
        encode_ms, lm_ms, decode_ms, total_ms = clock.finish()

        results: dict[int, FrameResult] = {}
        for i in active:
            s = self._slots[i]
            text_token = None
            text = ""
            slot_tokens = None
            slot_pcm = None
            if ready_cpu[i]:
                assert out_pcm is not None
                slot_pcm = out_pcm[i].copy()
                slot_tokens = tokens_np[i].copy()
                text_token = int(slot_tokens[0])
                if text_token not in self.pad_tokens and s.pieces is not None:
                    text = s.pieces.decode_id(text_token)
            results[i] = FrameResult(
                index=s.frame,
                pcm=slot_pcm,
                text_token=text_token,
                text=text,
                tokens=slot_tokens,
                encode_ms=encode_ms,
                lm_ms=lm_ms,
                decode_ms=decode_ms,
                total_ms=total_ms,
                sampling=s.sampling,
                seed=s.seed,
                params_changed=changed[i],
            )
            s.frame += 1
        return results

    def describe(self, slot: int | None = None) -> dict[str, Any]:
        """Facts about the loaded model (and the slot's sampling and seed), as ``Engine.describe``."""
        s = self._slots[slot] if slot is not None else None
        info = describe_model(self.model, self.device, self.lm_gen.lm_model) | {
            "sampling": (s.sampling if s else self.default_sampling).model_dump(),
            "seed": s.seed if s else self.default_seed,
            "slots": self.n_slots,
        }
        if slot is not None:
            info["slot"] = slot
        return info


__all__ = ["BatchEngine", "SlotLMGen", "SlotsFull", "sample_rows", "draw_noise", "check_slots", "slot_capacity"]
