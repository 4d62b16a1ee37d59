"""Run a WAV file through a session: the path used by ``jmoshi-nb run``, the quickstart and replays.

The audio goes the same way as a microphone's: client -> Opus -> server -> engine -> server ->
client, into a Recording. With no URL a local server is started for the config's model. With an
``engine`` loaded in this process the frames go straight to it instead, through the engine-run loop
(``engine_run``) that sweeps use: no server, no Opus.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core.audio import read_wav, sha256_of
from ..core.blocking import run_blocking
from ..core.config import SessionConfig
from ..core.recording import Recording
from ..serve.client import connect, stream_pcm
from .engine_run import run_on_engine

if TYPE_CHECKING:
    from ..model.batch_engine import BatchEngine
    from ..model.engine import Engine


async def run_pcm_async(
    pcm: np.ndarray,
    url: str,
    token: str | None = None,
    config: SessionConfig | None = None,
    realtime: bool = True,
    holder: list[Recording] | None = None,
    out: str | Path | None = None,
) -> Recording:
    """Stream mono 24 kHz float32 audio through the server at ``url``; return the recording.

    ``holder`` (a list) receives the live recording as soon as the session opens, so a caller can
    save what was recorded even if the run is interrupted (Ctrl-C, a lost connection).

    The session runs with the config's sampling and seed; ``seed=None`` draws a fresh seed, which
    the recording keeps (``meta["seed"]``) so the run can be repeated. With ``out`` the recording
    streams into that folder as it runs (``Recording.save(out)`` completes it).
    """
    config = config or SessionConfig()
    async with connect(url, token=token, config=config) as s:
        if out is not None:
            s.recording.stream_to(out)
        if holder is not None:
            holder.append(s.recording)
        try:
            await s.apply_config(config)
            rec = await stream_pcm(s, pcm, realtime=realtime)
        except BaseException as exc:
            s.recording.meta["incomplete"] = f"{type(exc).__name__}: {exc}"
            raise
    return rec


def run_wav(
    wav: str | Path | np.ndarray,
    config: SessionConfig | None = None,
    url: str | None = None,
    token: str | None = None,
    realtime: bool = False,
    out: str | Path | None = None,
    engine: Engine | BatchEngine | None = None,
) -> Recording:
    """Run a WAV (path, or 24 kHz mono array) through a session and return it.

    With ``out`` the recording streams into that folder while it runs (a killed run leaves a folder
    that ``Recording.load`` reads, marked ``cut_short``) and is completed there at the end. Blocking;
    works from a script, a thread or a notebook cell (see ``jmoshi_nb.core.blocking``).

    ``engine``: an engine loaded in this process (``model.engine_factory.load_engine``): the frames go
    straight to it (``engine_run.run_on_engine``: no server, no Opus, as fast as it steps; ``url`` and
    ``realtime`` do not apply). ``config.seed`` None draws a seed on either path, kept in ``meta["seed"]``.
    """
    from ..serve.backends import LocalServer

    config = config or SessionConfig()
    pcm = wav if isinstance(wav, np.ndarray) else read_wav(wav)
    if engine is not None:
        if url is not None:
            raise ValueError("run_wav: give a server url or an engine, not both")
        meta = {} if isinstance(wav, np.ndarray) else {"input": str(wav)}
        rec = run_on_engine(engine, pcm, config, meta=meta, out=out)
        if out is not None:
            rec.save(out)
        return rec
    holder: list[Recording] = []
    try:
        if url is None:
            with LocalServer(model=config.model, revision=config.revision, config=config) as server:
                rec = run_blocking(run_pcm_async(pcm, server.url, server.token, config, realtime, holder, out))
        else:
            rec = run_blocking(run_pcm_async(pcm, url, token, config, realtime, holder, out))
    except BaseException as exc:
        # Nothing recorded is lost: save the partial session next to where the full one would go.
        if holder and out is not None:
            holder[0].meta.setdefault("incomplete", f"{type(exc).__name__}: {exc}")
            holder[0].save(out)
            exc.add_note(f"the partial recording was saved to {out}")
        raise
    rec.meta["input_sha256"] = sha256_of(pcm)
    if not isinstance(wav, np.ndarray):
        rec.meta["input"] = str(wav)
    if out is not None:
        rec.save(out)
    return rec
