"""Everything a GPU can tell about the kit, in one command (at most ~8 minutes on one card).

    python benchmarks/gpu_check.py              # CUDA: random-weight 7B LM (bf16) + real-size Mimi
    python benchmarks/gpu_check.py --tiny       # the tiny checkpoint on CPU (automatic without CUDA)

On CUDA it runs J-Moshi's architecture with random weights (nothing is downloaded; per-frame time does not
depend on the weights' values), with CUDA graphs (moshi's default on CUDA) and torch.compile as the
Modal image has it (``jmoshi_nb.core.pins.torch_compile_enabled``: off unless JMOSHI_MODAL_TORCH_COMPILE=1).
It measures, in one process, on the same modules:

* the bare moshi loop against the kit's engine, per frame, p50/p99 side by side
  (``benchmarks/gpu_frame_loop.py``'s loops, which this script calls);
* the frame at which a temp/top_k change takes effect, and what that frame costs (today a re-capture
  of the depformer's CUDA graph), plus the check that the change really holds under CUDA graphs;
* batched steps with 1, 4, 8, 16 and 32 conversations: moshi's own streaming at batch size B (one
  Mimi encode, one ``LMGen.step``, one Mimi decode per frame for all of them), and the kit's batched
  ``BatchEngine`` at the same slot count (``engine_batched_loop``: per-row sampling, its own streams);
* Mimi's streaming encode and decode per frame;
* peak GPU memory (peak RSS on CPU) and the card's name;
* from those figures, the estimate for Modal's A10G and the sessions-per-container default it gives
  (``a10g_estimate``: the arithmetic of benchmarks/RESULTS.md, "From the measured card to an A10G").

It prints one markdown table and writes it (with the figures as JSON) to
``benchmarks/results/gpu-check-<card>-<date>.md``. The exit status is 1 if the live temp/top_k check
fails. The batched section has a time budget (``--batch-budget-s``): a batch size that would overrun it
is skipped and the table says so; the defaults fit ~8 minutes with the random 7B on one GPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_frame_loop, next to this file

import gpu_frame_loop as gfl  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BATCHES = (1, 4, 8, 16, 32)
GIB = 1024**3

# The table's rows, in order (the batched rows are added per batch size: BATCH_ROW.format(b=...)).
ROW_CARD = "card"
ROW_SETUP = "setup"
ROW_BARE = "bare moshi loop, per frame"
ROW_ENGINE = "jmoshi_nb Engine, per frame"
ROW_DIFF = "engine - bare"
ROW_CHANGE = "temp/top_k change: frame it takes effect"
ROW_LIVE = "temp/top_k change holds under CUDA graphs"
BATCH_ROW = "batched step, B={b} conversations"
ROW_MIMI_ENC = "Mimi encode, per frame"
ROW_MIMI_DEC = "Mimi decode, per frame"
ROW_MEMORY = "peak memory"

# Memory bandwidth by card (vendor figures, GB/s), for the A10G estimate; matched on the name CUDA reports.
CARD_BANDWIDTH_GBPS = {
    "H100 80GB HBM3": 3350.0,  # H100 SXM
    "H100 PCIe": 2000.0,
    "H100 NVL": 3900.0,
    "H200": 4800.0,
    "A100-SXM4-80GB": 2039.0,
    "A100 80GB PCIe": 1935.0,
    "A100-SXM4-40GB": 1555.0,
    "A100-PCIE-40GB": 1555.0,
    "L40S": 864.0,
    "A10G": 600.0,
    "L4": 300.0,
}
A10G_BANDWIDTH_GBPS = CARD_BANDWIDTH_GBPS["A10G"]
A10G_USABLE_GIB = 21.0  # 24 GB card, less 1 GiB for cuBLAS workspaces and fragmentation (RESULTS.md)
TIME_LIMIT_MS = 64.0  # 80 % of the 80 ms frame: the rest for Opus, the WebSocket and jitter


def card_bandwidth_gbps(card: str) -> float | None:
    """The card's memory bandwidth in GB/s from ``CARD_BANDWIDTH_GBPS`` (the longest matching name), or None."""
    names = [name for name in CARD_BANDWIDTH_GBPS if name.lower() in card.lower()]
    return CARD_BANDWIDTH_GBPS[max(names, key=len)] if names else None


def a10g_estimate(
    batched_rows: list[dict[str, Any]], weights_bytes: int, kv_bytes: int, measured_gbps: float
) -> dict[str, Any]:
    """Per batch size B, the A10G frame time estimated from the measured card's (RESULTS.md's rule).

    ``bytes(B) = W + B·K`` is read per step; ``floor(card, B) = bytes(B) / bandwidth``; what the measured
    p99 has beyond its floor (``r``: launches, the depformer's sequential steps, Mimi, syncs) is kept as it
    is (optimistic, ``t_opt``), or the whole p99 is scaled by the bandwidth ratio (pessimistic, ``t_max``).
    The kit's ``BatchEngine`` p99 is the measured time (what the server runs). The default for concurrent
    sessions per container is ``min(N_mem, N_time)``, at least 1: the largest B whose measured peak memory
    fits the A10G's usable memory, and the largest B whose ``t_opt`` is within ``TIME_LIMIT_MS``.
    """
    rows = []
    for b in batched_rows:
        if "engine" not in b:
            continue
        batch, measured = b["batch"], b["engine"]["p99"]
        read = weights_bytes + batch * kv_bytes
        floor_measured = read / (measured_gbps * 1e9) * 1e3
        floor_a10g = read / (A10G_BANDWIDTH_GBPS * 1e9) * 1e3
        rest = max(0.0, measured - floor_measured)
        rows.append(
            {
                "batch": batch,
                "bytes_read": read,
                "measured_p99_ms": measured,
                "floor_measured_ms": floor_measured,
                "rest_ms": rest,
                "floor_a10g_ms": floor_a10g,
                "t_opt_ms": floor_a10g + rest,
                "t_max_ms": measured * measured_gbps / A10G_BANDWIDTH_GBPS,
                "peak_gib": b["peak_bytes"] / GIB,
                "fits_memory": b["peak_bytes"] / GIB <= A10G_USABLE_GIB,
            }
        )
    n_mem = max([r["batch"] for r in rows if r["fits_memory"]], default=0)
    n_time = max([r["batch"] for r in rows if r["t_opt_ms"] <= TIME_LIMIT_MS], default=0)
    sessions = max(1, min(n_mem, n_time))
    safe = all(r["t_max_ms"] <= TIME_LIMIT_MS for r in rows if r["batch"] <= sessions)
    return {
        "measured_gbps": measured_gbps,
        "weights_bytes": weights_bytes,
        "kv_bytes_per_conversation": kv_bytes,
        "rows": rows,
        "n_mem": n_mem,
        "n_time": n_time,
        "sessions_per_container": sessions,
        "pessimistic_bound_holds": safe,
    }


def row_names(batches: tuple[int, ...] | list[int]) -> list[str]:
    return [
        ROW_CARD,
        ROW_SETUP,
        ROW_BARE,
        ROW_ENGINE,
        ROW_DIFF,
        ROW_CHANGE,
        ROW_LIVE,
        *(BATCH_ROW.format(b=b) for b in batches),
        ROW_MIMI_ENC,
        ROW_MIMI_DEC,
        ROW_MEMORY,
    ]


# ## The kit's batched engine
#
# ``BatchEngine`` with ``batch`` slots, every slot busy and fed ``frames``: the wall time in ms of each
# step (the engine synchronises the device itself), next to moshi's own batched loop in the table.


def engine_batched_loop(s: gfl.Setup, batch: int, frames: list[np.ndarray]) -> list[float]:
    """Per-step ms of the kit's ``BatchEngine`` at ``batch`` busy slots (its per-row sampling included)."""
    from jmoshi_nb.core.config import Sampling
    from jmoshi_nb.model.batch_engine import BatchEngine, SlotLMGen

    gen_kwargs = {k: v for k, v in s.lm_gen_kwargs.items() if k not in Sampling.model_fields}
    lm_gen = SlotLMGen(s.lm, **gen_kwargs)
    engine = BatchEngine(s.resolved, s.mimi, lm_gen, s.tokenizer, s.device, Sampling(), 42, slots=batch)
    try:
        slots = [engine.open(seed=i) for i in range(batch)]
        times: list[float] = []
        for frame in frames:
            t0 = time.perf_counter()
            engine.step(dict.fromkeys(slots, frame))
            times.append((time.perf_counter() - t0) * 1e3)
        return times
    finally:
        engine.close()  # the models go on serving moshi's loop and the single-conversation engine


# ## Sections


class Budget:
    """The whole run's time budget; sections ask before starting work that may not fit."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()


def _is_cuda(device: str) -> bool:
    return device.startswith("cuda")


def _reset_peak(device: str) -> None:
    if _is_cuda(device):
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_bytes(device: str) -> int:
    """Peak GPU memory allocated since the last reset; on CPU the process's peak resident memory."""
    if _is_cuda(device):
        import torch

        return int(torch.cuda.max_memory_allocated())
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


def _free_cache(device: str) -> None:
    if _is_cuda(device):
        import torch

        torch.cuda.empty_cache()


def change_frame(engine: Any, frames: list[np.ndarray], switch_at: int) -> dict[str, Any]:
    """Change temp/top_k (audio and text) before frame ``switch_at``; time every frame.

    Returns the frame at which the engine reports the change took effect, that frame's wall time, and
    the median of the other frames after the first ``switch_at // 2`` (warm-up, graph capture)."""
    engine.reset()
    wall: list[float] = []
    took_effect: int | None = None
    for i, frame in enumerate(frames):
        if i == switch_at:
            engine.set_params(temp=0.6, top_k=100, temp_text=0.5, top_k_text=10)
        t0 = time.perf_counter()
        r = engine.step(frame)
        wall.append((time.perf_counter() - t0) * 1e3)
        if r.params_changed and took_effect is None and i >= switch_at:
            took_effect = i
    others = [ms for i, ms in enumerate(wall) if i >= switch_at // 2 and i != took_effect]
    at = wall[took_effect] if took_effect is not None else float("nan")
    p50 = float(np.median(others))
    return {
        "switch_at": switch_at,
        "took_effect_at": took_effect,
        "ms_at_change": at,
        "p50_other_ms": p50,
        "extra_ms": at - p50,
        "frames": len(frames),
    }


def batched(s: gfl.Setup, batches: list[int], frames: list[np.ndarray], warmup: int, budget: Budget) -> list[dict]:
    """moshi's streaming at batch size B per frame (and the batched engine's hook), peak memory each."""
    out: list[dict[str, Any]] = []
    last_s = 0.0
    for b in batches:
        row: dict[str, Any] = {"batch": b}
        # a batch costs more than the previous one: skip it when twice the last would overrun the budget
        if budget.left() < 2 * last_s:
            row["skipped"] = f"time budget ({budget.seconds:.0f} s) would be exceeded"
            out.append(row)
            continue
        t0 = time.perf_counter()
        _free_cache(s.device)
        _reset_peak(s.device)
        try:
            ms = gfl.bare_loop(s, frames, batch=b)[warmup:]
            row["bare"] = gfl.stats(ms)
            row["per_conversation_p50_ms"] = row["bare"]["p50"] / b
            row["engine"] = gfl.stats(engine_batched_loop(s, b, frames)[warmup:])
        except RuntimeError as exc:  # torch.OutOfMemoryError is a RuntimeError
            if "out of memory" not in str(exc).lower():
                raise
            row["skipped"] = "out of memory"
        row["peak_bytes"] = _peak_bytes(s.device)
        _free_cache(s.device)
        last_s = time.perf_counter() - t0
        out.append(row)
    return out


def mimi_codec(s: gfl.Setup, frames: list[np.ndarray], warmup: int) -> dict[str, Any]:
    """Mimi's streaming encode of each 1920-sample frame, then the streaming decode of those codes."""
    import torch

    enc: list[float] = []
    dec: list[float] = []
    codes: list[Any] = []
    with torch.no_grad(), s.mimi.streaming(1):
        for frame in frames:
            chunk = torch.from_numpy(frame).to(s.device)[None, None]
            gfl._sync(s.device)
            t0 = time.perf_counter()
            codes.append(s.mimi.encode(chunk))
            gfl._sync(s.device)
            enc.append((time.perf_counter() - t0) * 1e3)
    with torch.no_grad(), s.mimi.streaming(1):
        for c in codes:
            gfl._sync(s.device)
            t0 = time.perf_counter()
            pcm = s.mimi.decode(c).cpu()  # host PCM in hand, as the loops have it
            dec.append((time.perf_counter() - t0) * 1e3)
            assert pcm.shape[-1] == gfl.FRAME_SIZE
    return {"encode": gfl.stats(enc[warmup:]), "decode": gfl.stats(dec[warmup:]), "codebooks": int(codes[0].shape[1])}


def card_name(device: str) -> str:
    if _is_cuda(device):
        import torch

        return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def run(args: argparse.Namespace) -> dict[str, Any]:
    from jmoshi_nb.core.pins import torch_compile_enabled

    compile_on = torch_compile_enabled()
    if _is_cuda(args.device):
        # As the Modal image sets it, before moshi is imported: moshi reads it at import.
        os.environ["NO_TORCH_COMPILE"] = "" if compile_on else "1"
    import torch

    if _is_cuda(args.device) and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --tiny (the tiny checkpoint on CPU)")
    torch.set_grad_enabled(False)
    budget = Budget(args.budget_s)
    timings: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        value = fn()
        timings[name] = round(time.perf_counter() - t0, 1)
        print(f"[{budget.elapsed():6.1f} s] {name}: {timings[name]:.1f} s", file=sys.stderr, flush=True)
        return value

    _reset_peak(args.device)
    s = timed("build", lambda: gfl.build(args.device, args.tiny, args.dtype))
    # moshi's own loops first (each opens and closes its streaming state), then the engine, which keeps
    # Mimi and the LM streaming for its lifetime.
    frames = gfl.input_frames(args.warmup + args.frames)
    bare = timed("bare loop", lambda: gfl.bare_loop(s, frames)[args.warmup :])
    peak_single = _peak_bytes(args.device)
    batch_frames = gfl.input_frames(args.batch_warmup + args.batch_frames, seed=3)
    batch_budget = Budget(min(args.batch_budget_s, budget.left()))
    batches = timed("batched", lambda: batched(s, args.batches, batch_frames, args.batch_warmup, batch_budget))
    mimi_frames = gfl.input_frames(args.batch_warmup + args.mimi_frames, seed=4)
    mimi = timed("mimi", lambda: mimi_codec(s, mimi_frames, args.batch_warmup))
    _reset_peak(args.device)
    engine = gfl.make_engine(s)
    wall, own = timed("engine loop", lambda: gfl.engine_loop(engine, frames))
    change_frames = gfl.input_frames(args.change_frames, seed=2)
    change = timed("temp/top_k change", lambda: change_frame(engine, change_frames, args.change_at))
    check_frames = gfl.input_frames(args.switch_at + args.after_switch, seed=1)
    live = timed("live params check", lambda: gfl.params_check(engine, check_frames, args.switch_at))
    peak_engine = _peak_bytes(args.device)
    import moshi

    from jmoshi_nb.model.batch_engine import slot_bytes

    card = card_name(args.device)
    bandwidth = args.bandwidth_gbps or card_bandwidth_gbps(card)
    weights = sum(p.numel() * p.element_size() for p in s.lm.parameters())
    estimate = None if bandwidth is None else a10g_estimate(batches, weights, slot_bytes(s.lm, s.mimi), bandwidth)

    return {
        "date": dt.date.today().isoformat(),
        "card": card,
        "device": args.device,
        "model": s.label,
        "dtype": str(s.dtype).removeprefix("torch."),
        "cuda_graphs": bool(live["cuda_graphs"]),
        "torch_compile": compile_on and _is_cuda(args.device),
        "versions": {"torch": torch.__version__, "cuda": torch.version.cuda, "moshi": moshi.__version__},
        "frames": args.frames,
        "warmup": args.warmup,
        "bare": gfl.stats(bare),
        "engine": gfl.stats(wall[args.warmup :]),
        "engine_own_total_ms": gfl.stats(own[args.warmup :]),
        "change": change,
        "live_params": live,
        "batched": batches,
        "mimi": mimi,
        "peak_bytes_single": peak_single,
        "peak_bytes_engine": peak_engine,
        "peak_bytes": max([peak_single, peak_engine, *(b.get("peak_bytes", 0) for b in batches)]),
        "memory_kind": "GPU allocated" if _is_cuda(args.device) else "CPU resident (RSS)",
        "seconds": timings,
        "budget_s": args.budget_s,
        "a10g_estimate": estimate,
    }


# ## The table


def _ms(x: float | None) -> str:
    return "—" if x is None or x != x else f"{x:.2f}"


def _gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB"


def stats_row(name: str, st: dict[str, Any], note: str) -> tuple[str, str, str, str]:
    """A table row from ``gfl.stats`` figures: name, p50, p99, notes."""
    return (name, _ms(st["p50"]), _ms(st["p99"]), note)


def table(r: dict[str, Any]) -> str:
    """The markdown table: one row per figure, p50/p99 in ms where they apply."""
    rows: list[tuple[str, str, str, str]] = []
    budget = gfl.BUDGET_MS  # one frame of audio: 80 ms
    compile_note = "on" if r["torch_compile"] else "off"
    v = r["versions"]
    rows.append((ROW_CARD, "", "", r["card"]))
    setup = (
        f"{r['model']}, {r['dtype']}, CUDA graphs {'on' if r['cuda_graphs'] else 'off'}, torch.compile {compile_note}; "
        f"torch {v['torch']} (CUDA {v['cuda']}), moshi {v['moshi']}; {r['frames']} frames after {r['warmup']} warm-up"
    )
    rows.append((ROW_SETUP, "", "", setup))
    for row, key in ((ROW_BARE, "bare"), (ROW_ENGINE, "engine")):
        st = r[key]
        note = f"mean {st['mean']:.2f}, max {st['max']:.2f}, over {budget:.0f} ms: {100 * st['over_budget']:.1f}%"
        rows.append(stats_row(row, st, note))
    diff50 = r["engine"]["p50"] - r["bare"]["p50"]
    diff99 = r["engine"]["p99"] - r["bare"]["p99"]
    rows.append((ROW_DIFF, f"{diff50:+.2f}", f"{diff99:+.2f}", "the kit's cost per frame over moshi's loop"))
    c = r["change"]
    at = c["took_effect_at"]
    where = "never" if at is None else f"frame {at} (set before frame {c['switch_at']})"
    rows.append(
        (
            ROW_CHANGE,
            _ms(c["ms_at_change"]),
            "",
            f"{where}; that frame costs {c['extra_ms']:+.2f} ms over the p50 of the others ({c['p50_other_ms']:.2f})",
        )
    )
    p = r["live_params"]
    failed = [name.replace("_", " ") for name, ok in p["checks"].items() if not ok]
    live = "PASS" if p["pass"] else "FAIL: " + "; ".join(failed)
    control = "stale without re-capture" if p["control_audio_depends_on_seed_after_switch"] else "no stale graph"
    rows.append((ROW_LIVE, "", "", f"{live} (CUDA graphs {'on' if p['cuda_graphs'] else 'off'}; control: {control})"))
    for b in r["batched"]:
        name = BATCH_ROW.format(b=b["batch"])
        if "bare" not in b:
            rows.append((name, "", "", f"skipped: {b['skipped']}"))
            continue
        st = b["bare"]
        fits = "fits" if st["p99"] <= budget else "does NOT fit"
        engine = b["engine"]
        eng = f"p50 {engine['p50']:.2f}, p99 {engine['p99']:.2f} ms (fits: {engine['p99'] <= budget})"
        note = (
            f"moshi streaming at batch {b['batch']}; {b['per_conversation_p50_ms']:.2f} ms per conversation; "
            f"p99 {fits} {budget:.0f} ms; peak {_gib(b['peak_bytes'])}; batched engine: {eng}"
        )
        rows.append(stats_row(name, st, note))
    m = r["mimi"]
    mimi_note = f"streaming, 1 frame = {gfl.FRAME_SIZE} samples, {m['codebooks']} codebooks"
    for row, key in ((ROW_MIMI_ENC, "encode"), (ROW_MIMI_DEC, "decode")):
        rows.append(stats_row(row, m[key], mimi_note))
    rows.append(
        (
            ROW_MEMORY,
            "",
            "",
            f"{_gib(r['peak_bytes'])} {r['memory_kind']}; one conversation: moshi's loop "
            f"{_gib(r['peak_bytes_single'])}, the engine {_gib(r['peak_bytes_engine'])}",
        )
    )
    lines = ["| measure | p50 ms | p99 ms | notes |", "|---|---:|---:|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def estimate_table(r: dict[str, Any]) -> str:
    """The A10G estimate with its arithmetic, and the sessions-per-container default it gives."""
    e = r["a10g_estimate"]
    if e is None:
        return f"A10G estimate: no memory bandwidth known for {r['card']!r} (give --bandwidth-gbps)."
    lines = [
        f"A10G estimate from {r['card']} ({e['measured_gbps']:.0f} GB/s) to the A10G ({A10G_BANDWIDTH_GBPS:.0f} GB/s, "
        f"{A10G_USABLE_GIB:.0f} GiB usable): W = {e['weights_bytes'] / 1e9:.2f} GB of weights, "
        f"K = {e['kv_bytes_per_conversation'] / 1e9:.3f} GB of KV cache per conversation, bytes(B) = W + B·K.",
        "",
        "| B | bytes(B) GB | engine p99 ms | floor here ms | r = p99 − floor | floor A10G ms | t_A10G = floor + r "
        "| t_A10G_max = p99 × bw ratio | peak GiB | fits memory |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for x in e["rows"]:
        lines.append(
            f"| {x['batch']} | {x['bytes_read'] / 1e9:.2f} | {x['measured_p99_ms']:.2f} | {x['floor_measured_ms']:.2f} "
            f"| {x['rest_ms']:.2f} | {x['floor_a10g_ms']:.2f} | {x['t_opt_ms']:.2f} | {x['t_max_ms']:.2f} "
            f"| {x['peak_gib']:.2f} | {'yes' if x['fits_memory'] else 'no'} |"
        )
    bound = "holds" if e["pessimistic_bound_holds"] else "does NOT hold: confirm with a live A10G run"
    lines += [
        "",
        f"N_mem = {e['n_mem']}, N_time (t_A10G p99 <= {TIME_LIMIT_MS:.0f} ms) = {e['n_time']}: "
        f"sessions per container = {e['sessions_per_container']} (the pessimistic bound {bound}).",
    ]
    return "\n".join(lines)


def out_path(r: dict[str, Any], out_dir: Path) -> Path:
    card = re.sub(r"[^a-z0-9]+", "-", r["card"].lower().split(" (")[0]).strip("-") or "unknown"
    return out_dir / f"gpu-check-{card}-{r['date']}.md"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="the tiny checkpoint on CPU (the default without CUDA)")
    p.add_argument("--device", help="cuda or cpu (default: cuda if available, else cpu with --tiny)")
    p.add_argument("--budget-s", type=float, default=420.0, help="time budget of the whole run")
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="where the table (.md) and figures (.json) go")
    gfl.add_loop_options(p.add_argument_group("bare moshi loop, engine and live temp/top_k check (gpu_frame_loop.py)"))
    change = p.add_argument_group("temp/top_k change")
    change.add_argument("--change-at", type=int, default=30, help="frame before which temp/top_k change")
    change.add_argument("--change-frames", type=int, default=50, help="frames of the temp/top_k change run")
    batched = p.add_argument_group("batched steps")
    batched.add_argument("--batches", default=",".join(map(str, BATCHES)), help="conversations per batched step")
    batched.add_argument("--batch-frames", type=int, default=40, help="measured frames per batch size")
    batched.add_argument("--batch-warmup", type=int, default=5, help="unmeasured frames per batch size and for Mimi")
    batched.add_argument("--batch-budget-s", type=float, default=180.0, help="time budget of the batched section")
    p.add_argument(
        "--bandwidth-gbps", type=float, help="the card's memory bandwidth for the A10G estimate (default: by its name)"
    )
    mimi = p.add_argument_group("Mimi")
    mimi.add_argument("--mimi-frames", type=int, default=100, help="measured Mimi frames")
    args = p.parse_args(argv)
    args.batches = [int(b) for b in str(args.batches).split(",") if b.strip()]
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if not _is_cuda(args.device):
        args.tiny = True  # the random 7B is for GPUs only
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    text = table(result) + "\n\n" + estimate_table(result)
    print(text)
    path = out_path(result, args.out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    title = f"# GPU check: {result['card']}, {result['date']}\n\n`python benchmarks/gpu_check.py`\n\n"
    path.write_text(title + text + "\n", encoding="utf-8")
    path.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    print(f"\nwritten: {path} (+ .json)")
    return 0 if result["live_params"]["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
