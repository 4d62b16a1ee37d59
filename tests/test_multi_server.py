"""``jmoshi-nb serve --max-sessions 3``: a real process on 127.0.0.1, real Opus, several clients at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from processes import jmoshi_serve
from servers import error_after_silence, health, record_silence, send_silence, serving, step_fails_on_call, wait_until

from jmoshi_nb.core.audio import FRAME_SIZE
from jmoshi_nb.core.recording import Recording
from jmoshi_nb.serve.client import ServerError, connect, stream_pcm

N_FRAMES = 16


@pytest.fixture(scope="module")
def multi_url(tiny_path: Path) -> Iterator[str]:
    with jmoshi_serve("--seed", "42", "--max-sessions", "3") as url:
        yield url


def noise(seed: int, n: int = N_FRAMES) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n * FRAME_SIZE) * 0.1).astype(np.float32)


async def talk(url: str, pcm: np.ndarray, seed: int, garbage: bool = False, **params) -> Recording:  # type: ignore[no-untyped-def]
    async with connect(url) as s:
        await s.set_params(seed=seed, **params)
        if garbage:  # bad input mid-conversation: this client gets errors, the others notice nothing
            await s.send_frame(pcm[: 4 * FRAME_SIZE])
            await s.drain()
            await s.send_raw(b"\x01this is not opus")
            await s.send_raw(b'\x04{"type": "set_params", "temp": 99}')
            await s.wait_error(2)
            await s.send_frame(pcm[4 * FRAME_SIZE :])
            await s.drain()
            rec = s.recording
        else:
            rec = await stream_pcm(s, pcm, realtime=False)
    return rec


def same_conversation(a: Recording, b: Recording) -> None:
    assert a.frame_tokens() == b.frame_tokens()
    assert [m["frame"] for m in a.metrics] == list(range(N_FRAMES))
    assert a.transcript() == b.transcript()
    np.testing.assert_array_equal(a.model_pcm, b.model_pcm)
    assert [m["params"] for m in a.metrics] == [m["params"] for m in b.metrics]


async def test_two_clients_each_get_only_their_own_conversation(multi_url: str, speech_pcm: np.ndarray) -> None:
    speech = speech_pcm[: N_FRAMES * FRAME_SIZE]
    other = noise(1)
    a_params = {"temp": 0.9, "top_k": 100}
    b_params = {"temp": 1.2, "temp_text": 0.3, "top_k_text": 5}
    solo_a = await talk(multi_url, speech, 5, **a_params)
    solo_b = await talk(multi_url, other, 6, garbage=True, **b_params)
    both_a, both_b = await asyncio.gather(
        talk(multi_url, speech, 5, **a_params), talk(multi_url, other, 6, garbage=True, **b_params)
    )
    same_conversation(both_a, solo_a)
    same_conversation(both_b, solo_b)
    assert solo_a.frame_tokens() != solo_b.frame_tokens()
    for rec, seed in ((both_a, 5), (both_b, 6)):
        assert {m["seed"] for m in rec.metrics} == {seed}
        assert all("queued" in m for m in rec.metrics)  # its own queue
    assert both_a.session["slot"] != both_b.session["slot"]
    assert health(multi_url)["sessions"] == 0


async def test_an_abrupt_disconnect_frees_only_its_slot(multi_url: str, speech_pcm: np.ndarray) -> None:
    speech = speech_pcm[: N_FRAMES * FRAME_SIZE]
    solo = await talk(multi_url, speech, 8)
    # A third client in a separate process, killed mid-conversation: no close frame, the socket just dies.
    script = (
        "import asyncio, numpy as np\n"
        "from jmoshi_nb.serve.client import connect\n"
        "async def main():\n"
        f"    async with connect({multi_url!r}) as s:\n"
        "        for i in range(1000):\n"
        "            await s.send_frame(np.full(1920, 0.01, np.float32))\n"
        "            await asyncio.sleep(0.02)\n"
        "asyncio.run(main())\n"
    )
    victim = subprocess.Popen([sys.executable, "-c", script])
    try:
        await wait_until(lambda: health(multi_url)["sessions"] == 1)
        assert health(multi_url)["sessions"] == 1

        async def survivor(pcm: np.ndarray, seed: int, kill_at: int | None) -> Recording:
            async with connect(multi_url) as s:
                await s.set_params(seed=seed)
                for i in range(0, len(pcm), FRAME_SIZE):
                    if i // FRAME_SIZE == kill_at:
                        victim.kill()
                    await s.send_frame(pcm[i : i + FRAME_SIZE])
                    await s.wait_frames(i // FRAME_SIZE - 4)
                await s.drain()
                return s.recording

        a, b = await asyncio.gather(survivor(speech, 8, kill_at=5), survivor(noise(2), 9, kill_at=None))
    finally:
        victim.kill()
        victim.wait()
    same_conversation(a, solo)
    assert [m["frame"] for m in b.metrics] == list(range(N_FRAMES))
    await wait_until(lambda: health(multi_url)["sessions"] == 0)
    assert health(multi_url)["sessions"] == 0  # the killed client's slot is free again


async def test_client_beyond_max_sessions_is_told_busy(multi_url: str) -> None:
    async with connect(multi_url) as a, connect(multi_url) as b, connect(multi_url) as c:
        body = health(multi_url)
        assert body["busy"] is True and body["sessions"] == 3 and body["max_sessions"] == 3
        with pytest.raises(ServerError, match="busy: this server holds 3 conversations at a time"):
            async with connect(multi_url):
                pass
        for s in (a, b, c):
            await send_silence(s, 1)
        for s in (a, b, c):
            await s.drain()
            assert [m["frame"] for m in s.recording.metrics] == [0]
    rec = await record_silence(multi_url, 1)  # a slot is free again
    assert rec.metrics[0]["frame"] == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "--max-sessions=0 is out of range: allowed 1..64"),
        ("-3", "--max-sessions=-3 is out of range: allowed 1..64"),
        ("65", "--max-sessions=65 is more than this engine can hold: at most 64"),
    ],
)
def test_bad_max_sessions_is_refused_naming_the_limit(value: str, message: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "jmoshi_nb.cli", "serve", "--max-sessions", value], capture_output=True, text=True
    )
    assert res.returncode == 2 and message in res.stderr


async def test_a_failed_step_ends_only_its_conversations(tiny_path: Path) -> None:
    """In-process: the engine fails on one step; its conversations end with the error, the server goes on."""
    from jmoshi_nb.model.batch_engine import BatchEngine
    from jmoshi_nb.serve.multi_server import MultiChatServer

    engine = BatchEngine.load("tiny", slots=2, seed=1, warmup=False)
    with step_fails_on_call(engine, 3, "simulated CUDA error"):
        server = MultiChatServer(engine)
        async with serving(server.make_app()) as url:
            async with connect(url) as s:
                error = await error_after_silence(s, 5)
                assert "engine error, session ended: simulated CUDA error" in error
            rec = await record_silence(url, 3)  # the next conversation is served normally
            assert [m["frame"] for m in rec.metrics] == [0, 1, 2]
            # the server releases the slot just after the client has gone
            await wait_until(lambda: len(server._free) == 2, seconds=5)
            assert sorted(server._free) == [0, 1]
