"""Stream a Recording into its folder while the session runs, so a killed process leaves a usable folder.

While recording, the folder holds:

* ``session.json``: written at the start (config, model, versions, seed as soon as they are known)
  with ``meta["state"] = "recording"``; ``Recording.save`` rewrites it complete at the end.
* ``events.jsonl``: one line per event, appended as they happen (text, metrics per frame, params).
* ``user.part.wav`` / ``model.part.wav``: mono 16-bit PCM WAVs, appended per frame. Their header is
  patched regularly, and the reader sizes the data from the file length anyway, so a cut file reads
  up to its last whole sample.

At the end ``Recording.save`` writes ``audio.wav`` (stereo, as before) and removes the part files.

Why raw 16-bit WAV parts rather than FLAC or Ogg: appending PCM costs one ``write`` per frame on the
writer thread (no encoder), a cut file loses nothing but the bytes after the last write, and every
audio tool opens it. Two mono files rather than one stereo one because the user channel runs ahead of
the model's by the round trip: each is written as soon as its audio exists.

All writes happen on a daemon thread fed by a queue: ``put`` never blocks the frame loop. Data is
handed to the OS after every batch (at most ``flush_s`` late), which survives SIGKILL of the process
(not a power cut: no fsync per frame).
"""

from __future__ import annotations

import json
import logging
import queue
import struct
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

log = logging.getLogger("jmoshi_nb.core.record_writer")

STATE_RECORDING = "recording"
STATE_COMPLETE = "complete"
PART_FILES = {"user": "user.part.wav", "model": "model.part.wav"}
WAV_HEADER_BYTES = 44
SESSION_FILE = "session.json"  # written first: a folder that holds it is a recording
# Files of the kit's layout that a new stream replaces (a folder holds one recording).
LAYOUT_FILES = ("audio.wav", "events.jsonl", SESSION_FILE, "recording.TextGrid", *PART_FILES.values())


def wav_header(n_samples: int, sample_rate: int, channels: int = 1) -> bytes:
    """A 44-byte canonical PCM_16 WAV header for ``n_samples`` frames."""
    block = 2 * channels
    data = n_samples * block
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block, block, 16)
        + b"data"
        + struct.pack("<I", data)
    )


def to_int16(pcm: np.ndarray) -> np.ndarray:
    return np.round(np.clip(pcm, -1.0, 1.0) * 32767.0).astype("<i2")


def read_part(path: Path) -> np.ndarray:
    """A part WAV as float32, sized by the file's length (its header may lag behind a cut)."""
    raw = path.read_bytes()[WAV_HEADER_BYTES:]
    n = len(raw) // 2
    return np.frombuffer(raw[: 2 * n], dtype="<i2").astype(np.float32) / 32767.0


class _AudioPart:
    def __init__(self, path: Path, sample_rate: int) -> None:
        self.path, self.sample_rate, self.samples = path, sample_rate, 0
        self.fh: BinaryIO = path.open("wb")
        self.fh.write(wav_header(0, sample_rate))

    def append(self, pcm: np.ndarray) -> None:
        self.fh.write(to_int16(pcm).tobytes())
        self.samples += len(pcm)

    def patch_header(self) -> None:
        pos = self.fh.tell()
        self.fh.seek(0)
        self.fh.write(wav_header(self.samples, self.sample_rate))
        self.fh.seek(pos)

    def close(self) -> None:
        self.patch_header()
        self.fh.close()


class RecordWriter:
    """Writes a recording's events and audio into ``folder`` on its own thread.

    ``header`` is the first session.json document. The owner calls ``put_*`` from any thread, then
    ``close()``; errors on the thread are kept in ``error`` (the recording in memory stays whole).
    """

    def __init__(self, folder: str | Path, header: dict[str, Any], sample_rate: int, flush_s: float = 0.2) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in LAYOUT_FILES:
            (self.folder / name).unlink(missing_ok=True)
        self.flush_s = flush_s
        self.error: BaseException | None = None
        self.batches = 0
        self._write_session(header)
        self._events = (self.folder / "events.jsonl").open("w", encoding="utf-8")
        self._audio = {k: _AudioPart(self.folder / name, sample_rate) for k, name in PART_FILES.items()}
        self._q: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"jmoshi-nb-writer:{self.folder.name}", daemon=True)
        self._closed = False
        self._thread.start()

    # ---- owner side (never blocks) ------------------------------------------------------------
    def put_audio(self, channel: str, pcm: np.ndarray) -> None:
        self._q.put((channel, pcm))

    def put_event(self, event: dict[str, Any]) -> None:
        self._q.put(("event", event))

    def put_header(self, doc: dict[str, Any]) -> None:
        self._q.put(("header", doc))

    def close(self, timeout: float = 30.0) -> bool:
        """Write what is queued, close the files; True when everything reached the disk."""
        if not self._closed:
            self._closed = True
            self._q.put(("close", None))
            self._thread.join(timeout)
        return self.error is None and not self._thread.is_alive()

    def remove_parts(self) -> None:
        for name in PART_FILES.values():
            (self.folder / name).unlink(missing_ok=True)

    # ---- writer thread ------------------------------------------------------------------------
    def _write_session(self, doc: dict[str, Any]) -> None:
        tmp = self.folder / f"{SESSION_FILE}.tmp"
        tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False), encoding="utf-8")
        tmp.replace(self.folder / SESSION_FILE)

    def _handle(self, kind: str, data: Any) -> None:
        if kind == "event":
            self._events.write(json.dumps(data, ensure_ascii=False) + "\n")
        elif kind == "header":
            self._write_session(data)
        else:
            self._audio[kind].append(data)

    def _run(self) -> None:
        last_patch = time.monotonic()
        done = False
        while not done:
            try:
                items = [self._q.get(timeout=self.flush_s)]
            except queue.Empty:
                continue
            while True:  # a batch: everything queued right now
                try:
                    items.append(self._q.get_nowait())
                except queue.Empty:
                    break
            if self.error is not None:
                done = any(kind == "close" for kind, _ in items)
                continue
            try:
                for kind, data in items:
                    if kind == "close":
                        done = True
                    else:
                        self._handle(kind, data)
                self._events.flush()
                for part in self._audio.values():
                    part.fh.flush()
                if done or time.monotonic() - last_patch > 0.5:
                    for part in self._audio.values():
                        part.patch_header()
                        part.fh.flush()
                    last_patch = time.monotonic()
                self.batches += 1
            except Exception as exc:  # disk full, folder removed...: keep the in-memory recording going
                self.error = exc
                log.error("streaming the recording to %s failed: %s (the recording stays in memory)", self.folder, exc)
        for fh in (self._events, *self._audio.values()):
            try:
                fh.close()
            except Exception as exc:  # noqa: PERF203
                self.error = self.error or exc
