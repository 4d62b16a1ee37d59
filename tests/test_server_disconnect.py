"""A client that goes away is an everyday event: the server logs it at INFO, never as an engine failure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp.client_exceptions import ClientConnectionResetError
from servers import record_silence, send_silence, serving, wait_until

from jmoshi_nb.core.config import Sampling
from jmoshi_nb.model.engine import Engine
from jmoshi_nb.serve.client import connect
from jmoshi_nb.serve.server import ChatServer


@pytest.fixture
async def server(engine: Engine) -> AsyncIterator[tuple[str, ChatServer]]:
    engine.reset(Sampling(), 42)
    chat = ChatServer(engine)
    async with serving(chat.make_app()) as url:
        yield url, chat


def server_records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "jmoshi_nb.serve.server" and r.levelno == level]


async def test_a_send_to_a_closing_transport_is_logged_as_a_disconnect(
    server: tuple[str, ChatServer], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, chat = server
    real_send = ChatServer._send_result
    sent = 0

    async def send_then_lose_the_client(self, s, r):  # type: ignore[no-untyped-def]
        nonlocal sent
        sent += 1
        if sent == 2:  # what aiohttp raises when the client closed the socket mid-send
            raise ClientConnectionResetError("Cannot write to closing transport")
        await real_send(self, s, r)

    monkeypatch.setattr(ChatServer, "_send_result", send_then_lose_the_client)
    caplog.set_level(logging.INFO, logger="jmoshi_nb.serve.server")
    async with connect(url) as s:
        await send_silence(s, 4)
        await asyncio.wait_for(s._receiver, 15)  # type: ignore[arg-type]
        assert s.errors == []  # nobody is told "engine error": the client is the one who left
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    infos = [r.getMessage() for r in server_records(caplog, logging.INFO)]
    assert any("client disconnected" in m and "Cannot write to closing transport" in m for m in infos)
    monkeypatch.setattr(ChatServer, "_send_result", real_send)
    rec = await record_silence(url, 1)  # the server goes on serving
    assert len(rec.metrics) == 1


async def test_clients_closing_mid_stream_leave_no_error_in_the_log(
    server: tuple[str, ChatServer], caplog: pytest.LogCaptureFixture
) -> None:
    url, chat = server
    caplog.set_level(logging.INFO, logger="jmoshi_nb.serve.server")
    for _ in range(3):
        async with connect(url) as s:
            await send_silence(s, 12)  # results are still being sent when the client closes
            await s.wait_frames(1)
        await wait_until(lambda: not chat._busy.locked(), seconds=5)  # the server finishes the session
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
