"""Run a WAV file through a session: the path used by ``jmoshi-nb run``, sweeps and replays.

The audio goes the same way as a microphone's: client -> Opus -> server -> engine -> server ->
client, into a Recording. With no URL a local server is started for the config's model.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from .audio import read_wav, sha256_of
from .client import connect, stream_pcm
from .config import SessionConfig
from .recording import Recording


async def run_pcm_async(
    pcm: np.ndarray,
    url: str,
    token: str | None = None,
    config: SessionConfig | None = None,
    realtime: bool = True,
) -> Recording:
    """Stream mono 24 kHz float32 audio through the server at ``url``; return the recording."""
    config = config or SessionConfig()
    async with connect(url, token=token, config=config) as s:
        try:
            changes = {}
            if s.info.get("sampling") and s.info["sampling"] != config.sampling.model_dump():
                changes = config.sampling.model_dump()
            if changes or (config.seed is not None and s.info.get("seed") != config.seed):
                await s.set_params(seed=config.seed, **changes)
            rec = await stream_pcm(s, pcm, realtime=realtime)
        except BaseException as exc:
            # Keep what was recorded so far: the caller may save it (run_wav does).
            s.recording.meta["incomplete"] = f"{type(exc).__name__}: {exc}"
            exc.add_note(f"partial recording: {len(s.recording.metrics)} frames")
            exc.recording = s.recording  # type: ignore[attr-defined]
            raise
    return rec


def run_wav(
    wav: str | Path | np.ndarray,
    config: SessionConfig | None = None,
    url: str | None = None,
    token: str | None = None,
    realtime: bool = False,
    out: str | Path | None = None,
) -> Recording:
    """Run a WAV (path, or 24 kHz mono array) through a session and return (and optionally save) it."""
    from .backends import LocalServer

    config = config or SessionConfig()
    pcm = wav if isinstance(wav, np.ndarray) else read_wav(wav)
    try:
        if url is None:
            with LocalServer(model=config.model, revision=config.revision, config=config) as server:
                rec = asyncio.run(run_pcm_async(pcm, server.url, server.token, config, realtime))
        else:
            rec = asyncio.run(run_pcm_async(pcm, url, token, config, realtime))
    except BaseException as exc:
        partial = getattr(exc, "recording", None)
        if partial is not None and out is not None and partial.metrics:
            partial.save(out)
            exc.add_note(f"the partial recording was saved to {out}")
        raise
    rec.meta["input_sha256"] = sha256_of(pcm)
    if not isinstance(wav, np.ndarray):
        rec.meta["input"] = str(wav)
    if out is not None:
        rec.save(out)
    return rec
