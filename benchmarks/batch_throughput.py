"""Many conversations on one model: step cost by batch size, live sessions on one server, batched sweeps.

    .venv/bin/python benchmarks/batch_throughput.py                 # tiny model, CPU (about 2-3 minutes)
    .venv/bin/python benchmarks/batch_throughput.py --model j-moshi-ext --device cuda --sizes 1 4 8 16 32

Three parts, printed side by side:

* steps: ``BatchEngine.step`` with every slot busy, for each batch size: ms per step p50/p99, the
  conversations that keep real time (all of the batch when its p99 step fits the 80 ms frame) and
  conversation-frames per second; the single-conversation ``Engine`` as the reference;
* live: ``jmoshi-nb serve --max-sessions N`` in its own process and N clients streaming speech in real
  time at once (Opus both ways); per client, the p99 of its frames' step time and its deepest queue;
* sweep: the same jobs through ``run_jobs`` one at a time (``batch_size=1``) and batched; wall time and
  the speed-up (goal: >= 6x for 32 jobs on 2 CPU cores with the tiny model).

The machine's load average is printed before and after: on a shared machine other work inflates the
figures (all parts run in the same minutes, so they are inflated alike).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import numpy as np

from jmoshi_nb.core.audio import FRAME_BUDGET_MS as FRAME_MS
from jmoshi_nb.core.audio import FRAME_SIZE, SAMPLE_RATE
from jmoshi_nb.core.config import Sampling, SessionConfig
from jmoshi_nb.model.batch_engine import BatchEngine
from jmoshi_nb.model.engine import Engine
from jmoshi_nb.model.engine_factory import batch_slots
from jmoshi_nb.model.engine_pool import EnginePool
from jmoshi_nb.research.jobs import Job, run_jobs
from jmoshi_nb.research.speech import looped_speech


def pct(xs: list[float]) -> tuple[float, float]:
    return float(np.percentile(xs, 50)), float(np.percentile(xs, 99))


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def bench_steps(model: str, device: str | None, sizes: list[int], steps: int) -> None:
    """Every engine loaded first, then they take turns step by step, so machine noise hits them alike."""
    pcm = looped_speech(steps + 4)
    chunks = [pcm[i * FRAME_SIZE : (i + 1) * FRAME_SIZE] for i in range(steps + 4)]
    engine = Engine.load(model, device=device)
    engine.reset(Sampling(), 1)
    batches = [BatchEngine.load(model, slots=b, device=device) for b in sizes]
    slots = [[be.open(Sampling(), seed) for seed in range(be.slots)] for be in batches]
    times: list[list[float]] = [[] for _ in range(len(sizes) + 1)]
    for f in chunks:
        t = time.perf_counter()
        engine.step(f)
        times[0].append((time.perf_counter() - t) * 1e3)
        for k, (be, ss) in enumerate(zip(batches, slots, strict=True)):
            t = time.perf_counter()
            be.step(dict.fromkeys(ss, f))
            times[k + 1].append((time.perf_counter() - t) * 1e3)
    for k, (label, b) in enumerate([("engine", 1)] + [("batch", b) for b in sizes]):
        p50, p99 = pct(times[k][4:])
        realtime = b if p99 <= FRAME_MS else 0
        print(f"{label:>8} {b:>5} {p50:>8.1f} {p99:>8.1f} {realtime:>9} {b * 1e3 / p50:>10.1f}")


def bench_live(model: str, n: int, seconds: float) -> None:
    from frame_loop import server_process  # the script next to this one

    from jmoshi_nb.serve.client import connect, stream_pcm

    with server_process(model, None, "--max-sessions", str(n)) as url:
        pcm = looped_speech(int(seconds * SAMPLE_RATE / FRAME_SIZE))

        async def one(seed: int):  # type: ignore[no-untyped-def]
            async with connect(url) as s:
                await s.set_params(seed=seed)
                return await stream_pcm(s, pcm, realtime=True)

        async def all_clients():  # type: ignore[no-untyped-def]
            return await asyncio.gather(*(one(i) for i in range(n)))

        recs = asyncio.run(all_clients())
        for i, rec in enumerate(recs):
            totals = [m["total_ms"] for m in rec.metrics]
            p50, p99 = pct(totals)
            queued = max(m.get("queued", 0) for m in rec.metrics)
            dropped = len(rec.meta.get("dropped_frames", []))
            ok = "yes" if p99 <= FRAME_MS and not dropped else "no"
            print(
                f"  client {i}: {len(rec.metrics)} frames, step p50 {p50:.1f} ms p99 {p99:.1f} ms, "
                f"max queue {queued}, dropped {dropped}, within budget: {ok}"
            )


def bench_sweep(model: str, device: str | None, jobs_n: int, batch: int, seconds: float) -> None:
    n_frames = int(seconds * SAMPLE_RATE / FRAME_SIZE)
    pcm = looped_speech(n_frames)
    jobs = [
        Job(SessionConfig(model=model, sampling=Sampling(temp=0.6 + 0.02 * i), seed=i), pcm, f"j{i:02d}")
        for i in range(jobs_n)
    ]
    single_pool, batch_pool = EnginePool(device=device), EnginePool(device=device)
    single_pool.get(model)  # both loaded before timing
    batch_pool.get(model, None, batch_slots(batch, jobs_n))
    # Interleaved: half the jobs one at a time, the batched sweep, the other half, the batched sweep again.
    half = jobs_n // 2
    one_s = batch_s = 0.0
    single = []
    for part in (jobs[:half], jobs[half:]):
        t = time.perf_counter()
        single += run_jobs(part, progress=False, pool=single_pool)
        one_s += time.perf_counter() - t
        t = time.perf_counter()
        batched = run_jobs(jobs, progress=False, pool=batch_pool, batch_size=batch)
        batch_s += (time.perf_counter() - t) / 2
    agree = np.mean(
        [
            np.mean([a == b for a, b in zip(x.frame_tokens(), y.frame_tokens(), strict=True)])
            for x, y in zip(single, batched, strict=True)
        ]
    )
    print(
        f"  {jobs_n} jobs x {seconds:g} s: one at a time {one_s:.1f} s, batched ({batch}) {batch_s:.1f} s, "
        f"speed-up {one_s / batch_s:.1f}x (goal >= 6x); text tokens equal to the one-at-a-time run: {agree:.0%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--device", default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--live", type=int, default=4, help="live clients on one server (0: skip)")
    parser.add_argument("--live-seconds", type=float, default=6.0)
    parser.add_argument("--jobs", type=int, default=32)
    parser.add_argument("--job-seconds", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    import torch

    print(f"load average before: {load()} ({os.cpu_count()} CPUs, torch threads {torch.get_num_threads()})")
    print("steps: every slot busy; real time = conversations whose p99 step fits the 80 ms frame")
    print(f"{'':>8} {'batch':>5} {'p50 ms':>8} {'p99 ms':>8} {'real-time':>9} {'conv-fr/s':>10}")
    bench_steps(args.model, args.device, args.sizes, args.steps)
    if args.live:
        print(f"live: {args.live} clients at once on serve --max-sessions {args.live}, {args.live_seconds:g} s each")
        bench_live(args.model, args.live, args.live_seconds)
    print("sweep:")
    bench_sweep(args.model, args.device, args.jobs, max(args.sizes), args.job_seconds)
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
