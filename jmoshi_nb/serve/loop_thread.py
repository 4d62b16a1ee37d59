"""An asyncio event loop on a daemon thread: the one way the kit runs async code beside blocking code.

The notebook session runs its WebSocket client on one (cells return at once), and the local and
Modal servers run their aiohttp app on one (``AppThread``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

T = TypeVar("T")


class LoopThread:
    """An asyncio event loop running forever on a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the loop; its future resolves from any thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` on the loop soon (from any thread); nothing once the loop is closed."""
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(fn, *args)

    def here(self) -> bool:
        """True when called from the loop's own thread."""
        return threading.current_thread() is self.thread

    def stop(self, timeout: float = 10.0) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=timeout)
        if not self.thread.is_alive():
            self.loop.close()


class AppThread:
    """An aiohttp app served from a ``LoopThread`` (``port=0``: any free port)."""

    def __init__(
        self,
        app: web.Application,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "jmoshi-nb-server",
        access_log_class: type[AbstractAccessLogger] | None = None,
    ):
        self.app, self.host, self.port, self.name = app, host, port, name
        self.access_log_class = access_log_class  # None: aiohttp's
        self._loop: LoopThread | None = None
        self._runner: web.AppRunner | None = None

    async def _serve(self) -> int:
        extra: dict[str, Any] = {} if self.access_log_class is None else {"access_log_class": self.access_log_class}
        self._runner = web.AppRunner(self.app, shutdown_timeout=5.0, **extra)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    def start(self) -> AppThread:
        self._loop = LoopThread(self.name)
        try:
            self.port = self._loop.submit(self._serve()).result()
        except BaseException:
            self._loop.stop()
            self._loop = None
            raise
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._runner is not None:
            try:
                self._loop.submit(self._runner.cleanup()).result(timeout=15)
            except concurrent.futures.TimeoutError:
                pass  # the loop stops below; the daemon thread goes with the process
        self._loop.stop()
        self._loop = None
