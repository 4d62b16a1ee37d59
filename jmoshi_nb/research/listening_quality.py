"""Quality controls of a crowd listening test, after ITU-T P.808: control clips, completion codes, screening.

ITU-T P.808 (crowdsourced listening tests) and its open implementation by Microsoft describe what
makes crowd ratings trustworthy. The kit follows these points (``ListeningTest`` puts the control
trials among a rater's trials; ``read_ratings(..., screen=True)`` applies the screening):

* **Trapping clips** (P.808's "trapping questions"): a clip with a spoken instruction overlaid,
  「この音声には 2 を付けてください」 ("please rate this clip 2"), made offline with the kit's
  Japanese speech (``research.speech``, pyopenjtalk). A rater who gives another rating did not listen.
* **Gold clips** (P.808's "gold standard questions"): a heavily degraded version of a clip (band
  limited to 2 kHz, white noise at 0 dB SNR, hard clipped) expected at 1-2, and, if the experimenter
  gives them, known-good references (e.g. recorded human dialogues) expected at 4-5.
* **Headphone check** before the test: the antiphase test of Woods, Siegel, Traer & McDermott (2017),
  "Headphone screening to facilitate web-based auditory experiments", *Attention, Perception, &
  Psychophysics* 79(7): 2064-2072. Each trial plays three 200 Hz tones; one is 6 dB softer, one is
  in antiphase between the two ears. Over headphones the softer one is the quietest; over
  loudspeakers the antiphase one cancels in the air and sounds quietest. Passing: 5 of 6 right
  (Woods et al.'s criterion; with fewer trials, the same share rounded up).
* **Full listening**: the page unlocks the answers only once the clip has played to the end (no
  seeking); the server also times each answer, and a rater who answered faster than the clip lasts
  is screened out.
* **Completion code**: an HMAC of the test's id and the rater id under the test's secret, so a crowd
  platform's submissions can be checked (``completion_code`` / ``verify_completion_code``).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.audio import SAMPLE_RATE, resample

if TYPE_CHECKING:
    import pandas as pd

CONTROL_KINDS = ("trap", "gold", "headphone")
RATED_KINDS = ("mos", "trap", "gold")  # rated on the two 1-5 scales
HEADPHONE_CHOICES = ("1", "2", "3")
TRAP_VALUES = (2, 4, 1, 5, 3)  # the rating each successive trapping clip asks for
TRAP_TEXT = "この音声には、{value}を付けてください。"
TRAP_TEXT_EN = "please rate this clip {value}"
GOLD_BAD_RANGE = (1, 2)
GOLD_GOOD_RANGE = (4, 5)
HEADPHONE_PASS_SHARE = 5 / 6  # Woods et al. 2017: 5 of 6 trials right
HEADPHONE_TONE_HZ = 200.0
HEADPHONE_TONE_S = 1.0
HEADPHONE_GAP_S = 0.5
FULL_LISTEN_SHARE = 0.95  # an answer before 95 % of the clip's length has passed: not listened to the end
RATER_ID = re.compile(r"[\w-][\w.-]{0,63}")


@dataclass(frozen=True)
class QualityControls:
    """Which P.808-style controls a saved listening test gets (all on by default).

    Parameters
    ----------
    traps: trapping clips (each asks for a rating from ``TRAP_VALUES``, in turn).
    gold_bad: heavily degraded gold clips, expected at 1-2.
    gold_good: known-good reference audio files or recording folders, expected at 4-5.
    headphone_trials: antiphase headphone-check trials before the test (0: no check). Woods et al.
        validated 6 and discourage fewer; fewer is for demos and tests only.
    full_play: answers unlock only after the clip played to the end.
    """

    traps: int = 1
    gold_bad: int = 1
    gold_good: Sequence[str | Path] = ()
    headphone_trials: int = 6
    full_play: bool = True

    @classmethod
    def off(cls) -> QualityControls:
        """No control at all (a lab test with known raters)."""
        return cls(traps=0, gold_bad=0, headphone_trials=0, full_play=False)


def check_rater_id(rater: str) -> str:
    """``rater`` stripped, if it is a safe id (letters, digits, ``_ - .``, 1-64, no leading dot).

    Raises
    ------
    ValueError: naming the id, when it holds path characters, spaces or is empty or too long.
    """
    rater = str(rater).strip()
    if not RATER_ID.fullmatch(rater) or ".." in rater:
        raise ValueError(
            f"rater id {rater!r} is not allowed: use 1-64 letters, digits, '_', '-' or '.' "
            "/ 評価者 ID は英数字と _ - . の 1〜64 文字にしてください"
        )
    return rater


def new_rater_id() -> str:
    """A fresh random rater id (``r-`` and 8 hex digits)."""
    import secrets

    return f"r-{secrets.token_hex(4)}"


def completion_code(secret: str, test_id: str, rater: str) -> str:
    """The code a rater gets at the end: 10 hex digits of HMAC-SHA256(secret, test id + rater id)."""
    digest = hmac.new(secret.encode(), f"{test_id}\0{rater.strip()}".encode(), hashlib.sha256).hexdigest()
    return digest[:10].upper()


def page_token(secret: str) -> str:
    """The rater page's access token of a saved test (its link carries it): derived from the test's secret."""
    return hmac.new(secret.encode(), b"rater-page", hashlib.sha256).hexdigest()[:32]


def verify_completion_code(secret: str, test_id: str, rater: str, code: str) -> bool:
    """Whether ``code`` is the completion code of ``rater`` in this test (case and spaces ignored)."""
    return hmac.compare_digest(completion_code(secret, test_id, rater), code.strip().upper())


# ---- control clips ----------------------------------------------------------------------------------
def trap_audio(background: np.ndarray, value: int) -> np.ndarray:
    """``background`` ([samples, channels]) at -8 dB with the spoken instruction to rate ``value`` on top.

    The instruction starts a third of the way into the clip (the rater has to listen past the start);
    the clip is lengthened if the speech would run past its end.
    """
    from .speech import synthesize

    speech = synthesize(TRAP_TEXT.format(value=value))
    bg = background if background.ndim == 2 else background[:, None]
    start = len(bg) // 3
    length = max(len(bg), start + len(speech) + SAMPLE_RATE // 2)
    out = np.zeros((length, bg.shape[1]), dtype=np.float32)
    out[: len(bg)] = bg * 0.4
    out[start : start + len(speech)] += speech[:, None]
    return np.clip(out, -1.0, 1.0)


def degraded_audio(clip: np.ndarray, seed: int = 0) -> np.ndarray:
    """A heavily degraded version of ``clip`` (a known-bad gold clip): 2 kHz band, 0 dB SNR noise, clipping."""
    x = clip if clip.ndim == 2 else clip[:, None]
    narrow = resample(resample(x, SAMPLE_RATE, 4000), 4000, SAMPLE_RATE)[: len(x)]
    rms = float(np.sqrt(np.mean(narrow**2))) or 0.05
    noise = np.random.default_rng(seed).standard_normal(narrow.shape).astype(np.float32) * rms
    y = narrow + noise
    limit = 0.3 * (float(np.abs(y).max()) or 1.0)
    y = np.clip(y, -limit, limit) / limit * 0.7
    return y.astype(np.float32)


def headphone_audio(quiet_position: int, antiphase_position: int) -> np.ndarray:
    """One antiphase-test trial (Woods et al. 2017): three 200 Hz tones, stereo, at 24 kHz.

    Tone ``quiet_position`` (0-2) is 6 dB softer; tone ``antiphase_position`` has its right channel
    inverted; the third is the reference. Raised-cosine ramps of 50 ms; gaps of 0.5 s.
    """
    if quiet_position == antiphase_position or not {quiet_position, antiphase_position} <= {0, 1, 2}:
        raise ValueError("the softer tone and the antiphase tone are two different ones of 0, 1, 2")
    n = int(HEADPHONE_TONE_S * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tone = 0.3 * np.sin(2 * np.pi * HEADPHONE_TONE_HZ * t)
    ramp = int(0.05 * SAMPLE_RATE)
    env = np.ones(n)
    env[:ramp] = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    env[-ramp:] = env[:ramp][::-1]
    tone *= env
    gap = np.zeros((int(HEADPHONE_GAP_S * SAMPLE_RATE), 2))
    parts = [gap]
    for pos in range(3):
        left = tone * (10 ** (-6 / 20) if pos == quiet_position else 1.0)
        right = -left if pos == antiphase_position else left
        parts += [np.stack([left, right], axis=1), gap]
    return np.concatenate(parts).astype(np.float32)


@dataclass(frozen=True)
class ControlSpec:
    """One control clip to write: its kind, file name, audio and expected answer."""

    kind: str
    name: str
    audio: np.ndarray
    expected: str


def make_controls(
    audio: Mapping[str, np.ndarray], quality: QualityControls, seed: int = 0, load: Any = None
) -> list[ControlSpec]:
    """The control clips of a test whose clips' audio is ``audio`` (clip id -> [samples, channels]).

    ``load(path) -> audio`` reads the known-good references (``quality.gold_good``).
    """
    rng = random.Random(f"{seed}:controls")
    ids = sorted(audio)
    specs: list[ControlSpec] = []
    for i in range(quality.traps):
        value = TRAP_VALUES[i % len(TRAP_VALUES)]
        specs.append(ControlSpec("trap", f"trap-{i + 1}", trap_audio(audio[rng.choice(ids)], value), str(value)))
    for i in range(quality.gold_bad):
        bad = degraded_audio(audio[rng.choice(ids)], seed=seed + i)
        specs.append(ControlSpec("gold", f"gold-bad-{i + 1}", bad, "{}-{}".format(*GOLD_BAD_RANGE)))
    for i, path in enumerate(quality.gold_good):
        good = load(Path(path))
        specs.append(ControlSpec("gold", f"gold-good-{i + 1}", good, "{}-{}".format(*GOLD_GOOD_RANGE)))
    for i in range(quality.headphone_trials):
        quiet, anti = rng.sample(range(3), 2)
        specs.append(ControlSpec("headphone", f"headphone-{i + 1}", headphone_audio(quiet, anti), str(quiet + 1)))
    return specs


# ---- screening ----------------------------------------------------------------------------------------
def _expected_range(expected: str) -> tuple[int, int]:
    low, _, high = str(expected).partition("-")
    return int(low), int(high or low)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def headphone_needed(trials: int) -> int:
    """How many headphone-check trials a rater must get right out of ``trials``."""
    return math.ceil(HEADPHONE_PASS_SHARE * trials - 1e-9)


def screen_reasons(df: pd.DataFrame) -> dict[str, list[str]]:
    """Per rater who fails a control: the reasons, one line each (raters who pass are not listed).

    A rater fails on a trapping clip rated otherwise than it asked (either scale), a gold clip rated
    outside its range (either scale), a headphone check with fewer right than ``headphone_needed``,
    or any answer given before ``FULL_LISTEN_SHARE`` of its clip's length had passed.
    """
    out: dict[str, list[str]] = {}
    for rater, g in df.groupby("rater", sort=True):
        reasons: list[str] = []
        for r in g.itertuples():
            if r.kind in ("trap", "gold") and r.expected:
                low, high = _expected_range(r.expected)
                given = (int(r.naturalness), int(r.meaningfulness))
                if not all(low <= v <= high for v in given):
                    what = f"asked for {low}" if r.kind == "trap" else f"expected {low}-{high}"
                    reasons.append(f"{r.kind} {r.trial}: rated {given[0]}/{given[1]}, {what}")
        head = g[g["kind"] == "headphone"]
        if len(head):
            right = int((head["choice"].astype(str) == head["expected"].astype(str)).sum())
            need = headphone_needed(len(head))
            if right < need:
                reasons.append(f"headphone check: {right} of {len(head)} right (needs {need})")
        clip_s = g["clip_s"].map(_number)
        listened = g["listened_s"].map(_number)
        fast = (listened < FULL_LISTEN_SHARE * clip_s).fillna(False)
        if fast.any():
            first = g[fast].iloc[0]
            reasons.append(
                f"{int(fast.sum())} answer(s) before the clip's end "
                f"(e.g. {_number(first['listened_s']):.1f} s for a {_number(first['clip_s']):.1f} s clip)"
            )
        if reasons:
            out[str(rater)] = reasons
    return out


def screening_report(df: pd.DataFrame) -> str:
    """One line per rater left out by ``read_ratings(..., screen=True)`` and why (bilingual heading)."""
    out = df.attrs.get("screened_out")
    if out is None:
        return "選別なし / not screened"
    kept = df.attrs.get("raters_kept", df["rater"].nunique())
    lines = [f"選別で除外 / screened out: {len(out)} rater(s), kept {kept}"]
    for rater, reasons in sorted(out.items()):
        lines.append(f"  {rater}: " + "; ".join(reasons))
    return "\n".join(lines)


__all__ = [
    "CONTROL_KINDS",
    "QualityControls",
    "check_rater_id",
    "completion_code",
    "degraded_audio",
    "headphone_audio",
    "headphone_needed",
    "make_controls",
    "new_rater_id",
    "page_token",
    "screen_reasons",
    "screening_report",
    "trap_audio",
    "verify_completion_code",
]
