"""A real ``jmoshi-nb serve`` process on 127.0.0.1, real Opus both ways, the kit's client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import sphn
from processes import jmoshi_serve
from servers import health, record_silence

from jmoshi_nb.core.audio import FRAME_SIZE, frames
from jmoshi_nb.core.config import ConfigError
from jmoshi_nb.core.recording import Recording
from jmoshi_nb.serve import protocol as P
from jmoshi_nb.serve.client import ServerError, connect, stream_pcm


def test_health(server_url: str) -> None:
    body = health(server_url)
    assert body["status"] == "ok" and body["model"] == "tiny" and body["busy"] is False


async def test_conversation_is_recorded_and_saved(server_url: str, speech_pcm: np.ndarray, tmp_path: Path) -> None:
    pcm = speech_pcm[: 30 * FRAME_SIZE]
    async with connect(server_url) as s:
        assert s.info["model"] == "tiny" and s.info["frame_size"] == FRAME_SIZE
        events = s.subscribe()
        rec = await stream_pcm(s, pcm, realtime=False)
    kinds = set()
    while not events.empty():
        kinds.add(events.get_nowait().kind)
    assert {"audio", "text", "metrics"} <= kinds
    assert [m["frame"] for m in rec.metrics] == list(range(30))
    for m in rec.metrics:
        assert {"encode_ms", "lm_ms", "decode_ms", "total_ms", "text_token", "params", "seed"} <= set(m)
    assert rec.text and all(e.text for e in rec.text)
    assert [e.frame for e in rec.text] == sorted(e.frame for e in rec.text)
    # Both channels sit on the model's frame grid: the user channel starts with the Opus delay (the
    # server hears the user that late), the model channel has that delay taken off its start.
    d = rec.meta["opus_delay_samples"]
    assert 0 < d < FRAME_SIZE
    np.testing.assert_array_equal(rec.user_pcm[:d], 0)
    np.testing.assert_array_equal(rec.user_pcm[d:], pcm)
    assert len(rec.model_pcm) == 30 * FRAME_SIZE - d
    assert np.abs(rec.model_pcm[:FRAME_SIZE]).max() == 0  # the LM's initial delay
    assert np.abs(rec.model_pcm[FRAME_SIZE:]).max() > 0.01

    folder = rec.save(tmp_path / "rec")
    back = Recording.load(folder)
    assert back.text_tokens == rec.text_tokens and back.transcript() == rec.transcript()
    assert back.metrics == rec.metrics
    assert back.session["model"] == "tiny"
    assert back.meta["input_sha256"] == rec.meta["input_sha256"]
    assert back.stereo().shape == (30 * FRAME_SIZE + d, 2)
    np.testing.assert_allclose(back.user_pcm[d:], pcm, atol=1e-4)  # 16-bit WAV


async def test_same_seed_same_tokens_through_the_server(server_url: str, speech_pcm: np.ndarray) -> None:
    pcm = speech_pcm[: 20 * FRAME_SIZE]
    runs = []
    for _ in range(2):
        async with connect(server_url) as s:
            await s.set_params(seed=5)
            runs.append((await stream_pcm(s, pcm, realtime=False)).frame_tokens())
    assert runs[0] == runs[1]
    assert any(t is not None for t in runs[0])


async def test_set_params_mid_session(server_url: str, speech_pcm: np.ndarray) -> None:
    async with connect(server_url) as s:
        chunks = list(frames(speech_pcm[: 24 * FRAME_SIZE]))
        for f in chunks[:8]:
            await s.send_frame(f)
        await s.wait_frames(8)
        await s.set_params(temp=0.3, top_k=5, top_k_text=3)
        for f in chunks[8:]:
            await s.send_frame(f)
        await s.drain()
        rec = s.recording
    assert rec.params, "the server confirms when new parameters take effect"
    change = rec.params[-1]
    n = change["from_frame"]
    assert 8 <= n < 24
    assert change["params"] == {"temp": 0.3, "temp_text": 0.7, "top_k": 5, "top_k_text": 3}
    assert all(m["params"]["top_k"] == 250 for m in rec.metrics[:n])
    assert all(m["params"] == change["params"] for m in rec.metrics[n:])


async def test_client_validates_before_sending(server_url: str) -> None:
    async with connect(server_url) as s:
        with pytest.raises(ConfigError, match="above the audio codebook size"):
            await s.set_params(top_k=5000)


async def test_second_client_is_told_busy_and_the_next_is_served(server_url: str) -> None:
    async with connect(server_url) as first:
        with pytest.raises(ServerError, match="busy"):
            async with connect(server_url):
                pass
        await first.send_frame(np.zeros(FRAME_SIZE, np.float32))
        await first.drain()
    async with connect(server_url) as third:
        await third.send_frame(np.zeros(FRAME_SIZE, np.float32))
        await third.drain()
        assert third.recording.metrics[0]["frame"] == 0


def _ogg_page() -> bytes:
    return sphn.OpusStreamWriter(24000).append_pcm(np.zeros(FRAME_SIZE, np.float32))


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (b"", "empty message"),
        (b"\x7f\x00", "unknown message kind 0x7f"),
        (b"\x01" + b"\x00" * (P.MAX_MESSAGE_BYTES + 10), "over the 1048576-byte limit"),
        (b"\x01" + b"this is not opus at all, just bytes", "not Ogg Opus"),
        (b"\x01", "no payload"),
        (b"\x01" + _ogg_page()[:40], "truncated Ogg page"),
        (b"\x04{not json", "not UTF-8 JSON"),
        (b'\x04{"type": "launch_rockets"}', "unknown metadata type 'launch_rockets'"),
        (b'\x04{"type": "set_params", "temp": 99}', "temp=99 is out of range: allowed 0.0..5.0"),
        (b'\x04{"type": "set_params", "top_k": 99999}', "top_k=99999 is above the audio codebook size"),
        (b'\x04{"type": "set_params", "warmth": 1}', "unknown parameter(s) warmth"),
        (b'\x04{"type": "set_params", "seed": -4}', "seed=-4 is out of range"),
        (b"\x02hello", "message kind text (0x02) is not accepted from clients"),
    ],
)
async def test_bad_input_gets_a_named_error_and_the_session_goes_on(
    server_url: str, message: bytes, expected: str
) -> None:
    async with connect(server_url) as s:
        await s.send_frame(np.zeros(FRAME_SIZE, np.float32))
        await s.drain()
        await s.send_raw(message)
        error = await s.wait_error()
        assert expected in error
        await s.send_frame(np.zeros(FRAME_SIZE, np.float32))
        await s.drain()
        assert [m["frame"] for m in s.recording.metrics] == [0, 1]


async def test_text_websocket_frames_are_refused(server_url: str) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(server_url + P.CHAT_PATH) as ws:
        assert (await ws.receive_bytes()) == b"\x00"
        await ws.receive_bytes()  # session description
        await ws.send_str("hello")
        msg = await ws.receive_bytes(timeout=10)
        assert msg[0] == P.Kind.ERROR and b"send binary" in msg


async def test_raw_protocol_as_moshi_clients_speak_it(server_url: str, speech_pcm: np.ndarray) -> None:
    """Bytes on the wire, no kit client: 0x00 first, then 0x01 Ogg Opus and 0x02 UTF-8 text back."""
    writer, reader = sphn.OpusStreamWriter(24000), sphn.OpusStreamReader(24000)
    got_audio = 0
    texts: list[str] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(server_url + P.CHAT_PATH) as ws:
        assert (await ws.receive_bytes()) == b"\x00"
        for f in frames(speech_pcm[: 20 * FRAME_SIZE]):
            page = writer.append_pcm(f)
            if page:
                await ws.send_bytes(b"\x01" + page)
        async with asyncio.timeout(30):
            while got_audio < 18 * FRAME_SIZE:
                msg = await ws.receive_bytes()
                if msg[0] == 1:
                    assert msg[1:5] == b"OggS"
                    got_audio += reader.append_bytes(msg[1:]).shape[-1]
                elif msg[0] == 2:
                    texts.append(msg[1:].decode("utf-8"))
    assert got_audio >= 18 * FRAME_SIZE
    assert texts and not any(t.startswith(" ") for t in texts)  # Japanese: no stray spaces


def test_token_is_required_when_set(tiny_path: Path) -> None:
    with jmoshi_serve("--token", "s3cret") as url:
        with pytest.raises(ServerError, match="refused the token"):
            asyncio.run(record_silence(url, 1, token=None))
        with pytest.raises(ServerError, match="refused the token"):
            asyncio.run(record_silence(url, 1, token="wrong"))
        assert len(asyncio.run(record_silence(url, 1, token="s3cret")).metrics) == 1
