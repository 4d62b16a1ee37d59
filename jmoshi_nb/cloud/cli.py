"""``jmoshi-nb modal deploy | download-weights | status | listen``: the Modal side of the kit from a terminal.

``deploy`` deploys ``jmoshi_nb.cloud.app`` with ``App.deploy()`` in this process (no ``modal`` CLI
on PATH needed, and the settings below become the app's ``JMOSHI_MODAL_*`` environment), after making
sure the token secret exists; then it fills the weights Volume so the first session starts quickly.
``status`` shows what exists (credentials, secrets, deployed app and its settings, cached weights)
without starting a GPU. ``listen`` serves a saved listening test's rater page from a CPU container
(``cloud/listen_app.py``). Modal is imported only when a command runs, so the CLI works without it.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path
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
from ..remote.settings import ENV, LISTEN_APP_NAME, LISTEN_CLASS, LISTEN_VOLUME_NAME, VOLUME_NAME, app_environment
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

    # ---- the rater page (cloud/listen_app.py) -----------------------------------------------------
    def listen_test_id(self, volume_name: str, name: str) -> str | None:
        """The id of the test ``name`` already on the Volume, None if there is none."""
        import json

        import modal
        from modal.exception import NotFoundError

        try:
            data = b"".join(modal.Volume.from_name(volume_name).read_file(f"tests/{name}/test.json"))
        except (NotFoundError, FileNotFoundError):
            return None
        return str(json.loads(data.decode("utf-8"))["id"])

    def upload_test(self, volume_name: str, files: list[tuple[str, str]]) -> None:
        """Put ``files`` (local path, path on the Volume) on the Volume."""
        import modal

        volume = modal.Volume.from_name(volume_name, create_if_missing=True)
        with volume.batch_upload(force=True) as batch:
            for local, remote in files:
                batch.put_file(local, remote)

    def deploy_listen(self, settings: dict[str, str]) -> str:
        """Deploy the rater page's app with ``settings`` in force; its URL."""
        import importlib
        import os
        import sys

        import modal

        os.environ.update(settings)
        name = "jmoshi_nb.cloud.listen_app"
        module = importlib.reload(sys.modules[name]) if name in sys.modules else importlib.import_module(name)
        with modal.enable_output():
            module.app.deploy(name=settings["JMOSHI_MODAL_LISTEN_APP"])
        return modal.Cls.from_name(settings["JMOSHI_MODAL_LISTEN_APP"], LISTEN_CLASS)().serve.get_web_url() or ""

    def fetch_ratings(self, volume_name: str, name: str) -> dict[str, bytes]:
        """The rating files of test ``name`` on the Volume: ``{file name: content}``."""
        import modal
        from modal.exception import NotFoundError

        volume = modal.Volume.from_name(volume_name)
        try:
            entries = volume.listdir(f"tests/{name}/ratings")
        except (NotFoundError, FileNotFoundError):
            return {}
        return {e.path.rsplit("/", 1)[-1]: b"".join(volume.read_file(e.path)) for e in entries
                if e.path.endswith(".csv")}  # fmt: skip


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


def test_upload_files(folder: Path, name: str) -> list[tuple[str, str]]:
    """What ``modal listen`` uploads of a saved test: ``test.json``, ``clips/``, ``controls/``, never ``ratings/``.

    Returns ``(local path, path on the Volume)`` pairs, under ``/tests/<name>/``.
    """
    files = [folder / "test.json"]
    for sub in ("clips", "controls"):
        files += sorted(p for p in (folder / sub).rglob("*") if p.is_file())
    return [(str(p), f"/tests/{name}/{p.relative_to(folder).as_posix()}") for p in files]


def save_fetched_ratings(files: dict[str, bytes], ratings: Path) -> list[str]:
    """Write the Volume's rating files into the local test's ``ratings/``; returns one line per file.

    A local file is replaced only when the Volume's copy extends it (the same answers and more);
    otherwise the Volume's copy is kept beside it as ``<name>.modal.csv``: nothing recorded is lost.
    """
    ratings.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, data in sorted(files.items()):
        local = ratings / name
        if local.exists() and not data.startswith(local.read_bytes()):
            local = ratings / f"{Path(name).stem}.modal.csv"
        local.write_bytes(data)
        answers = data.count(b"\n") - 1  # the header is one line
        lines.append(f"  {local} ({answers} answer(s))")
    return lines


def cmd_listen(args: argparse.Namespace) -> int:
    """``modal listen TEST``: upload the test, deploy its rater page, print the raters' link (or ``--fetch``)."""
    from ..research.listening import ListeningTest
    from ..research.listening_quality import page_token

    try:
        test = ListeningTest.open(args.test)  # first: a missing test is named before any Modal call
    except (FileNotFoundError, ValueError) as exc:
        print(f"jmoshi-nb: error: {exc}", file=sys.stderr)
        return 2
    name = args.name or Path(args.test).resolve().name
    api = _make_api()
    try:
        api.check_credentials()
        if args.fetch:
            files = api.fetch_ratings(LISTEN_VOLUME_NAME, name)
            print(f"ratings of '{name}' from the Volume '{LISTEN_VOLUME_NAME}': {len(files)} file(s)")
            for line in save_fetched_ratings(files, test.ratings):
                print(line)
            return 0
        there = api.listen_test_id(LISTEN_VOLUME_NAME, name)
        if there is not None and there != test.test_id:
            raise ValueError(f"the Volume already holds another test named '{name}': pick another --name")
        if there is None:
            print(f"uploading {args.test} to the Volume '{LISTEN_VOLUME_NAME}' as tests/{name}/ ...", flush=True)
            api.upload_test(LISTEN_VOLUME_NAME, test_upload_files(Path(args.test), name))
        url = api.deploy_listen({"JMOSHI_MODAL_LISTEN_APP": args.app, "JMOSHI_MODAL_LISTEN_TEST": name,
                                 "JMOSHI_MODAL_LISTEN_VOLUME": LISTEN_VOLUME_NAME})  # fmt: skip
    except Exception as exc:
        return _fail(exc)
    print(f"rater page: {url.rstrip('/')}/?token={page_token(test.secret)}")
    print(f"ratings:    on the Volume under tests/{name}/ratings; bring them here: jmoshi-nb modal listen {args.test} "
          "--fetch")  # fmt: skip
    return 0


def add_modal_commands(subparsers: Any) -> None:
    """Add ``modal deploy | download-weights | status`` to the ``jmoshi-nb`` CLI."""
    modal_parser = subparsers.add_parser("modal", help="run the kit on Modal: deploy, download-weights, status, listen")
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

    p = sub.add_parser("listen", help="serve a saved listening test's rater page from Modal (CPU), or --fetch")
    p.add_argument("test", type=Path, help="the test's folder (jmoshi-nb listen create / ListeningTest.create(out=))")
    p.add_argument("--name", help="its name on the Volume (default: the folder's name)")
    p.add_argument("--app", default=LISTEN_APP_NAME, help=f"Modal app name (default {LISTEN_APP_NAME})")
    p.add_argument("--fetch", action="store_true", help="copy the ratings from the Volume into TEST/ratings")
    p.set_defaults(func=cmd_listen)


__all__ = ["add_modal_commands"]
