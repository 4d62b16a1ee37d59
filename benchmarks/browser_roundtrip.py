"""Browser <-> kernel round trip in JupyterLab, with and without the kit's TCP_NODELAY config.

    .venv/bin/python benchmarks/browser_roundtrip.py              # both configs, ~2 min on 2 cores
    .venv/bin/python benchmarks/browser_roundtrip.py --only kit   # just the README's launch

For each configuration it starts JupyterLab (``tests/browser/harness.py``), opens a notebook with a
tiny session's talk panel in headless Chromium (fake Japanese microphone) and measures:

* ``rtt_idle``: widget comm ping, browser -> kernel -> browser, before audio starts;
* ``rtt_talking``: the same while the microphone streams and the plots update at 10 Hz;
* ``frame_latency``: a microphone frame sent by the page until the page hears the server finished it
  (browser -> kernel -> server -> engine -> server -> kernel -> browser);
* ``server_rt``: the kernel -> server -> kernel part of that, measured in the kernel;
* kernel-side plot refresh cost, the page's playback underruns, and the CPU (in cores) Chromium,
  the kernel and the Jupyter server used while talking.

Figures are p50 / p90 in milliseconds; JSON goes to ``test-output/benchmarks/browser_roundtrip.json``.
``JMOSHI_NB_BENCH_SETUP`` runs extra kernel code first (e.g. ``import torch; torch.set_num_threads(1)``).
On a shared 2-core machine the "talking" figures swing with whatever else runs: compare runs made
back to back, and trust ``rtt_idle`` most.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "browser"), str(REPO / "tests")]  # harness, and the processes it uses

import harness as H  # noqa: E402

START = """\
import jmoshi_nb
{setup}
session = jmoshi_nb.start("tiny", update_hz={hz})
session.talk(plots={plots})"""

SETUP = os.environ.get("JMOSHI_NB_BENCH_SETUP", "")  # extra kernel code before the session starts
REPORT = """\
import json
from pathlib import Path
import numpy as np
stats = session.stats()
rec = session.stop()
p = lambda xs, q: round(float(np.percentile(xs, q)), 1) if len(xs) else None
Path("kernel.json").write_text(json.dumps({
    "server_rt": [p(session.frame_latency_ms, 50), p(session.frame_latency_ms, 90)],
    "refresh_ms": [p(session.refresh_ms, 50), p(session.refresh_ms, 90)],
    "plot_update_ms": [p(session.panel.plots.update_ms, 50), p(session.panel.plots.update_ms, 90)]
    if session.panel.plots else None,
    "engine_total_ms": [p([m["total_ms"] for m in rec.metrics], 50), p([m["total_ms"] for m in rec.metrics], 90)],
    "frames": len(rec.metrics),
}))"""


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by Chromium, the kernel and the Jupyter server (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"chromium": 0.0, "kernel": 0.0, "jupyter": 0.0}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used = (int(fields[11]) + int(fields[12])) / tick
        if "chromium" in cmd:
            out["chromium"] += used
        elif "ipykernel_launcher" in cmd:
            out["kernel"] += used
        elif "jupyterlab" in cmd or "jupyter-lab" in cmd:
            out["jupyter"] += used
    return out


def pct(xs: list[float]) -> list[float | None]:
    if not xs:
        return [None, None]
    s = sorted(xs)
    return [round(statistics.median(s), 1), round(s[min(len(s) - 1, int(0.9 * len(s)))], 1)]


def measure(nodelay: bool, talk_s: float, pings: int, work: Path, hz: float, plots: bool) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    root = work / f"{'kit' if nodelay else 'plain'}-{hz}-{plots}"
    root.mkdir(parents=True)
    H.write_notebook(root / "bench.ipynb", [START.format(hz=hz, plots=plots, setup=SETUP), REPORT])
    wav = H.fake_microphone_wav(work / "mic.wav") if not (work / "mic.wav").exists() else work / "mic.wav"
    with H.jupyter_lab(root, root / "lab", nodelay=nodelay) as lab, sync_playwright() as pw:
        context = H.chromium(pw, wav, root / "profile")
        page = H.first_page(context)
        try:
            H.run_first_cell_until(page, lab, "bench.ipynb", ".jmoshi-mic:not([disabled])")
            time.sleep(1.0)
            idle = page.evaluate(f"jmoshiNb.views[0].ping({pings}, 20)")
            page.click(".jmoshi-mic")
            time.sleep(2.0)  # let the stream settle
            cpu0, t0 = cpu_seconds(), time.monotonic()
            talking = page.evaluate(f"jmoshiNb.views[0].ping({pings // 2}, 40)")
            time.sleep(max(0.0, talk_s - 2.0))
            cpu1, elapsed = cpu_seconds(), time.monotonic() - t0
            cpu = {k: round((cpu1[k] - cpu0[k]) / elapsed, 2) for k in cpu0}
            frame_latency = page.evaluate("jmoshiNb.views[0].latencies.slice()")
            data = H.widget_data(page)
            H.run_cell(page, 1)
            H.wait_for(lambda: (root / "kernel.json").exists(), timeout=60, what="kernel.json")
        finally:
            context.close()
        nodelay_seen = "websocket opened with TCP_NODELAY=True" in lab.log_text()
    kernel = json.loads((root / "kernel.json").read_text())
    return {
        "config": ("kit (TCP_NODELAY)" if nodelay else "plain jupyter lab")
        + (f", plots {hz:g} Hz" if plots else ", no plots"),
        "nodelay_logged": nodelay_seen,
        "rtt_idle": pct(idle),
        "rtt_talking": pct(talking),
        "frame_latency": pct(frame_latency),
        **kernel,
        "cpu_cores_while_talking": cpu,
        "underruns": int(data.get("underruns") or 0),
        "played_s": round(float(data.get("samplesPlayed") or 0) / 24000, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["kit", "plain"], help="measure one configuration")
    ap.add_argument("--talk", type=float, default=8.0, help="seconds of microphone streaming")
    ap.add_argument("--pings", type=int, default=60)
    ap.add_argument("--hz", type=float, default=10.0, help="panel/plot update rate")
    ap.add_argument("--no-plots", action="store_true", help="panel without live plots")
    ap.add_argument("--out", type=Path, default=REPO / "test-output" / "benchmarks" / "browser_roundtrip.json")
    args = ap.parse_args()
    if H.chromium_path() is None:
        sys.exit("chromium not found: apt-get install -y chromium")
    configs = {"kit": [True], "plain": [False]}.get(args.only or "", [True, False])
    rows = []
    with tempfile.TemporaryDirectory(prefix="jmoshi-bench-") as tmp:
        for nodelay in configs:
            rows.append(measure(nodelay, args.talk, args.pings, Path(tmp), args.hz, not args.no_plots))
            print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2, ensure_ascii=False))
    print(f"\n{'config':<36} {'rtt idle':>14} {'rtt talking':>14} {'mic->model':>14} {'server rt':>14}")
    for r in rows:
        cols = [f"{r[k][0]}/{r[k][1]}" for k in ("rtt_idle", "rtt_talking", "frame_latency", "server_rt")]
        print(f"{r['config']:<36} " + " ".join(f"{c:>14}" for c in cols))
    print("(p50/p90 ms)")


if __name__ == "__main__":
    main()
