"""The kit's Jupyter server configuration: low-latency kernel WebSockets.

jupyter_server leaves Nagle's algorithm on for the browser <-> server kernel WebSocket, so a small
kernel -> browser message (a frame of model audio, a plot update) can wait for the browser's
delayed ACK: about 45 ms (p50) measured, against about 8.5 ms with ``TCP_NODELAY``. This package is
a jupyter_server extension that sets ``TCP_NODELAY`` on every kernel WebSocket when it opens
(tornado's ``WebSocketHandler.set_nodelay(True)`` in ``KernelWebsocketHandler.open``).

This folder is also a Jupyter config directory: its ``jupyter_server_config.py`` enables the
extension. ``scripts/lab.sh`` puts it first on ``JUPYTER_CONFIG_PATH``; by hand::

    JUPYTER_CONFIG_PATH="$(python -m jmoshi_nb.notebook.jupyter_config)" jupyter lab
    jupyter lab --ServerApp.jpserver_extensions='{"jmoshi_nb.notebook.jupyter_config": True}'
"""

from __future__ import annotations

import functools
import logging
import socket
from pathlib import Path
from typing import Any

log = logging.getLogger("jmoshi_nb.notebook.jupyter_config")
EXTENSION = "jmoshi_nb.notebook.jupyter_config"
_PATCHED = "_jmoshi_nb_nodelay"


def config_dir() -> Path:
    """This folder, to put on ``JUPYTER_CONFIG_PATH``."""
    return Path(__file__).resolve().parent


def socket_nodelay(handler: Any) -> bool | None:
    """Whether TCP_NODELAY is set on a tornado WebSocket handler's socket (None if unknown)."""
    try:
        sock = handler.ws_connection.stream.socket
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    except (AttributeError, OSError):
        return None


def patch_kernel_websocket(logger: logging.Logger | logging.LoggerAdapter[Any] | None = None) -> bool:
    """Make ``KernelWebsocketHandler.open`` set TCP_NODELAY first. Idempotent; False if already patched."""
    from jupyter_server.services.kernels.websocket import KernelWebsocketHandler

    logger = logger or log
    original = KernelWebsocketHandler.open
    if getattr(original, _PATCHED, False):
        return False

    @functools.wraps(original)
    async def open(self: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: A001 - tornado's name
        try:
            self.set_nodelay(True)
            kernel = kwargs.get("kernel_id", args[0] if args else "?")
            logger.info("jmoshi-nb: kernel %s websocket opened with TCP_NODELAY=%s", kernel, socket_nodelay(self))
        except Exception as exc:  # never break the kernel connection over a socket option
            logger.warning("jmoshi-nb: could not set TCP_NODELAY on a kernel websocket: %s", exc)
        return await original(self, *args, **kwargs)

    setattr(open, _PATCHED, True)
    KernelWebsocketHandler.open = open  # type: ignore[method-assign]
    return True


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": EXTENSION}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    patch_kernel_websocket(serverapp.log)
    serverapp.log.info("jmoshi-nb: TCP_NODELAY enabled on kernel websockets")
