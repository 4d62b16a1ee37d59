"""The access token check, one place for every HTTP surface (the conversation server, the rater page)."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web


def token_ok(request: web.Request, token: str | None) -> bool:
    """Whether ``request`` presents ``token`` (``?token=`` or ``Authorization: Bearer``); True without one."""
    if not token:
        return True
    given = request.query.get("token", "")
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        given = auth.removeprefix("Bearer ")
    return hmac.compare_digest(given.encode(), token.encode())
