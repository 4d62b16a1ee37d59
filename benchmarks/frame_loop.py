"""Per-frame cost of the bare moshi loop, of the engine, and through the server over loopback.

One run measures the three side by side on the same checkpoint and input, taking turns frame by
frame so that machine noise hits them alike, and prints p50/p99 with the overhead ratios:

    .venv/bin/python benchmarks/frame_loop.py            # tiny model, CPU
    .venv/bin/python benchmarks/frame_loop.py --model j-moshi-ext --device cuda

* bare:   Mimi encode -> LMGen.step -> Mimi decode, as moshi.server does (no timing, no metrics)
* engine: ``Engine.step`` (the same loop plus stage timings, live parameters, text pieces)
* server: a frame sent by the client (Opus) until its metrics come back (Opus, JSON), one frame in
  flight, through a real ``jmoshi-nb serve`` process on 127.0.0.1 (its own process, as in use: the
  client lives in the notebook kernel, the server elsewhere)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import numpy as np
import torch

from jmoshi_nb.core.audio import frames
from jmoshi_nb.model.engine import Engine
from jmoshi_nb.model.moshi_api import LMGen
from jmoshi_nb.research.speech import looped_speech
from jmoshi_nb.serve.client import ChatClient, connect


class BareLoop:
    """moshi.server's loop, on its own Mimi and LMGen loaded from the same checkpoint."""

    def __init__(self, engine: Engine) -> None:
        info = engine.model.info
        dev = str(engine.device)
        self.mimi = info.get_mimi(device=dev)
        lm = info.get_moshi(device=dev, dtype=engine.lm_gen.lm_model.dtype)
        self.lm_gen = LMGen(lm, **engine.sampling.model_dump())
        self.mimi.streaming_forever(1)
        self.lm_gen.streaming_forever(1)
        self.device = engine.device
        self.first = True

    def reset(self) -> None:
        self.mimi.reset_streaming()
        self.lm_gen.reset_streaming()
        self.first = True

    @torch.no_grad()
    def step(self, frame: np.ndarray) -> None:
        codes = self.mimi.encode(torch.from_numpy(frame).to(self.device)[None, None])
        if self.first:
            self.mimi.reset_streaming()
            self.first = False
        for c in range(codes.shape[-1]):
            tokens = self.lm_gen.step(codes[:, :, c : c + 1])
            if tokens is not None:
                self.mimi.decode(tokens[:, 1:]).cpu()
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def timed(fn, *args) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - t) * 1e3


async def server_frame(s: ChatClient, frame: np.ndarray, n: int) -> None:
    await s.send_frame(frame)
    await s.wait_frames(n)


@contextlib.contextmanager
def server_process(model: str, device: str | None, *options: str) -> Iterator[str]:
    """``jmoshi-nb serve --model MODEL [--device DEVICE] OPTIONS`` in its own process on 127.0.0.1; its ws:// url.

    (batch_throughput.py starts its live server here too.)"""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "jmoshi_nb.cli", "serve", "--model", model, "--port", str(port), *options]
    if device:
        cmd += ["--device", device]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the benchmark server did not start") from None
                time.sleep(0.3)
        yield f"ws://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def blocks_parser(doc: str) -> argparse.ArgumentParser:
    """The options of the benchmarks that step one model over blocks of frames (this one, record_stream.py)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--device", default=None)
    ap.add_argument("--frames", type=int, default=150, help="frames per block")
    ap.add_argument("--blocks", type=int, default=3)
    return ap


def main() -> None:
    args = blocks_parser(__doc__).parse_args()

    engine = Engine.load(args.model, device=args.device, seed=1)
    bare = BareLoop(engine)
    chunks = list(frames(looped_speech(args.frames)))
    for _ in range(4):  # warm the bare loop as the engine was warmed
        bare.step(chunks[0])
    times: dict[str, list[float]] = {"bare": [], "engine": [], "server": []}
    loop = asyncio.new_event_loop()
    with server_process(args.model, args.device, "--seed", "1") as url:
        for _ in range(args.blocks):
            # The three paths take turns frame by frame, so that machine noise hits them alike.
            bare.reset()
            engine.reset(seed=1)
            session_cm = connect(url)
            s = loop.run_until_complete(session_cm.__aenter__())
            for i, f in enumerate(chunks):
                times["bare"].append(timed(bare.step, f))
                times["engine"].append(timed(engine.step, f))
                times["server"].append(timed(loop.run_until_complete, server_frame(s, f, i + 1)))
            loop.run_until_complete(session_cm.__aexit__(None, None, None))
    loop.close()
    # Taking turns evicts each path's weights from the CPU caches for the next: the absolute cost of
    # the engine is measured once more on its own (this is the figure for the frame budget).
    alone: list[float] = []
    for _ in range(args.blocks):
        engine.reset(seed=1)
        alone += [timed(engine.step, f) for f in chunks]
    times["engine alone"] = alone

    p = {k: (float(np.percentile(v, 50)), float(np.percentile(v, 99))) for k, v in times.items()}
    d = engine.describe()
    print(f"model {d['model']} on {d['device']} ({d['dtype']}), torch threads {torch.get_num_threads()}, "
          f"{args.blocks} x {args.frames} frames each")
    print(f"{'path':13s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for k, (p50, p99) in p.items():
        print(f"{k:13s} {p50:8.2f} {p99:8.2f}")
    print(f"engine overhead over bare loop (p50): {100 * (p['engine'][0] / p['bare'][0] - 1):+.1f} %  (target <= 3 %)")
    print(f"loopback server adds (p50):           {p['server'][0] - p['engine'][0]:+.2f} ms  (target <= 10 ms)")
    alone_p99 = p["engine alone"][1]
    print(f"engine alone p99:                     {alone_p99:.1f} ms  (80 ms budget; tiny target < 40 ms)")


if __name__ == "__main__":
    main()
