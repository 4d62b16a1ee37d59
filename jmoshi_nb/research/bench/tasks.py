"""Build the Japanese task set, offline and deterministic from a seed (pyopenjtalk speech).

    build("bench/ja", per_task=20, seed=0)

writes, for each task, ``<task>/<id>/input.wav`` (the user, 24 kHz mono) and ``timing.json`` (the
moments the scorer needs, measured on the placed audio: the user's spoken segments, the end of the
user's turn, the pause, the interruption). Interruption items also get ``model.wav``: the prepared
answer the model's channel is forced into (teacher forcing, as prompted continuation does) until the
user barges in, so the model is talking when the interruption starts. A
``manifest.json`` at the top records the seed and sizes. Every item draws its own speaker (pitch in
semitones, speed), sentences and timings from ``numpy.random.default_rng([seed, task, index])``, so an
item does not change when the set's size does.

* **pause_handling**: an unfinished sentence ending in a filler (えーと, あの, ...), a 1-2.5 s pause,
  then the rest of the sentence. The model should not take the turn.
* **turn_taking**: a question or statement, then silence. The model should take the turn, quickly.
* **backchannel**: a story of 3 sentences with 0.5-1.2 s pauses. The model should give aizuchi
  without taking the turn.
* **interruption**: a request, the model's (forced) answer, and the user cutting in 1.2-2.5 s into it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ...core.audio import FRAME_SIZE, SAMPLE_RATE, write_wav
from .layout import TASKS, TIMING_FILE, BenchError, check_tasks

MANIFEST = "manifest.json"
MODEL_FILE = "model.wav"
DEFAULT_PER_TASK = 20
T = TypeVar("T")
_LEVEL = 0.01  # |sample| above this is speech when trimming clips

# (start, rest): an unfinished sentence, then (after a filler and a pause) its end.
PAUSES = (
    ("昨日、駅の近くで", "新しいカフェを見つけました。"),
    ("来週の旅行なんですけど", "とても楽しみにしています。"),
    ("最近、料理を始めたんですが", "意外と難しかったです。"),
    ("この前見た映画が", "すごく面白かったです。"),
    ("うちの犬が朝から", "ずっと吠えていました。"),
    ("先週の会議で部長が", "急に辞めると言いました。"),
    ("新しいスマホを買ったら", "電池がすぐ切れるんです。"),
    ("週末に友達と山へ行って", "頂上で雨に降られました。"),
    ("図書館で借りた本が", "思ったより厚かったです。"),
    ("去年の夏休みに", "北海道へ行きました。"),
    ("会社の近くのラーメン屋が", "閉店してしまいました。"),
    ("姉が結婚することになって", "準備で忙しいんです。"),
)
FILLERS = ("えーと", "あの", "その", "えっと", "まあ", "なんか")
TURNS = (
    "週末はどこかへ出かけましたか。", "おすすめの本を教えてください。", "明日の天気はどうなると思いますか。",
    "好きな食べ物は何ですか。", "東京でおすすめの観光地はどこですか。", "最近、何か新しいことを始めましたか。",
    "朝ごはんは何を食べましたか。", "今日はとても疲れました。", "夏休みの予定を聞いてもいいですか。",
    "日本語の勉強は難しいと思いますか。", "昨日、駅で財布を落としてしまいました。", "休みの日は何をしていますか。",
)  # fmt: skip
STORY = (
    "先月、初めて一人で沖縄へ行きました。", "空港に着いたら、すごく暑くてびっくりしました。",
    "レンタカーを借りて、海沿いをずっと走りました。", "途中で小さな食堂に入って、ソーキそばを食べました。",
    "夕方には、きれいな夕日を見ることができました。", "子供のころ、祖母の家によく遊びに行きました。",
    "庭には大きな柿の木がありました。", "秋になると、みんなで柿を取って食べました。",
    "去年、会社で新しいプロジェクトを任されました。", "最初はわからないことばかりでした。",
    "でも、同僚が毎日手伝ってくれました。", "三か月後には、なんとか完成させることができました。",
)  # fmt: skip
REQUESTS = (
    "京都のおすすめの場所を教えてください。", "カレーの作り方を教えてもらえますか。",
    "健康のために何をすればいいですか。",
    "おすすめの映画を教えてください。", "英語を上達させるコツは何ですか。", "よく眠るための方法を教えてください。",
)  # fmt: skip
ANSWERS = (
    "そうですね、京都なら、まず清水寺がおすすめです。それから、嵐山の竹林もとてもきれいですよ。",
    "はい、まず玉ねぎをよく炒めます。次に、お肉と野菜を入れて、水を加えて煮込みます。",
    "そうですね、まずは毎日少し歩くことが大切です。それから、野菜をたくさん食べるといいですよ。",
    "最近の映画なら、家族で楽しめるアニメ映画がおすすめです。映像がとてもきれいなんです。",
    "毎日少しずつでも、英語を声に出して読むことが大切です。好きなドラマを英語で見るのもいいですよ。",
    "寝る前にスマホを見ないことが大切です。それから、毎朝同じ時間に起きるようにしましょう。",
)  # fmt: skip
BARGE_INS = (
    "あ、ちょっと待ってください。", "すみません、それはどこにありますか。", "あの、もう少しゆっくり話してください。",
    "え、それって高いんですか。", "ちょっと待って、もう一回言ってください。", "なるほど、でも時間がないんです。",
)  # fmt: skip


def _trimmed(text: str, speed: float, half_tone: float) -> np.ndarray:
    from ..speech import synthesize

    pcm = synthesize(text, speed=speed, half_tone=half_tone)
    loud = np.flatnonzero(np.abs(pcm) > _LEVEL)
    return pcm[loud[0] : loud[-1] + 1] if len(loud) else pcm


class _Lay:
    """Audio laid out on a timeline; remembers where each clip went."""

    def __init__(self, lead_s: float) -> None:
        self.t = lead_s
        self.parts: list[tuple[float, np.ndarray]] = []

    def say(self, pcm: np.ndarray, then_s: float = 0.0) -> tuple[float, float]:
        start = self.t
        self.parts.append((start, pcm))
        self.t = start + len(pcm) / SAMPLE_RATE + then_s
        return round(start, 3), round(start + len(pcm) / SAMPLE_RATE, 3)

    def render(self, total_s: float) -> np.ndarray:
        frames = int(np.ceil(total_s * SAMPLE_RATE / FRAME_SIZE))  # whole 80 ms frames
        out = np.zeros(frames * FRAME_SIZE, dtype=np.float32)
        for start, pcm in self.parts:
            i = int(round(start * SAMPLE_RATE))
            out[i : i + len(pcm)] += pcm[: len(out) - i]
        return out


def _speaker(rng: np.random.Generator) -> dict[str, float]:
    return {"half_tone": round(float(rng.uniform(-4.0, 4.0)), 2), "speed": round(float(rng.uniform(0.85, 1.15)), 2)}


def _pick(rng: np.random.Generator, pool: tuple[T, ...]) -> tuple[int, T]:
    i = int(rng.integers(len(pool)))
    return i, pool[i]


def make_item(task: str, index: int, seed: int = 0) -> dict[str, Any]:
    """One item: ``{"user": pcm, "model": pcm | None, "timing": {...}}`` (24 kHz, whole frames)."""
    rng = np.random.default_rng([seed, TASKS.index(task), index])
    spk = _speaker(rng)
    lay = _Lay(lead_s=round(float(rng.uniform(0.3, 0.8)), 2))
    timing: dict[str, Any] = {"task": task, "seed": seed, "index": index, "speaker": spk}
    model = None
    if task == "pause_handling":
        _, (head, tail) = _pick(rng, PAUSES)
        _, filler = _pick(rng, FILLERS)
        pause = round(float(rng.uniform(1.0, 2.5)), 2)
        a = lay.say(_trimmed(f"{head}、{filler}", **spk), then_s=pause)
        b = lay.say(_trimmed(tail, **spk), then_s=1.5)
        timing.update(text=[f"{head}、{filler}", tail], user_segments=[a, b], pause=[a[1], b[0]])
    elif task == "turn_taking":
        _, text = _pick(rng, TURNS)
        a = lay.say(_trimmed(text, **spk), then_s=2.0)
        timing.update(text=[text], user_segments=[a])
    elif task == "backchannel":
        start = int(rng.integers(len(STORY)))
        lines = [STORY[(start + k) % len(STORY)] for k in range(3)]
        segs = [lay.say(_trimmed(line, **spk), then_s=round(float(rng.uniform(0.5, 1.2)), 2)) for line in lines]
        lay.t += 1.0
        pauses = [[a[1], b[0]] for a, b in zip(segs[:-1], segs[1:], strict=True)]
        timing.update(text=lines, user_segments=segs, pauses=pauses)
    elif task == "interruption":
        i, request = _pick(rng, REQUESTS)
        _, barge = _pick(rng, BARGE_INS)
        a = lay.say(_trimmed(request, **spk), then_s=0.0)
        answer = _trimmed(ANSWERS[i], speed=1.0, half_tone=0.0)  # the model's voice: the default one
        answer_start = round(a[1] + float(rng.uniform(0.3, 0.6)), 2)
        onset = round(answer_start + float(rng.uniform(1.2, 2.5)), 2)
        lay.t = onset
        b = lay.say(_trimmed(barge, **spk), then_s=2.0)
        forced_frames = int(onset * SAMPLE_RATE // FRAME_SIZE)  # forced up to the barge-in, free from there
        model_lay = _Lay(answer_start)
        model_lay.say(answer)
        model = model_lay.render(lay.t)[: forced_frames * FRAME_SIZE]
        timing.update(text=[request, barge], model_text=ANSWERS[i], user_segments=[a, b], interrupt=list(b),
                      model_answer_start=answer_start, forced_frames=forced_frames)  # fmt: skip
    else:
        raise BenchError(f"unknown task {task!r}; the tasks are {', '.join(TASKS)}")
    user = lay.render(lay.t)
    timing["user_end"] = timing["user_segments"][-1][1]
    timing["duration_s"] = round(len(user) / SAMPLE_RATE, 3)
    return {"user": user, "model": model, "timing": timing}


def build(
    out: str | Path,
    per_task: int = DEFAULT_PER_TASK,
    seed: int = 0,
    tasks: list[str] | tuple[str, ...] | None = None,
    progress: bool = False,
) -> Path:
    """Write the task set under ``out`` (``<task>/<id>/input.wav`` + ``timing.json``) and return ``out``."""
    tasks = check_tasks(tasks)
    if per_task < 1:
        raise BenchError(f"per_task must be at least 1, got {per_task}")
    out = Path(out)
    jobs = [(task, i) for task in tasks for i in range(per_task)]
    if progress:
        from tqdm.auto import tqdm

        jobs = list(tqdm(jobs, desc="bench set", unit="item"))
    for task, i in jobs:
        made = make_item(task, i, seed)
        folder = out / task / f"{i:03d}"
        write_wav(folder / "input.wav", made["user"])
        if made["model"] is not None:
            write_wav(folder / MODEL_FILE, made["model"])
        (folder / TIMING_FILE).write_text(json.dumps(made["timing"], ensure_ascii=False, indent=1), encoding="utf-8")
    manifest = {"seed": seed, "per_task": per_task, "tasks": list(tasks), "sample_rate": SAMPLE_RATE}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return out
