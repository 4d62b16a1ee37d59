"""The access token check, one place for every HTTP surface (the conversation server, its pages, the rater page)."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")  # the default bind: only this computer reaches the server
ANY_HOST = ("0.0.0.0", "::")  # every interface: a link names this computer's own address instead
TOKEN_COOKIE = "jmoshi_token"  # set by the talk page's first load, so its URL and WebSocket carry no token


def token_ok(request: web.Request, token: str | None) -> bool:
    """Whether ``request`` presents ``token`` (``?token=``, ``Authorization: Bearer`` or the page's cookie).

    True when the server has no token.
    """
    if not token:
        return True
    given = request.query.get("token", "") or request.cookies.get(TOKEN_COOKIE, "")
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        given = auth.removeprefix("Bearer ")
    return hmac.compare_digest(given.encode(), token.encode())


def is_loopback(host: str) -> bool:
    """Whether a server bound to ``host`` is reachable from this computer only."""
    return host in LOOPBACK_HOSTS


def link_host(host: str) -> str:
    """The host a printed link names for a server bound to ``host`` (``0.0.0.0`` / ``::``: 127.0.0.1)."""
    return "127.0.0.1" if host in ANY_HOST else host
