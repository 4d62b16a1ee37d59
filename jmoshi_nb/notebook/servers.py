"""Which server a notebook session talks to: ``tiny`` / ``local`` (a thread in this process, ``serve``)
or ``modal`` (a GPU container, ``remote``). The choice sits here, above both.
"""

from __future__ import annotations

from ..core.config import SessionConfig
from ..remote.modal_client import ModalServer
from ..serve.backends import LocalServer, ServerHandle

BACKENDS = ("tiny", "local", "modal")


def start_server(backend: str = "tiny", config: SessionConfig | None = None, **kwargs: object) -> ServerHandle:
    """Start a server for ``backend`` and return its handle once it accepts sessions.

    Parameters
    ----------
    backend:
        ``"tiny"`` (the tiny model in this process), ``"local"`` (``config.model`` in this process) or
        ``"modal"`` (a Modal GPU container).
    config:
        The session settings (model, revision, sampling, seed); defaults when None.
    **kwargs:
        Passed to ``LocalServer`` or ``ModalServer``.

    Returns
    -------
    ServerHandle
        ``url``, ``token`` and ``stop()``.
    """
    config = config or SessionConfig()
    if backend == "tiny":
        return LocalServer(model="tiny", config=config, **kwargs).start()  # type: ignore[arg-type]
    if backend == "local":
        return LocalServer(model=config.model, revision=config.revision, config=config, **kwargs).start()  # type: ignore[arg-type]
    if backend == "modal":
        return ModalServer(config=config, **kwargs).start()  # type: ignore[arg-type]
    raise ValueError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
