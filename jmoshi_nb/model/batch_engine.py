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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import torch

from ..core.audio import FRAME_SIZE
from ..core.config import ConfigError, Sampling
from ..core.text import PieceDecoder
from .engine import (
    MAX_SLOTS,
    Conversation,
    EngineBase,
    FrameResult,
    _Pending,
    _StageClock,
    check_frame,
    check_slots,
)
from .moshi_api import LMGen, LMModel, MimiModel

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


@dataclass(kw_only=True)
class _Slot(Conversation):
    """A conversation slot: its row's random stream, and whether a conversation holds it."""

    generator: torch.Generator
    busy: bool = False


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


class BatchEngine(EngineBase):
    """One model, ``slots`` conversations. ``step`` and slot control from one thread; ``set_params`` from any.

    Built as ``Engine`` is (``load``, ``from_parts``, the constructor), with ``slots=N`` more (default 4).
    """

    lm_gen_class = SlotLMGen
    default_slots = 4

    def _capacity(self) -> int:
        return slot_capacity(self.lm_gen.lm_model, self.mimi, self.device)

    def _start_streaming(self) -> None:
        sampling, dev = self.default_sampling, self.device
        # Under CUDA graphs every tensor the graphed depformer reads keeps its shape and address: the
        # noise is as wide as the vocabulary. On CPU it is as wide as the largest top-k in use.
        self.static_shapes = dev.type == "cuda"
        self._slots = [
            _Slot(sampling, self.default_seed, PieceDecoder(self.tokenizer), row=row, generator=torch.Generator(dev))
            for row in range(self.n_slots)
        ]
        self.n_rows = b = -(-self.n_slots // ROW_BLOCK) * ROW_BLOCK
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
        assert isinstance(self.lm_gen, SlotLMGen), "BatchEngine samples through SlotLMGen"
        self.lm_gen.rows = self.rows
        self.mimi.streaming_forever(b)
        self.lm_gen.streaming_forever(b)

    @classmethod
    def load(cls, model: str = "tiny", slots: int = default_slots, **options: Any) -> Self:
        """Load a checkpoint and build a ready engine with ``slots`` slots (``options``: as ``Engine.load``)."""
        check_slots(slots)  # before the weights load
        return super().load(model, slots=slots, **options)

    # ---- slots -------------------------------------------------------------------------------
    @property
    def slots(self) -> int:
        """How many conversations the engine holds at once."""
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
        self._restart(self._slot(slot), sampling, seed, self._mask([slot]))

    def set_params(
        self, slot: int, sampling: Sampling | None = None, seed: int | None = None, **changes: Any
    ) -> Sampling:
        """Schedule new sampling parameters and/or seed for the slot's next frame (validated now)."""
        return self._schedule(self._slot(slot), sampling, seed, changes)

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
        self._sync()
        for i, was_busy in enumerate(busy):
            self.reset(i, self.default_sampling, self.default_seed)
            self._slots[i].busy = was_busy

    def use_static_shapes(self) -> None:
        """Keep every sampling tensor at its full, fixed shape and address, as under CUDA graphs (the mode on
        CUDA; a CPU engine can take it, from its next step, to check that path)."""
        if self.static_shapes:
            return  # already: the tensors a captured graph reads must stay where they are
        rows = self.rows
        rows.noise_text = torch.full((self.n_rows, self.text_card), torch.inf, device=self.device)
        rows.noise_audio = torch.full((self.n_rows, self.dep_q, self.card), torch.inf, device=self.device)
        self.static_shapes = True

    # ---- the step ----------------------------------------------------------------------------
    def _mask(self, slots: list[int] | set[int]) -> torch.Tensor:
        mask = torch.zeros(self.n_rows, dtype=torch.bool)
        mask[list(slots)] = True
        return mask.to(self.device)

    def _apply_sampling(self, conv: Conversation, sampling: Sampling) -> None:
        rows, row = self.rows, conv.row
        rows.temp[row] = sampling.temp
        rows.temp_text[row] = sampling.temp_text
        rows.top_k[row] = sampling.top_k
        rows.top_k_text[row] = sampling.top_k_text
        conv.sampling = sampling

    def _reseed(self, conv: Conversation) -> None:
        generator = self._slots[conv.row].generator  # conv is that slot
        if conv.seed is not None:
            generator.manual_seed(conv.seed)
        else:
            generator.seed()

    def _draw_noise(self, active: list[int], forced: set[int]) -> None:
        """Each executing slot's Exp(1) draws for this step, from its own generator, in moshi's order."""
        rows, dev = self.rows, self.device
        if self.static_shapes:
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
            check_frame(pcm, f"slot {slot}: ")
        for slot in forced_audio or {}:
            if slot not in frames:
                raise ValueError(f"slot {slot}: forced audio tokens given without a frame")
        if not frames:
            return {}
        with self._stepping_alone():
            return self._step(frames, forced_audio or {})

    def _step(self, frames: Mapping[int, np.ndarray], forced_audio: Mapping[int, np.ndarray]) -> dict[int, FrameResult]:
        clock = _StageClock(self.device)
        active = sorted(frames)
        changed = {i: self._apply_pending(self._slots[i]) for i in active}
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
        times = clock.finish()
        results: dict[int, FrameResult] = {}
        for i in active:
            ready_pcm = out_pcm[i].copy() if ready_cpu[i] and out_pcm is not None else None
            ready_tokens = tokens_np[i].copy() if ready_cpu[i] else None
            results[i] = self._frame_result(self._slots[i], ready_pcm, ready_tokens, times, changed[i])
        return results

    def describe(self, slot: int | None = None) -> dict[str, Any]:
        """Facts about the loaded model (and the slot's sampling and seed), as ``Engine.describe``."""
        info = self._describe(self._slots[slot] if slot is not None else None) | {"slots": self.n_slots}
        if slot is not None:
            info["slot"] = slot
        return info


__all__ = [
    "MAX_SLOTS",
    "BatchEngine",
    "SlotLMGen",
    "SlotsFull",
    "sample_rows",
    "draw_noise",
    "check_slots",
    "slot_capacity",
]
