"""Teacher forcing of the model's channel: a recorded model side turned into the audio tokens the LM samples.

Used by prompted continuation and the benchmark's interruption items (through the engine-run loop).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..core.audio import FRAME_SIZE

if TYPE_CHECKING:
    from .engine import EngineBase


class ModelChannelForcer:
    """Turns the model side of a recorded dialogue into the audio tokens the LM would have sampled.

    A second Mimi (its own streaming state) encodes the model channel frame by frame. LMGen samples
    the model's codebook ``k`` at step ``t`` for frame ``t + 1 - delay_k``: with J-Moshi's delays
    (0 for the first codebook, 1 for the rest) step ``t`` needs codebook 1 of frame ``t + 1`` and
    codebooks 2-8 of frame ``t``, so the channel is read one frame ahead.
    """

    def __init__(self, engine: EngineBase, model_pcm: np.ndarray) -> None:
        import torch

        self._torch = torch
        lm = engine.lm_gen.lm_model
        self.delays = list(lm.delays[1 : lm.dep_q + 1])
        self.mimi = engine.model.info.get_mimi(device=str(engine.device))
        self.mimi.streaming_forever(1)
        self.device = engine.device
        self.pcm = np.asarray(model_pcm, dtype=np.float32)
        self.codes: list[np.ndarray] = []

    def _encode_until(self, frame: int) -> None:
        torch = self._torch
        while len(self.codes) <= frame:
            i = len(self.codes)
            chunk = self.pcm[i * FRAME_SIZE : (i + 1) * FRAME_SIZE]
            chunk = np.pad(chunk, (0, FRAME_SIZE - len(chunk)))
            with torch.no_grad():
                codes = self.mimi.encode(torch.from_numpy(chunk).to(self.device)[None, None])
            if i == 0:
                self.mimi.reset_streaming()  # as the engine does for its first frame
            self.codes.append(codes[0, :, 0].cpu().numpy())

    def tokens_for_step(self, step: int) -> np.ndarray:
        """The ``dep_q`` audio tokens to force at LM step ``step``."""
        out = []
        for k, delay in enumerate(self.delays):
            frame = step + 1 - delay
            self._encode_until(frame)
            out.append(self.codes[frame][k])
        return np.asarray(out, dtype=np.int64)
