"""A listening test of recordings: blind, randomized MOS and A/B trials, ratings in a CSV, and their summary.

The J-Moshi paper's human evaluation rates each dialogue on **naturalness** (does it sound like a
human conversation?) and **meaningfulness** (does what is said make sense?) on a 1–5 scale; the
mean opinion score (MOS) per system is reported with its 95 % confidence interval. An optional A/B
part asks which of two systems' clips of the same input sounds better.

This module holds everything but the user interfaces (``widgets.ListeningWidget`` in the notebook,
the rater page of ``listening_server`` for remote raters; both run these trials):

* ``collect_clips``: the clips of each system (recording folders, e.g. a sweep's runs, or audio files);
* ``ListeningTest``: loads the audio (every clip at 24 kHz, whatever its rate; a clip that cannot be
  used is named in ``skipped``), makes each rater's trials (blind ids, an order drawn from the rater's
  name so a rater who comes back gets the same order) and appends every answer to the ratings CSV at
  once (``fsync``: a crash or a closed tab loses nothing; the trials already rated are skipped);
* a saved test (``create(..., out=DIR)``, ``open(DIR)``): a self-contained folder (``test.json``,
  the clips as 24 kHz WAV, the P.808-style control clips of ``listening_quality``, ``ratings/`` with
  one CSV per rater); its trials add a headphone check first and trapping and gold clips among the
  MOS trials, and a rater who finishes gets a completion code;
* ``read_ratings`` / ``mos_table`` / ``preference_table`` / ``plot_summary``: merge the CSVs of
  several raters (rows that are not ratings are named and skipped), MOS ± 95 % CI per system
  (Student's t, ``scipy.stats``) and A/B preference rates with a two-sided binomial test
  (``scipy.stats.binomtest``, ties left out); ``read_ratings(..., screen=True)`` leaves out the raters
  who failed a quality control and says who and why.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import itertools
import json
import math
import os
import random
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf

from ..core.audio import AUDIO_SUFFIXES, SAMPLE_RATE, read_wav
from ..core.figures import KitFigure, japanese_text, new_figure
from ..core.folders import existing_folder
from ..core.record_writer import SESSION_FILE
from ..core.recording import Recording, is_recording_folder, recording_folders
from .listening_labels import LISTENING_LABELS
from .listening_quality import (
    CONTROL_KINDS,
    HEADPHONE_CHOICES,
    RATED_KINDS,
    QualityControls,
    check_rater_id,
    completion_code,
    make_controls,
    screen_reasons,
    verify_completion_code,
)

if TYPE_CHECKING:
    import pandas as pd

CRITERIA = ("naturalness", "meaningfulness")
CRITERIA_LABELS = {"naturalness": "自然さ / Naturalness", "meaningfulness": "有意味さ / Meaningfulness"}
SCALE = (1, 2, 3, 4, 5)
CHOICES = ("A", "B", "same")
COLUMNS = (
    "time_utc", "rater", "trial", "kind", "clip", "system", "item", "naturalness", "meaningfulness",
    "clip_a", "clip_b", "system_a", "system_b", "choice", "expected", "clip_s", "listened_s",
)  # fmt: skip
# The first columns, all a file written before the quality controls has: such files are read and appended to.
LEGACY_COLUMNS = COLUMNS[:14]
TEST_FILE = "test.json"  # a saved test's description, in its folder (ListeningTest.save / open)


class RatingsFileError(ValueError):
    """A ratings CSV that the kit did not write (its header is not the kit's)."""


@dataclass(frozen=True)
class Clip:
    """One stimulus: ``system`` made it from the input ``item``; ``id`` is what raters may see (blind)."""

    system: str
    path: Path
    item: str

    @property
    def id(self) -> str:
        return hashlib.sha1(f"{self.system}\0{self.path}".encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Trial:
    """``kind`` "mos": rate ``clips[0]``; "ab": compare ``clips[0]`` (A) with ``clips[1]`` (B)."""

    id: str
    kind: str
    clips: tuple[Clip, ...]


def _item_of(path: Path) -> str:
    """What input a clip was made from: the recording's input hash, else the file or folder name."""
    if is_recording_folder(path):
        meta = json.loads((path / SESSION_FILE).read_text(encoding="utf-8")).get("meta") or {}
        return str(meta.get("input_sha256") or meta.get("input") or path.name)[:16]
    return path.stem


def _expand(source: str | Path) -> list[Path]:
    """A recording folder, an audio file, or a folder of them (recording folders found at any depth)."""
    path = Path(source)
    if path.is_file() or is_recording_folder(path):
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    found = [] if is_recording_folder(path) else recording_folders(path)
    found += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not found:
        raise FileNotFoundError(f"{path}: no recording folder (session.json) or audio file in it")
    return found


def collect_clips(sources: Mapping[str, str | Path | Sequence[str | Path]] | str | Path) -> list[Clip]:
    """The clips of each system.

    ``sources``: ``{system: folder | file | [folders / files]}``; a folder is a recording folder, or
    holds recording folders (any depth) and audio files. Or one folder whose sub-folders are the
    systems (a sweep's ``out_dir``: one system per run, named after it).
    """
    if isinstance(sources, str | Path):
        root = existing_folder(sources)
        sources = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() or p.suffix.lower() in AUDIO_SUFFIXES}
    clips: list[Clip] = []
    for system, src in sources.items():
        items = [src] if isinstance(src, str | Path) else list(src)
        for one in items:
            clips += [Clip(str(system), p, _item_of(p)) for p in _expand(one)]
    if not clips:
        raise ValueError("no clips: give at least one recording folder or audio file per system")
    return clips


def load_clip_audio(path: Path, max_s: float | None = None) -> np.ndarray:
    """A clip as float32 ``[samples, channels]`` at 24 kHz (recordings: model left, user right)."""
    data = Recording.load(path).stereo() if path.is_dir() else read_wav(path, channel=None, allow_empty=True)
    if data.shape[0] == 0:
        raise ValueError("it holds no audio")
    if max_s is not None:
        data = data[: int(max_s * SAMPLE_RATE)]
    return np.ascontiguousarray(data, dtype=np.float32)


def wav_bytes(pcm: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(pcm, -1.0, 1.0), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


# ---- the ratings file --------------------------------------------------------------------------------
def append_rating(path: str | Path, row: Mapping[str, Any]) -> None:
    """Append one rating and make it durable before returning (header first in a new file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    columns = COLUMNS
    if not new:
        with path.open(encoding="utf-8", newline="") as fh:
            header = tuple(next(csv.reader(fh), []))
        if header not in (COLUMNS, LEGACY_COLUMNS):
            raise RatingsFileError(f"{path} is not a ratings file of this kit (its columns: {', '.join(header)})")
        columns = header
        with path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            torn = fh.read(1) != b"\n"  # the last write was cut: start on a new line
    size = path.stat().st_size if path.exists() else 0
    try:
        with path.open("a", encoding="utf-8", newline="") as fh:
            if not new and torn:
                fh.write("\r\n")
            writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: row.get(k, "") for k in columns})
            fh.flush()
            os.fsync(fh.fileno())
    except OSError:
        # A full disk (or any failed write): cut the file back, so that an answer not reported as saved
        # is not in it either, half or whole.
        with contextlib.suppress(OSError), path.open("r+b") as fh:
            fh.truncate(size)
        raise


def _row_problem(row: dict[str | None, Any]) -> str | None:
    if None in row or any(v is None for v in row.values()):
        return "wrong number of fields"
    if not (row.get("rater") or "").strip():
        return "no rater"
    if not (row.get("trial") or "").strip():
        return "no trial id"
    kind = row.get("kind")
    if kind in RATED_KINDS:
        if not row.get("system"):
            return "no system"
        for c in CRITERIA:
            if row.get(c) not in {str(v) for v in SCALE}:
                return f"{c} {row.get(c)!r} is not one of 1-5"
        return None
    if kind == "ab":
        if not row.get("system_a") or not row.get("system_b"):
            return "no systems for the A/B pair"
        if row.get("choice") not in CHOICES:
            return f"choice {row.get('choice')!r} is not A, B or same"
        return None
    if kind == "headphone":
        if row.get("choice") not in HEADPHONE_CHOICES:
            return f"headphone choice {row.get('choice')!r} is not 1, 2 or 3"
        return None
    return f"kind {kind!r} is not mos, ab, {', '.join(CONTROL_KINDS)}"


def read_ratings(
    paths: str | Path | Iterable[str | Path], latest_only: bool = True, screen: bool = False
) -> pd.DataFrame:
    """The ratings of one or several CSVs (several raters merge), as a DataFrame.

    Parameters
    ----------
    paths: CSV files, or a folder of them (a saved test's ``ratings/``, one CSV per rater), or a
        saved test's folder.
    latest_only: a rater's latest answer to a trial replaces the earlier ones (a re-rating).
    screen: leave out every rater who failed a quality control (``listening_quality.screen_reasons``:
        trapping or gold clips, the headphone check, answers faster than the clip).

    Returns
    -------
    The rows, one per answer. Rows that are not ratings of this kit (bad values, wrong fields, another
    file's rows) are named in a warning each, listed in ``df.attrs["skipped"]`` as
    ``"file:line: reason"``, and left out. With ``screen``, ``df.attrs["screened_out"]`` is
    ``{rater: [reasons]}`` and ``df.attrs["raters_kept"]`` the number of raters kept; ``mos_table``
    and ``preference_table`` state the count (``listening_quality.screening_report`` prints it).
    """
    import pandas as pd

    if isinstance(paths, str | Path) and Path(paths).is_dir():
        folder = Path(paths)
        folder = folder / "ratings" if (folder / TEST_FILE).exists() else folder
        paths = sorted(folder.glob("*.csv"))
    files = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for path in files:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such ratings file")
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in LEGACY_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                skipped.append(f"{path}: not a ratings file (missing columns: {', '.join(missing)})")
                continue
            for row in reader:
                problem = _row_problem(row)
                if problem is not None:
                    skipped.append(f"{path}:{reader.line_num}: {problem}")
                    continue
                rows.append({**{c: "" for c in COLUMNS}, **row, "source": str(path)})
    for s in skipped:
        warnings.warn(f"ratings row skipped: {s}", stacklevel=2)
    df = pd.DataFrame(rows, columns=[*COLUMNS, "source"])
    for c in CRITERIA:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    if latest_only and len(df):
        df = df.drop_duplicates(["rater", "trial"], keep="last").reset_index(drop=True)
    if screen:
        out = screen_reasons(df)
        df = df[~df["rater"].isin(list(out))].reset_index(drop=True)
        df.attrs["screened_out"] = out
        df.attrs["raters_kept"] = int(df["rater"].nunique())
    df.attrs["skipped"] = skipped
    return df


def _screened_count(df: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a ``screened_out`` column (raters left out) when ``df`` was screened."""
    out = df.attrs.get("screened_out")
    if out is not None:
        table["screened_out"] = len(out)
        table.attrs["screened_out"] = out
    return table


# ---- the summary --------------------------------------------------------------------------------------
def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its Student-t confidence interval (NaN with fewer than 2 values)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan
    sem = float(stats.sem(x))
    if sem == 0:
        return mean, 0.0
    low, _high = stats.t.interval(confidence, len(x) - 1, loc=mean, scale=sem)
    return mean, float(mean - low)


def mos_table(df: pd.DataFrame, confidence: float = 0.95, criteria: Sequence[str] = CRITERIA) -> pd.DataFrame:
    """Per system: ``<criterion>`` (MOS), ``<criterion>_ci95`` (± half-width), ``n`` ratings, ``raters``.

    ``criteria``: the score columns (the talk page's ratings add ``overall``).
    """
    import pandas as pd

    mos = df[df["kind"] == "mos"]
    out = []
    for system, g in mos.groupby("system", sort=True):
        row: dict[str, Any] = {"system": system, "n": len(g), "raters": g["rater"].nunique()}
        for c in criteria:
            row[c], row[f"{c}_ci95"] = mean_ci(g[c].tolist(), confidence)
        out.append(row)
    cols = ["system", *[x for c in criteria for x in (c, f"{c}_ci95")], "n", "raters"]
    return _screened_count(df, pd.DataFrame(out, columns=cols).set_index("system"))


def preference_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per pair of systems: wins of each, ties, the first's preference rate and the binomial p-value."""
    import pandas as pd
    from scipy.stats import binomtest

    ab = df[df["kind"] == "ab"]
    counts: dict[tuple[str, str], list[int]] = {}
    for _, r in ab.iterrows():
        first, second = sorted((r["system_a"], r["system_b"]))
        c = counts.setdefault((first, second), [0, 0, 0])
        winner = {"A": r["system_a"], "B": r["system_b"]}.get(r["choice"])
        c[0 if winner == first else 1 if winner == second else 2] += 1
    rows = []
    for (first, second), (w1, w2, ties) in sorted(counts.items()):
        n = w1 + w2
        rows.append({
            "system_1": first, "system_2": second, "wins_1": w1, "wins_2": w2, "ties": ties,
            "rate_1": w1 / n if n else math.nan,
            "p_value": binomtest(w1, n, 0.5).pvalue if n else math.nan,
        })  # fmt: skip
    cols = ["system_1", "system_2", "wins_1", "wins_2", "ties", "rate_1", "p_value"]
    return _screened_count(df, pd.DataFrame(rows, columns=cols))


@japanese_text
def plot_summary(df: pd.DataFrame, title: str = "") -> KitFigure:
    """MOS ± 95 % CI per system (both criteria), and the A/B preference rates if there are any."""
    mos, pref = mos_table(df), preference_table(df)
    panels = 1 + (len(pref) > 0)
    fig = new_figure(figsize=(5 + 4 * (panels - 1), 3.6), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    ax = axes[0]
    x = np.arange(len(mos))
    width = 0.38
    for i, c in enumerate(CRITERIA):
        ax.bar(x + (i - 0.5) * width, mos[c], width, yerr=mos[f"{c}_ci95"].fillna(0), capsize=3,
               label=CRITERIA_LABELS[c])  # fmt: skip
    ax.set_xticks(x, [str(s) for s in mos.index], rotation=20, ha="right")
    ax.set_ylim(1, 5)
    ax.set_ylabel("MOS (± 95% CI)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title or "平均オピニオン評点 / MOS")
    if len(pref):
        ax = axes[1]
        labels = [f"{r.system_1} vs {r.system_2}" for r in pref.itertuples()]
        n = (pref["wins_1"] + pref["wins_2"] + pref["ties"]).replace(0, 1)
        y = np.arange(len(pref))
        ax.barh(y, pref["wins_1"] / n, label="1st preferred")
        ax.barh(y, pref["ties"] / n, left=pref["wins_1"] / n, color="#bbbbbb", label="same")
        ax.barh(y, pref["wins_2"] / n, left=(pref["wins_1"] + pref["ties"]) / n, label="2nd preferred")
        for yi, p in zip(y, pref["p_value"], strict=True):
            ax.text(1.01, yi, f"p={p:.3g}", va="center", fontsize=8)
        ax.set_yticks(y, labels)
        ax.set_xlim(0, 1)
        ax.set_title("選好 / A/B preference")
        ax.legend(fontsize=8, loc="lower right")
    return fig


# ---- the test -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Control:
    """A quality-control clip of a saved test: ``kind`` trap | gold | headphone, and the answer expected."""

    kind: str
    clip: Clip
    expected: str


@dataclass
class ListeningTest:
    """The clips, each rater's trials, and the ratings file. Use from the widget, the rater page or code.

    ``mos``: one rating trial per clip; ``ab``: one preference trial per pair of systems with a clip
    of the same item (input). ``max_s`` trims long clips. ``seed`` with the rater's name fixes the
    order of that rater's trials (blind: the ids do not name the systems; A/B sides are drawn too).

    ``ratings`` is one CSV file (``.csv``) or a folder with one CSV per rater (a saved test's
    ``ratings/``). A test saved in a folder (``create(..., out=DIR)``, ``open(DIR)``) is
    self-contained (the clips as 24 kHz WAV files, the quality-control clips, the ratings) and
    has ``controls``: the headphone check comes first, the trapping and gold clips are placed among
    the MOS trials (P.808-style quality controls, ``listening_quality``).
    """

    clips: list[Clip]
    ratings: Path
    mos: bool = True
    ab: bool = False
    seed: int = 0
    max_s: float | None = None
    audio: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    skipped: dict[str, str] = field(default_factory=dict)
    controls: list[Control] = field(default_factory=list)
    folder: Path | None = None
    test_id: str = ""
    secret: str = field(default="", repr=False)
    full_play: bool = False

    def __post_init__(self) -> None:
        self.ratings = Path(self.ratings)

    @classmethod
    def create(
        cls,
        sources: Mapping[str, str | Path | Sequence[str | Path]] | str | Path,
        ratings: str | Path | None = None,
        *,
        out: str | Path | None = None,
        quality: QualityControls | None = None,
        **kwargs: Any,
    ) -> ListeningTest:
        """A test of the clips of ``sources`` (see ``collect_clips``).

        Parameters
        ----------
        sources: ``{system: folder | file | [folders / files]}``, or a sweep's folder.
        ratings: the ratings CSV (or folder) of an in-memory test (the notebook widget).
        out: save the test in this folder (``save``) and return it opened from there: what the rater
            page (``serve``, ``jmoshi-nb listen serve``) and Modal serve. Refused if it already
            holds a test.
        quality: the quality controls of a saved test (default: all on, ``QualityControls()``).
        **kwargs: ``mos``, ``ab``, ``seed``, ``max_s``.
        """
        if out is None:
            if ratings is None:
                raise ValueError("give the ratings file, or out= to save the test in a folder")
            test = cls(collect_clips(sources), Path(ratings), **kwargs)
            test.load_audio()
            return test
        if (Path(out) / TEST_FILE).exists():
            raise FileExistsError(f"{out} already holds a listening test: open it (ListeningTest.open)")
        test = cls(collect_clips(sources), Path(out) / "ratings", **kwargs)
        test.load_audio()
        test.save(out, quality or QualityControls())
        return cls.open(out)

    def save(self, folder: str | Path, quality: QualityControls | None = None) -> Path:
        """Write the test into ``folder``: ``test.json``, ``clips/<id>.wav``, ``controls/*.wav``, ``ratings/``.

        Parameters
        ----------
        folder: a new folder (or one without a ``test.json``).
        quality: which control clips to make (default ``QualityControls()``: all of them).

        Returns
        -------
        ``folder``.
        """
        import secrets

        from ..core.audio import write_wav

        folder = Path(folder)
        if (folder / TEST_FILE).exists():
            raise FileExistsError(f"{folder} already holds a listening test: open it (ListeningTest.open)")
        quality = quality or QualityControls()
        clips = []
        for c in self.clips:
            rel = f"clips/{c.id}.wav"
            write_wav(folder / rel, self.audio[c.id])
            clips.append({"system": c.system, "item": c.item, "path": rel, "source": str(c.path)})
        controls = []
        for spec in make_controls(self.audio, quality, self.seed, load=lambda p: load_clip_audio(p, self.max_s)):
            rel = f"controls/{spec.name}.wav"
            write_wav(folder / rel, spec.audio)
            controls.append({"kind": spec.kind, "path": rel, "expected": spec.expected})
        (folder / "ratings").mkdir(parents=True, exist_ok=True)
        meta = {
            "id": secrets.token_hex(8), "secret": secrets.token_hex(16), "mos": self.mos, "ab": self.ab,
            "seed": self.seed, "max_s": self.max_s, "full_play": quality.full_play, "clips": clips,
            "controls": controls, "skipped": self.skipped,
        }  # fmt: skip
        (folder / TEST_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
        return folder

    @classmethod
    def open(cls, folder: str | Path) -> ListeningTest:
        """A test saved by ``create(..., out=)`` / ``save``; a clip that cannot be decoded is named in ``skipped``.

        Raises
        ------
        FileNotFoundError: naming ``folder`` when it is not there or holds no ``test.json``.
        """
        folder = Path(folder)
        if folder.is_file() and folder.name == TEST_FILE:
            folder = folder.parent
        if not (folder / TEST_FILE).is_file():
            what = "no such folder" if not folder.exists() else f"no {TEST_FILE} in it (not a saved listening test)"
            raise FileNotFoundError(f"{folder}: {what}")
        meta = json.loads((folder / TEST_FILE).read_text(encoding="utf-8"))
        clips = [Clip(c["system"], Path(c["path"]), c["item"]) for c in meta["clips"]]
        controls = [Control(c["kind"], Clip(f"_{c['kind']}", Path(c["path"]), c["kind"]), c["expected"])
                    for c in meta.get("controls", [])]  # fmt: skip
        test = cls(clips, folder / "ratings", mos=meta["mos"], ab=meta["ab"], seed=meta["seed"], controls=controls,
                   folder=folder, test_id=meta["id"], secret=meta["secret"], full_play=meta["full_play"])  # fmt: skip
        test.skipped.update(meta.get("skipped", {}))
        test.load_audio()
        return test

    def _file(self, path: Path) -> Path:
        return path if path.is_absolute() or self.folder is None else self.folder / path

    def load_audio(self) -> None:
        """Read every clip at 24 kHz; the clips that cannot be used are named in ``skipped`` and dropped."""
        usable = []
        for clip in self.clips:
            try:
                self.audio[clip.id] = load_clip_audio(self._file(clip.path), self.max_s)
                usable.append(clip)
            except (OSError, ValueError) as exc:
                self.skipped[str(self._file(clip.path))] = str(exc)
                warnings.warn(f"clip {self._file(clip.path)} ({clip.system}) cannot be used: {exc}", stacklevel=2)
        self.clips = usable
        if not self.clips:
            raise ValueError("no usable clip: " + "; ".join(f"{k}: {v}" for k, v in self.skipped.items()))
        kept = []
        for control in self.controls:
            try:
                self.audio[control.clip.id] = load_clip_audio(self._file(control.clip.path))
                kept.append(control)
            except (OSError, ValueError) as exc:
                self.skipped[str(self._file(control.clip.path))] = str(exc)
                warnings.warn(f"control clip {control.clip.path} cannot be used: {exc}", stacklevel=2)
        self.controls = kept

    @property
    def systems(self) -> list[str]:
        return sorted({c.system for c in self.clips})

    def clip(self, clip_id: str) -> Clip:
        for c in [*self.clips, *(k.clip for k in self.controls)]:
            if c.id == clip_id:
                return c
        raise KeyError(f"no clip {clip_id!r} in this test")

    def wav(self, clip: Clip | str) -> bytes:
        """The clip as a 24 kHz 16-bit WAV file, for the browser's audio element."""
        return wav_bytes(self.audio[clip if isinstance(clip, str) else clip.id])

    def seconds(self, trial: Trial) -> float:
        """How long the trial's clips last together (what a rater must listen to before answering)."""
        return sum(len(self.audio[c.id]) for c in trial.clips) / SAMPLE_RATE

    def expected(self, trial: Trial) -> str:
        """The answer a control trial expects ("2", "1-2", a headphone tone "1"-"3"); "" for the others."""
        for control in self.controls:
            if trial.kind == control.kind and trial.clips[0].id == control.clip.id:
                return control.expected
        return ""

    def trials(self, rater: str) -> list[Trial]:
        """All of ``rater``'s trials in their order, the same each time.

        The headphone check first (if the test has one), then the MOS trials with the trapping and
        gold clips among them (never first), then A/B.
        """
        rng = random.Random(f"{self.seed}:{rater.strip()}")
        mos = [Trial(f"mos:{c.id}", "mos", (c,)) for c in self.clips] if self.mos else []
        rng.shuffle(mos)
        ab: list[Trial] = []
        if self.ab:
            by_item: dict[str, list[Clip]] = {}
            for c in self.clips:
                by_item.setdefault(c.item, []).append(c)
            for clips in by_item.values():
                for a, b in itertools.combinations(sorted(clips, key=lambda c: c.id), 2):
                    if a.system == b.system:
                        continue
                    pair = (a, b) if rng.random() < 0.5 else (b, a)
                    ab.append(Trial(f"ab:{a.id}|{b.id}", "ab", pair))
            rng.shuffle(ab)
        head = [Trial(f"headphone:{k.clip.id}", "headphone", (k.clip,)) for k in self.controls if k.kind == "headphone"]
        crng = random.Random(f"{self.seed}:{rater.strip()}:controls")
        for k in self.controls:
            if k.kind in ("trap", "gold"):
                mos.insert(crng.randint(1, max(1, len(mos))), Trial(f"{k.kind}:{k.clip.id}", k.kind, (k.clip,)))
        return head + mos + ab

    def ratings_path(self, rater: str) -> Path:
        """The CSV ``rater``'s answers go to: the ratings file, or ``<ratings folder>/<rater>.csv``."""
        if self.ratings.suffix.lower() == ".csv":
            return self.ratings
        return self.ratings / f"{check_rater_id(rater)}.csv"

    def done(self, rater: str) -> set[str]:
        """Trial ids ``rater`` has answered in the ratings file (what a resumed session skips)."""
        path = self.ratings_path(rater)
        if not path.exists():
            return set()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = read_ratings(path)
        return set(df.loc[df["rater"] == rater.strip(), "trial"])

    def remaining(self, rater: str) -> list[Trial]:
        done = self.done(rater)
        return [t for t in self.trials(rater) if t.id not in done]

    def answer(
        self,
        rater: str,
        trial: Trial,
        naturalness: int | None = None,
        meaningfulness: int | None = None,
        choice: str | None = None,
        listened_s: float | None = None,
    ) -> dict[str, Any]:
        """Check one answer and append it to the ratings file; returns the row written.

        ``listened_s``: the seconds between the trial being shown and the answer (the rater page
        measures it), kept for screening answers faster than the clip.
        """
        rater = rater.strip()
        if not rater:
            raise ValueError("enter the rater's name first / 評価者名を入力してください")
        row: dict[str, Any] = {"time_utc": datetime.now(UTC).isoformat(timespec="seconds"), "rater": rater,
                               "trial": trial.id, "kind": trial.kind, "expected": self.expected(trial),
                               "clip_s": f"{self.seconds(trial):.3f}" if self.audio else "",
                               "listened_s": "" if listened_s is None else f"{listened_s:.3f}"}  # fmt: skip
        if trial.kind in RATED_KINDS:
            for name, value in (("naturalness", naturalness), ("meaningfulness", meaningfulness)):
                if value not in SCALE:
                    raise ValueError(f"{name} must be 1-5, got {value!r}")
            c = trial.clips[0]
            row.update(clip=c.id, system=c.system, item=c.item, naturalness=naturalness,
                       meaningfulness=meaningfulness)  # fmt: skip
        elif trial.kind == "headphone":
            if str(choice) not in HEADPHONE_CHOICES:
                raise ValueError(f"the headphone check's answer must be 1, 2 or 3, got {choice!r}")
            c = trial.clips[0]
            row.update(clip=c.id, system=c.system, item=c.item, choice=str(choice))
        else:
            if choice not in CHOICES:
                raise ValueError(f"choice must be one of {', '.join(CHOICES)}, got {choice!r}")
            a, b = trial.clips
            row.update(clip_a=a.id, clip_b=b.id, system_a=a.system, system_b=b.system, item=a.item, choice=choice)
        append_rating(self.ratings_path(rater), row)
        return row

    def completion_code(self, rater: str) -> str:
        """The code ``rater`` gets after the last trial (a saved test; verify with ``verify_code``)."""
        if not self.secret:
            raise ValueError("only a saved test (create(..., out=) / open) has completion codes")
        return completion_code(self.secret, self.test_id, rater)

    def verify_code(self, rater: str, code: str) -> bool:
        """Whether ``code`` is ``rater``'s completion code in this test."""
        return bool(self.secret) and verify_completion_code(self.secret, self.test_id, rater, code)

    def serve(self, port: int = 0, host: str = "127.0.0.1", token: str | None = None) -> Any:
        """Start the rater page of this saved test on a background thread; returns its handle.

        The handle has ``url`` (the link to send raters, with the token), ``progress()`` and
        ``stop()``. See ``listening_server.RaterServer``.
        """
        from .listening_server import RaterServer

        return RaterServer(self, token=token).start(host=host, port=port)


def summarize(paths: str | Path | Iterable[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(mos_table, preference_table)`` of one or several raters' CSVs."""
    df = read_ratings(paths)
    return mos_table(df), preference_table(df)


__all__ = [
    "CRITERIA",
    "LISTENING_LABELS",
    "Clip",
    "Control",
    "ListeningTest",
    "QualityControls",
    "RatingsFileError",
    "Trial",
    "append_rating",
    "collect_clips",
    "load_clip_audio",
    "mean_ci",
    "mos_table",
    "plot_summary",
    "preference_table",
    "read_ratings",
    "summarize",
]
