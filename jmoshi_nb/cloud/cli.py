"""``jmoshi-nb modal deploy | download-weights | status | listen | recordings``: the Modal side of the kit
from a terminal.

``deploy`` deploys ``jmoshi_nb.cloud.app`` with ``App.deploy()`` in this process (no ``modal`` CLI
on PATH needed, and the settings below become the app's ``JMOSHI_MODAL_*`` environment), after making
sure the token secret exists; then it fills the weights Volume so the first session starts quickly.
Its talk page flags (``--config/--configs/--assign/--record/--rate/--show-controls``, as ``serve``'s)
are checked before any Modal call (``talk_deploy``); ``recordings NAME --fetch DIR`` brings the
conversations recorded on the talk Volume back, never overwriting a local file.
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

from ..core.config import ConfigError
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
from ..remote.settings import (
    ENV,
    LISTEN_APP_NAME,
    LISTEN_CLASS,
    LISTEN_VOLUME_NAME,
    TALK_VOLUME_NAME,
    VOLUME_NAME,
    app_environment,
)
from ..remote.settings import MODEL as DEFAULT_MODEL
from ..serve.settings import ASSIGN_MODES
from ..serve.talk_page import page_link
from .talk_deploy import RECORD_NAME, TalkDeploy, talk_deploy


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

    # ---- the talk page's recordings (cloud/app.py, --record NAME) ---------------------------------------
    def talk_files(self, volume_name: str, name: str) -> list[str] | None:
        """The files under ``name/`` on the talk Volume, as paths relative to it; None if there is no such folder."""
        import modal
        from modal.exception import NotFoundError
        from modal.volume import FileEntryType

        try:
            entries = modal.Volume.from_name(volume_name).listdir(f"/{name}", recursive=True)
        except (NotFoundError, FileNotFoundError):
            return None
        prefix = f"{name}/"
        return sorted(e.path.lstrip("/").removeprefix(prefix) for e in entries if e.type == FileEntryType.FILE)

    def read_talk_file(self, volume_name: str, path: str) -> bytes:
        """One file of the talk Volume (``path`` from its root)."""
        import modal

        return b"".join(modal.Volume.from_name(volume_name).read_file(path))


_make_api: Any = ModalCli  # tests replace this factory


def _settings(args: argparse.Namespace, api: Any, talk: TalkDeploy | None = None) -> dict[str, str]:
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
        max_sessions=getattr(args, "max_sessions", None),
        talk=None if talk is None else talk.to_env(),
    )


def _fail(exc: BaseException) -> int:
    err = translate_error(exc)
    print(f"jmoshi-nb: error: {err}", file=sys.stderr)
    return 2


def modal_command(body: Callable[..., None]) -> Callable[..., int]:
    """A ``jmoshi-nb modal`` command: ``body(args, api, *extra)`` once the Modal credentials are checked.

    Exit status 0, or 2 with the error, made readable (``translate_error``), on stderr.
    """

    @functools.wraps(body)
    def command(args: argparse.Namespace, *extra: Any) -> int:
        api = _make_api()
        try:
            api.check_credentials()
            body(args, api, *extra)
        except Exception as exc:
            return _fail(exc)
        return 0

    return command


TALK_LINK_WARNING = (
    "whoever holds this link can send their microphone to the model and hear it, on your GPU bill: "
    "share it only with participants"
)


def cmd_deploy(args: argparse.Namespace) -> int:
    """``modal deploy``: the talk page's flags are checked first (exit 2 naming the file and field), then deploy."""
    import os

    from ..model.engine import MAX_SLOTS, check_slots

    # The cap in force: the flag, or else the one a JMOSHI_MODAL_MAX_CONTAINERS in this shell gives the app.
    containers = args.max_containers or int(os.environ.get(ENV["max_containers"]) or 1)
    try:
        if args.max_sessions is not None:
            check_slots(args.max_sessions, MAX_SLOTS, "--max-sessions")
        talk = talk_deploy(args.model, args.config, args.configs, args.assign, args.record, args.rate,
                           args.show_controls, containers)  # fmt: skip
    except ConfigError as exc:
        print(f"jmoshi-nb: error: {exc}", file=sys.stderr)
        return 2
    return _deploy(args, talk)


@modal_command
def _deploy(args: argparse.Namespace, api: Any, talk: TalkDeploy) -> None:
    token, source = ensure_token(api, token=args.token)
    print(f"token: from {source}")
    settings = _settings(args, api, talk)
    print(f"deploying '{args.app}': {args.model} on {settings[ENV['gpu']]}")
    for line in talk.describe(TALK_VOLUME_NAME):
        print(f"  {line}")
    url = api.deploy(settings)
    print(f"chat endpoint: {url}/api/chat  (clients present the token: ?token=... or Bearer)")
    print(f"talk page:     {page_link(url, token)}")
    print(f"  ({TALK_LINK_WARNING})")
    if talk.record:
        print(f"recordings:    jmoshi-nb modal recordings {talk.record} --fetch DIR")
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
        talk = TalkDeploy.from_env(deployed.get(ENV["talk"], ""))
        for line in talk.describe(deployed.get(ENV["talk_volume"], TALK_VOLUME_NAME)):
            print(f"  {line}")
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


FINISHED_MARK = "audio.wav"  # written when a recording is saved (Recording.save); absent while it streams


def save_fetched_file(local: Path, data: bytes) -> tuple[str, Path]:
    """Put one file from the Volume at ``local`` without ever replacing a local file.

    Returns:
        ``("new", local)`` when it was written, ``("same", local)`` when ``local`` already holds these
        bytes, or ``("beside", path)`` when ``local`` differs: the Volume's copy is then written beside
        it as ``<stem>.modal<suffix>`` (``.modal-2``, ... if that is taken too).
    """
    target, what = local, "new"
    n = 1
    while target.exists():
        if target.read_bytes() == data:
            return ("same" if target == local else "beside"), target
        what = "beside"
        target = local.with_name(f"{local.stem}.modal{'' if n == 1 else f'-{n}'}{local.suffix}")
        n += 1
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    tmp.write_bytes(data)
    tmp.replace(target)  # a fetch cut short leaves no half-written file under the real name
    return what, target


def conversation_files(files: list[str]) -> dict[str, list[str]]:
    """The Volume's files of one ``--record`` folder grouped by conversation (``participant/conversation``)."""
    out: dict[str, list[str]] = {}
    for rel in files:
        out.setdefault(rel.rsplit("/", 1)[0] if "/" in rel else ".", []).append(rel)
    return out


def cmd_recordings(args: argparse.Namespace) -> int:
    """``modal recordings NAME [--fetch DIR]``: what the talk page recorded on the Volume; bring it here."""
    from ..serve.record import RATING_FILE, check_writable

    try:
        if not RECORD_NAME.fullmatch(args.name):
            raise ConfigError(f"{args.name!r}: not a --record name (letters, digits, '_' and '-')")
        out = check_writable(args.fetch) if args.fetch else None  # before any Modal call
    except ConfigError as exc:
        print(f"jmoshi-nb: error: {str(exc).replace('--record', '--fetch')}", file=sys.stderr)
        return 2
    api = _make_api()
    try:
        api.check_credentials()
        files = api.talk_files(TALK_VOLUME_NAME, args.name)
        if files is None:
            raise ValueError(f"no recordings named '{args.name}' on the Volume '{TALK_VOLUME_NAME}' (deploy --record)")
        groups = conversation_files(files)
        finished = {c: fs for c, fs in groups.items() if any(f.endswith(f"/{FINISHED_MARK}") for f in fs)}
        rated = sum(any(f.endswith(f"/{RATING_FILE}") for f in fs) for fs in groups.values())
        participants = {c.split("/", 1)[0] for c in groups}
        print(f"'{args.name}' on the Volume '{TALK_VOLUME_NAME}': {len(groups)} conversation(s) of "
              f"{len(participants)} participant(s), {rated} rated, {len(groups) - len(finished)} not finished "
              "(in progress, or cut short by a container that stopped)")  # fmt: skip
        if out is None:
            print(f"bring them here: jmoshi-nb modal recordings {args.name} --fetch DIR")
            return 0
        chosen = groups if args.unfinished else finished
        counts = {"new": 0, "same": 0, "beside": 0}
        for conversation in sorted(chosen):
            for rel in chosen[conversation]:
                what, path = save_fetched_file(out / rel, api.read_talk_file(TALK_VOLUME_NAME, f"{args.name}/{rel}"))
                counts[what] += 1
                if what == "beside":
                    print(f"  kept beside a different local file: {path}")
    except Exception as exc:
        return _fail(exc)
    skipped = len(groups) - len(chosen)
    left = f"; {skipped} not finished, left on the Volume (--unfinished fetches them)" if skipped else ""
    print(f"fetched {len(chosen)} conversation(s) into {out}: {counts['new']} new file(s), {counts['same']} already "
          f"here, {counts['beside']} kept beside a different local file{left}")  # fmt: skip
    return 0


def add_modal_commands(subparsers: Any) -> None:
    """Add ``modal deploy | download-weights | status | listen | recordings`` to the ``jmoshi-nb`` CLI."""
    modal_parser = subparsers.add_parser(
        "modal", help="run the kit on Modal: deploy, download-weights, status, listen, recordings"
    )
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
    p.add_argument("--max-sessions", type=int, help="conversations one container serves at once (default 1)")
    talk = p.add_argument_group("talk page (GET /), as `jmoshi-nb serve`'s")
    talk.add_argument("--config", type=Path, metavar="FILE", help="the setting (YAML/JSON) every conversation gets")
    talk.add_argument("--configs", type=Path, nargs="+", metavar="FILE",
                      help="several settings, one given to each conversation, blind (System 1, 2...)")  # fmt: skip
    talk.add_argument("--assign", choices=ASSIGN_MODES, default="balanced", help="how --configs are given out")
    talk.add_argument("--record", metavar="NAME",
                      help=f"record every conversation on the Volume '{TALK_VOLUME_NAME}' under NAME/")  # fmt: skip
    talk.add_argument("--rate", action="store_true", help="ask for a 1-5 rating after each conversation")
    talk.add_argument("--show-controls", action="store_true", help="show sampling sliders (a demo)")
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

    p = sub.add_parser("recordings", help="the talk page's recordings on the Volume (deploy --record NAME); --fetch")
    p.add_argument("name", help="the --record NAME of the deploy")
    into = "copy them into DIR/<participant>/<conversation>/ (a local file is never replaced)"
    p.add_argument("--fetch", type=Path, metavar="DIR", help=into)
    p.add_argument("--unfinished", action="store_true", help="also fetch conversations not finished on the Volume")
    p.set_defaults(func=cmd_recordings)


__all__ = ["add_modal_commands"]
