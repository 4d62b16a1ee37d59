"""The rater page on Modal, offline: the app's declarations, its container code on 127.0.0.1, ``modal listen``.

Nothing here reaches Modal: the app module only declares objects, the container's work is the plain
``start_rater_page`` (run here with a fake ``Volume.commit``), and the CLI talks to a fake API.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_listening import make_runs

pytest.importorskip("modal")

import modal  # noqa: E402

from jmoshi_nb.cloud import cli as cli_modal  # noqa: E402
from jmoshi_nb.cloud import listen_app  # noqa: E402
from jmoshi_nb.remote.modal_client import ModalSetupError  # noqa: E402
from jmoshi_nb.research.listening import ListeningTest  # noqa: E402
from jmoshi_nb.research.listening_quality import QualityControls, page_token  # noqa: E402
from jmoshi_nb.research.listening_server import random_answer, rate_all  # noqa: E402

NO_CONTROLS = QualityControls.off()


@pytest.fixture()
def saved(tmp_path: Path) -> Path:
    runs = make_runs(tmp_path / "runs", {"cool": 0.1, "warm": 0.2}, {"q1": 1.0})
    ListeningTest.create(runs, out=tmp_path / "mytest", quality=NO_CONTROLS)
    return tmp_path / "mytest"


def test_imports_with_no_modal_account_and_no_network(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODAL_", "JMOSHI_MODAL_"))}
    env["HOME"] = str(tmp_path)
    code = (
        "import socket\n"
        "def refuse(*a, **k):\n"
        "    raise AssertionError('network access while importing')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "import sys\n"
        "import jmoshi_nb.cloud.listen_app as m\n"
        "print(m.app.name, m.LISTEN_VOLUME_NAME, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["jmoshi-nb-listen", "jmoshi-nb-listening", "False"]  # the page needs no torch


def test_the_page_runs_in_one_cpu_container_with_the_listening_volume(monkeypatch: pytest.MonkeyPatch) -> None:
    info = listen_app.RaterPage._get_class_service_function().info()
    assert info.gpus == [] and info.secrets == [] and info.method_names == ["serve"]
    assert set(info.volumes) == {"/listening"} and info.volumes["/listening"].name == "jmoshi-nb-listening"
    assert info.concurrency_info is not None and info.concurrency_info.max_inputs == listen_app.MAX_INPUTS
    calls: list[dict[str, Any]] = []
    real = modal.App.cls

    def cls(self: modal.App, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(self, **kwargs)

    monkeypatch.setattr(modal.App, "cls", cls)
    monkeypatch.setenv("JMOSHI_MODAL_LISTEN_TEST", "pilot")
    m = importlib.reload(listen_app)
    try:
        (options,) = calls
        assert options["max_containers"] == 1  # one writer per ratings file (see the module's note)
        assert "gpu" not in options and m.TEST_NAME == "pilot" and m.SETTINGS_ENV["JMOSHI_MODAL_LISTEN_TEST"] == "pilot"
    finally:
        monkeypatch.undo()
        importlib.reload(listen_app)
    with pytest.raises(RuntimeError, match="jmoshi-nb modal listen TEST"):
        listen_app.test_folder("")
    assert listen_app.test_folder("pilot") == Path("/listening/tests/pilot")


def test_container_serves_the_test_with_its_token_and_commits_each_answer(saved: Path) -> None:
    commits: list[int] = []
    server = listen_app.start_rater_page(saved, lambda: commits.append(1), host="127.0.0.1", port=0)
    token = page_token(ListeningTest.open(saved).secret)
    base = server.url.split("?")[0]
    try:
        assert server.url.endswith(f"?token={token}")

        async def go() -> tuple[int, list[dict[str, Any]]]:
            async with aiohttp.ClientSession() as s:
                async with s.get(f"{base}api/state", params={"rater": "ann"}) as res:
                    refused = res.status
                return refused, await rate_all(s, base, "ann", random_answer(__import__("random").Random(0)), token)

        refused, sent = asyncio.run(go())
    finally:
        server.stop()
    assert refused == 401  # the link's token is needed
    assert len(sent) - 1 == 2 and len(commits) == 2  # one Volume commit per saved answer


class FakeApi:
    def __init__(self) -> None:
        self.credentials = True
        self.volume: dict[str, dict[str, Any]] = {}  # name -> {"id": test id, "files": [...], "ratings": {...}}
        self.deployed: dict[str, str] | None = None

    def check_credentials(self) -> None:
        if not self.credentials:
            raise ModalSetupError("no Modal credentials: run `modal token new`")

    def listen_test_id(self, volume_name: str, name: str) -> str | None:
        return self.volume[name]["id"] if name in self.volume else None

    def upload_test(self, volume_name: str, files: list[tuple[str, str]]) -> None:
        import json

        meta = next(
            json.loads(Path(local).read_text(encoding="utf-8")) for local, _ in files if local.endswith(".json")
        )
        name = files[0][1].split("/")[2]
        self.volume[name] = {"id": meta["id"], "files": [remote for _, remote in files], "ratings": {}}

    def deploy_listen(self, settings: dict[str, str]) -> str:
        self.deployed = settings
        return "https://me--jmoshi-nb-listen-raterpage-serve.modal.run"

    def fetch_ratings(self, volume_name: str, name: str) -> dict[str, bytes]:
        return self.volume.get(name, {}).get("ratings", {})


def modal_cli(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="jmoshi-nb")
    cli_modal.add_modal_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["modal", *argv])
    return int(args.func(args))


def test_modal_listen_uploads_the_test_but_never_its_ratings_and_prints_the_raters_link(
    saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api = FakeApi()
    monkeypatch.setattr(cli_modal, "_make_api", lambda: api)
    assert modal_cli(["listen", str(tmp_path / "nowhere")]) == 2
    assert f"{tmp_path / 'nowhere'}: no such folder" in capsys.readouterr().err and api.deployed is None
    (saved / "ratings" / "local.csv").write_text("x\n", encoding="utf-8")
    assert modal_cli(["listen", str(saved)]) == 0
    out = capsys.readouterr().out
    test = ListeningTest.open(saved)
    assert f"rater page: https://me--jmoshi-nb-listen-raterpage-serve.modal.run/?token={page_token(test.secret)}" in out
    files = api.volume["mytest"]["files"]
    assert "/tests/mytest/test.json" in files and any(f.startswith("/tests/mytest/clips/") for f in files)
    assert not any("ratings" in f for f in files)  # the Volume's answers are never overwritten
    assert api.deployed == {"JMOSHI_MODAL_LISTEN_APP": "jmoshi-nb-listen", "JMOSHI_MODAL_LISTEN_TEST": "mytest",
                            "JMOSHI_MODAL_LISTEN_VOLUME": "jmoshi-nb-listening"}  # fmt: skip
    api.volume["mytest"]["files"] = ["kept"]
    assert modal_cli(["listen", str(saved)]) == 0  # the same test again: redeploy, no upload
    assert api.volume["mytest"]["files"] == ["kept"] and "uploading" not in capsys.readouterr().out
    other = shutil.copytree(saved, tmp_path / "elsewhere" / "mytest")
    (other / "test.json").write_text((other / "test.json").read_text().replace(test.test_id, "f" * 16))
    assert modal_cli(["listen", str(other)]) == 2
    assert "another test named 'mytest'" in capsys.readouterr().err
    api.credentials = False
    assert modal_cli(["listen", str(saved)]) == 2 and "modal token new" in capsys.readouterr().err


def test_modal_listen_fetch_brings_the_ratings_back_without_losing_local_ones(
    saved: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api = FakeApi()
    monkeypatch.setattr(cli_modal, "_make_api", lambda: api)
    header = b"time_utc,rater\n"
    (saved / "ratings" / "ann.csv").write_bytes(header + b"1,ann\n")
    (saved / "ratings" / "bob.csv").write_bytes(header + b"1,bob-local\n")
    api.volume["mytest"] = {"id": "x", "files": [], "ratings": {
        "ann.csv": header + b"1,ann\n2,ann\n",  # the same answers and one more: replaces the local copy
        "bob.csv": header + b"1,bob-remote\n",  # differs: kept beside the local one
        "cid.csv": header + b"1,cid\n",
    }}  # fmt: skip
    assert modal_cli(["listen", str(saved), "--fetch"]) == 0
    assert "3 file(s)" in capsys.readouterr().out
    r = saved / "ratings"
    assert (r / "ann.csv").read_bytes().count(b"\n") == 3 and (r / "cid.csv").exists()
    assert b"bob-local" in (r / "bob.csv").read_bytes() and b"bob-remote" in (r / "bob.modal.csv").read_bytes()
