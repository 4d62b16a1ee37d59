"""The server plays well with moshi's own web client (kyutai-labs/moshi ``client/``).

This test plays that client's side of the protocol: its URL (sampling, seeds, pad_mult, repetition
penalty), no request for the kit's metadata, and its checks: every 0x04 message is parsed with the
Rust server's info schema (``useServerInfo.ts``, re-stated below as the client states it, not taken
from the kit), and the socket is dropped after 10 s without a message (``useSocket.ts``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import numpy as np
import pytest
import sphn
from servers import serving

from jmoshi_nb.core.audio import FRAME_SIZE, SAMPLE_RATE
from jmoshi_nb.core.config import Sampling
from jmoshi_nb.model.engine import Engine
from jmoshi_nb.serve import protocol as P
from jmoshi_nb.serve.client import connect
from jmoshi_nb.serve.server import ChatServer

# moshi client/src/pages/Conversation/hooks/useServerInfo.ts (zod): every key, its type.
CLIENT_SCHEMA: dict[str, type | dict[str, type]] = {
    "text_temperature": float,
    "text_topk": float,
    "audio_temperature": float,
    "audio_topk": float,
    "pad_mult": float,
    "repetition_penalty_context": float,
    "repetition_penalty": float,
    "lm_model_file": str,
    "instance_name": str,
    "build_info": {
        k: str
        for k in (
            "build_timestamp", "build_date", "git_branch", "git_timestamp", "git_date", "git_hash",
            "git_describe", "rustc_host_triple", "rustc_version", "cargo_target_triple",
        )
    },
}  # fmt: skip


def schema_problems(obj: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """What zod's ``safeParse`` would reject (z.number() takes ints and floats, never bools)."""
    if not isinstance(obj, dict):
        return [f"{where or 'message'} is not an object"]
    problems = []
    for key, kind in schema.items():
        if key not in obj:
            problems.append(f"{where}{key} missing")
        elif isinstance(kind, dict):
            problems += schema_problems(obj[key], kind, f"{where}{key}.")
        elif kind is float and (isinstance(obj[key], bool) or not isinstance(obj[key], int | float)):
            problems.append(f"{where}{key} is not a number")
        elif kind is str and not isinstance(obj[key], str):
            problems.append(f"{where}{key} is not a string")
    return problems


def web_client_query(text_seed: int, **overrides: Any) -> dict[str, str]:
    """The query string moshi's web client builds (Conversation.tsx), with its defaults."""
    params = {
        "text_temperature": 0.7, "text_topk": 25, "audio_temperature": 0.8, "audio_topk": 250,
        "pad_mult": 0, "text_seed": text_seed, "audio_seed": 1234,
        "repetition_penalty_context": 64, "repetition_penalty": 1.0,
    }  # fmt: skip
    params.update(overrides)
    return {k: str(v) for k, v in params.items()}


async def web_client_conversation(
    url: str, query: dict[str, str], pcm: np.ndarray, watchdog_s: float = 10.0
) -> dict[str, Any]:
    """Talk as moshi's web client does: what came back, and the longest silence between messages."""
    writer, reader = sphn.OpusStreamWriter(SAMPLE_RATE), sphn.OpusStreamReader(SAMPLE_RATE)
    out: dict[str, Any] = {"metadata": [], "text": "", "audio_samples": 0, "errors": [], "pings": 0}
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url + P.CHAT_PATH, params=query) as ws:
            first = await ws.receive(timeout=30)
            assert first.data[:1] == bytes([P.Kind.HANDSHAKE])
            last, longest = time.monotonic(), 0.0

            async def receive() -> None:
                nonlocal last, longest
                async for msg in ws:
                    now = time.monotonic()
                    longest, last = max(longest, now - last), now
                    kind, payload = P.unpack(msg.data)
                    if kind == P.Kind.METADATA:
                        out["metadata"].append(json.loads(payload))
                    elif kind == P.Kind.TEXT:
                        out["text"] += payload.decode()
                    elif kind == P.Kind.AUDIO:
                        out["audio_samples"] += reader.append_bytes(payload).shape[-1]
                    elif kind == P.Kind.ERROR:
                        out["errors"].append(payload.decode())
                    elif kind == P.Kind.PING:
                        out["pings"] += 1

            task = asyncio.create_task(receive())
            for i in range(0, len(pcm) - FRAME_SIZE + 1, FRAME_SIZE):
                opus = writer.append_pcm(pcm[i : i + FRAME_SIZE])
                if opus:
                    await ws.send_bytes(P.pack(P.Kind.AUDIO, opus))
            deadline = time.monotonic() + 60
            frames = len(pcm) // FRAME_SIZE
            while out["audio_samples"] < (frames - 2) * FRAME_SIZE and time.monotonic() < deadline:
                assert time.monotonic() - last < watchdog_s, "the client's watchdog would have closed the socket"
                await asyncio.sleep(0.05)
            out["longest_silence_s"] = max(longest, time.monotonic() - last)
            await ws.close()
            await task
    return out


@pytest.fixture
async def server(engine: Engine) -> AsyncIterator[tuple[str, ChatServer]]:
    engine.reset(Sampling(), 42)
    chat = ChatServer(engine)
    async with serving(chat.make_app()) as url:
        yield url, chat


async def test_every_metadata_message_passes_the_web_clients_schema(
    server: tuple[str, ChatServer], speech_pcm: np.ndarray
) -> None:
    url, _ = server
    out = await web_client_conversation(url, web_client_query(7), speech_pcm[: 25 * FRAME_SIZE])
    assert out["errors"] == []
    assert len(out["metadata"]) == 1, "at most one 0x04 message for a client that did not ask for metrics"
    (info,) = out["metadata"]
    assert schema_problems(info, CLIENT_SCHEMA) == []
    assert set(info) == set(P.SERVER_INFO_KEYS)
    # The values in force: the URL's sampling.
    assert (info["text_temperature"], info["text_topk"]) == (0.7, 25)
    assert (info["audio_temperature"], info["audio_topk"]) == (0.8, 250)
    assert info["lm_model_file"] and info["build_info"]["git_describe"].startswith("jmoshi-nb")
    assert out["text"] and out["audio_samples"] > 20 * FRAME_SIZE


async def test_url_sampling_and_seed_apply_to_that_conversation(
    server: tuple[str, ChatServer], speech_pcm: np.ndarray
) -> None:
    url, _ = server
    pcm = speech_pcm[: 25 * FRAME_SIZE]
    seeded = [await web_client_conversation(url, web_client_query(11), pcm) for _ in range(2)]
    other = await web_client_conversation(url, web_client_query(12), pcm)
    # text_seed is the conversation's seed (the last frame's text may or may not be in before the close)
    n = min(len(seeded[0]["text"]), len(seeded[1]["text"]), len(other["text"]))
    assert n >= 5 and seeded[0]["text"][:n] == seeded[1]["text"][:n]
    assert other["text"][:n] != seeded[0]["text"][:n]
    greedy = await web_client_conversation(url, web_client_query(3, text_topk=1, audio_topk=1), pcm)
    info = greedy["metadata"][0]
    assert (info["text_topk"], info["audio_topk"]) == (1, 1)
    # The kit's client sees the same URL applied, in its session description and per-frame params.
    async with connect(url) as s:
        assert s.info["sampling"] == Sampling().model_dump()  # the next conversation: the defaults again


async def test_kit_client_sees_the_url_sampling_in_its_metrics(server: tuple[str, ChatServer]) -> None:
    url, _ = server
    async with aiohttp.ClientSession() as http:
        query = {"metrics": "1", "audio_topk": "7", "text_temperature": "0.2", "text_seed": "99"}
        async with http.ws_connect(url + P.CHAT_PATH, params=query) as ws:
            assert (await ws.receive(timeout=30)).data == bytes([P.Kind.HANDSHAKE])
            session = json.loads((await ws.receive(timeout=5)).data[1:])
            assert session["type"] == "session"
            assert session["sampling"]["top_k"] == 7 and session["sampling"]["temp_text"] == 0.2
            assert session["seed"] == 99 and session["ignored_params"] == {}


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"audio_topk": "0"}, "top_k"),
        ({"text_temperature": "hot"}, "text_temperature"),
        ({"text_topk": "2.5"}, "text_topk"),
        ({"audio_topk": "999999"}, "top_k"),
        ({"text_seed": "-1"}, "seed"),
    ],
)
async def test_bad_url_parameters_are_refused_by_name(
    server: tuple[str, ChatServer], override: dict[str, str], named: str
) -> None:
    url, chat = server
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url + P.CHAT_PATH, params=web_client_query(1) | override) as ws:
            msg = await ws.receive(timeout=10)
            kind, payload = P.unpack(msg.data)
            assert kind == P.Kind.ERROR
            assert "bad parameters in the URL" in payload.decode() and named in payload.decode()
    assert not chat.busy  # the place was given back


async def test_unsupported_parameters_are_recorded_and_logged_once(
    server: tuple[str, ChatServer], speech_pcm: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = server
    caplog.set_level(logging.INFO, logger="jmoshi_nb.serve.server")
    query = web_client_query(5, pad_mult=0.5, repetition_penalty=1.3) | {"metrics": "1"}
    for _ in range(2):
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(url + P.CHAT_PATH, params=query) as ws:
                await ws.receive(timeout=30)
                session = json.loads((await ws.receive(timeout=5)).data[1:])
        assert session["ignored_params"] == {
            "pad_mult": "0.5",
            "repetition_penalty_context": "64",
            "repetition_penalty": "1.3",
            "audio_seed": "1234",
        }
    logged = [r.getMessage() for r in caplog.records if "no counterpart" in r.getMessage()]
    assert len(logged) == 4 and all(r.levelno == logging.INFO for r in caplog.records if "counterpart" in r.msg)
    assert any("pad_mult=0.5" in m for m in logged)


async def test_pings_keep_the_watchdog_quiet_while_a_step_stalls(
    server: tuple[str, ChatServer], speech_pcm: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, chat = server
    chat.ping_interval_s = 0.3
    real_step = Engine.step
    calls = 0

    def stalling_step(self, frame, forced_audio=None):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 2:
            time.sleep(2.5)  # a cold first step on a large model: seconds without output
        return real_step(self, frame, forced_audio)

    monkeypatch.setattr(Engine, "step", stalling_step)
    out = await web_client_conversation(url, web_client_query(1), speech_pcm[: 10 * FRAME_SIZE], watchdog_s=1.0)
    assert out["pings"] >= 4  # ~2.5 s of stall at one ping per 0.3 s
    assert out["longest_silence_s"] < 1.0
    assert len(out["metadata"]) == 1 and out["errors"] == []


async def test_a_hello_asks_for_the_kits_metadata(server: tuple[str, ChatServer]) -> None:
    url, _ = server
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url + P.CHAT_PATH) as ws:
            assert (await ws.receive(timeout=30)).data == bytes([P.Kind.HANDSHAKE])
            info = json.loads((await ws.receive(timeout=5)).data[1:])
            assert schema_problems(info, CLIENT_SCHEMA) == []
            await ws.send_bytes(P.pack_json({"type": "hello", "metrics": True}))
            session = json.loads((await ws.receive(timeout=5)).data[1:])
            assert session["type"] == "session" and session["model"] == "tiny"
            writer = sphn.OpusStreamWriter(SAMPLE_RATE)
            for _ in range(4):
                opus = writer.append_pcm(np.zeros(FRAME_SIZE, np.float32))
                if opus:
                    await ws.send_bytes(P.pack(P.Kind.AUDIO, opus))
            kinds = set()
            while "metrics" not in kinds:
                kind, payload = P.unpack((await ws.receive(timeout=10)).data)
                if kind == P.Kind.METADATA:
                    kinds.add(json.loads(payload)["type"])
            assert kinds == {"metrics"}
