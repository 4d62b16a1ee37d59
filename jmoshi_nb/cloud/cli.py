"""``jmoshi-nb modal deploy | download-weights | status``: the Modal side of the kit from a terminal.

``deploy`` deploys ``jmoshi_nb.cloud.app`` with ``App.deploy()`` in this process (no ``modal`` CLI
on PATH needed, and the settings below become the app's ``JMOSHI_MODAL_*`` environment), after making
sure the token secret exists; then it fills the weights Volume so the first session starts quickly.
``status`` shows what exists (credentials, secrets, deployed app and its settings, cached weights)
without starting a GPU. Modal is imported only when a command runs, so the CLI works without it.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import Any

from ..remote.modal_client import (
    DEFAULT_APP_NAME,
    DEFAULT_GPU,
    HF_SECRET_NAME,
    TOKEN_SECRET_NAME,
    RealModal,
    ensure_token,
    load_app_module,
    read_saved_token,
    token_file,
    translate_error,
)
from ..remote.settings import ENV, VOLUME_NAME, app_environment
from ..remote.settings import MODEL as DEFAULT_MODEL


class ModalCli(RealModal):
    """What the commands need beyond ``ModalAPI`` (tests replace the whole object)."""

    def deploy(self, settings: dict[str, str]) -> str:
        import modal

        module = load_app_module(settings)
        with modal.enable_output():
            module.app.deploy(name=settings[ENV["app"]])
        return module.JMoshiServer().serve.get_web_url() or ""

    def deployed_settings(self, app_name: str) -> dict[str, str] | None:
        dep = self.lookup(app_name)
        return None if dep is None else dep.settings()

    def cached_models(self, volume_name: str) -> list[str] | None:
        import modal
        from modal.exception import NotFoundError

        try:
            entries = modal.Volume.from_name(volume_name).listdir("/huggingface/hub")
        except NotFoundError:
            return None
        except FileNotFoundError:
            return []
        names = [e.path.rsplit("/", 1)[-1] for e in entries]
        return sorted(n.removeprefix("models--").replace("--", "/") for n in names if n.startswith("models--"))

    def download(self, app_name: str, settings: dict[str, str], model: str, revision: str | None) -> dict[str, Any]:
        dep = self.lookup(app_name)
        if dep is None:
            dep = self.run_ephemeral(settings)
        try:
            return dep.download_weights(model, revision)
        finally:
            dep.close()


_make_api: Any = ModalCli  # tests replace this factory


def _settings(args: argparse.Namespace, api: Any) -> dict[str, str]:
    hf_secret = None
    if not api.secret_exists(HF_SECRET_NAME):
        print(f"note: no Modal secret '{HF_SECRET_NAME}': deploying without a Hugging Face token (public models only)")
        hf_secret = ""
    return app_environment(
        app=args.app,
        gpu=getattr(args, "gpu", DEFAULT_GPU),
        model=args.model,
        revision=args.revision or "",
        max_containers=getattr(args, "max_containers", None),
        snapshot=False if getattr(args, "no_snapshot", False) else None,
        torch_compile=True if getattr(args, "torch_compile", False) else None,
        hf_secret=hf_secret,
    )


def _fail(exc: BaseException) -> int:
    err = translate_error(exc)
    print(f"jmoshi-nb: error: {err}", file=sys.stderr)
    return 2


def modal_command(body: Callable[[argparse.Namespace, Any], None]) -> Callable[[argparse.Namespace], int]:
    """A ``jmoshi-nb modal`` command: ``body(args, api)`` once the Modal credentials are checked.

    Exit status 0, or 2 with the error, made readable (``translate_error``), on stderr.
    """

    @functools.wraps(body)
    def command(args: argparse.Namespace) -> int:
        api = _make_api()
        try:
            api.check_credentials()
            body(args, api)
        except Exception as exc:
            return _fail(exc)
        return 0

    return command


@modal_command
def cmd_deploy(args: argparse.Namespace, api: Any) -> None:
    token, source = ensure_token(api, token=args.token)
    print(f"token: from {source}")
    settings = _settings(args, api)
    print(f"deploying '{args.app}': {args.model} on {settings[ENV['gpu']]}")
    url = api.deploy(settings)
    print(f"chat endpoint: {url}/api/chat  (clients present the token: ?token=... or Bearer)")
    if not args.no_download:
        print(f"filling the weights Volume with {args.model} (first time: ~16 GB) ...", flush=True)
        print(api.download(args.app, settings, args.model, args.revision or None))
    print(f"done. From a notebook: jmoshi_nb.start(backend='modal', model='{args.model}')")


@modal_command
def cmd_download(args: argparse.Namespace, api: Any) -> None:
    ensure_token(api)  # the app declares the token secret, so an ephemeral run needs it to exist
    settings = _settings(args, api)
    print(f"downloading {args.model} into the Volume '{VOLUME_NAME}' (a no-op when it is there) ...", flush=True)
    print(api.download(args.app, settings, args.model, args.revision or None))


@modal_command
def cmd_status(args: argparse.Namespace, api: Any) -> None:
    print("Modal credentials: found")
    saved = read_saved_token()
    has_token = api.secret_exists(TOKEN_SECRET_NAME)
    known = "known on this machine" if saved else f"not saved in {token_file()}"
    print(f"secret '{TOKEN_SECRET_NAME}': {'exists' if has_token else 'missing'} (token {known})")
    has_hf = api.secret_exists(HF_SECRET_NAME)
    print(f"secret '{HF_SECRET_NAME}': {'exists' if has_hf else 'missing (needed for gated models only)'}")
    deployed = api.deployed_settings(args.app)
    if deployed is None:
        print(f"app '{args.app}': not deployed (jmoshi-nb modal deploy; sessions can also run ephemerally)")
    else:
        model, gpu = deployed.get(ENV["model"]), deployed.get(ENV["gpu"])
        print(f"app '{args.app}': deployed, serves {model} on {gpu}")
    cached = api.cached_models(VOLUME_NAME)
    if cached is None:
        print(f"volume '{VOLUME_NAME}': not created yet")
    else:
        print(f"volume '{VOLUME_NAME}': {', '.join(cached) if cached else 'empty'}")
    print("GPU containers: not probed (a health check would start one)")


def add_modal_commands(subparsers: Any) -> None:
    """Add ``modal deploy | download-weights | status`` to the ``jmoshi-nb`` CLI."""
    modal_parser = subparsers.add_parser("modal", help="run the kit on Modal GPUs: deploy, download-weights, status")
    sub = modal_parser.add_subparsers(dest="modal_command", required=True)

    def common(p: argparse.ArgumentParser, model: bool = True) -> None:
        p.add_argument("--app", default=DEFAULT_APP_NAME, help=f"Modal app name (default {DEFAULT_APP_NAME})")
        if model:
            p.add_argument("--model", default=DEFAULT_MODEL, help=f"model to serve (default {DEFAULT_MODEL})")
            p.add_argument("--revision", help="Hugging Face revision (branch, tag or commit)")

    p = sub.add_parser("deploy", help="deploy the GPU server and sweep worker, then cache the weights")
    common(p)
    p.add_argument("--gpu", default=DEFAULT_GPU, help=f"Modal GPU type (default {DEFAULT_GPU})")
    p.add_argument("--token", help="token for clients (default: $JMOSHI_NB_TOKEN, the saved one, or a new one)")
    p.add_argument("--max-containers", type=int, help="how many GPU server containers at most (default 1)")
    p.add_argument("--no-snapshot", action="store_true", help="disable CPU memory snapshots")
    p.add_argument("--torch-compile", action="store_true", help="let moshi torch.compile (slower cold starts)")
    p.add_argument("--no-download", action="store_true", help="do not fill the weights Volume now")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("download-weights", help="put a model's weights into the Modal Volume (CPU only)")
    common(p)
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("status", help="credentials, secrets, deployed app, cached weights (starts no GPU)")
    common(p, model=False)
    p.set_defaults(func=cmd_status)


__all__ = ["add_modal_commands"]
