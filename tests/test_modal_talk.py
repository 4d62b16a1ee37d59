"""The talk page on the deployed Modal app, offline: deploy's flags, the container's page, the Volume.

Nothing here reaches Modal. The deploy's flags are checked by the real CLI against a stand-in API; the
container runs ``JMoshiServer``'s own methods on CPU with the tiny model, serving the page on 127.0.0.1
and recording into a temporary folder where the talk Volume would be mounted, with a stand-in for
``Volume.commit`` that counts; ``modal recordings --fetch`` reads a stand-in Volume.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("modal")

from jmoshi_nb.cli import build_parser  # noqa: E402
from jmoshi_nb.cloud import app as modal_app  # noqa: E402
from jmoshi_nb.cloud import cli as cli_modal  # noqa: E402
from jmoshi_nb.cloud.talk_deploy import TalkDeploy, talk_deploy  # noqa: E402
from jmoshi_nb.core.audio import FRAME_SIZE  # noqa: E402
from jmoshi_nb.core.config import ConfigError, Sampling, SessionConfig  # noqa: E402
from jmoshi_nb.core.recording import Recording  # noqa: E402
from jmoshi_nb.remote.modal_client import ModalSetupError  # noqa: E402
from jmoshi_nb.serve import protocol as P  # noqa: E402
from jmoshi_nb.serve.client import connect  # noqa: E402
from jmoshi_nb.serve.record import RATING_FILE, ServerRecorder  # noqa: E402

TOKEN = "t0ken-for-tests-0123456789"
URL = "https://me--study-jmoshiserver-serve.modal.run"


@pytest.fixture()
def two_configs(tmp_path: Path) -> tuple[Path, Path]:
    calm = SessionConfig(model="j-moshi-ext", name="calm", seed=7, sampling=Sampling(temp=0.6)).save(
        tmp_path / "calm.yaml"
    )
    wild = SessionConfig(model="j-moshi-ext", name="wild", seed=None, sampling=Sampling(temp=1.0)).save(
        tmp_path / "wild.yaml"
    )
    return calm, wild


def test_settings_travel_in_the_environment_and_come_back_the_same(two_configs: tuple[Path, Path]) -> None:
    talk = talk_deploy("tiny", configs=two_configs, assign="random", record="pilot", rate=True)
    back = TalkDeploy.from_env(talk.to_env())
    assert back == talk
    calm, wild = back.setting_objects()
    assert (calm.label, wild.label) == ("System 1", "System 2")
    assert calm.config.model == wild.config.model == "tiny"  # the deployed model replaces each file's
    assert calm.config.sampling.temp == 0.6 and calm.config.seed == 7 and wild.config.sampling.temp == 1.0
    assert calm.source == str(two_configs[0]) and calm.config.name == "calm"
    assert TalkDeploy.from_env("") == TalkDeploy() and TalkDeploy().to_env() == ""
    with pytest.raises(ConfigError, match="JMOSHI_MODAL_TALK"):
        TalkDeploy.from_env('{"settings": [{"index": 0}]}')


def test_bad_page_flags_are_refused_before_any_modal_call() -> None:
    with pytest.raises(ConfigError, match="--rate needs --record"):
        talk_deploy("tiny", rate=True)
    with pytest.raises(ConfigError, match="--record '../x'"):
        talk_deploy("tiny", record="../x")
    with pytest.raises(ConfigError, match="--max-containers 2: a rating must reach the container"):
        talk_deploy("tiny", record="pilot", rate=True, max_containers=2)
    assert talk_deploy("tiny", record="pilot", max_containers=2).record == "pilot"  # recording alone scales out


class FakeApi:
    """What the CLI calls on Modal: secrets by name, a deploy that keeps its settings, a talk Volume."""

    made = 0

    def __init__(self) -> None:
        FakeApi.made += 1
        self.secrets: dict[str, dict[str, str]] = {}
        self.deployed: dict[str, str] | None = None
        self.volume: dict[str, bytes] = {}  # path on the talk Volume -> content

    def check_credentials(self) -> None:
        pass

    def secret_exists(self, name: str) -> bool:
        return name in self.secrets

    def create_secret(self, name: str, values: dict[str, str]) -> None:
        self.secrets[name] = values

    def deploy(self, settings: dict[str, str]) -> str:
        self.deployed = settings
        return URL

    def download(self, *args: Any) -> dict[str, Any]:
        raise AssertionError("--no-download was given")

    def deployed_settings(self, app_name: str) -> dict[str, str] | None:
        return self.deployed

    def cached_models(self, volume_name: str) -> list[str]:
        return []

    def talk_files(self, volume_name: str, name: str) -> list[str] | None:
        assert volume_name == "jmoshi-nb-talk"
        files = [p.removeprefix(f"{name}/") for p in self.volume if p.startswith(f"{name}/")]
        return sorted(files) if files else None

    def read_talk_file(self, volume_name: str, path: str) -> bytes:
        return self.volume[path]


@pytest.fixture()
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeApi:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no saved token of the developer's
    monkeypatch.setenv("JMOSHI_NB_TOKEN", TOKEN)
    fake = FakeApi()
    FakeApi.made = 0
    monkeypatch.setattr(cli_modal, "_make_api", lambda: _count(fake))
    return fake


def _count(fake: FakeApi) -> FakeApi:
    FakeApi.made += 1
    return fake


def run_cli(argv: list[str]) -> int:
    args = build_parser().parse_args(["modal", *argv])
    return int(args.func(args))


def test_a_bad_config_exits_2_naming_file_and_field_before_anything_deploys(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = SessionConfig(model="tiny").save(tmp_path / "good.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: tiny\nsampling:\n  top_k: -3\n", encoding="utf-8")
    assert run_cli(["deploy", "--configs", str(good), str(bad), "--no-download"]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "sampling.top_k" in err
    assert run_cli(["deploy", "--configs", str(good), str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml: no such config file" in capsys.readouterr().err
    assert run_cli(["deploy", "--rate"]) == 2 and "--rate needs --record" in capsys.readouterr().err
    assert run_cli(["deploy", "--config", str(good), "--configs", str(good)]) == 2
    assert run_cli(["deploy", "--max-sessions", "0"]) == 2 and "--max-sessions=0" in capsys.readouterr().err
    os.environ["JMOSHI_MODAL_MAX_CONTAINERS"] = "3"  # the shell's cap counts as much as the flag
    try:
        assert run_cli(["deploy", "--record", "pilot", "--rate"]) == 2
    finally:
        del os.environ["JMOSHI_MODAL_MAX_CONTAINERS"]
    assert "--max-containers 3" in capsys.readouterr().err
    assert FakeApi.made == 0 and api.deployed is None  # Modal was never asked anything


def test_deploy_ships_the_page_settings_and_prints_the_participants_link(
    api: FakeApi, two_configs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["deploy", "--app", "study", "--configs", *map(str, two_configs), "--assign", "balanced", "--record",
            "pilot", "--rate", "--max-sessions", "2", "--no-download"]  # fmt: skip
    assert run_cli(argv) == 0
    out = capsys.readouterr().out
    assert api.deployed is not None and api.deployed["JMOSHI_MODAL_APP"] == "study"
    assert api.deployed["JMOSHI_MODAL_MAX_SESSIONS"] == "2"
    talk = TalkDeploy.from_env(api.deployed["JMOSHI_MODAL_TALK"])
    assert (talk.record, talk.rate, talk.show_controls, talk.assign) == ("pilot", True, False, "balanced")
    assert [s.config.name for s in talk.setting_objects()] == ["calm", "wild"]
    assert f"talk page:     {URL}/?token={TOKEN}" in out
    assert "System 1 = calm.yaml, System 2 = wild.yaml (given out balanced, blind)" in out
    assert "jmoshi-nb modal recordings pilot --fetch DIR" in out and "microphone" in out
    assert run_cli(["status", "--app", "study"]) == 0
    status = capsys.readouterr().out
    assert "recording every conversation on the Volume 'jmoshi-nb-talk' under pilot/" in status
    assert "rating form: on" in status
    assert run_cli(["deploy", "--no-download"]) == 0  # no page flags: the page with the model's defaults
    assert api.deployed["JMOSHI_MODAL_TALK"] == "" and "recording: none" in capsys.readouterr().out


def test_the_talk_volume_is_mounted_on_the_server_only_when_recording(
    monkeypatch: pytest.MonkeyPatch, two_configs: tuple[Path, Path]
) -> None:
    info = modal_app.JMoshiServer._get_class_service_function().info()
    assert set(info.volumes) == {"/cache"}  # the default deploy: no recordings, no second Volume
    talk = talk_deploy("j-moshi-ext", configs=two_configs, record="pilot", rate=True)
    monkeypatch.setenv("JMOSHI_MODAL_TALK", talk.to_env())
    try:
        m = importlib.reload(modal_app)
        info = m.JMoshiServer._get_class_service_function().info()
        assert set(info.volumes) == {"/cache", "/talk"} and info.volumes["/talk"].name == "jmoshi-nb-talk"
        assert set(m.SweepWorker._get_class_service_function().info().volumes) == {"/cache"}
        assert m.TALK == talk and m.SETTINGS_ENV["JMOSHI_MODAL_TALK"] == talk.to_env()  # the containers' copy
    finally:
        monkeypatch.undo()
        for key in [k for k in os.environ if k.startswith("JMOSHI_MODAL_")]:
            del os.environ[key]
        importlib.reload(modal_app)


@pytest.fixture()
def container(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_path: Path) -> Iterator[dict[str, Any]]:  # noqa: ARG001
    """A server container with the tiny model on CPU, the talk Volume's mount in ``tmp_path/talk``."""
    configs = [SessionConfig(model="tiny", name=n, sampling=Sampling(temp=t)).save(tmp_path / f"{n}.yaml")
               for n, t in (("calm", 0.5), ("wild", 1.0))]  # fmt: skip
    commits: list[float] = []
    monkeypatch.setattr(modal_app, "MODEL", "tiny")
    monkeypatch.setattr(modal_app, "DEVICE", "cpu")
    monkeypatch.setattr(modal_app, "HOST", "127.0.0.1")
    monkeypatch.setattr(modal_app, "PORT", 0)
    monkeypatch.setattr(modal_app, "TALK", talk_deploy("tiny", configs=configs, record="pilot", rate=True))
    monkeypatch.setattr(modal_app, "TALK_PATH", str(tmp_path / "talk"))
    monkeypatch.setattr(modal_app, "commit_talk_volume", lambda: commits.append(time.monotonic()))
    monkeypatch.setenv("JMOSHI_NB_TOKEN", TOKEN)
    server = modal_app.JMoshiServer._get_user_cls()()
    server.load()
    server.warm_up()
    server.serve()
    try:
        yield {"url": server.server.url, "commits": commits, "root": tmp_path / "talk" / "pilot"}
    finally:
        server.shutdown()


def _wait(condition: Any, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


async def _conversation(url: str, participant: str) -> tuple[str, str]:
    async with connect(url + f"?{P.PARTICIPANT_QUERY}={participant}", token=TOKEN) as s:
        for _ in range(4):
            await s.send_frame(np.zeros(FRAME_SIZE, np.float32))
        await s.drain(timeout=60)
        await s.send_raw(P.pack_json({"type": "end"}))
        return s.info["setting_label"], s.info["conversation"]


def _post_rating(url: str, answer: dict[str, Any]) -> int:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    req = urllib.request.Request(url + "/api/rating", data=json.dumps(answer).encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_container_serves_the_page_records_on_the_volume_and_commits_each_conversation_and_rating(
    container: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    url, commits, root = container["url"], container["commits"], container["root"]
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        with urllib.request.urlopen(f"{url}/?token={TOKEN}", timeout=10) as r:
            page = r.read().decode()
            assert r.status == 200 and '"rate": true' in page and '"show_controls": false' in page
            assert "calm" not in page and "wild" not in page  # the page never names the settings
        _wait(lambda: "GET /?token=" in caplog.text, 5)
    assert "GET /?token=***" in caplog.text and TOKEN not in caplog.text  # Modal's logs never show the token
    with pytest.raises(urllib.error.HTTPError, match="401"):
        urllib.request.urlopen(f"{url}/", timeout=10)
    first = asyncio.run(_conversation(url, "p01"))
    _wait(lambda: len(commits) == 1)
    assert len(commits) == 1  # committed once the first conversation was saved
    second = asyncio.run(_conversation(url, "p02"))
    _wait(lambda: len(commits) == 2)
    assert (first[0], second[0]) == ("System 1", "System 2")  # balanced, and only the neutral label is shown
    recs = {p: Recording.load(next((root / p).iterdir())) for p in ("p01", "p02")}
    assert recs["p01"].meta["setting"]["name"] == "calm" and recs["p02"].meta["setting"]["name"] == "wild"
    assert recs["p01"].meta["setting"]["source"].endswith("calm.yaml") and not recs["p01"].cut_short
    assert recs["p02"].config is not None and recs["p02"].config.sampling.temp == 1.0
    answer = {"conversation": first[1], "naturalness": 4, "meaningfulness": 3, "overall": 4, "comment": "良い"}
    assert _post_rating(url, answer) == 200
    assert len(commits) == 3  # the rating was committed before the page was answered
    rating = json.loads((root / "p01" / first[1] / RATING_FILE).read_text(encoding="utf-8"))
    assert rating["overall"] == 4 and rating["comment"] == "良い"


def test_recordings_fetch_brings_finished_conversations_back_and_never_overwrites(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api.volume = {
        "pilot/p01/c1/session.json": b'{"a": 1}',
        "pilot/p01/c1/audio.wav": b"RIFF-1",
        "pilot/p01/c1/rating.json": b'{"overall": 4}',
        "pilot/p02/c2/session.json": b'{"b": 2}',
        "pilot/p02/c2/user.part.wav": b"RIFF-partial",  # still streaming (or its container stopped)
        "other/p09/c9/audio.wav": b"RIFF-9",
    }
    out = tmp_path / "back"
    assert run_cli(["recordings", "pilot"]) == 0
    assert "2 conversation(s) of 2 participant(s), 1 rated, 1 not finished" in capsys.readouterr().out
    assert run_cli(["recordings", "pilot", "--fetch", str(out)]) == 0
    said = capsys.readouterr().out
    assert "fetched 1 conversation(s)" in said and "3 new file(s)" in said and "1 not finished, left" in said
    assert (out / "p01" / "c1" / "audio.wav").read_bytes() == b"RIFF-1" and (
        out / "p01" / "c1" / "rating.json"
    ).exists()
    assert not (out / "p02").exists() and not (out / "p09").exists()  # unfinished, and another study's
    (out / "p01" / "c1" / "session.json").write_bytes(b"edited here")  # a local change is never lost
    api.volume["pilot/p01/c1/audio.wav"] = b"RIFF-1"  # unchanged
    assert run_cli(["recordings", "pilot", "--fetch", str(out), "--unfinished"]) == 0
    said = capsys.readouterr().out
    assert "kept beside a different local file" in said and "2 already here" in said
    assert (out / "p01" / "c1" / "session.json").read_bytes() == b"edited here"
    assert (out / "p01" / "c1" / "session.modal.json").read_bytes() == b'{"a": 1}'
    assert (out / "p02" / "c2" / "user.part.wav").read_bytes() == b"RIFF-partial"
    assert not list(out.rglob(".*.part"))  # no half-written file left behind
    assert run_cli(["recordings", "nothing-here"]) == 2
    assert "no recordings named 'nothing-here'" in capsys.readouterr().err
    assert run_cli(["recordings", "../up"]) == 2 and FakeApi.made == 4  # refused before asking Modal
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert run_cli(["recordings", "pilot", "--fetch", str(blocker / "d")]) == 2
    assert "--fetch" in capsys.readouterr().err


def test_status_of_an_app_without_credentials_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class NoCredentials(FakeApi):
        def check_credentials(self) -> None:
            raise ModalSetupError("no Modal credentials on this machine: run `modal token new`")

    monkeypatch.setattr(cli_modal, "_make_api", NoCredentials)
    assert run_cli(["recordings", "pilot"]) == 2 and "modal token new" in capsys.readouterr().err


def test_a_rating_sent_after_a_container_restart_finds_its_conversation(tmp_path: Path) -> None:
    """A container that stopped between the end of a conversation and its rating: the next container
    sees the committed folder on the Volume and stores the rating beside it."""
    saved: list[Path] = []
    first = ServerRecorder(tmp_path / "pilot", on_saved=saved.append)
    rec = first.open("p01", SessionConfig(model="tiny"), {"model": "tiny"}, {})
    for _ in range(3):
        rec.add_user(np.zeros(FRAME_SIZE, np.float32))
        rec.add_model(np.zeros(FRAME_SIZE, np.float32))
    folder = first.finish(rec)
    assert saved == [folder] and Recording.load(folder).duration > 0  # on_saved ran once it was saved
    conversation = rec.meta["conversation"]
    second = ServerRecorder(tmp_path / "pilot", on_saved=saved.append)  # a new container, the same Volume
    answer = {"conversation": conversation, "naturalness": 3, "meaningfulness": 4, "overall": 5}
    assert second.save_rating(answer) == folder / RATING_FILE and saved[-1] == folder / RATING_FILE
    with pytest.raises(ValueError, match="already been rated"):
        second.save_rating(answer)
    for unknown in ("20260101T000000Z-abcdef", "*", f"../{conversation}", f"p01/{conversation}"):
        with pytest.raises(ValueError, match="no conversation"):
            second.save_rating(answer | {"conversation": unknown})
