"""What a session produced, kept in memory while it runs and saved as a folder.

A recording folder holds:

* ``audio.wav``: stereo, 24 kHz, 16-bit; left = model, right = user, sample-aligned by frame
  (model audio of frame ``i`` sits where the user audio of frame ``i`` sits; the LM's initial
  delay is silence on the left).
* ``events.jsonl``: one JSON object a line, ``{"type": "text" | "metrics" | "params", ...}`` in the
  order they happened; text events carry ``frame``, ``token``, ``text`` and ``t`` (seconds since
  the session started, when the client received it).
* ``session.json``: the config in force, the server's session description (model, device...),
  the input's hash, package versions, and the schema version of this layout.

Loading a folder gives back the same object; nothing needs the model to replot or re-analyse.

``stream_to(folder)`` (used wherever a folder is given: ``run_wav(out=)``, ``jmoshi-nb run --out``,
``start(out=)``, sweeps) writes the folder while the session runs (see ``record_writer``): a process
killed mid-session leaves a folder that ``load`` reads, marked ``cut_short``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soundfile as sf

from .audio import FRAME_S, FRAME_SIZE, SAMPLE_RATE, sha256_of, write_wav
from .config import SessionConfig, package_versions
from .record_writer import PART_FILES, SESSION_FILE, STATE_COMPLETE, STATE_RECORDING, RecordWriter, read_part

LAYOUT_VERSION = 1


class FrameOutput(Protocol):
    """What one engine step gives (``model.engine.FrameResult``), as far as a recording needs it."""

    index: int
    pcm: np.ndarray | None
    text_token: int | None
    text: str

    def metrics(self) -> dict[str, Any]: ...


@dataclass
class TextEvent:
    frame: int
    token: int
    text: str
    t: float

    @property
    def time(self) -> float:
        """Position in the audio (seconds): the start of the frame that produced it."""
        return self.frame * FRAME_S


@dataclass
class Recording:
    sample_rate: int = SAMPLE_RATE
    user_chunks: list[np.ndarray] = field(default_factory=list)
    model_chunks: list[np.ndarray] = field(default_factory=list)
    text: list[TextEvent] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    params: list[dict[str, Any]] = field(default_factory=list)
    config: SessionConfig | None = None
    session: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    _writer: RecordWriter | None = field(default=None, repr=False, compare=False)
    _header_key: tuple[Any, ...] = field(default=(), repr=False, compare=False)

    # ---- streaming to disk -----------------------------------------------------------------
    @property
    def streaming_to(self) -> Path | None:
        """The folder this recording is being written to as it happens, if any."""
        return self._writer.folder if self._writer is not None else None

    def stream_to(self, folder: str | Path) -> RecordWriter:
        """Write this recording into ``folder`` as it grows; ``save(folder)`` completes it."""
        if self._writer is not None:
            raise RuntimeError(f"this recording already streams to {self._writer.folder}")
        self._writer = RecordWriter(folder, self._session_doc(streaming=True), self.sample_rate)
        self._header_key = self._meta_key()
        for chunk in self.user_chunks:
            self._writer.put_audio("user", chunk)
        for chunk in self.model_chunks:
            self._writer.put_audio("model", chunk)
        for ev in self._events():
            self._writer.put_event(ev)
        return self._writer

    def _meta_key(self) -> tuple[Any, ...]:
        return (len(self.meta), self.meta.get("seed"), len(self.session))

    def _stream_event(self, event: dict[str, Any]) -> None:
        if self._writer is not None:
            self._writer.put_event(event)

    @property
    def cut_short(self) -> bool:
        """True for a folder whose session never finished (process killed, connection lost...)."""
        return bool(self.meta.get("cut_short") or self.meta.get("incomplete"))

    @property
    def empty(self) -> bool:
        """No frame and no audio: a session opened and closed before any audio went through."""
        return not self.metrics and self.duration == 0

    # ---- filling it ------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def add_user(self, pcm: np.ndarray) -> None:
        self.user_chunks.append(np.asarray(pcm, dtype=np.float32))
        if self._writer is not None:
            self._writer.put_audio("user", self.user_chunks[-1])

    def add_model(self, pcm: np.ndarray) -> None:
        if len(pcm):
            self.model_chunks.append(np.asarray(pcm, dtype=np.float32))
            if self._writer is not None:
                self._writer.put_audio("model", self.model_chunks[-1])

    def add_model_silence(self, samples: int) -> None:
        if samples > 0:
            self.model_chunks.append(np.zeros(samples, dtype=np.float32))
            if self._writer is not None:
                self._writer.put_audio("model", self.model_chunks[-1])

    def add_frame(self, user: np.ndarray, result: FrameOutput, **metrics: Any) -> None:
        """One engine step as a client records it: the user's frame, the model's audio (silence while
        the LM is in its initial delay), its text, and the frame's metrics (``metrics`` added to them).

        The sweeps, the batched sweeps, prompted continuation and the benchmark record through this.
        """
        self.add_user(user)
        if result.pcm is None:
            self.add_model_silence(FRAME_SIZE)
        else:
            self.add_model(result.pcm)
        if result.text:
            self.add_text(result.index, int(result.text_token or 0), result.text)
        self.add_metrics({**result.metrics(), **metrics})

    def add_text(self, frame: int, token: int, text: str, t: float | None = None) -> None:
        self.text.append(TextEvent(frame, token, text, self.elapsed() if t is None else t))
        self._stream_event({"type": "text", **self.text[-1].__dict__})

    def add_metrics(self, metrics: dict[str, Any]) -> None:
        self.metrics.append(metrics)
        if self._writer is not None:
            if self._meta_key() != self._header_key:  # seed, session info, drops... arrived: rewrite the header
                self._header_key = self._meta_key()
                self._writer.put_header(self._session_doc(streaming=True))
            self._writer.put_event({"type": "metrics", **metrics})

    def add_params(self, from_frame: int, params: dict[str, Any], seed: int | None) -> None:
        self.params.append({"from_frame": from_frame, "params": params, "seed": seed, "t": self.elapsed()})
        self._stream_event({"type": "params", **self.params[-1]})

    # ---- views -----------------------------------------------------------------------------
    @property
    def user_pcm(self) -> np.ndarray:
        return np.concatenate(self.user_chunks) if self.user_chunks else np.zeros(0, np.float32)

    @property
    def model_pcm(self) -> np.ndarray:
        return np.concatenate(self.model_chunks) if self.model_chunks else np.zeros(0, np.float32)

    def stereo(self) -> np.ndarray:
        """``[samples, 2]``: model left, user right, padded to the same length."""
        user, model = self.user_pcm, self.model_pcm
        n = max(len(user), len(model))
        out = np.zeros((n, 2), dtype=np.float32)
        out[: len(model), 0] = model
        out[: len(user), 1] = user
        return out

    @property
    def duration(self) -> float:
        return max(len(self.user_pcm), len(self.model_pcm)) / self.sample_rate

    @property
    def text_tokens(self) -> list[int]:
        return [e.token for e in self.text]

    def transcript(self) -> str:
        return "".join(e.text for e in self.text)

    def frame_tokens(self) -> list[int | None]:
        """The text token of every frame from the metrics (None while the LM was in its delay)."""
        return [m.get("text_token") for m in self.metrics]

    # ---- files -----------------------------------------------------------------------------
    def _events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        events += [{"type": "text", **e.__dict__} for e in self.text]
        events += [{"type": "metrics", **m} for m in self.metrics]
        events += [{"type": "params", **p} for p in self.params]
        return events

    def _session_doc(self, streaming: bool = False) -> dict[str, Any]:
        """session.json; while streaming, cheap fields only (no hash of the whole input)."""
        meta: dict[str, Any] = {
            "layout_version": LAYOUT_VERSION,
            "sample_rate": self.sample_rate,
            "state": STATE_RECORDING if streaming else STATE_COMPLETE,
        }
        if not streaming:
            meta["duration_s"] = round(self.duration, 3)
            meta["frames"] = len(self.metrics)
            meta["input_sha256"] = self.meta.get("input_sha256") or sha256_of(self.user_pcm)
        meta["versions"] = self.meta.get("versions") or package_versions()
        meta.update({k: v for k, v in self.meta.items() if k not in meta and k != "cut_short"})
        if not streaming and self.meta.get("cut_short"):
            meta["cut_short"] = self.meta["cut_short"]
        return {
            "meta": json.loads(json.dumps(meta, default=str)),  # a snapshot: the writer thread may hold it
            "config": self.config.model_dump(mode="json") if self.config else None,
            "session": json.loads(json.dumps(self.session, default=str)),
        }

    def save(self, folder: str | Path) -> Path:
        """Write the folder (complete). If this recording streams to ``folder``, finish that stream."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        writer = self._writer
        streamed = writer is not None and writer.folder.resolve() == folder.resolve()
        streamed_ok = False
        if streamed and writer is not None:
            self._writer = None
            streamed_ok = writer.close()
        write_wav(folder / "audio.wav", self.stereo(), self.sample_rate)
        if not streamed_ok:  # the stream's events.jsonl (in the order they happened) is kept when whole
            tmp = folder / "events.jsonl.tmp"
            with tmp.open("w", encoding="utf-8") as fh:
                for ev in self._events():
                    fh.write(json.dumps(ev, ensure_ascii=False) + "\n")
            tmp.replace(folder / "events.jsonl")
        doc = self._session_doc()
        tmp = folder / f"{SESSION_FILE}.tmp"
        tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False), encoding="utf-8")
        tmp.replace(folder / SESSION_FILE)
        if streamed and writer is not None:
            writer.remove_parts()
        return folder

    def to_dict(self) -> dict[str, Any]:
        """This recording as plain, picklable data (exact float32 audio as bytes): what a Modal worker
        sends back. ``Recording.from_dict`` inverts it."""
        return {
            "sample_rate": self.sample_rate,
            "user": self.user_pcm.astype(np.float32).tobytes(),
            "model": self.model_pcm.astype(np.float32).tobytes(),
            "text": [e.__dict__.copy() for e in self.text],
            "metrics": self.metrics,
            "params": self.params,
            "config": self.config.model_dump(mode="json") if self.config else None,
            "session": self.session,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recording:
        """The recording ``to_dict`` gave ``data`` for."""
        rec = cls(sample_rate=int(data["sample_rate"]))
        rec.user_chunks = [np.frombuffer(data["user"], dtype=np.float32).copy()]
        rec.model_chunks = [np.frombuffer(data["model"], dtype=np.float32).copy()]
        rec.text = [TextEvent(**e) for e in data["text"]]
        rec.metrics = list(data["metrics"])
        rec.params = list(data["params"])
        rec.config = SessionConfig.from_dict(data["config"]) if data.get("config") else None
        rec.session = dict(data.get("session") or {})
        rec.meta = dict(data.get("meta") or {})
        return rec

    @classmethod
    def load(cls, folder: str | Path) -> Recording:
        """Read a folder written by ``save``, or one cut short while streaming (``rec.cut_short``)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a recording: no such folder")
        if not is_recording_folder(folder):
            raise FileNotFoundError(f"{folder} is not a recording: {SESSION_FILE} is missing")
        doc = json.loads((folder / SESSION_FILE).read_text(encoding="utf-8"))
        meta = doc.get("meta") or {}
        parts = {k: folder / name for k, name in PART_FILES.items()}
        rec = cls(sample_rate=SAMPLE_RATE)
        if (folder / "audio.wav").exists():
            stereo, _ = sf.read(str(folder / "audio.wav"), dtype="float32", always_2d=True)
            if stereo.shape[0] and stereo.shape[1] != 2:
                raise ValueError(f"{folder}/audio.wav has {stereo.shape[1]} channels, a recording has 2")
            if stereo.shape[0]:
                rec.model_chunks = [stereo[:, 0].copy()]
                rec.user_chunks = [stereo[:, 1].copy()]
        elif all(p.exists() for p in parts.values()):  # streamed and never finished
            rec.user_chunks = [read_part(parts["user"])]
            rec.model_chunks = [read_part(parts["model"])]
        else:
            raise FileNotFoundError(f"{folder} is not a recording: audio.wav is missing")
        cut = meta.get("state") == STATE_RECORDING
        events_path = folder / "events.jsonl"
        if not events_path.exists() and not cut:
            raise FileNotFoundError(f"{folder} is not a recording: events.jsonl is missing")
        lines = events_path.read_text(encoding="utf-8").splitlines() if events_path.exists() else []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                if cut and i == len(lines) - 1:
                    break  # the line being written when the process died
                raise ValueError(f"{folder}/events.jsonl line {i + 1} is not JSON") from None
            kind = ev.pop("type")
            if kind == "text":
                rec.text.append(TextEvent(**ev))
            elif kind == "metrics":
                rec.metrics.append(ev)
            elif kind == "params":
                rec.params.append(ev)
        n_frames = meta.get("frames", 0)
        if not cut and n_frames and len(rec.metrics) != n_frames:
            raise ValueError(f"{folder}: events.jsonl has {len(rec.metrics)} frames, session.json says {n_frames}")
        rec.config = SessionConfig.from_dict(doc["config"]) if doc.get("config") else None
        rec.session = doc.get("session") or {}
        rec.meta = meta
        if cut:
            rec.meta["cut_short"] = (
                f"the session did not finish (the process ended before saving, or it is still running): "
                f"{len(rec.metrics)} frames, {rec.duration:.2f} s recorded"
            )
            rec.meta["frames"] = len(rec.metrics)
            rec.meta["duration_s"] = round(rec.duration, 3)
        return rec


def is_recording_folder(path: str | Path) -> bool:
    """Whether ``path`` is a recording folder (it holds ``session.json``, written first).

    Parameters
    ----------
    path:
        Any path; files and missing paths are not recordings.

    Returns
    -------
    bool
    """
    return (Path(path) / SESSION_FILE).is_file()


def recording_folders(root: str | Path) -> list[Path]:
    """``root`` itself if it is a recording, else every recording folder below it.

    Parameters
    ----------
    root:
        A recording folder, or a folder holding recordings at any depth (a sweep, a benchmark run).

    Returns
    -------
    list[Path]
        Sorted; empty when there is none.
    """
    root = Path(root)
    if is_recording_folder(root):
        return [root]
    return sorted(p.parent for p in root.rglob(SESSION_FILE) if p.is_file())
