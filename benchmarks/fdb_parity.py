"""``--rules fdb`` beside Full-Duplex-Bench's own v1 evaluators, item by item, on folders made with the kit.

    .venv/bin/python benchmarks/fdb_parity.py --fdb-eval /path/to/Full-Duplex-Bench/v1_v1.5/evaluation
    .venv/bin/python benchmarks/fdb_parity.py --fdb-eval ... --run runs/bench   # also a kit run folder

Builds a scripted folder in FDB's layout (the kit's task set, 3 items per task, seed 0, with model
speech placed by script, its words written as output.json, FDB's metadata files; backchannel outputs
at 16 kHz, the rate of FDB's release), scores it with ``--rules both`` and runs FDB's evaluators,
unchanged, on each item alone (a one-item copy, so that the averages they print are the item's
values). FDB's code is not part of the kit: give the folder of a copy you fetched (CC BY-NC 4.0).
The interruption evaluator gets a stand-in client instead of GPT-4-turbo (the relevance is not
compared); where torchaudio is not installed, a stand-in ``torchaudio.load`` (soundfile, float32)
is used. Prints one markdown table row per item: TOR and latency by FDB's scripts, by ``--rules fdb``,
and by the kit's rules.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import re
import shutil
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np

from jmoshi_nb.core.audio import SAMPLE_RATE, resample, write_wav
from jmoshi_nb.research.bench import build, score
from jmoshi_nb.research.bench.tasks import ANSWERS, REQUESTS
from jmoshi_nb.research.bench.words import split_words
from jmoshi_nb.research.speech import synthesize

REFERENCE_BINS = 100


def _clip(text: str, speed: float = 1.0) -> np.ndarray:
    pcm = synthesize(text, speed=speed)
    loud = np.flatnonzero(np.abs(pcm) > 0.01)
    return pcm[loud[0] : loud[-1] + 1]


def _words(text: str, start: float, duration: float) -> list[dict[str, Any]]:
    """FDB-shaped chunks for ``text`` spoken from ``start`` over ``duration``: words spread by characters."""
    parts = split_words(text)
    total = sum(len(w) for w, _, _ in parts) or 1
    out, t = [], start
    for w, _, _ in parts:
        d = duration * len(w) / total
        out.append({"text": w, "timestamp": [round(t, 3), round(t + d, 3)]})
        t += d
    return out


def _place(n: int, parts: list[tuple[float, np.ndarray]]) -> np.ndarray:
    out = np.zeros(n, dtype=np.float32)
    for start, pcm in parts:
        i = int(round(start * SAMPLE_RATE))
        out[i : i + len(pcm)] += pcm[: max(0, n - i)]
    return out


def _write_item(folder: Path, plan: list[tuple[float, str, float]], rate: int = SAMPLE_RATE,
                words_after: float | None = None) -> None:  # fmt: skip
    """output.wav and output.json for ``plan`` [(start_s, text, speed)], the input's length."""
    import soundfile as sf

    n = sf.info(str(folder / "input.wav")).frames
    clips = [(start, _clip(text, speed), text) for start, text, speed in plan]
    pcm = _place(n, [(s, c) for s, c, _ in clips])
    write_wav(folder / "output.wav", resample(pcm, SAMPLE_RATE, rate), rate)
    end = n / SAMPLE_RATE
    chunks = [w for s, c, text in clips for w in _words(text, s, len(c) / SAMPLE_RATE) if w["timestamp"][0] < end]
    for c in chunks:  # the words an ASR hears: output.wav stops at the input's end
        c["timestamp"][1] = min(c["timestamp"][1], round(end, 3))
    if words_after is not None:
        chunks = [c for c in chunks if c["timestamp"][0] >= words_after]
    doc = {"text": " ".join(c["text"] for c in chunks), "chunks": chunks}
    (folder / "output.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")


def scripted_folder(root: Path) -> Path:
    """The kit's set (3 items per task) with scripted model speech, output.json and FDB's metadata files."""
    from jmoshi_nb.research.bench.fdb_files import metadata_documents
    from jmoshi_nb.research.bench.layout import find_tasks

    build(root, per_task=3, seed=0)
    for tf in find_tasks(root):
        for item in tf.items:
            timing = json.loads((item.path / "timing.json").read_text(encoding="utf-8"))
            for name, doc in metadata_documents(item).items():
                (item.path / name).write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
            i = int(item.id)
            if tf.task == "pause_handling":
                p0, p1 = timing["pause"]
                plan = [[], [(p0 + 0.4, "はい", 0.6)], [(p0 + 0.3, "京都ではお寺をいくつか回りました。", 1.0)]][i]
                _write_item(item.path, plan)
            elif tf.task == "turn_taking":
                end = timing["user_end"]
                plan = [[(end + 0.5, "はい、行きました。", 1.0)],  # the input ends 2 s after the user
                        [(end - 0.4, "京都ではお寺を回りました。", 1.0)],
                        [(end + 0.2, "うん", 0.6), (end + 1.5, "うん", 0.6)]][i]  # fmt: skip
                _write_item(item.path, plan)
            elif tf.task == "backchannel":
                gaps = [p[0] + 0.15 for p in timing["pauses"]]
                plan = [[(g, "はい", 0.5) for g in gaps],
                        [(gaps[0], "はい", 0.5), (gaps[1], "そうですね", 0.35)],
                        [(gaps[0], "京都ではお寺をいくつか回っておいしいお豆腐を食べました", 1.0)]][i]  # fmt: skip
                _write_item(item.path, plan, rate=16000)
            else:
                start, b1 = timing["model_answer_start"], timing["interrupt"][1]
                answer = ANSWERS[REQUESTS.index(timing["text"][0])]
                reply = "はい、わかりました。"
                plan = [[(start, answer + answer, 1.0)],  # talks on through the interruption
                        [(start, answer[: len(answer) // 3], 1.0), (b1 + 0.6, reply, 1.0)],
                        [(start, answer[: len(answer) // 4], 1.0)]][i]  # fmt: skip
                _write_item(item.path, plan, words_after=b1)
    return root


# ---- FDB's evaluators --------------------------------------------------------------------------------------
class _StubClient:
    """Stands in for the OpenAI client of eval_user_interruption; counts the calls (one per takeover)."""

    def __init__(self) -> None:
        self.calls = 0
        reply = types.SimpleNamespace(content="Analysis: not rated.\nI would rate the AI's response as 0")
        done = types.SimpleNamespace(choices=[types.SimpleNamespace(message=reply)])

        def create(**_: Any) -> Any:
            self.calls += 1
            return done

        self.chat = types.SimpleNamespace(completions=types.SimpleNamespace(create=create))


def _load_fdb(eval_dir: Path) -> dict[str, Any]:
    if "torchaudio" not in sys.modules and importlib.util.find_spec("torchaudio") is None:
        import soundfile as sf
        import torch

        def load(path: str) -> tuple[Any, int]:
            data, rate = sf.read(str(path), dtype="float32", always_2d=True)
            return torch.from_numpy(data.T.copy()), rate

        sys.modules["torchaudio"] = types.SimpleNamespace(load=load)  # type: ignore[assignment]
    sys.path.insert(0, str(eval_dir))
    import eval_backchannel
    import eval_pause_handling
    import eval_smooth_turn_taking
    import eval_user_interruption

    return {"pause_handling": eval_pause_handling.eval_pause_handling,
            "turn_taking": eval_smooth_turn_taking.eval_smooth_turn_taking,
            "backchannel": eval_backchannel.eval_backchannel,
            "interruption": eval_user_interruption.eval_user_interruption}  # fmt: skip


def _last(pattern: str, text: str) -> float | None:
    found = re.findall(pattern, text)
    return None if not found or found[-1] == "None" else float(found[-1])


def official(folder: Path, eval_dir: Path, reference: Path) -> dict[str, dict[str, Any]]:
    """Per item: what FDB's evaluator prints when run on that item alone."""
    from jmoshi_nb.research.bench.layout import find_tasks

    evaluators = _load_fdb(eval_dir)
    out: dict[str, dict[str, Any]] = {}
    for tf in find_tasks(folder):
        for item in tf.items:
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp) / tf.path.name
                shutil.copytree(item.path, root / item.id)
                shutil.copy(reference, Path(tmp) / "icc_gt_distribution.json")
                args: list[Any] = [str(root)]
                client = _StubClient()
                if tf.task == "interruption":
                    args.append(client)
                printed, error = io.StringIO(), None
                cwd = os.getcwd()
                os.chdir(tmp)  # eval_backchannel reads ./icc_gt_distribution.json
                try:
                    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
                        evaluators[tf.task](*args)
                except ZeroDivisionError:
                    error = "ZeroDivisionError"  # the mean of no latencies (TOR 0), after the per-item prints
                finally:
                    os.chdir(cwd)
                text = printed.getvalue()
            row: dict[str, Any] = {"error": error}
            if tf.task == "pause_handling":
                row["TOR"] = _last(r"Average take turn:\s+(\S+)", text)
            elif tf.task == "turn_taking":
                row.update(TOR=_last(r"the TOR is (\d)", text), latency_raw=_last(r"the latency is (\S+)", text))
            elif tf.task == "interruption":
                row.update(TOR=float(client.calls > 0),
                           latency=_last(r"Average latency:\s+(\S+)", text) if client.calls else None)  # fmt: skip
            else:
                row.update(TOR=_last(r"TOR - Mean: (\S+)", text), frequency=_last(r"Frequency - Mean: (\S+)", text),
                           JSD=_last(r"JSD - Mean: (\S+)", text))  # fmt: skip
            out[f"{tf.task}/{item.id}"] = row
    return out


def _f(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def compare(folder: Path, eval_dir: Path) -> list[str]:
    """Markdown rows: item | FDB's scripts | --rules fdb | kit rules."""
    from jmoshi_nb.research.bench.layout import find_tasks

    ids = [it.id for tf in find_tasks(folder) for it in tf.items]
    reference = folder.parent / f"{folder.name}-reference.json"
    reference.write_text(json.dumps({i: [1.0 / REFERENCE_BINS] * REFERENCE_BINS for i in ids}))
    both = score(folder, rules="both", reference=reference)
    fdb_printed = official(folder, eval_dir, reference)
    rows = ["| item | FDB scripts: TOR | latency | freq/s, JSD | `--rules fdb`: TOR | latency | freq/s, JSD "
            "| kit rules: takeover | latency |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for task, entry in both["fdb"].items():
        kit = {it["id"]: it for it in both["kit"][task]["items"]}
        for it in entry["items"]:
            o = fdb_printed[f"{task}/{it['id']}"]
            o_lat = o.get("latency_raw", o.get("latency"))
            o_bc = f"{_f(o.get('frequency'))}, {_f(o.get('JSD'))}" if task == "backchannel" else ""
            k_bc = f"{_f(it.get('frequency_per_s'))}, {_f(it.get('jsd'))}" if task == "backchannel" else ""
            k_lat = it.get("latency_raw_s")
            mine = kit[it["id"]]
            kit_lat = mine.get("response_latency_s") if task == "interruption" else mine.get("latency_s")
            rows.append(f"| {task}/{it['id']} | {_f(o['TOR'])} | {_f(o_lat)} | {o_bc} "
                        f"| {it.get('takeover', it.get('error'))} | {_f(k_lat)} | {k_bc} "
                        f"| {mine.get('takeover')} | {_f(kit_lat)} |")  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fdb-eval", type=Path, required=True, help="FDB's v1_v1.5/evaluation folder (a copy)")
    parser.add_argument("--out", type=Path, default=None, help="where to build the scripted folder")
    parser.add_argument("--run", type=Path, action="append", default=[], help="also compare this kit run folder")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp()) / "fdb-scripted"
    folders = [scripted_folder(out)] + list(args.run)
    for folder in folders:
        print(f"\n{folder}\n")
        print("\n".join(compare(folder, args.fdb_eval.resolve())))


if __name__ == "__main__":
    main()
