"""``session.share()``: the talk page's link for the notebook's current setting, served by a real server."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from typing import Any

import pytest

from jmoshi_nb.core.config import Sampling, SessionConfig
from jmoshi_nb.notebook.session import start
from jmoshi_nb.serve.backends import LocalServer
from jmoshi_nb.serve.client import connect
from jmoshi_nb.serve.talk_page import page_link


def status_and_body(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_page_link_from_every_address_form() -> None:
    assert page_link("ws://127.0.0.1:8998") == "http://127.0.0.1:8998/"
    assert page_link("wss://x.modal.run/api/chat", "a b&c") == "https://x.modal.run/?token=a+b%26c"
    assert page_link("http://h:1/", "t") == "http://h:1/?token=t"


def test_share_serves_the_current_setting_on_its_own_server(engine: Any) -> None:
    with start("tiny", config=SessionConfig(model="tiny", seed=3)) as s:
        s.set_params(temp=0.3, top_k=7)
        link = s.share()
        assert s.share() == link  # one shared server per session
        assert link.startswith("http://127.0.0.1:") and "?token=" in link
        assert "<a href=" in link._repr_html_() and 'target="_blank"' in link._repr_html_()
        status, body = status_and_body(link)
        assert status == 200 and "J-Moshi" in body
        assert status_and_body(link.split("?")[0])[0] == 401  # the token is needed

        async def shared_sampling() -> dict[str, Any]:
            token = link.split("token=")[1]
            async with connect(link.split("?")[0], token=token) as c:
                return c.info

        info = asyncio.run(shared_sampling())
        assert info["sampling"]["temp"] == 0.3 and info["sampling"]["top_k"] == 7 and info["seed"] == 3
    with pytest.raises(urllib.error.URLError):  # the shared server stopped with the session
        urllib.request.urlopen(link, timeout=5)


def test_share_on_a_server_started_elsewhere_is_that_servers_page(engine: Any) -> None:
    engine.reset(Sampling(), 42)
    with LocalServer(engine=engine, token="tok-123") as server:
        with start(url=server.url, token="tok-123") as s:
            link = s.share()
            assert link == page_link(server.url, "tok-123")
            status, body = status_and_body(link)
            assert status == 200 and "jt-start" in body
