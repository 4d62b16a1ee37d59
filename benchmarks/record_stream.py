"""Frame time with and without streaming the recording to disk, side by side in one run.

Two sessions on the same engine take turns frame by frame (so machine noise hits them alike); each
frame is ``Engine.step`` plus the recording calls a session makes (user audio, model audio, text,
metrics). One recording only keeps memory; the other also streams to a folder (``Recording.stream_to``:
queue + writer thread). Printed: the whole frame (p50/p99) and the recording calls alone, in µs:

    .venv/bin/python benchmarks/record_stream.py                 # tiny model, CPU
    .venv/bin/python benchmarks/record_stream.py --model j-moshi-ext --device cuda
    .venv/bin/python benchmarks/record_stream.py --synthetic 30   # no model: a 30 ms GIL-free "step"

``--synthetic MS`` replaces ``Engine.step`` by a stand-in that sleeps MS milliseconds (releasing the
GIL, as torch does while it computes) and returns a frame result of the engine's shape (1920 samples
of audio, the per-frame metrics, a text piece every 4th frame): the recording's own cost and the
writer thread's interference with the frame loop, without the model's noise.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from frame_loop import blocks_parser  # the script next to this one

from jmoshi_nb.core.audio import FRAME_SIZE, frames
from jmoshi_nb.core.config import SessionConfig
from jmoshi_nb.core.recording import Recording
from jmoshi_nb.model.engine import Engine
from jmoshi_nb.research.speech import looped_speech


class SyntheticEngine:
    """Sleeps like a GIL-free model step and returns what ``Engine.step`` returns, in shape."""

    def __init__(self, step_ms: float) -> None:
        from jmoshi_nb.core.config import Sampling

        self.step_s = step_ms / 1e3
        self.sampling = Sampling()
        self.index = 0
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int | None = None) -> None:
        self.index = 0

    def describe(self) -> dict[str, str]:
        return {"model": f"synthetic ({self.step_s * 1e3:.0f} ms sleep)", "device": "-", "dtype": "-"}

    def step(self, frame: np.ndarray):  # type: ignore[no-untyped-def]
        from types import SimpleNamespace

        time.sleep(self.step_s)
        i, self.index = self.index, self.index + 1
        text = "は" if i % 4 == 0 else ""
        metrics = {"frame": i, "encode_ms": 5.1, "lm_ms": 13.8, "decode_ms": 4.3, "total_ms": 23.2,
                   "text_token": 120 if text else 3, "text": text, "params": self.sampling.model_dump(),
                   "seed": 1, "audio": True}  # fmt: skip
        pcm = (self.rng.standard_normal(FRAME_SIZE) * 0.1).astype(np.float32)
        return SimpleNamespace(pcm=pcm, text=text, text_token=metrics["text_token"], index=i, metrics=lambda: metrics)




def main() -> None:
    ap = blocks_parser(__doc__)
    ap.add_argument("--synthetic", type=float, default=None, metavar="MS", help="no model: a MS-ms sleep per step")
    ap.add_argument("--dir", default=None, help="where the streamed recordings go (default: a temp folder)")
    args = ap.parse_args()

    engine = (
        SyntheticEngine(args.synthetic)
        if args.synthetic is not None
        else Engine.load(args.model, device=args.device, seed=1)
    )
    chunks = list(frames(looped_speech(args.frames)))
    frame_ms: dict[str, list[float]] = {"memory only": [], "streamed to disk": []}
    record_us: dict[str, list[float]] = {"memory only": [], "streamed to disk": []}
    batches = 0
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for b in range(args.blocks):
            recs = {
                "memory only": Recording(config=SessionConfig(model=args.model)),
                "streamed to disk": Recording(config=SessionConfig(model=args.model)),
            }
            folder = Path(tmp) / f"block{b}"
            writer = recs["streamed to disk"].stream_to(folder)
            engine.reset(seed=1)
            for f in chunks:
                for name, rec in recs.items():
                    t0 = time.perf_counter()
                    result = engine.step(f)
                    t1 = time.perf_counter()
                    rec.add_frame(f, result, queued=0)
                    t2 = time.perf_counter()
                    frame_ms[name].append((t2 - t0) * 1e3)
                    record_us[name].append((t2 - t1) * 1e6)
            t = time.perf_counter()
            recs["streamed to disk"].save(folder)
            close_ms = (time.perf_counter() - t) * 1e3
            batches += writer.batches
            assert Recording.load(folder).metrics, "the streamed folder did not load"
    d = engine.describe()
    print(
        f"model {d['model']} on {d['device']} ({d['dtype']}), torch threads {torch.get_num_threads()}, "
        f"{args.blocks} x {args.frames} frames each (both sessions step the same engine in turn)"
    )
    head = ("recording", "frame p50 ms", "frame p99 ms", "record p50 µs", "record p99 µs")
    print(f"{head[0]:18s} {head[1]:>12s} {head[2]:>12s} {head[3]:>14s} {head[4]:>14s}")
    for name in frame_ms:
        f50, f99 = np.percentile(frame_ms[name], [50, 99])
        r50, r99 = np.percentile(record_us[name], [50, 99])
        print(f"{name:18s} {f50:12.2f} {f99:12.2f} {r50:14.1f} {r99:14.1f}")
    n = args.blocks * args.frames
    print(f"writer thread: {batches} write batches for {n} frames; final save of the last block {close_ms:.1f} ms")


if __name__ == "__main__":
    main()
