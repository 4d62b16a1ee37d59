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
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .audio import FRAME_SIZE, SAMPLE_RATE, read_wav, sha256_of, write_wav
from .config import SessionConfig, package_versions

LAYOUT_VERSION = 1


@dataclass
class TextEvent:
    frame: int
    token: int
    text: str
    t: float

    @property
    def time(self) -> float:
        """Position in the audio (seconds): the start of the frame that produced it."""
        return self.frame * FRAME_SIZE / SAMPLE_RATE


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

    # ---- filling it ------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def add_user(self, pcm: np.ndarray) -> None:
        self.user_chunks.append(np.asarray(pcm, dtype=np.float32))

    def add_model(self, pcm: np.ndarray) -> None:
        if len(pcm):
            self.model_chunks.append(np.asarray(pcm, dtype=np.float32))

    def add_model_silence(self, samples: int) -> None:
        if samples > 0:
            self.model_chunks.append(np.zeros(samples, dtype=np.float32))

    def add_text(self, frame: int, token: int, text: str, t: float | None = None) -> None:
        self.text.append(TextEvent(frame, token, text, self.elapsed() if t is None else t))

    def add_metrics(self, metrics: dict[str, Any]) -> None:
        self.metrics.append(metrics)

    def add_params(self, from_frame: int, params: dict[str, Any], seed: int | None) -> None:
        self.params.append({"from_frame": from_frame, "params": params, "seed": seed, "t": self.elapsed()})

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
    def empty(self) -> bool:
        """True for a session that ended before its first frame (no audio, no frames)."""
        return not self.metrics and not len(self.user_pcm) and not len(self.model_pcm)

    @property
    def text_tokens(self) -> list[int]:
        return [e.token for e in self.text]

    def transcript(self) -> str:
        return "".join(e.text for e in self.text)

    def frame_tokens(self) -> list[int | None]:
        """The text token of every frame from the metrics (None while the LM was in its delay)."""
        return [m.get("text_token") for m in self.metrics]

    # ---- files -----------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_wav(folder / "audio.wav", self.stereo(), self.sample_rate)
        events: list[dict[str, Any]] = []
        events += [{"type": "text", **e.__dict__} for e in self.text]
        events += [{"type": "metrics", **m} for m in self.metrics]
        events += [{"type": "params", **p} for p in self.params]
        tmp = folder / "events.jsonl.tmp"
        with tmp.open("w", encoding="utf-8") as fh:
            for ev in events:
                fh.write(json.dumps(ev, ensure_ascii=False) + "\n")
        tmp.replace(folder / "events.jsonl")
        meta = {
            "layout_version": LAYOUT_VERSION,
            "sample_rate": self.sample_rate,
            "duration_s": round(self.duration, 3),
            "frames": len(self.metrics),
            "input_sha256": self.meta.get("input_sha256") or sha256_of(self.user_pcm),
            "versions": self.meta.get("versions") or package_versions(),
            **{k: v for k, v in self.meta.items() if k not in ("input_sha256", "versions")},
        }
        doc = {
            "meta": meta,
            "config": self.config.model_dump(mode="json") if self.config else None,
            "session": self.session,
        }
        (folder / "session.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Recording:
        folder = Path(folder)
        for name in ("audio.wav", "events.jsonl", "session.json"):
            if not (folder / name).exists():
                raise FileNotFoundError(f"{folder} is not a recording: {name} is missing")
        doc = json.loads((folder / "session.json").read_text(encoding="utf-8"))
        stereo = read_wav(folder / "audio.wav", channel=None, allow_empty=True)
        rec = cls(sample_rate=SAMPLE_RATE)
        n_frames = doc["meta"].get("frames", 0)
        rec.model_chunks = [stereo[:, 0].copy()]
        rec.user_chunks = [stereo[:, 1].copy()]
        with (folder / "events.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                ev = json.loads(line)
                kind = ev.pop("type")
                if kind == "text":
                    rec.text.append(TextEvent(**ev))
                elif kind == "metrics":
                    rec.metrics.append(ev)
                elif kind == "params":
                    rec.params.append(ev)
        if n_frames and len(rec.metrics) != n_frames:
            raise ValueError(f"{folder}: events.jsonl has {len(rec.metrics)} frames, session.json says {n_frames}")
        rec.config = SessionConfig.from_dict(doc["config"]) if doc.get("config") else None
        rec.session = doc.get("session") or {}
        rec.meta = doc.get("meta") or {}
        return rec
