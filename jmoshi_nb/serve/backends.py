"""Servers in this process (``tiny`` / ``local``: a thread) and what every backend's handle offers.

``remote.modal_client.ModalServer`` is the ``modal`` backend; ``notebook.servers.start_server`` picks
one of them. Every backend gives a ``ServerHandle``: a WebSocket base URL, the token to present (or None) and
``stop()``. Sessions (notebook, CLI, sweeps) only ever talk to that URL, so the data path is the
same whichever backend serves it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, Self

from aiohttp import web

from ..core.config import SessionConfig
from .loop_thread import AppThread


class ServerHandle(Protocol):
    url: str
    token: str | None

    def stop(self) -> None: ...


class StartStopServer(ABC):
    """A ``ServerHandle`` that ``start()`` brings up and ``stop()`` ends; ``with handle:`` does both."""

    @abstractmethod
    def start(self) -> Self: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def chat_server(engine: Any, token: str | None = None) -> Any:
    """The kit's server for ``engine``: ``MultiChatServer`` (one conversation per slot) for a ``BatchEngine``,
    ``ChatServer`` (one conversation) for an ``Engine``."""
    from ..model.engine_factory import is_batched
    from .multi_server import MultiChatServer
    from .server import ChatServer

    return (MultiChatServer if is_batched(engine) else ChatServer)(engine, token=token)


def serve_forever(
    engine: Any, host: str = "127.0.0.1", port: int = 8998, token: str | None = None, **options: Any
) -> None:
    """Run the kit's server for ``engine`` in the foreground (``jmoshi-nb serve``) until interrupted.

    ``options``: the talk page's (settings, recording, sliders, rating form; ``server.configure``).
    """
    from .server import configure, run_server

    run_server(configure(chat_server(engine, token), **options), host, port)


def serve_engine(
    engine: Any,
    token: str | None,
    host: str = "127.0.0.1",
    port: int = 0,
    name: str = "jmoshi-nb-server",
    routes: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] | None = None,
    **options: Any,
) -> AppThread:
    """The kit's server for ``engine`` on a background thread, plus extra GET ``routes``; started.

    The server is ``chat_server(engine, token)``'s, with the talk page's ``options`` (settings,
    recording, sliders, rating form: ``server.configure``). Its access log never shows a token.

    The local backends and the Modal container's web server both start their server this way.
    """
    from .server import configure
    from .talk_page import RedactingAccessLogger

    app = configure(chat_server(engine, token), **options).make_app()
    for path, handler in (routes or {}).items():
        app.router.add_get(path, handler)
    return AppThread(app, host, port, name=name, access_log_class=RedactingAccessLogger).start()


class LocalServer(StartStopServer):
    """The kit's server on a background thread of this process (loopback, ephemeral port)."""

    def __init__(
        self,
        model: str = "tiny",
        revision: str | None = None,
        config: SessionConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        engine: Any | None = None,
        device: str | None = None,
        name: str = "jmoshi-nb-server",
        scheme: str = "ws",
        routes: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] | None = None,
        max_sessions: int = 1,
        page_options: dict[str, Any] | None = None,
    ) -> None:
        self.page_options = page_options or {}  # the talk page's (``server.configure``'s keywords)
        self.model, self.revision, self.host, self.port = model, revision, host, port
        self.name, self.scheme, self.routes = name, scheme, routes
        self.max_sessions = max_sessions  # > 1: a batched engine, one conversation per slot
        self.config, self.token, self.device, self.engine = config, token, device, engine
        self.url = ""
        self._thread: AppThread | None = None

    def start(self) -> LocalServer:
        if self.engine is None:
            from ..model.engine_factory import load_engine

            cfg = self.config
            self.engine = load_engine(
                self.model, self.max_sessions, revision=self.revision, device=self.device,
                sampling=cfg.sampling if cfg else None, seed=cfg.seed if cfg else 42,
            )  # fmt: skip
        self._thread = serve_engine(
            self.engine, self.token, self.host, self.port, self.name, self.routes, **self.page_options
        )
        self.port = self._thread.port
        self.url = f"{self.scheme}://{self.host}:{self.port}"
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
        self._thread = None
