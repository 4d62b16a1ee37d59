"""Where the server runs: ``tiny`` / ``local`` (a thread in this process) or ``modal`` (a GPU container).

Every backend gives a ``ServerHandle``: a WebSocket base URL, the token to present (or None) and
``stop()``. Sessions (notebook, CLI, sweeps) only ever talk to that URL, so the data path is the
same whichever backend serves it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Protocol

from aiohttp import web

from .config import SessionConfig


class ServerHandle(Protocol):
    url: str
    token: str | None

    def stop(self) -> None: ...


class AppThread:
    """An aiohttp app on a background thread with its own event loop (``port=0``: any free port)."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0, name: str = "jmoshi-nb-server"):
        self.app, self.host, self.port, self.name = app, host, port, name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> AppThread:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            runner = web.AppRunner(self.app, shutdown_timeout=5.0)
            try:
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, self.host, self.port)
                loop.run_until_complete(site.start())
                self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            except BaseException as exc:  # surfaced to start()'s caller
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None


class LocalServer:
    """The kit's server on a background thread of this process (loopback, ephemeral port)."""

    def __init__(
        self,
        model: str = "tiny",
        revision: str | None = None,
        config: SessionConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        engine: object | None = None,
        device: str | None = None,
    ) -> None:
        self.model, self.revision, self.host, self.port = model, revision, host, port
        self.config = config
        self.token = token
        self.device = device
        self.engine = engine
        self.url = ""
        self._thread: AppThread | None = None

    def start(self) -> LocalServer:
        from .engine import Engine
        from .server import ChatServer

        if self.engine is None:
            cfg = self.config
            self.engine = Engine.load(
                self.model,
                revision=self.revision,
                device=self.device,
                sampling=cfg.sampling if cfg else None,
                seed=cfg.seed if cfg else 42,
            )
        app = ChatServer(self.engine, token=self.token).make_app()  # type: ignore[arg-type]
        self._thread = AppThread(app, self.host, self.port).start()
        self.port = self._thread.port
        self.url = f"ws://{self.host}:{self.port}"
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
        self._thread = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


BACKENDS = ("tiny", "local", "modal")


def start_server(backend: str = "tiny", config: SessionConfig | None = None, **kwargs: object) -> ServerHandle:
    """Start a server for ``backend`` and return its handle once it accepts sessions."""
    config = config or SessionConfig()
    if backend == "tiny":
        return LocalServer(model="tiny", config=config, **kwargs).start()  # type: ignore[arg-type]
    if backend == "local":
        return LocalServer(model=config.model, revision=config.revision, config=config, **kwargs).start()  # type: ignore[arg-type]
    if backend == "modal":
        from .modal_backend import ModalServer

        return ModalServer(config=config, **kwargs).start()  # type: ignore[arg-type]
    raise ValueError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
