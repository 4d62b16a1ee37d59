"""The talk page's latency from microphone to model audio played, and its playback underruns.

    .venv/bin/python benchmarks/talk_page.py                 # 20 s of talk, tiny model, ~1 min on 2 cores
    .venv/bin/python benchmarks/talk_page.py --seconds 60 --runs 3
    .venv/bin/python benchmarks/talk_page.py --moshi-client /path/to/moshi/client/dist   # side by side

With ``--moshi-client DIR`` (or ``$MOSHI_CLIENT_DIST``), the folder of Kyutai's web client built unchanged
(``client/`` of kyutai-labs/moshi: ``npm ci && npm run build`` gives ``dist/``), each run also talks to
the same server through that client, served from a local HTTP server with ``?worker_addr=`` pointing at
the kit's server (the client's own way to choose its WebSocket). Without it, only the page is measured,
and the script says so. Both clients are measured the same way, from outside their code, by
``benchmarks/client_meter.js`` (a Playwright init script; see its header): mic-to-heard latency
p50 / p90 / p99 on an 80 ms grid, underruns (sound resuming after all-zero output) per minute, seconds of
gap (moshi's meter calls them "missed"), seconds heard, and model seconds received but never heard
(dropped by the player, or still buffered at the end).

The meter's latency compares the same sample index in the two streams (mic sample n sent, the model's
sample n heard), as moshi's own meter does; it is one frame (80 ms) more than the page's own figure
below, which runs from a frame's sending to the start of its answer.

Starts ``jmoshi-nb serve`` (tiny), opens ``GET /`` in headless Debian Chromium with a fake microphone
playing Japanese speech (``tests/browser/harness.py``), presses Start, talks for ``--seconds`` and
also reads the page's own figures:

* ``latency``: per frame, the microphone frame handed to the Opus encoder until its answer is heard:
  (the server's metrics for that frame reach the page) + (the player's buffer at that moment) + (the
  AudioContext's output latency). p50 / p90 / p99 in ms over the run, the first 2 s left out (start-up).
* ``underruns_per_min``: the player ran dry (a click or gap heard), per minute of talk.
* ``missed_s``: model audio decoded but never played (dropped by the player to bound latency), and the
  seconds played, as moshi's web client reports "played / missed".
* ``server_queue``: frames waiting on the server when each was answered (p50, max), and the server's
  step time: a queue means the server, not the page, fell behind.

Each run row carries the 1-minute load average when it started. JSON goes to
``test-output/benchmarks/talk_page.json``. On a shared 2-core machine the figures swing
with whatever else runs (Chromium, the model and the page share the cores): compare runs made back to back.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "browser"), str(REPO / "tests")]  # harness, and the processes it uses

import harness as H  # noqa: E402
from processes import free_port, stop_process, wait_healthy  # noqa: E402

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


METER_JS = (Path(__file__).resolve().parent / "client_meter.js").read_text()
GRID_S = 0.08


def meter_figures(meter: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The figures of ``client_meter.js``: latency on an 80 ms grid from 2 s after the first model audio.

    Latency = mic seconds sent - the position played in the server's stream + the output latency (both
    streams count the Opus packets as sent: step k's audio follows mic frame k). The player reports its
    position in decoded audio; a decoder that trims the Opus pre-skip (RFC 7845) has thrown away that
    much of the server's stream, so the pre-skip is added back to its position. Whether it trims is
    read from the run: decoded seconds behind the packets received by more than half the pre-skip.

    Parameters
    ----------
    meter:
        ``window.__clientMeter`` read from the page, plus ``now`` (``performance.now()`` when read).
    seconds:
        How long the conversation was meant to last (for the per-minute rate if the tap never sounded).

    Returns
    -------
    dict
        ``meter_latency_p50/p90/p99_ms``, ``meter_underruns``, ``meter_underruns_per_min``, ``meter_heard_s``,
        ``meter_gap_s``, ``meter_received_s``, ``meter_unheard_s``, ``meter_samples``; of the latency,
        ``meter_socket_lag_p50_ms`` (mic seconds sent minus model seconds received on the socket) and
        ``meter_output_latency_ms`` (the AudioContext's): the rest is decoding and the player's buffer;
        ``meter_decoder_trims_preskip`` and ``meter_model_preskip_ms``.
    """
    samples = sorted(meter["samples"])
    first = meter["firstModelAt"]
    pre_skip_s = (meter["modelPreSkip"] or 0) / 48000
    behind = [raw - decoded for _, _, _, _, raw, decoded in samples[len(samples) // 4 :]]
    trims = bool(behind) and statistics.median(behind) > pre_skip_s / 2
    skipped = pre_skip_s if trims else 0.0
    grid: list[tuple[float, float, float]] = []  # [mic -> heard, mic -> received, output latency] every 80 ms
    if samples and first is not None:
        t, i, last = first + 1000 * SKIP_S, 0, None
        while t <= meter["now"]:
            while i < len(samples) and samples[i][0] <= t:
                _, mic, player, out, raw, _ = samples[i]
                last = (1000 * (mic - (player + skipped) + out), 1000 * (mic - raw), 1000 * out)
                i += 1
            if last is not None:
                grid.append(last)
            t += 1000 * GRID_S
    heard = [g[0] for g in grid]
    # The AudioContext that sounded most is the speaker's (moshi's recorder has a context of its own).
    tap = max(meter["taps"], key=lambda t: t["sound_s"], default={"sound_s": 0.0, "gap_s": 0.0, "underruns": 0})
    talk_min = ((meter["now"] - first) / 60000) if first is not None else seconds / 60
    received_s = meter["modelRawS"]
    return {
        "meter_latency_p50_ms": round(percentile(heard, 50)),
        "meter_latency_p90_ms": round(percentile(heard, 90)),
        "meter_latency_p99_ms": round(percentile(heard, 99)),
        "meter_socket_lag_p50_ms": round(percentile([g[1] for g in grid], 50)),
        "meter_output_latency_ms": round(percentile([g[2] for g in grid], 50)),
        "meter_decoder_trims_preskip": trims,
        "meter_model_preskip_ms": round(1000 * pre_skip_s, 1),
        "meter_samples": len(samples),
        "meter_underruns": tap["underruns"],
        "meter_underruns_per_min": round(tap["underruns"] / talk_min, 1),
        "meter_heard_s": round(tap["sound_s"], 2),
        "meter_gap_s": round(tap["gap_s"], 2),
        "meter_received_s": round(received_s, 2),
        "meter_unheard_s": round(max(0.0, received_s - tap["sound_s"]), 2),
    }


READ_METER = "() => ({...window.__clientMeter, now: performance.now()})"


def one_run(url: str, wav: Path, seconds: float, profile: Path) -> dict[str, Any]:
    """One conversation through the kit's talk page: its own figures and ``client_meter.js``'s."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = H.chromium(p, wav, profile)
        context.add_init_script(script=METER_JS)
        page = H.first_page(context)
        page.goto(f"{url}/?p=bench")
        page.click(".jt-start")
        H.wait_for(lambda: page.eval_on_selector("#jt", "el => el.dataset.state") == "talking", 60, "handshake")
        time.sleep(seconds)
        out = page.evaluate(READ_FIGURES)
        meter = page.evaluate(READ_METER)
        page.click(".jt-end")
        context.close()
    skip = int(SKIP_S / 0.08)
    lat = out["latencies"][skip:]
    stats = out["stats"]
    minutes = out["elapsed_s"] / 60
    return {
        "client": "kit page",
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
        **meter_figures(meter, seconds),
    }


@contextlib.contextmanager
def static_files(folder: Path) -> Iterator[str]:
    """``folder`` served over HTTP on 127.0.0.1 from a thread; yields its base URL."""
    handler = functools.partial(QuietFiles, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


READ_MOSHI_OWN_METER = """() => {
  const cells = [...document.querySelectorAll('td')].map((e) => e.textContent.trim());
  const at = (label) => { const i = cells.findIndex((x) => x.startsWith(label)); return i < 0 ? null : cells[i + 1]; };
  return {played: at('Audio played'), missed: at('Missed audio'), latency: at('Latency')};
}"""


def moshi_run(client_url: str, server_port: int, wav: Path, seconds: float, profile: Path) -> dict[str, Any]:
    """One conversation through moshi's own web client (unchanged), measured by ``client_meter.js`` only.

    Its own meter ("Server Audio Stats": played, missed, latency) is read from the page as well.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = H.chromium(p, wav, profile)
        context.add_init_script(script=METER_JS)
        page = H.first_page(context)
        page.goto(f"{client_url}/?worker_addr=127.0.0.1:{server_port}")
        page.get_by_role("button", name="Connect").click()
        H.wait_for(lambda: page.evaluate("() => window.__clientMeter.firstModelAt !== null"), 60, "moshi client audio")
        started = time.monotonic()
        time.sleep(seconds)
        meter = page.evaluate(READ_METER)
        own = page.evaluate(READ_MOSHI_OWN_METER)
        elapsed = time.monotonic() - started
        context.close()
    return {
        "client": "moshi web client",
        "seconds": round(elapsed, 1),
        "own_meter": own,
        **meter_figures(meter, seconds),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--moshi-client",
        type=Path,
        default=os.environ.get("MOSHI_CLIENT_DIST"),
        help="built moshi web client (its dist/ folder); also $MOSHI_CLIENT_DIST",
    )
    args = parser.parse_args()
    moshi_dist: Path | None = args.moshi_client
    if moshi_dist is not None and not (moshi_dist / "index.html").is_file():
        parser.error(f"--moshi-client {moshi_dist}: no index.html there (give the client's built dist/ folder)")
    if moshi_dist is None:
        print("moshi's web client not given (--moshi-client or $MOSHI_CLIENT_DIST): measuring the talk page alone")
    out_dir = REPO / "test-output" / "benchmarks"
    out_dir.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        wav = H.fake_microphone_wav(tmp / "speech48k.wav")
        port = free_port()
        cmd = [sys.executable, "-m", "jmoshi_nb.cli", "serve", "--port", str(port)]
        client_url = stack.enter_context(static_files(moshi_dist)) if moshi_dist is not None else None
        with (tmp / "server.log").open("wb") as log:
            server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(f"http://127.0.0.1:{port}/api/health", server)
            for i in range(args.runs):
                order = ["kit", "moshi"] if client_url is not None else ["kit"]
                for client in order if i % 2 == 0 else order[::-1]:  # alternate who goes first
                    load = round(os.getloadavg()[0], 2)
                    if client == "kit":
                        figures = one_run(f"http://127.0.0.1:{port}", wav, args.seconds, tmp / f"kit{i}")
                    else:
                        assert client_url is not None
                        figures = moshi_run(client_url, port, wav, args.seconds, tmp / f"moshi{i}")
                    runs.append({"run": i + 1, "load_avg_1min": load, **figures})
        finally:
            stop_process(server)
    for r in runs:
        line = (
            f"run {r['run']} {r['client']:<17} load {r['load_avg_1min']:>5}: latency p50 {r['meter_latency_p50_ms']} / "
            f"p90 {r['meter_latency_p90_ms']} / p99 {r['meter_latency_p99_ms']} ms; underruns {r['meter_underruns']} "
            f"({r['meter_underruns_per_min']}/min), gaps {r['meter_gap_s']} s; heard {r['meter_heard_s']} s of "
            f"{r['meter_received_s']} s received ({r['meter_unheard_s']} s unheard); of the p50: mic -> received "
            f"{r['meter_socket_lag_p50_ms']} ms, output latency {r['meter_output_latency_ms']} ms; decoder trims the "
            f"{r['meter_model_preskip_ms']} ms pre-skip: {r['meter_decoder_trims_preskip']}"
        )
        if r["client"] == "kit page":
            line += (
                f"\n    page's own figures: latency p50 {r['latency_p50_ms']} / p90 {r['latency_p90_ms']} / "
                f"p99 {r['latency_p99_ms']} ms; underruns {r['underruns']}; played {r['played_s']} s, missed "
                f"{r['missed_s']} s; server queue p50 {r['server_queue_p50']} max {r['server_queue_max']}, "
                f"step p50 {r['server_step_p50_ms']} ms"
            )
        else:
            line += f"\n    its own meter: {r['own_meter']}"
        print(line)
    for client in sorted({r["client"] for r in runs}):
        mine = [r for r in runs if r["client"] == client]
        if len(mine) > 1:
            p50 = statistics.median(r["meter_latency_p50_ms"] for r in mine)
            per_min = statistics.median(r["meter_underruns_per_min"] for r in mine)
            print(f"median of runs, {client}: latency p50 {p50} ms, underruns/min {per_min}")
    (out_dir / "talk_page.json").write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
