"""ModalServer against a stand-in for Modal that runs the kit's server here, on the tiny model.

The stand-in keeps Modal's side of the contract: secrets are stored by name and the server only gets
its token from the token secret (as a container gets it injected), "deploying" starts the app's
``ChatServerThread`` on 127.0.0.1, and stopping ends it. Everything ModalServer does in between (token
handling, weights, health polling, token check, URLs, errors, stop) is the real code.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("modal")

from jmoshi_nb.cloud import app as modal_app  # noqa: E402
from jmoshi_nb.core.audio import FRAME_SIZE  # noqa: E402
from jmoshi_nb.core.config import SessionConfig  # noqa: E402
from jmoshi_nb.model.engine_pool import EnginePool  # noqa: E402
from jmoshi_nb.notebook.servers import start_server  # noqa: E402
from jmoshi_nb.remote.modal_client import (  # noqa: E402
    NO_CREDENTIALS,
    TOKEN_ENV,
    ModalServer,
    ModalSetupError,
    ModalStartTimeout,
    ensure_token,
    read_saved_token,
    sweep_worker,
    token_file,
    ws_url,
)
from jmoshi_nb.research.jobs import Job, run_jobs  # noqa: E402
from jmoshi_nb.serve.client import ServerError, connect  # noqa: E402


class FakeDeployment:
    def __init__(self, api: FakeModal, deployed: bool) -> None:
        self.api = api
        self.deployed = deployed
        token = api.secrets["jmoshi-nb-token"][TOKEN_ENV]  # injected from the secret, as on Modal
        self.server = modal_app.start_chat_server(api.engine, token, host="127.0.0.1", port=0)
        self.web_url = self.server.url
        self.stopped: list[str] = []
        self.closed = False

    def settings(self) -> dict[str, str]:
        return {"JMOSHI_MODAL_MODEL": "tiny", "JMOSHI_MODAL_GPU": "A10G"}

    def download_weights(self, model: str, revision: str | None) -> dict[str, Any]:
        self.api.downloads.append(model)
        if self.api.hf_refuses:
            raise RuntimeError("HF_ACCESS: Hugging Face refused 'j-moshi-ext' (GatedRepoError, HTTP 401)")
        return modal_app.fetch_weights(model, revision)

    def sweep_function(self) -> Any:
        api = self.api

        class Worker:
            def starmap(self, args: Any, *, order_outputs: bool = True, return_exceptions: bool = False) -> Any:
                for a in args:
                    api.sweep_calls += 1
                    yield modal_app.sweep_job(*a)

        return Worker()

    def stop_container(self, task_id: str) -> None:
        self.stopped.append(task_id)

    def close(self) -> None:
        self.closed = True
        self.server.stop()


class FakeModal:
    """The ``ModalAPI`` ModalServer uses, kept in memory."""

    def __init__(self, engine: Any, deployed: bool = False, credentials: bool = True) -> None:
        self.engine = engine
        self.credentials = credentials
        self.secrets: dict[str, dict[str, str]] = {}
        self.deployment: FakeDeployment | None = None
        self.deployed = deployed
        self.settings: dict[str, str] | None = None
        self.downloads: list[str] = []
        self.hf_refuses = False
        self.sweep_calls = 0

    def check_credentials(self) -> None:
        if not self.credentials:
            raise ModalSetupError(NO_CREDENTIALS)

    def secret_exists(self, name: str) -> bool:
        return name in self.secrets

    def create_secret(self, name: str, values: dict[str, str]) -> None:
        self.secrets.setdefault(name, dict(values))

    def lookup(self, app_name: str) -> FakeDeployment | None:
        if not self.deployed:
            return None
        self.deployment = self.deployment or FakeDeployment(self, deployed=True)
        return self.deployment

    def run_ephemeral(self, settings: dict[str, str]) -> FakeDeployment:
        self.settings = settings
        self.deployment = FakeDeployment(self, deployed=False)
        return self.deployment


@pytest.fixture()
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    return tmp_path / "config"


@pytest.fixture()
def fake(engine, config_home: Path) -> Iterator[FakeModal]:  # type: ignore[no-untyped-def]
    sampling, seed = engine.sampling, engine.seed
    api = FakeModal(engine)
    yield api
    if api.deployment is not None and not api.deployment.closed:
        api.deployment.close()
    engine.reset(sampling, seed)


TINY = SessionConfig(model="tiny")


async def talk(url: str, token: str | None, frames: int = 3) -> list[dict[str, Any]]:
    async with connect(url, token=token) as s:
        await s.send_frame(np.random.default_rng(0).normal(0, 0.1, FRAME_SIZE * frames).astype(np.float32))
        await s.drain(timeout=60)
        assert s.info["model"] == "tiny"
        return s.recording.metrics


def test_start_server_modal_gives_a_working_session_and_refuses_bad_tokens(fake: FakeModal) -> None:
    messages: list[str] = []
    handle = start_server("modal", TINY, _modal=fake, progress=messages.append, poll_interval=0.05)
    try:
        assert isinstance(handle, ModalServer)
        assert handle.url.startswith("ws://127.0.0.1:") and handle.token
        assert handle.token == fake.secrets["jmoshi-nb-token"][TOKEN_ENV]
        assert fake.settings is not None and fake.settings["JMOSHI_MODAL_MODEL"] == "tiny"
        assert fake.settings["JMOSHI_MODAL_GPU"] == "A10G"
        assert fake.settings["JMOSHI_MODAL_HF_SECRET"] == ""  # no 'huggingface' secret: none attached
        assert fake.downloads == ["tiny"]
        assert handle.health["model"] == "tiny"
        metrics = asyncio.run(talk(handle.url, handle.token))
        assert [m["frame"] for m in metrics] == [0, 1, 2]
        with pytest.raises(ServerError, match="401"):
            asyncio.run(talk(handle.url, "not-the-token-not-the-token"))
        with pytest.raises(ServerError, match="401"):
            asyncio.run(talk(handle.url, None))
        text = "\n".join(messages)
        for stage in ("checking Modal credentials", "ephemeral app", "weights", "GPU container", "ready"):
            assert stage in text
    finally:
        handle.stop()
    assert fake.deployment is not None and fake.deployment.closed
    handle.stop()  # idempotent


def test_first_use_creates_and_saves_a_token_then_reuses_it(fake: FakeModal, config_home: Path) -> None:
    token, source = ensure_token(fake)
    assert "new secret" in source and len(token) >= 32
    assert read_saved_token() == token and token_file().stat().st_mode & 0o777 == 0o600
    assert ensure_token(fake) == (token, str(token_file()))
    token_file().unlink()
    with pytest.raises(ModalSetupError, match="does not know its token"):
        ensure_token(fake)
    assert ensure_token(fake, token=token)[0] == token
    with pytest.raises(ModalSetupError, match="shorter than 16"):
        ensure_token(fake, token="short")


def test_an_explicit_token_fills_a_missing_secret(fake: FakeModal, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment-0123456789")
    with ModalServer(TINY, _modal=fake, progress=False, poll_interval=0.05) as server:
        assert server.token == "from-the-environment-0123456789"
        assert fake.secrets["jmoshi-nb-token"][TOKEN_ENV] == server.token


def test_a_token_the_server_does_not_hold_is_reported(fake: FakeModal) -> None:
    fake.create_secret("jmoshi-nb-token", {TOKEN_ENV: "the-deployed-secret-0123456789"})
    with pytest.raises(ModalSetupError, match="refuses this token"):
        ModalServer(TINY, token="another-token-0123456789", _modal=fake, progress=False, poll_interval=0.05).start()
    assert fake.deployment is not None and fake.deployment.closed  # nothing left running


def test_deployed_app_is_used_and_stop_stops_its_container(fake: FakeModal) -> None:
    fake.deployed = True
    server = ModalServer(TINY, _modal=fake, progress=False, poll_interval=0.05).start()
    assert fake.settings is None  # no ephemeral run
    assert server.task_id is None  # a local stand-in has no MODAL_TASK_ID
    server.task_id = "ta-123"
    server.stop()
    assert fake.deployment is not None and fake.deployment.stopped == ["ta-123"]


def test_deployed_app_serving_another_model_is_refused(fake: FakeModal) -> None:
    fake.deployed = True
    with pytest.raises(ModalSetupError, match="serves 'tiny', not 'j-moshi-ext'.*deploy --model j-moshi-ext"):
        ModalServer(SessionConfig(model="j-moshi-ext"), _modal=fake, progress=False, poll_interval=0.05).start()
    assert fake.downloads == []  # found out before any download or GPU start
    with pytest.raises(ModalSetupError, match="no deployed app"):
        ModalServer(TINY, deployed=True, _modal=FakeModal(fake.engine), progress=False).start()


def test_missing_credentials_say_what_to_run(fake: FakeModal) -> None:
    fake.credentials = False
    with pytest.raises(ModalSetupError, match="modal token new"):
        start_server("modal", TINY, _modal=fake, progress=False)
    assert fake.secrets == {}  # nothing was created


def test_hub_refusal_says_how_to_give_access(fake: FakeModal) -> None:
    fake.hf_refuses = True
    with pytest.raises(ModalSetupError, match="Accept the model's terms.*modal secret create huggingface"):
        ModalServer(TINY, _modal=fake, progress=False).start()
    assert fake.deployment is not None and fake.deployment.closed


def test_a_container_that_never_gets_healthy_times_out_with_advice(fake: FakeModal) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once the socket closes

    real_run = fake.run_ephemeral

    def run_ephemeral(settings: dict[str, str]) -> FakeDeployment:
        dep = real_run(settings)
        dep.web_url = dead
        return dep

    fake.run_ephemeral = run_ephemeral  # type: ignore[method-assign]
    with pytest.raises(ModalStartTimeout, match="not healthy within 1 s.*modal app logs jmoshi-nb"):
        ModalServer(TINY, timeout=1.0, _modal=fake, progress=False, poll_interval=0.1).start()


def test_ws_urls() -> None:
    assert ws_url("https://me--jmoshi-nb-jmoshiserver-serve.modal.run/") == (
        "wss://me--jmoshi-nb-jmoshiserver-serve.modal.run"
    )
    assert ws_url("http://127.0.0.1:80") == "ws://127.0.0.1:80"


def test_modal_sweeps_go_through_the_apps_sweep_worker(fake: FakeModal, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny_pool = EnginePool()
    tiny_pool.put("tiny", None, fake.engine)
    monkeypatch.setattr(modal_app, "_POOL", tiny_pool)
    pcm = np.random.default_rng(3).normal(0, 0.1, FRAME_SIZE * 2).astype(np.float32)
    jobs = [Job(SessionConfig(model="tiny", seed=s), pcm, f"s{s}") for s in (1, 2)]
    with sweep_worker(models=["tiny"], progress=False, _modal=fake) as worker:
        recs = run_jobs(jobs, executor="modal", progress=False, worker=worker)
    assert fake.sweep_calls == 2 and fake.downloads == ["tiny"]
    assert "jmoshi-nb-token" in fake.secrets  # the app declares it, so an ephemeral run makes sure it exists
    assert fake.deployment is not None and fake.deployment.closed
    assert [r.meta["job"] for r in recs] == ["s1", "s2"]


# ---- jmoshi-nb modal ... --------------------------------------------------------------------------


class FakeCli(FakeModal):
    def __init__(self, engine: Any, **kwargs: Any) -> None:
        super().__init__(engine, **kwargs)
        self.deployed_with: dict[str, str] | None = None

    def deploy(self, settings: dict[str, str]) -> str:
        self.deployed_with = settings
        self.deployed = True
        return "https://me--jmoshi-nb-jmoshiserver-serve.modal.run"

    def deployed_settings(self, app_name: str) -> dict[str, str] | None:
        return self.deployed_with

    def cached_models(self, volume_name: str) -> list[str] | None:
        return ["nu-dialogue/j-moshi-ext"] if self.downloads else None

    def download(self, app_name: str, settings: dict[str, str], model: str, revision: str | None) -> dict[str, Any]:
        self.downloads.append(model)
        return {"model": model, "downloaded_bytes": 0}


def modal_cli(argv: list[str]) -> int:
    import argparse

    from jmoshi_nb.cloud.cli import add_modal_commands

    parser = argparse.ArgumentParser(prog="jmoshi-nb")
    add_modal_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["modal", *argv])
    return int(args.func(args))


@pytest.fixture()
def cli_fake(engine, config_home: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCli:  # type: ignore[no-untyped-def]
    from jmoshi_nb.cloud import cli as cli_modal

    api = FakeCli(engine)
    monkeypatch.setattr(cli_modal, "_make_api", lambda: api)
    return api


def test_cli_deploy_makes_the_token_secret_deploys_and_fills_the_volume(
    cli_fake: FakeCli, capsys: pytest.CaptureFixture[str]
) -> None:
    assert modal_cli(["deploy", "--gpu", "L40S", "--max-containers", "2", "--no-snapshot"]) == 0
    out = capsys.readouterr().out
    assert cli_fake.deployed_with is not None
    assert cli_fake.deployed_with["JMOSHI_MODAL_GPU"] == "L40S"
    assert cli_fake.deployed_with["JMOSHI_MODAL_MODEL"] == "j-moshi-ext"
    assert cli_fake.deployed_with["JMOSHI_MODAL_MAX_CONTAINERS"] == "2"
    assert cli_fake.deployed_with["JMOSHI_MODAL_SNAPSHOT"] == "0"
    assert cli_fake.deployed_with["JMOSHI_MODAL_HF_SECRET"] == ""
    assert "jmoshi-nb-token" in cli_fake.secrets and read_saved_token() is not None
    assert cli_fake.downloads == ["j-moshi-ext"]
    assert "chat endpoint: https://me--jmoshi-nb-jmoshiserver-serve.modal.run/api/chat" in out
    assert modal_cli(["status"]) == 0
    status = capsys.readouterr().out
    assert "app 'jmoshi-nb': deployed, serves j-moshi-ext on L40S" in status
    assert "volume 'jmoshi-nb-cache': nu-dialogue/j-moshi-ext" in status
    assert "not probed" in status


def test_cli_without_credentials_says_what_to_run(cli_fake: FakeCli, capsys: pytest.CaptureFixture[str]) -> None:
    cli_fake.credentials = False
    for argv in (["deploy"], ["download-weights", "--model", "tiny"], ["status"]):
        assert modal_cli(argv) == 2
        assert "modal token new" in capsys.readouterr().err
    assert cli_fake.deployed_with is None and cli_fake.downloads == []


def test_cli_download_weights(cli_fake: FakeCli, capsys: pytest.CaptureFixture[str]) -> None:
    assert modal_cli(["download-weights", "--model", "moshiko"]) == 0
    assert cli_fake.downloads == ["moshiko"]
    assert "'downloaded_bytes': 0" in capsys.readouterr().out


def test_share_on_modal_is_the_deployed_apps_talk_page(fake: FakeModal) -> None:
    """``session.share()`` on the modal backend: the page of the app's own URL (https://...modal.run on
    Modal), with the token, and no second server."""
    import urllib.request

    from jmoshi_nb.notebook.session import start
    from jmoshi_nb.serve.talk_page import page_link

    fake.deployed = True
    with start("modal", TINY, _modal=fake, progress=False, poll_interval=0.05) as s:
        link = s.share()
        assert fake.deployment is not None and s._shared is None
        token = fake.secrets["jmoshi-nb-token"][TOKEN_ENV]
        assert link == page_link(fake.deployment.web_url, token) == f"{fake.deployment.web_url}/?token={token}"
        with urllib.request.urlopen(link, timeout=10) as r:
            assert r.status == 200 and "jt-start" in r.read().decode()
