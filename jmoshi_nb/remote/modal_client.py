"""The ``modal`` backend: the kit's server in a Modal GPU container, reached over ``wss://``.

    server = ModalServer(SessionConfig(model="j-moshi-ext")).start()   # prints progress, returns when ready
    async with jmoshi_nb.connect(server.url, server.token) as s: ...
    server.stop()                                                       # releases the GPU

``start()`` checks the Modal credentials, makes sure a token secret exists (creating one, and
remembering its value in ``~/.config/jmoshi-nb/modal-token``, on first use), then uses the deployed
app (``jmoshi-nb modal deploy``) if there is one, or else runs ``jmoshi_nb.cloud.app`` ephemerally in
a background thread for as long as the handle lives. It has the weights put into the Volume (a no-op
once they are there), polls ``/api/health`` while the GPU container starts, checks that the server
accepts the token, and sets ``url`` (``wss://...``) and ``token``.

Every call into Modal goes through a ``ModalAPI`` object; ``RealModal`` is the Modal SDK. Tests pass
a stand-in that runs the same ChatServer locally, so everything here but ``RealModal`` runs offline.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..core.config import SessionConfig
from ..core.models import GPU_DEFAULT
from ..serve.backends import StartStopServer
from .settings import APP_NAME as DEFAULT_APP_NAME
from .settings import (
    ENV,
    HF_SECRET_NAME,
    MIN_TOKEN_CHARS,
    SERVER_CLASS,
    SWEEP_CLASS,
    TOKEN_ENV,
    TOKEN_SECRET_NAME,
    StarmapFunction,
    app_environment,
)
from .settings import GPU as DEFAULT_GPU


class ModalError(RuntimeError):
    """Something about Modal went wrong; the message says what to do."""


class ModalSetupError(ModalError):
    """Credentials, secrets, Hugging Face access or quota: fixable by the user, as the message says."""


class ModalStartTimeout(ModalError, TimeoutError):
    """The GPU container did not become healthy in time."""


NO_CREDENTIALS = (
    "no Modal credentials on this machine: run `modal token new` (or `modal setup`) in a terminal, "
    "or set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET, then try again"
)


def hf_access_message(detail: str = "") -> str:
    return (
        "Hugging Face refused the download of the model's weights. Accept the model's terms on its Hugging Face "
        "page (https://huggingface.co/nu-dialogue/j-moshi-ext) with your account, create a read token "
        f"(https://huggingface.co/settings/tokens) and store it in Modal: `modal secret create {HF_SECRET_NAME} "
        "HF_TOKEN=hf_...`. " + detail
    ).strip()


# ---- what ModalServer needs from Modal -----------------------------------------------------------


class Deployment(Protocol):
    """A running (deployed or ephemeral) app."""

    web_url: str  # the https base URL of JMoshiServer.serve
    deployed: bool

    def settings(self) -> dict[str, str]: ...  # the JMOSHI_MODAL_* settings it runs with

    def download_weights(self, model: str, revision: str | None) -> dict[str, Any]: ...

    def sweep_function(self) -> StarmapFunction: ...

    def stop_container(self, task_id: str) -> None: ...

    def close(self) -> None: ...


class ModalAPI(Protocol):
    def check_credentials(self) -> None: ...

    def secret_exists(self, name: str) -> bool: ...

    def create_secret(self, name: str, values: dict[str, str]) -> None: ...

    def lookup(self, app_name: str) -> Deployment | None: ...

    def run_ephemeral(self, settings: dict[str, str]) -> Deployment: ...


# ---- the Modal SDK -------------------------------------------------------------------------------


def translate_error(exc: BaseException) -> BaseException:
    """Modal's and the Hub's errors as ModalSetupError with what to do; anything else unchanged."""
    if isinstance(exc, ModalError):
        return exc
    text = str(exc)
    if "HF_ACCESS" in text:
        return ModalSetupError(hf_access_message(text.split("HF_ACCESS:", 1)[-1].strip()))
    try:
        from modal import exception as mexc
    except ImportError:  # pragma: no cover - modal is needed to get here
        return exc
    if isinstance(exc, mexc.AuthError):
        return ModalSetupError(f"Modal rejected the credentials ({text}). {NO_CREDENTIALS}")
    if isinstance(exc, mexc.NotFoundError) and "secret" in text.lower():
        return ModalSetupError(
            f"{text}. Create it: `modal secret create {HF_SECRET_NAME} HF_TOKEN=hf_...` for the Hugging Face "
            f"token, or deploy with JMOSHI_MODAL_HF_SECRET= (empty) if the model needs none"
        )
    if isinstance(exc, mexc.ResourceExhaustedError):
        return ModalSetupError(
            f"Modal refused the resources: {text}. Check your workspace's GPU limits and credits "
            "(https://modal.com/settings), stop other apps (`modal app list`), or try another gpu= (e.g. 'L40S')"
        )
    return exc


@contextlib.contextmanager
def readable_modal_errors() -> Iterator[None]:
    """Re-raise what the block raises as ``translate_error`` makes it (a readable ``ModalSetupError``)."""
    try:
        yield
    except BaseException as exc:
        err = translate_error(exc)
        if err is exc:
            raise
        raise err from exc


class _Ephemeral:
    """``app.run()`` held open in a background thread until ``close()``."""

    deployed = False

    def __init__(self, module: Any, show_logs: bool) -> None:
        self.module = module
        self.web_url = ""
        self._show_logs = show_logs
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="jmoshi-nb-modal-app", daemon=True)

    def _run(self) -> None:
        import modal

        try:
            output = modal.enable_output() if self._show_logs else contextlib.nullcontext()
            with output, self.module.app.run():
                self.web_url = self.module.JMoshiServer().serve.get_web_url()
                self._ready.set()
                self._stop.wait()
        except BaseException as exc:  # reported by start()
            self._error = exc
        finally:
            self._ready.set()

    def start(self, timeout: float) -> _Ephemeral:
        self._thread.start()
        if not self._ready.wait(timeout):
            self.close()
            raise ModalStartTimeout(f"the ephemeral Modal app did not start in {timeout:.0f} s (image build?)")
        if self._error is not None:
            raise translate_error(self._error) from self._error
        return self

    def settings(self) -> dict[str, str]:
        return dict(self.module.SETTINGS_ENV)

    def download_weights(self, model: str, revision: str | None) -> dict[str, Any]:
        return self.module.download_weights.remote(model, revision)

    def sweep_function(self) -> StarmapFunction:
        return self.module.SweepWorker().run

    def stop_container(self, task_id: str) -> None:
        pass  # close() stops the whole app, containers included

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)


@dataclass
class _Deployed:
    """The deployed app ``app_name``: its functions looked up by name, its containers stopped one by one."""

    app_name: str
    web_url: str
    deployed = True

    def settings(self) -> dict[str, str]:
        import modal

        return modal.Function.from_name(self.app_name, "settings").remote()

    def download_weights(self, model: str, revision: str | None) -> dict[str, Any]:
        import modal

        return modal.Function.from_name(self.app_name, "download_weights").remote(model, revision)

    def sweep_function(self) -> StarmapFunction:
        import modal

        return modal.Cls.from_name(self.app_name, SWEEP_CLASS)().run

    def stop_container(self, task_id: str) -> None:
        # The SDK has no public call for this; the CLI does it (SIGINT, then the container exits).
        subprocess.run(
            [sys.executable, "-m", "modal", "container", "stop", task_id, "--yes"],
            check=False,
            capture_output=True,
            timeout=60,
        )

    def close(self) -> None:
        pass


def load_app_module(settings: dict[str, str]) -> Any:
    """Import ``jmoshi_nb.cloud.app`` with ``settings`` (JMOSHI_MODAL_* variables) in force."""
    os.environ.update(settings)
    name = "jmoshi_nb.cloud.app"
    if name in sys.modules:
        module = sys.modules[name]
        if all(os.environ.get(k) == v for k, v in module.SETTINGS_ENV.items() if k in settings):
            return module
        return importlib.reload(module)
    return importlib.import_module(name)


class RealModal:
    """``ModalAPI`` on the Modal SDK."""

    def __init__(self, show_logs: bool = False, start_timeout: float = 1800.0) -> None:
        self.show_logs = show_logs
        self.start_timeout = start_timeout

    def check_credentials(self) -> None:
        try:
            from modal.config import config
        except ImportError:
            raise ModalSetupError("the modal package is not installed: pip install 'jmoshi-nb[modal]'") from None
        if not (config.get("token_id") and config.get("token_secret")):
            raise ModalSetupError(NO_CREDENTIALS)

    def secret_exists(self, name: str) -> bool:
        import modal
        from modal.exception import NotFoundError

        with readable_modal_errors():
            try:
                modal.Secret.from_name(name).hydrate()
            except NotFoundError:
                return False
        return True

    def create_secret(self, name: str, values: dict[str, str]) -> None:
        import modal

        with readable_modal_errors():
            modal.Secret.objects.create(name, values, allow_existing=True)

    def lookup(self, app_name: str) -> Deployment | None:
        import modal
        from modal.exception import NotFoundError

        with readable_modal_errors():
            try:
                cls = modal.Cls.from_name(app_name, SERVER_CLASS)
                cls.hydrate()
                url = cls().serve.get_web_url()
            except NotFoundError:
                return None
        return _Deployed(app_name, url) if url else None

    def run_ephemeral(self, settings: dict[str, str]) -> Deployment:
        module = load_app_module(settings)
        return _Ephemeral(module, self.show_logs).start(self.start_timeout)


# ---- tokens --------------------------------------------------------------------------------------


def token_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "jmoshi-nb" / "modal-token"


def read_saved_token() -> str | None:
    path = token_file()
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        return token or None
    return None


def save_token(token: str) -> Path:
    path = token_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(token + "\n", encoding="utf-8")
    return path


def new_token() -> str:
    return secrets.token_urlsafe(32)


def ensure_token(api: ModalAPI, secret_name: str = TOKEN_SECRET_NAME, token: str | None = None) -> tuple[str, str]:
    """The token clients present, and where it came from; creates the Modal secret if it is missing.

    Order: ``token`` argument, ``$JMOSHI_NB_TOKEN``, the saved token file; with none of them and no
    secret yet, a new random token is made, stored in the secret and saved for next time.
    """
    source = "argument"
    if token is None and os.environ.get(TOKEN_ENV):
        token, source = os.environ[TOKEN_ENV], f"${TOKEN_ENV}"
    if token is None:
        token, source = read_saved_token(), str(token_file())
    exists = api.secret_exists(secret_name)
    if token is not None:
        if len(token) < MIN_TOKEN_CHARS:
            raise ModalSetupError(
                f"the token from {source} is shorter than {MIN_TOKEN_CHARS} characters; use a long random one"
            )
        if not exists:
            api.create_secret(secret_name, {TOKEN_ENV: token})
        return token, source
    if exists:
        raise ModalSetupError(
            f"the Modal secret '{secret_name}' exists but this machine does not know its token: pass token=..., "
            f"set ${TOKEN_ENV}, or replace the secret (`modal secret create --force {secret_name} {TOKEN_ENV}=<new>`) "
            "and redeploy (`jmoshi-nb modal deploy`)"
        )
    token = new_token()
    api.create_secret(secret_name, {TOKEN_ENV: token})
    path = save_token(token)
    return token, f"new secret '{secret_name}' (saved in {path})"


# ---- the handle ----------------------------------------------------------------------------------


def ws_url(web_url: str) -> str:
    """``https://x.modal.run`` -> ``wss://x.modal.run`` (``http`` -> ``ws``)."""
    web_url = web_url.rstrip("/")
    if web_url.startswith("https://"):
        return "wss://" + web_url.removeprefix("https://")
    if web_url.startswith("http://"):
        return "ws://" + web_url.removeprefix("http://")
    return web_url


def _get_json(url: str, timeout: float, token: str | None = None) -> tuple[int, dict[str, Any] | None]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        return exc.code, None
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


class ModalServer(StartStopServer):
    """A ``ServerHandle`` for the kit's server on a Modal GPU (see the module docstring)."""

    def __init__(
        self,
        config: SessionConfig | None = None,
        app_name: str = DEFAULT_APP_NAME,
        gpu: str = DEFAULT_GPU,
        token: str | None = None,
        timeout: float = 900.0,
        deployed: bool | str = "auto",
        progress: bool | Callable[[str], None] = True,
        poll_interval: float = 3.0,
        stop_deployed: bool = True,
        show_logs: bool = False,
        _modal: ModalAPI | None = None,
    ) -> None:
        if deployed not in (True, False, "auto"):
            raise ValueError("deployed must be True, False or 'auto'")
        self.config = config or SessionConfig(model=GPU_DEFAULT)
        self.app_name, self.gpu, self.timeout = app_name, gpu, timeout
        self.deployed = deployed
        self.poll_interval = poll_interval
        self.stop_deployed = stop_deployed
        self.url = ""
        self.web_url = ""
        self.token: str | None = token
        self.task_id: str | None = None
        self.health: dict[str, Any] = {}
        self.weights: dict[str, Any] = {}
        self._api: ModalAPI = _modal if _modal is not None else RealModal(show_logs=show_logs)
        self._deployment: Deployment | None = None
        self._progress = progress
        self._t0 = time.monotonic()

    # ---- progress --------------------------------------------------------------------------------
    def _say(self, message: str) -> None:
        if callable(self._progress):
            self._progress(message)
        elif self._progress:
            print(f"[modal {time.monotonic() - self._t0:5.0f} s] {message}", flush=True)

    # ---- start -----------------------------------------------------------------------------------
    def settings(self) -> dict[str, str]:
        """The JMOSHI_MODAL_* settings an ephemeral run of the app gets."""
        return app_environment(
            app=self.app_name, gpu=self.gpu, model=self.config.model, revision=self.config.revision or ""
        )

    def start(self) -> ModalServer:
        self._t0 = time.monotonic()
        with readable_modal_errors():
            try:
                self._start()
            except BaseException:
                self.stop()
                raise
        return self

    def _start(self) -> None:
        api = self._api
        model = self.config.model
        deadline = time.monotonic() + self.timeout
        self._say("checking Modal credentials")
        api.check_credentials()
        self.token, source = ensure_token(api, token=self.token)
        self._say(f"token: from {source}")
        settings = self.settings()
        if not api.secret_exists(HF_SECRET_NAME):  # public models need none; a refusal says how to add one
            settings |= app_environment(hf_secret="")
        dep: Deployment | None = None
        if self.deployed in (True, "auto"):
            self._say(f"looking up the deployed app '{self.app_name}'")
            dep = api.lookup(self.app_name)
            if dep is None and self.deployed is True:
                raise ModalSetupError(
                    f"no deployed app '{self.app_name}': deploy it with `jmoshi-nb modal deploy --model {model}` "
                    "or start with deployed=False (ephemeral)"
                )
        if dep is None:
            self._say(
                f"starting an ephemeral app '{self.app_name}' ({model} on {self.gpu}); the first run builds the "
                "image (several minutes)"
            )
            dep = api.run_ephemeral(settings)
        self._deployment = dep
        self.web_url = dep.web_url
        served = dep.settings().get(ENV["model"])
        if served is not None and served != model:
            raise self._wrong_model(served)
        self._say(f"downloading weights of {model} into the Volume if missing (first time: ~16 GB, a few minutes)")
        self.weights = dep.download_weights(model, self.config.revision)
        got = self.weights.get("downloaded_bytes", 0)
        took = self.weights.get("seconds", 0)
        self._say(f"weights ready ({got / 1e9:.1f} GB downloaded in {took} s)" if got else "weights already cached")
        self._say(f"starting the GPU container: loading {model} onto the GPU, warming up")
        self.health = self._wait_healthy(deadline)
        self._check_token_and_identify()
        served = self.health.get("model")
        if served is not None and served != model:
            raise self._wrong_model(served)
        self.url = ws_url(self.web_url)
        self._say(f"ready: {served} on {self.health.get('device')} at {self.url}")

    def _wrong_model(self, served: str) -> ModalSetupError:
        model = self.config.model
        return ModalSetupError(
            f"the deployed app '{self.app_name}' serves {served!r}, not {model!r}: redeploy it with "
            f"`jmoshi-nb modal deploy --model {model}`, or start with deployed=False for an ephemeral app"
        )

    def _wait_healthy(self, deadline: float) -> dict[str, Any]:
        url = self.web_url.rstrip("/") + "/api/health"
        last_note = time.monotonic()
        status: int | str = "no answer"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ModalStartTimeout(
                    f"the server at {self.web_url} was not healthy within {self.timeout:.0f} s (last: {status}). "
                    f"The container may be waiting for a {self.gpu} (capacity) or still loading: see "
                    f"`modal app logs {self.app_name}`; retry with a larger timeout= or another gpu="
                )
            try:
                status, body = _get_json(url, timeout=max(1.0, min(60.0, remaining)))
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                status, body = f"{type(exc).__name__}", None
            if status == 200 and body and body.get("status") == "ok":
                return body
            if status in (401, 403):
                raise ModalSetupError(
                    f"{url} answered HTTP {status}: the app was deployed with Modal proxy auth "
                    "(JMOSHI_MODAL_PROXY_AUTH=1), which the kit's client cannot pass; redeploy without it"
                )
            if time.monotonic() - last_note >= 15:
                self._say(f"... still starting (last answer: {status})")
                last_note = time.monotonic()
            time.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))

    def _check_token_and_identify(self) -> None:
        status, body = _get_json(self.web_url.rstrip("/") + "/api/modal", timeout=30.0, token=self.token)
        if status == 401:
            raise ModalSetupError(
                f"the server refuses this token: the Modal secret '{TOKEN_SECRET_NAME}' holds another one. Pass the "
                f"right token=..., or replace the secret (`modal secret create --force {TOKEN_SECRET_NAME} "
                f"{TOKEN_ENV}=<token>`) and redeploy"
            )
        if status == 200 and body:
            self.task_id = body.get("task_id")

    # ---- stop ------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Release the GPU: end the ephemeral app, or stop the deployed app's container we used."""
        dep, self._deployment = self._deployment, None
        if dep is None:
            return
        if dep.deployed:
            if self.stop_deployed and self.task_id:
                self._say(f"stopping container {self.task_id}")
                dep.stop_container(self.task_id)
        else:
            self._say("stopping the ephemeral app")
        dep.close()

    def __repr__(self) -> str:
        return f"ModalServer(app={self.app_name!r}, model={self.config.model!r}, gpu={self.gpu!r}, url={self.url!r})"


# ---- sweeps --------------------------------------------------------------------------------------


@contextlib.contextmanager
def sweep_worker(
    app_name: str | None = None,
    models: list[str] | None = None,
    gpu: str = DEFAULT_GPU,
    progress: bool = True,
    _modal: ModalAPI | None = None,
) -> Iterator[StarmapFunction]:
    """``SweepWorker.run`` of the deployed app, or of an ephemeral run for the ``with`` block."""
    api = _modal if _modal is not None else RealModal()
    app_name = app_name or DEFAULT_APP_NAME
    models = models or [GPU_DEFAULT]
    say = print if progress else (lambda *_: None)
    with readable_modal_errors():
        api.check_credentials()
        dep = api.lookup(app_name)
        if dep is None:
            say(f"[modal] starting an ephemeral app '{app_name}' for the sweep ({', '.join(models)} on {gpu})")
            ensure_token(api)  # the app declares the token secret (for its server), so it must exist
            hf_secret = None if api.secret_exists(HF_SECRET_NAME) else ""
            settings = app_environment(app=app_name, gpu=gpu, model=models[0], hf_secret=hf_secret)
            dep = api.run_ephemeral(settings)
        for model in models:
            say(f"[modal] weights of {model}: making sure they are in the Volume")
            dep.download_weights(model, None)
    try:
        yield dep.sweep_function()
    finally:
        dep.close()


__all__ = [
    "ModalServer",
    "ModalAPI",
    "Deployment",
    "RealModal",
    "ModalError",
    "ModalSetupError",
    "ModalStartTimeout",
    "ensure_token",
    "sweep_worker",
    "ws_url",
]
