"""Many raters at once on the rater page: answers per second held, and nothing lost or torn.

A saved listening test (synthetic clips, the default quality controls but for the trap, which needs
speech synthesis: ``--traps 1`` adds it) is served by ``RaterServer`` on 127.0.0.1; ``--raters``
simulated raters (aiohttp clients doing what the page does: state, clips, answer) go through every
trial at once, as fast as the server answers. Each answer is appended and fsynced to the rater's
CSV before the next trial comes back. Printed: answers per second over the whole run, the answer
round trip (p50/p99, ms), and the check of the files (every answer there, each once, no bad row).

    .venv/bin/python benchmarks/listening_raters.py                   # 20 raters, 3 rounds
    .venv/bin/python benchmarks/listening_raters.py --raters 50 --clips 20
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import aiohttp
import numpy as np
import soundfile as sf

from jmoshi_nb.research.listening import ListeningTest, read_ratings
from jmoshi_nb.research.listening_quality import QualityControls
from jmoshi_nb.research.listening_server import RaterServer, random_answer


def make_test(root: Path, clips: int, traps: int) -> ListeningTest:
    rate = 16000
    for system, hz in (("calm", 220), ("wild", 330)):
        (root / system).mkdir(parents=True)
        for i in range(clips):
            t = np.arange(int(rate * (1 + 0.1 * i))) / rate
            sf.write(root / system / f"q{i}.wav", (0.2 * np.sin(2 * np.pi * hz * t)).astype(np.float32), rate)
    quality = QualityControls(traps=traps)
    return ListeningTest.create({"calm": root / "calm", "wild": root / "wild"}, out=root / "test", ab=True,
                                quality=quality)  # fmt: skip


async def one_rater(session: aiohttp.ClientSession, base: str, rater: str, seed: int, times: list[float]) -> int:
    answer = random_answer(random.Random(seed))
    async with session.get(f"{base}api/state", params={"rater": rater}) as res:
        state = await res.json()
    n = 0
    while not state["finished"]:
        trial = state["trial"]
        for url in trial["clips"]:
            async with session.get(base + url, params={"rater": rater}) as res:
                await res.read()
        t0 = time.perf_counter()
        async with session.post(
            f"{base}api/answer", json={"rater": rater, "trial": trial["id"], **answer(trial)}
        ) as res:
            state = await res.json()
            if res.status != 200:
                raise RuntimeError(f"{rater}: {res.status} {state}")
        times.append(time.perf_counter() - t0)
        n += 1
    return n


async def round_of(base: str, raters: list[str], seed: int, times: list[float]) -> int:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=len(raters) * 2)) as s:
        counts = await asyncio.gather(*(one_rater(s, base, r, seed + i, times) for i, r in enumerate(raters)))
    return sum(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raters", type=int, default=20, help="simulated raters at once (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of fresh raters (default 3)")
    parser.add_argument("--clips", type=int, default=10, help="clips per system (default 10, 2 systems)")
    parser.add_argument("--traps", type=int, default=0, help="trapping clips (need pyopenjtalk; default 0)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        test = make_test(Path(tmp), args.clips, args.traps)
        per_rater = len(test.trials("x"))
        print(f"test: {len(test.clips)} clips, {per_rater} trials per rater (controls included); "
              f"{args.raters} raters at once, {args.rounds} rounds")  # fmt: skip
        times: list[float] = []
        rates = []
        with RaterServer(test).start() as server:
            for r in range(args.rounds):
                raters = [f"sim-{r}-{i:03d}" for i in range(args.raters)]
                t0 = time.perf_counter()
                n = asyncio.run(round_of(server.url, raters, 1000 * r, times))
                rates.append(n / (time.perf_counter() - t0))
                print(f"  round {r + 1}: {n} answers, {rates[-1]:.0f} answers/s")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = read_ratings(test.ratings)
        expected = args.rounds * args.raters * per_rater
        lost = expected - len(df)
        order_ok = all(list(g["trial"]) == [t.id for t in test.trials(str(rater))] for rater, g in df.groupby("rater"))
        ms = sorted(1e3 * t for t in times)
        print(f"answers/s held: median {statistics.median(rates):.0f} (rounds: {', '.join(f'{x:.0f}' for x in rates)})")
        print(f"answer round trip (append + fsync + next trial): p50 {ms[len(ms) // 2]:.1f} ms, "
              f"p99 {ms[int(0.99 * (len(ms) - 1))]:.1f} ms")  # fmt: skip
        print(f"files: {len(df)} of {expected} answers on disk, lost {lost}, bad rows {len(caught)}, "
              f"every rater's trials in order, once: {order_ok}")  # fmt: skip
        if lost or caught or not order_ok:
            raise SystemExit("FAILED: answers lost or rows torn")


if __name__ == "__main__":
    main()
