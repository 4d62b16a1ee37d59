"""Audio files and frames: everything the kit feeds the model is 24 kHz mono float32."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

SAMPLE_RATE = 24000
FRAME_SIZE = 1920
FRAME_S = FRAME_SIZE / SAMPLE_RATE  # one frame of audio: 0.08 s
FRAME_BUDGET_MS = 1000 * FRAME_S  # the real-time budget: each frame computed in under 80 ms
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")  # files read as audio (soundfile: libsndfile >= 1.1 reads MP3)


class AudioFileError(ValueError):
    pass


def resample(pcm: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling along the first axis; float32 out."""
    if rate == target:
        return np.asarray(pcm, dtype=np.float32)
    g = gcd(rate, target)
    return resample_poly(pcm, target // g, rate // g, axis=0).astype(np.float32)


def read_audio(path: str | Path, allow_empty: bool = False) -> tuple[np.ndarray, int]:
    """An audio file as it is: float32 ``[samples, channels]`` and its rate.

    Raises :class:`AudioFileError` naming the file when it is missing, unreadable or (unless
    ``allow_empty``) without samples.
    """
    path = Path(path)
    if not path.exists():
        raise AudioFileError(f"{path}: no such audio file")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises its own LibsndfileError subclasses
        raise AudioFileError(f"{path}: not a readable audio file ({exc})") from None
    if data.shape[0] == 0 and not allow_empty:
        raise AudioFileError(f"{path}: the file holds no audio")
    return data, int(rate)


def read_wav(
    path: str | Path, channel: int | str | None = "mix", target: int = SAMPLE_RATE, allow_empty: bool = False
) -> np.ndarray:
    """Read an audio file as float32 at ``target`` Hz.

    ``channel``: ``"mix"`` averages channels to mono, an int picks one channel, ``None`` keeps
    all (shape ``[samples, channels]``). A file without samples is an error (an input with nothing
    to say), unless ``allow_empty`` (a recording that ended before its first frame).
    """
    data, rate = read_audio(path, allow_empty)
    if channel == "mix":
        data = data.mean(axis=1)
    elif isinstance(channel, int):
        if channel >= data.shape[1]:
            raise AudioFileError(f"{path}: channel {channel} requested, the file has {data.shape[1]}")
        data = data[:, channel]
    return resample(data, rate, target)


def write_wav(path: str | Path, pcm: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(pcm, -1.0, 1.0), rate, subtype="PCM_16")
    return path


def frames(pcm: np.ndarray, frame_size: int = FRAME_SIZE) -> Iterator[np.ndarray]:
    """Split mono audio into frames; the last one is zero-padded."""
    pcm = np.asarray(pcm, dtype=np.float32)
    for start in range(0, len(pcm), frame_size):
        chunk = pcm[start : start + frame_size]
        if len(chunk) < frame_size:
            chunk = np.pad(chunk, (0, frame_size - len(chunk)))
        yield chunk


def sha256_of(pcm: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pcm, dtype=np.float32).tobytes()).hexdigest()


def encode_audio(pcm: np.ndarray) -> bytes:
    """24 kHz mono float32 as ``.npy`` bytes: exact, unlike a 16-bit WAV."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(pcm, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def decode_audio(data: bytes) -> np.ndarray:
    """``.npy`` bytes (from ``encode_audio``) or the bytes of any audio file soundfile reads."""
    if data[:6] == b"\x93NUMPY":
        pcm = np.load(io.BytesIO(data), allow_pickle=False)
        if pcm.ndim != 1:
            raise AudioFileError(f"audio must be mono (1-D), got shape {pcm.shape}")
        return pcm.astype(np.float32, copy=False)
    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises its own error types
        raise AudioFileError(f"audio bytes are neither .npy nor a readable audio file ({exc})") from None
    if audio.shape[0] == 0:
        raise AudioFileError("the audio holds no samples")
    return resample(audio.mean(axis=1), rate, SAMPLE_RATE)
