"""The server side of the talk page: settings given out blind, server recordings, ratings, access.

Real servers on 127.0.0.1 (in-process ChatServer on the tiny engine), real Opus, real files.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from processes import free_port
from servers import send_silence, serving, wait_until

from jmoshi_nb.cli import main
from jmoshi_nb.core.audio import FRAME_SIZE, SAMPLE_RATE
from jmoshi_nb.core.config import ConfigError, Sampling, SessionConfig
from jmoshi_nb.core.recording import Recording
from jmoshi_nb.model.engine import Engine
from jmoshi_nb.serve import protocol as P
from jmoshi_nb.serve.client import connect, opus_delay
from jmoshi_nb.serve.record import RATING_FILE, ServerRecorder, safe_participant
from jmoshi_nb.serve.server import TOKEN_COOKIE, ChatServer, configure
from jmoshi_nb.serve.settings import Setting, SettingAssigner, load_settings
from jmoshi_nb.serve.talk_page import RedactingAccessLogger, redact


def settings(*temps: float) -> list[Setting]:
    return [Setting(i, f"System {i + 1}", SessionConfig(model="tiny", name=f"s{i}", seed=None, sampling={"temp": t}))
            for i, t in enumerate(temps)]  # fmt: skip


@pytest.fixture
async def recorded(engine: Engine, tmp_path: Path) -> AsyncIterator[tuple[str, ChatServer]]:
    engine.reset(Sampling(), 42)
    chat = configure(
        ChatServer(engine, token="tok"),
        assigner=SettingAssigner(settings(0.5, 1.0), "balanced"),
        recorder=ServerRecorder(tmp_path / "rec"),
        rate=True,
    )
    async with serving(chat.make_app()) as url:
        yield url, chat


def folders(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*") if (p / "session.json").exists())


def test_participant_ids_never_leave_the_folder(tmp_path: Path) -> None:
    assert safe_participant("../../etc/passwd") == "etc_passwd"
    assert safe_participant("被験者_01") == "被験者_01"
    assert safe_participant("a/b\\c:d") == "a_b_c_d"
    assert safe_participant("..").startswith("anon-") and safe_participant(None).startswith("anon-")
    assert len(safe_participant("x" * 500)) == 64
    recorder = ServerRecorder(tmp_path / "rec")
    for raw in ("../up", "/abs/path", "..", "ok-1", "C:\\\\win"):
        _, folder = recorder.folder_for(raw)
        assert folder.resolve().parent.parent == (tmp_path / "rec").resolve()


def test_record_folder_must_be_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="--record .*not a writable folder"):
        ServerRecorder(blocker / "rec")


def test_balanced_gives_each_setting_in_turn_and_random_is_seeded() -> None:
    balanced = SettingAssigner(settings(0.5, 0.7, 0.9), "balanced")
    assert [balanced.assign().index for _ in range(6)] == [0, 1, 2, 0, 1, 2]
    draws = [[SettingAssigner(settings(0.5, 0.7), "random", seed=4).assign().index for _ in range(1)] for _ in range(3)]
    assert draws[0] == draws[1] == draws[2]
    rnd = SettingAssigner(settings(0.5, 0.7), "random", seed=1)
    picks = [rnd.assign().index for _ in range(200)]
    assert 60 < picks.count(0) < 140 and rnd.counts == [picks.count(0), picks.count(1)]


def test_configs_name_the_bad_file_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = SessionConfig(model="tiny").save(tmp_path / "good.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: tiny\nsampling:\n  temp: 99\n", encoding="utf-8")
    assert main(["serve", "--configs", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "sampling.temp" in err
    other = SessionConfig(model="j-moshi").save(tmp_path / "other.yaml")
    assert main(["serve", "--configs", str(good), str(other)]) == 2
    assert "other.yaml: field 'model'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="missing.yaml: no such config file"):
        load_settings([tmp_path / "missing.yaml"], None)


def test_serve_refuses_bad_page_options_before_loading(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["serve", "--record", str(blocker / "rec")]) == 2
    assert "--record" in capsys.readouterr().err
    assert main(["serve", "--host", "0.0.0.0", "--rate"]) == 2
    err = capsys.readouterr().err
    assert "--rate needs --record" in err and "warning: --host 0.0.0.0" in err and "microphone" in err


async def test_each_conversation_is_recorded_with_its_setting(
    recorded: tuple[str, ChatServer], speech_pcm: np.ndarray, tmp_path: Path
) -> None:
    url, chat = recorded
    pcm = speech_pcm[: 12 * FRAME_SIZE]
    labels = []
    for p in ("alice", "bob"):
        async with connect(url + f"?{P.PARTICIPANT_QUERY}={p}", token="tok") as s:
            labels.append(s.info["setting_label"])
            for i in range(12):
                await s.send_frame(pcm[i * FRAME_SIZE : (i + 1) * FRAME_SIZE])
            await s.drain()
            await s.send_raw(P.pack_json({"type": "end"}))
            client_text = s.recording.transcript()
    assert labels == ["System 1", "System 2"]
    await wait_until(lambda: len([f for f in folders(chat.recorder.root) if "audio.wav" in os.listdir(f)]) == 2)
    recs = {f.parent.name: Recording.load(f) for f in folders(chat.recorder.root)}
    assert set(recs) == {"alice", "bob"}
    a, b = recs["alice"], recs["bob"]
    assert not a.cut_short and a.meta["setting"] == {
        "index": 0, "label": "System 1", "name": "s0", "source": None, "assign": "balanced"
    }  # fmt: skip
    assert b.meta["setting"]["name"] == "s1" and b.config is not None and b.config.sampling.temp == 1.0
    assert a.config is not None and a.config.seed == a.meta["seed"] and isinstance(a.meta["seed"], int)
    assert len(a.metrics) == 12 and [m["frame"] for m in a.metrics] == list(range(12))
    assert b.transcript() == client_text
    # The user's audio as the server decoded it: the speech, one Opus encode + decode later.
    d = opus_delay()
    assert len(a.user_pcm) == 12 * FRAME_SIZE
    assert np.corrcoef(a.user_pcm[d:], pcm[: len(pcm) - d])[0, 1] > 0.9


async def _abort(ws: aiohttp.ClientWebSocketResponse) -> None:
    ws._response.connection.transport.abort()  # type: ignore[union-attr]  # no close frame: the tab died


async def _close_tab(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)  # what a browser sends when the tab closes


@pytest.mark.parametrize(
    ("leave", "reason"), [(_abort, "connection lost"), (_close_tab, "page closed")], ids=["lost", "tab-closed"]
)
async def test_a_conversation_the_client_did_not_end_is_recorded_cut_short(
    recorded: tuple[str, ChatServer], leave: Any, reason: str
) -> None:
    """A lost connection, or a closed tab (close code 1001, unlike End's 1000): cut short, saying which."""
    import sphn

    url, chat = recorded
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url + P.CHAT_PATH, headers={"Authorization": "Bearer tok"})
        assert (await ws.receive(timeout=30)).data == bytes([P.Kind.HANDSHAKE])
        writer = sphn.OpusStreamWriter(SAMPLE_RATE)
        for _ in range(6):
            opus = writer.append_pcm(np.full(FRAME_SIZE, 0.1, np.float32))
            if opus:
                await ws.send_bytes(P.pack(P.Kind.AUDIO, opus))
        await asyncio.sleep(1.0)
        await leave(ws)
    await wait_until(lambda: any("audio.wav" in os.listdir(f) for f in folders(chat.recorder.root)), 15)
    (folder,) = folders(chat.recorder.root)
    rec = Recording.load(folder)
    assert rec.cut_short and rec.meta["cut_short"] == reason and len(rec.metrics) >= 3


async def test_rating_is_stored_beside_its_recording(recorded: tuple[str, ChatServer]) -> None:
    url, chat = recorded
    async with connect(url, token="tok") as s:
        await send_silence(s, 3)
        await s.drain()
        conversation = s.info["conversation"]
    http_url = url.replace("ws://", "http://")
    answer = {"conversation": conversation, "naturalness": 5, "meaningfulness": 3, "overall": 4, "comment": "良い"}
    async with aiohttp.ClientSession() as http:
        async with http.post(http_url + "/api/rating", json=answer) as r:
            assert r.status == 401  # no token, no cookie
        async with http.post(http_url + "/api/rating", json=answer, cookies={TOKEN_COOKIE: "tok"}) as r:
            assert r.status == 200, await r.text()
        async with http.post(http_url + "/api/rating", json=answer, cookies={TOKEN_COOKIE: "tok"}) as r:
            assert r.status == 400 and "already been rated" in await r.text()
        for bad, named in (({"naturalness": 6}, "naturalness"), ({"overall": "4"}, "overall"),
                           ({"conversation": "../x"}, "no conversation")):  # fmt: skip
            async with http.post(http_url + "/api/rating", json=answer | bad, cookies={TOKEN_COOKIE: "tok"}) as r:
                assert r.status == 400 and named in await r.text()
    folder = chat.recorder.folder_of(conversation)
    assert folder is not None
    doc = json.loads((folder / RATING_FILE).read_text(encoding="utf-8"))
    assert doc["naturalness"] == 5 and doc["comment"] == "良い" and doc["conversation"] == conversation


async def test_page_needs_the_token_and_keeps_it_in_a_cookie(recorded: tuple[str, ChatServer]) -> None:
    url, _ = recorded
    http_url = url.replace("ws://", "http://")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:  # unsafe: an IP host
        async with http.get(http_url + "/") as r:
            assert r.status == 401 and "トークン" in await r.text()
        async with http.get(http_url + "/?token=tok") as r:
            assert r.status == 200
            cookie = r.cookies[TOKEN_COOKIE]
            assert cookie.value == "tok" and cookie["httponly"] and cookie["samesite"] == "Strict"
        async with http.get(http_url + "/") as r:  # the cookie now carries it
            assert r.status == 200
        async with http.ws_connect(url + P.CHAT_PATH + "?metrics=1") as ws:  # and the WebSocket too
            assert (await ws.receive(timeout=30)).data == bytes([P.Kind.HANDSHAKE])
        for name in ("talk.js", "ogg.js", "talk.css", "worklet/capture.js", "worklet/player.js"):
            async with http.get(f"{http_url}/pages/{name}") as r:
                assert r.status == 200 and len(await r.text()) > 100
        async with http.get(http_url + "/pages/..%2Fserver.py") as r:
            assert r.status == 404


async def test_access_log_never_shows_a_token(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    assert (
        redact("GET /api/chat?metrics=1&token=s3cr3t&p=a HTTP/1.1") == "GET /api/chat?metrics=1&token=***&p=a HTTP/1.1"
    )
    engine.reset(Sampling(), 42)
    app = ChatServer(engine, token="s3cr3t").make_app()
    runner = web.AppRunner(app, access_log_class=RedactingAccessLogger)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    try:
        async with aiohttp.ClientSession() as http:
            for path in ("/?token=s3cr3t", "/?token=wrong", "/api/health?TOKEN=s3cr3t"):
                async with http.get(f"http://127.0.0.1:{port}{path}") as r:
                    await r.read()
    finally:
        await runner.cleanup()
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert len(lines) == 3 and all("token=***" in line.lower() for line in lines), lines
    assert not any("s3cr3t" in line or "wrong" in line for line in lines)


def test_max_sessions_each_conversation_its_own_slot_and_setting(tiny_path: Path, tmp_path: Path) -> None:
    """``serve --max-sessions 2 --configs a b``: two at once, each its own setting; the third is told busy."""
    from processes import jmoshi_serve

    paths = [str(SessionConfig(model="tiny", name=n, seed=None).save(tmp_path / f"{n}.yaml")) for n in ("a", "b")]

    async def three(url: str) -> tuple[list[str], str]:
        async with connect(url) as first, connect(url) as second:
            labels = [first.info["setting_label"], second.info["setting_label"]]
            slots = {first.info["slot"], second.info["slot"]}
            assert len(slots) == 2
            try:
                async with connect(url, timeout=10):
                    pass
            except Exception as exc:  # ServerError: busy
                return labels, str(exc)
        return labels, ""

    with jmoshi_serve("--max-sessions", "2", "--configs", *paths, "--record", str(tmp_path / "rec")) as url:
        labels, busy = asyncio.run(three(url))
    assert sorted(labels) == ["System 1", "System 2"]
    assert busy.startswith("busy")
