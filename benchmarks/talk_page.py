"""The talk page's latency from microphone to model audio played, and its playback underruns.

    .venv/bin/python benchmarks/talk_page.py                 # 20 s of talk, tiny model, ~1 min on 2 cores
    .venv/bin/python benchmarks/talk_page.py --seconds 60 --runs 3

Starts ``jmoshi-nb serve`` (tiny), opens ``GET /`` in headless Debian Chromium with a fake microphone
playing Japanese speech (``tests/browser/harness.py``), presses Start, talks for ``--seconds`` and
reads the page's own figures:

* ``latency``: per frame, the microphone frame handed to the Opus encoder until its answer is heard:
  (the server's metrics for that frame reach the page) + (the player's buffer at that moment) + (the
  AudioContext's output latency). p50 / p90 / p99 in ms over the run, the first 2 s left out (start-up).
* ``underruns_per_min``: the player ran dry (a click or gap heard), per minute of talk.
* ``missed_s``: model audio decoded but never played (dropped by the player to bound latency), and the
  seconds played, as moshi's web client reports "played / missed".
* ``server_queue``: frames waiting on the server when each was answered (p50, max), and the server's
  step time: a queue means the server, not the page, fell behind.

JSON goes to ``test-output/benchmarks/talk_page.json``. On a shared 2-core machine the figures swing
with whatever else runs (Chromium, the model and the page share the cores): compare runs made back to back.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "browser"), str(REPO / "tests")]  # harness, and the processes it uses

import harness as H  # noqa: E402
from processes import free_port, stop_process, wait_healthy  # noqa: E402

TOKEN = "bench-token"
SKIP_S = 2.0
READ_FIGURES = """() => {
  const c = window.jmoshiTalk.conversation;
  return {
    stats: c.stats, latencies: c.latencyLog, server: c.serverLog, elapsed_s: (performance.now() - c.startedAt) / 1000,
  };
}"""


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))] if s else float("nan")


def one_run(url: str, wav: Path, seconds: float, profile: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = H.chromium(p, wav, profile)
        page = H.first_page(context)
        page.goto(f"{url}/?token={TOKEN}&p=bench")
        page.click(".jt-start")
        H.wait_for(lambda: page.eval_on_selector("#jt", "el => el.dataset.state") == "talking", 60, "handshake")
        time.sleep(seconds)
        out = page.evaluate(READ_FIGURES)
        page.click(".jt-end")
        context.close()
    skip = int(SKIP_S / 0.08)
    lat = out["latencies"][skip:]
    stats = out["stats"]
    minutes = out["elapsed_s"] / 60
    return {
        "seconds": round(out["elapsed_s"], 1),
        "frames": stats["frames_sent"],
        "latency_p50_ms": round(percentile(lat, 50)),
        "latency_p90_ms": round(percentile(lat, 90)),
        "latency_p99_ms": round(percentile(lat, 99)),
        "server_queue_p50": percentile([q for q, _ in out["server"][skip:]], 50),
        "server_queue_max": max((q for q, _ in out["server"][skip:]), default=0),
        "server_step_p50_ms": round(percentile([t for _, t in out["server"][skip:]], 50), 1),
        "underruns": stats["underruns"],
        "underruns_per_min": round(stats["underruns"] / minutes, 1),
        "played_s": round(stats["samples_played"] / 24000, 2),
        "missed_s": round(
            max(0, stats["samples_received"] - stats["samples_played"] - 24 * stats["buffered_ms"]) / 24000, 2
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    out_dir = REPO / "test-output" / "benchmarks"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        wav = H.fake_microphone_wav(tmp / "speech48k.wav")
        port = free_port()
        cmd = [sys.executable, "-m", "jmoshi_nb.cli", "serve", "--port", str(port), "--token", TOKEN]
        with (tmp / "server.log").open("wb") as log:
            server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(f"http://127.0.0.1:{port}/api/health", server)
            runs = [
                one_run(f"http://127.0.0.1:{port}", wav, args.seconds, tmp / f"profile{i}") for i in range(args.runs)
            ]
        finally:
            stop_process(server)
    for r in runs:
        print(
            f"talk page: {r['seconds']:.0f} s, latency p50 {r['latency_p50_ms']} ms, p90 {r['latency_p90_ms']} ms, "
            f"p99 {r['latency_p99_ms']} ms; underruns {r['underruns']} ({r['underruns_per_min']}/min); "
            f"played {r['played_s']} s, missed {r['missed_s']} s; server queue p50 {r['server_queue_p50']} "
            f"max {r['server_queue_max']} frames, step p50 {r['server_step_p50_ms']} ms"
        )
    if len(runs) > 1:
        print(f"median of runs: latency p50 {statistics.median(r['latency_p50_ms'] for r in runs)} ms")
    (out_dir / "talk_page.json").write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
