"""Per-frame latency of the full-size J-Moshi architecture, and live sampling changes under CUDA graphs.

    python benchmarks/gpu_frame_loop.py                       # CUDA, random 7B + real-size Mimi, bf16
    python benchmarks/gpu_frame_loop.py --frames 500 --json a10g.json
    python benchmarks/gpu_frame_loop.py --device cpu --tiny   # the tiny checkpoint on CPU (tests run this)

``benchmarks/gpu_check.py`` runs these loops together with everything else a GPU can tell (batched
steps, Mimi, memory) as one command; this script is the frame loop and the live-parameter check alone.

Nothing is downloaded: the LM is moshi's default 7B architecture (``loaders._lm_kwargs``, the config
J-Moshi uses) and Mimi its real-size model (``loaders._mimi_config``), both with random weights (Mimi's
codebooks random too, so frames do not all quantise to code 0). Per-frame time does not depend on the
weights' values, so the figures are those of J-Moshi on the same card.

It measures, in one process, on the same modules and input:

(a) the bare moshi loop, as ``moshi.server`` runs it: Mimi encode -> ``LMGen.step`` per code frame ->
    Mimi decode -> PCM on the host;
(b) the kit's ``Engine.step`` (the same loop plus parameter handling, text decoding and metrics).

CUDA graphs are on (moshi's default on CUDA). Then it checks that a mid-session change of the audio
temperature and top-k takes effect under CUDA graphs, where moshi bakes them into the depformer graph
at capture: two sessions with the same seed switch at frame K to greedy decoding
(``temp=0, top_k=1`` for audio and text) with *different* seeds. Before K the sessions must match each
other and differ from a third session with another seed (sampling is live); from K on they must match
each other (decoding no longer depends on the seed), which only holds if the depformer graph really
stopped sampling. A control run changes ``LMGen.temp``/``top_k`` directly, without the engine's graph
re-capture: on CUDA its audio tokens keep depending on the seed after K (the stale graph), showing the
check can fail. PASS/FAIL is printed; the exit status is 1 on FAIL.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from jmoshi_nb.core.audio import FRAME_SIZE, SAMPLE_RATE

BUDGET_MS = 1000.0 * FRAME_SIZE / SAMPLE_RATE  # one frame of audio: 80 ms


@dataclass
class Setup:
    resolved: Any
    mimi: Any
    lm: Any
    tokenizer: Any
    lm_gen_kwargs: dict[str, Any]
    device: str
    dtype: Any
    label: str


class NumberedPieces:
    """A stand-in text tokenizer for random weights (``jmoshi_nb.core.text.TextTokenizer``): token i is the
    word piece ``▁t{i}``; no byte, control or unknown pieces, so every non-pad token shows as text."""

    def id_to_piece(self, id: int) -> str:  # noqa: A002 (SentencePiece's signature)
        return f"\u2581t{id}"

    def is_byte(self, id: int) -> bool:  # noqa: A002
        return False

    def is_control(self, id: int) -> bool:  # noqa: A002
        return False

    def is_unknown(self, id: int) -> bool:  # noqa: A002
        return False


def _randomize_codebooks(mimi: Any, seed: int = 0) -> None:
    import torch

    gen = torch.Generator().manual_seed(seed)
    for name, buf in mimi.named_buffers():
        if name.endswith("embedding_sum"):
            buf.copy_((torch.randn(buf.shape, generator=gen) * 0.5).to(buf.device, buf.dtype))
        elif name.endswith(("cluster_usage", "_initialized")):
            buf.fill_(1.0)


def build(device: str, tiny: bool, dtype_name: str) -> Setup:
    import torch

    from jmoshi_nb.model.checkpoints import ResolvedModel, resolve
    from jmoshi_nb.model.moshi_api import loaders

    if tiny:
        resolved = resolve("tiny")
        dtype = torch.float32 if device == "cpu" else getattr(torch, dtype_name)
        info = resolved.info
        return Setup(
            resolved=resolved,
            mimi=info.get_mimi(device=device),
            lm=info.get_moshi(device=device, dtype=dtype),
            tokenizer=info.get_text_tokenizer(),
            lm_gen_kwargs=dict(info.lm_gen_config),
            device=device,
            dtype=dtype,
            label="tiny checkpoint",
        )
    dtype = getattr(torch, dtype_name)
    torch.manual_seed(0)
    mimi = loaders.get_mimi(None, device=device)  # real-size Mimi, 8 codebooks
    _randomize_codebooks(mimi)
    lm = loaders.get_moshi_lm(None, device=device, dtype=dtype)  # moshi's default 7B config
    params = sum(p.numel() for p in lm.parameters()) / 1e9
    resolved = ResolvedModel("random-7b", "random", "moshi loaders._lm_kwargs, random weights", None, None)  # type: ignore[arg-type]
    return Setup(resolved, mimi, lm, NumberedPieces(), {}, device, dtype, f"random {params:.2f} B LM + Mimi")


def input_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """Speech-like input: a gliding tone with noise (values do not change the timing)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n * FRAME_SIZE) / SAMPLE_RATE
    pcm = 0.2 * np.sin(2 * np.pi * (180 + 40 * np.sin(2 * np.pi * 0.5 * t)) * t) + rng.normal(0, 0.02, t.shape)
    return [pcm[i * FRAME_SIZE : (i + 1) * FRAME_SIZE].astype(np.float32) for i in range(n)]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def bare_loop(s: Setup, frames: list[np.ndarray], batch: int = 1) -> list[float]:
    """moshi.server's loop; returns the wall time of each frame in ms (host PCM in hand).

    With ``batch`` > 1, moshi's streaming runs that many conversations at once (each fed the same
    frame): one Mimi encode, one ``LMGen.step`` and one Mimi decode for all of them per frame."""
    import torch

    from jmoshi_nb.model.moshi_api import LMGen

    gen_kwargs = {"temp": 0.8, "temp_text": 0.7, "top_k": 250, "top_k_text": 25, **s.lm_gen_kwargs}
    lm_gen = LMGen(s.lm, **gen_kwargs)
    times: list[float] = []
    with torch.no_grad(), s.mimi.streaming(batch), lm_gen.streaming(batch):
        for i, frame in enumerate(frames):
            _sync(s.device)
            t0 = time.perf_counter()
            chunk = torch.from_numpy(frame).to(s.device)[None, None].expand(batch, 1, -1).contiguous()
            codes = s.mimi.encode(chunk)
            if i == 0:
                s.mimi.reset_streaming()  # moshi.server: the first frame is in the model's past
            for c in range(codes.shape[-1]):
                tokens = lm_gen.step(codes[:, :, c : c + 1])
                if tokens is None:
                    continue
                pcm = s.mimi.decode(tokens[:, 1:]).cpu()
                _ = int(tokens[0, 0, 0].item()), pcm
            _sync(s.device)
            times.append((time.perf_counter() - t0) * 1e3)
    del lm_gen
    if s.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return times


def make_engine(s: Setup) -> Any:
    from jmoshi_nb.core.config import Sampling
    from jmoshi_nb.model.engine import Engine
    from jmoshi_nb.model.moshi_api import LMGen

    lm_gen = LMGen(s.lm, **{k: v for k, v in s.lm_gen_kwargs.items() if k not in Sampling.model_fields})
    engine = Engine(s.resolved, s.mimi, lm_gen, s.tokenizer, s.device, Sampling(), 42)
    engine.reset()
    return engine


def engine_loop(engine: Any, frames: list[np.ndarray]) -> tuple[list[float], list[float]]:
    """Engine.step per frame: (wall ms measured here, the engine's own total_ms)."""
    engine.reset()
    wall: list[float] = []
    own: list[float] = []
    for frame in frames:
        t0 = time.perf_counter()
        r = engine.step(frame)  # synchronises the device itself
        wall.append((time.perf_counter() - t0) * 1e3)
        own.append(r.total_ms)
    return wall, own


def stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=np.float64)
    return {
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "mean": float(a.mean()),
        "max": float(a.max()),
        "over_budget": float((a > BUDGET_MS).mean()),
        "frames": int(a.size),
    }


GREEDY = {"temp": 0.0, "top_k": 1, "temp_text": 0.0, "top_k_text": 1}


def session_tokens(engine: Any, frames: list[np.ndarray], seed: int, switch_at: int, switch_seed: int, direct: bool):  # type: ignore[no-untyped-def]
    """Tokens of one session that switches to greedy decoding at frame ``switch_at`` with a new seed."""
    from jmoshi_nb.core.config import Sampling
    from jmoshi_nb.model.engine import seed_everything

    engine.reset(Sampling(), seed)
    out: list[list[int] | None] = []
    for i, frame in enumerate(frames):
        if i == switch_at:
            if direct:  # what a naive implementation does: no re-capture of the depformer graph
                g = engine.lm_gen
                g.temp, g.top_k, g.temp_text, g.top_k_text = 0.0, 1, 0.0, 1
                seed_everything(switch_seed)
            else:
                engine.set_params(seed=switch_seed, **GREEDY)
        r = engine.step(frame)
        out.append(None if r.tokens is None else [int(x) for x in r.tokens])
    return out


def audio_part(tokens: list[list[int] | None]) -> list[list[int] | None]:
    return [None if t is None else t[1:] for t in tokens]


def params_check(engine: Any, frames: list[np.ndarray], switch_at: int) -> dict[str, Any]:
    k = switch_at
    a = session_tokens(engine, frames, 1, k, 101, direct=False)
    b = session_tokens(engine, frames, 1, k, 202, direct=False)
    c = session_tokens(engine, frames, 2, k, 101, direct=False)
    ctl_a = session_tokens(engine, frames, 1, k, 101, direct=True)
    ctl_b = session_tokens(engine, frames, 1, k, 202, direct=True)
    graphed = engine.device.type == "cuda" and engine.lm_gen._streaming_state.graphed_depth is not None
    checks = {
        "same_seed_same_tokens_before_switch": a[:k] == b[:k],
        "other_seed_other_tokens_before_switch": audio_part(a[:k]) != audio_part(c[:k]),
        "greedy_after_switch_independent_of_seed": a[k:] == b[k:],
    }
    control_seed_dependent = audio_part(ctl_a[k:]) != audio_part(ctl_b[k:])
    from jmoshi_nb.core.config import Sampling

    engine.reset(Sampling(), 42)
    return {
        "switch_at": k,
        "frames": len(frames),
        "checks": checks,
        "pass": all(checks.values()),
        "cuda_graphs": graphed,
        "control_audio_depends_on_seed_after_switch": control_seed_dependent,
        # On CUDA the control must show the stale graph (still sampling); on CPU there is no graph.
        "control_as_expected": control_seed_dependent == graphed,
    }


def print_report(r: dict[str, Any]) -> None:
    print(f"device: {r['device_name']} ({r['device']}), dtype {r['dtype']}, {r['model']}")
    print(
        f"CUDA graphs: {'on' if r['cuda_graphs'] else 'off'}, torch.compile: {'on' if r['torch_compile'] else 'off'}; "
        f"{r['frames']} frames measured after {r['warmup']} warm-up frames; budget {BUDGET_MS:.0f} ms/frame"
    )
    print()
    print(f"{'per frame (ms)':<26}{'p50':>8}{'p99':>8}{'mean':>8}{'max':>8}{'>80 ms':>8}")
    for key, label in (("bare", "(a) bare moshi loop"), ("engine", "(b) jmoshi_nb Engine")):
        st = r[key]
        row = f"{label:<26}{st['p50']:8.2f}{st['p99']:8.2f}{st['mean']:8.2f}{st['max']:8.2f}"
        print(row + f"{100 * st['over_budget']:7.1f}%")
    print(f"{'engine - bare (p50)':<26}{r['engine']['p50'] - r['bare']['p50']:+8.2f}")
    print()
    p = r["params"]
    print(f"live audio temp/top_k under CUDA graphs (switch to greedy at frame {p['switch_at']}): ", end="")
    print("PASS" if p["pass"] else "FAIL")
    for name, ok in p["checks"].items():
        print(f"  {name.replace('_', ' '):<52}{'yes' if ok else 'NO'}")
    ctl = "yes" if p["control_audio_depends_on_seed_after_switch"] else "no"
    expect = "expected with CUDA graphs: stale graph" if p["cuda_graphs"] else "expected without CUDA graphs"
    note = expect if p["control_as_expected"] else "UNEXPECTED"
    print(f"  control (attribute write, no re-capture) still seed-dependent: {ctl} ({note})")


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.no_compile:
        os.environ["NO_TORCH_COMPILE"] = "1"
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: use --device cpu --tiny for the CPU path")
    torch.set_grad_enabled(False)
    s = build(args.device, args.tiny, args.dtype)
    frames = input_frames(args.warmup + args.frames)
    bare = bare_loop(s, frames)[args.warmup :]
    engine = make_engine(s)
    wall, own = engine_loop(engine, frames)
    check_frames = input_frames(args.switch_at + args.after_switch, seed=1)
    params = params_check(engine, check_frames, args.switch_at)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    return {
        "device": args.device,
        "device_name": device_name,
        "dtype": str(s.dtype).removeprefix("torch."),
        "model": s.label,
        "cuda_graphs": args.device.startswith("cuda") and os.environ.get("NO_CUDA_GRAPH", "") in ("", "0"),
        "torch_compile": not os.environ.get("NO_TORCH_COMPILE"),
        "frames": args.frames,
        "warmup": args.warmup,
        "bare": stats(bare),
        "engine": stats(wall[args.warmup :]),
        "engine_own_total_ms": stats(own[args.warmup :]),
        "params": params,
        "versions": {"torch": torch.__version__, "cuda": torch.version.cuda},
    }


def add_loop_options(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The options of the two frame loops and the live-parameter check (this script's; gpu_check.py's too)."""
    p.add_argument("--dtype", default="bfloat16", help="LM dtype on CUDA (the tiny model runs float32 on CPU)")
    p.add_argument("--frames", type=int, default=300, help="measured frames of each single-conversation loop")
    p.add_argument("--warmup", type=int, default=20, help="frames run first and not measured (graph capture)")
    p.add_argument("--switch-at", type=int, default=8, help="frame at which the params check switches to greedy")
    p.add_argument("--after-switch", type=int, default=8, help="frames compared after the switch")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--tiny", action="store_true", help="the tiny checkpoint instead of the random 7B + Mimi")
    add_loop_options(p)
    p.add_argument("--no-compile", action="store_true", help="set NO_TORCH_COMPILE=1 (moshi compiles on CUDA)")
    p.add_argument("--json", help="also write the figures to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    print_report(result)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    return 0 if result["params"]["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
