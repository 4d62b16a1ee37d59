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


def serve_engine(
    engine: Any,
    token: str | None,
    host: str = "127.0.0.1",
    port: int = 0,
    name: str = "jmoshi-nb-server",
    routes: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] | None = None,
) -> AppThread:
    """The kit's server for ``engine`` on a background thread, plus extra GET ``routes``; started.

    A ``BatchEngine`` is served by ``MultiChatServer`` (one conversation per slot), an ``Engine`` by
    ``ChatServer`` (one conversation).

    The local backends and the Modal container's web server both start their server this way.
    """
    from ..model.batch_engine import BatchEngine
    from .multi_server import MultiChatServer
    from .server import ChatServer

    server_class = MultiChatServer if isinstance(engine, BatchEngine) else ChatServer  # N slots: N conversations
    app = server_class(engine, token=token).make_app()
    for path, handler in (routes or {}).items():
        app.router.add_get(path, handler)
    return AppThread(app, host, port, name=name).start()


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
    ) -> None:
        self.model, self.revision, self.host, self.port = model, revision, host, port
        self.name, self.scheme, self.routes = name, scheme, routes
        self.max_sessions = max_sessions  # > 1: a batched engine, one conversation per slot
        self.config, self.token, self.device, self.engine = config, token, device, engine
        self.url = ""
        self._thread: AppThread | None = None

    def start(self) -> LocalServer:
        from ..model.engine import Engine

        if self.engine is None:
            cfg = self.config
            options: dict[str, Any] = {"revision": self.revision, "device": self.device}
            options.update(sampling=cfg.sampling if cfg else None, seed=cfg.seed if cfg else 42)
            if self.max_sessions > 1:
                from ..model.batch_engine import BatchEngine

                self.engine = BatchEngine.load(self.model, slots=self.max_sessions, **options)
            else:
                self.engine = Engine.load(self.model, **options)
        self._thread = serve_engine(self.engine, self.token, self.host, self.port, self.name, self.routes)
        self.port = self._thread.port
        self.url = f"{self.scheme}://{self.host}:{self.port}"
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
        self._thread = None
