"""The Modal app: imports offline, declares the intended resources, and its container code runs here.

Nothing here reaches Modal: the SDK declares objects lazily, ``Function.info()`` reads the local
declaration, and the classes' lifecycle methods are plain methods run on CPU with the tiny model.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("modal")

import modal  # noqa: E402

from jmoshi_nb.cloud import app as modal_app  # noqa: E402
from jmoshi_nb.core.audio import FRAME_SIZE, encode_audio  # noqa: E402
from jmoshi_nb.core.config import SessionConfig  # noqa: E402
from jmoshi_nb.core.recording import Recording  # noqa: E402
from jmoshi_nb.serve.client import ServerError, connect  # noqa: E402

TOKEN = "t0ken-for-tests-0123456789"


@pytest.fixture(autouse=True, scope="module")
def default_settings() -> None:
    """These tests check the defaults: drop any JMOSHI_MODAL_* a developer's shell may set."""
    if any(k.startswith("JMOSHI_MODAL_") for k in os.environ):
        for key in [k for k in os.environ if k.startswith("JMOSHI_MODAL_")]:
            del os.environ[key]
        importlib.reload(modal_app)


def test_imports_with_no_modal_account_and_no_network(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODAL_", "JMOSHI_MODAL_"))}
    env["HOME"] = str(tmp_path)  # no ~/.modal.toml
    code = (
        "import socket\n"
        "def refuse(*a, **k):\n"
        "    raise AssertionError('network access while importing')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "import jmoshi_nb.cloud.app as m\n"
        "print(m.app.name, m.GPU)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["jmoshi-nb", "A10G"]


def test_server_class_declares_gpu_volume_secrets_concurrency_and_timeouts() -> None:
    info = modal_app.JMoshiServer._get_class_service_function().info()
    assert info.gpus == [("A10G", 1)]
    assert info.timeout == modal_app.TIMEOUT_S == 3600
    assert info.startup_timeout == modal_app.STARTUP_TIMEOUT_S
    assert info.memory_mib == modal_app.MEMORY_MIB
    assert info.concurrency_info is not None
    assert (info.concurrency_info.max_inputs, info.concurrency_info.target_inputs) == (4, 1)
    assert set(info.volumes) == {"/cache"} and info.volumes["/cache"].name == "jmoshi-nb-cache"
    assert modal_app.HF_HOME.startswith("/cache/")  # the Hub cache lives on the Volume
    # Only the client token: the server reads the weights from the Volume, offline, with no Hub token.
    assert info.secrets == ["modal.Secret.from_name('jmoshi-nb-token')"]
    assert info.method_names == ["serve"]
    web = info.method_details["serve"]  # type: ignore[index]
    assert web.unauthenticated is True  # the kit's token guards it; Modal proxy auth is opt-in


def test_sweep_worker_and_download_function_declarations() -> None:
    sweep = modal_app.SweepWorker._get_class_service_function().info()
    assert sweep.gpus == [("A10G", 1)]
    assert sweep.timeout == modal_app.SWEEP_TIMEOUT_S
    assert set(sweep.volumes) == {"/cache"}
    assert sweep.secrets == []  # neither the server token nor a Hub token
    assert sweep.method_names == ["run"]
    download = modal_app.download_weights.info()
    assert download.gpus == []  # filling the cache bills no GPU
    assert set(download.volumes) == {"/cache"}
    assert download.secrets[0] == "modal.Secret.from_name('huggingface')"  # + its env (HF_HUB_OFFLINE=0)
    assert len(download.secrets) == 2
    assert modal_app.settings.local() == modal_app.SETTINGS_ENV
    assert modal_app.SETTINGS_ENV["JMOSHI_MODAL_MODEL"] == "j-moshi-ext"


@pytest.fixture()
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Re-run the module with ``App.cls``/``App.function`` recording the keyword arguments they get."""
    calls: dict[str, Any] = {"cls": [], "function": [], "web_server": [], "concurrent": []}
    real_cls, real_function = modal.App.cls, modal.App.function
    real_web_server, real_concurrent = modal.web_server, modal.concurrent

    def cls(self: modal.App, **kwargs: Any) -> Any:
        calls["cls"].append(kwargs)
        return real_cls(self, **kwargs)

    def function(self: modal.App, **kwargs: Any) -> Any:
        calls["function"].append(kwargs)
        return real_function(self, **kwargs)

    def web_server(*args: Any, **kwargs: Any) -> Any:
        calls["web_server"].append((args, kwargs))
        return real_web_server(*args, **kwargs)

    def concurrent(**kwargs: Any) -> Any:
        calls["concurrent"].append(kwargs)
        return real_concurrent(**kwargs)

    monkeypatch.setattr(modal.App, "cls", cls)
    monkeypatch.setattr(modal.App, "function", function)
    monkeypatch.setattr(modal, "web_server", web_server)
    monkeypatch.setattr(modal, "concurrent", concurrent)
    yield calls
    monkeypatch.undo()
    for key in list(os.environ):
        if key.startswith("JMOSHI_MODAL_"):
            del os.environ[key]
    importlib.reload(modal_app)


def test_decorators_receive_the_declared_settings(recorded: dict[str, Any]) -> None:
    importlib.reload(modal_app)
    server, sweep = recorded["cls"]
    assert server["gpu"] == "A10G"
    assert server["scaledown_window"] == modal_app.SCALEDOWN_WINDOW_S == 300
    assert server["timeout"] == 3600 and server["startup_timeout"] == 1200
    assert server["enable_memory_snapshot"] is True
    assert server["max_containers"] == 1
    assert list(server["volumes"]) == ["/cache"]
    assert sweep["scaledown_window"] == modal_app.SWEEP_SCALEDOWN_WINDOW_S
    assert sweep["max_containers"] == modal_app.SWEEP_MAX_CONTAINERS
    assert recorded["concurrent"] == [{"max_inputs": 4, "target_inputs": 1}]
    ((args, kwargs),) = recorded["web_server"]
    assert kwargs["port"] == modal_app.PORT and kwargs["requires_proxy_auth"] is False
    download, settings = recorded["function"]
    assert "gpu" not in download and download["timeout"] == modal_app.DOWNLOAD_TIMEOUT_S
    assert download["env"] == {"HF_HUB_OFFLINE": "0"}  # the only container that talks to the Hub
    assert "gpu" not in settings and "volumes" not in settings  # a tiny CPU function that answers settings()


def test_settings_come_from_the_environment_at_deploy_time(
    recorded: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JMOSHI_MODAL_GPU", "L40S")
    monkeypatch.setenv("JMOSHI_MODAL_MODEL", "moshiko")
    monkeypatch.setenv("JMOSHI_MODAL_HF_SECRET", "")
    monkeypatch.setenv("JMOSHI_MODAL_PROXY_AUTH", "1")
    m = importlib.reload(modal_app)
    assert recorded["cls"][0]["gpu"] == "L40S"
    assert m.JMoshiServer._get_class_service_function().info().gpus == [("L40S", 1)]
    assert len(m.download_weights.info().secrets) == 1  # only the env, no 'huggingface' secret
    assert recorded["web_server"][0][1]["requires_proxy_auth"] is True
    # The containers re-import this module: the image carries the same settings in its environment.
    assert m.SETTINGS_ENV["JMOSHI_MODAL_MODEL"] == "moshiko"
    assert m.SETTINGS_ENV["JMOSHI_MODAL_GPU"] == "L40S"


def test_no_cuda_probe_hides_the_gpu_check_and_restores_it() -> None:
    import torch

    real = torch.cuda.is_available
    with modal_app.no_cuda_probe():
        assert torch.cuda.is_available() is False
    assert torch.cuda.is_available is real


def test_container_refuses_to_serve_without_a_long_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JMOSHI_NB_TOKEN", raising=False)
    with pytest.raises(RuntimeError, match="modal secret create jmoshi-nb-token"):
        modal_app.container_token()
    monkeypatch.setenv("JMOSHI_NB_TOKEN", "short")
    with pytest.raises(RuntimeError, match="shorter than 16"):
        modal_app.container_token()


@pytest.fixture()
def local_container(monkeypatch: pytest.MonkeyPatch, tiny_path) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """What a container would have, with the tiny model on CPU on a loopback port."""
    monkeypatch.setattr(modal_app, "MODEL", "tiny")
    monkeypatch.setattr(modal_app, "DEVICE", "cpu")
    monkeypatch.setattr(modal_app, "HOST", "127.0.0.1")
    monkeypatch.setattr(modal_app, "PORT", 0)
    monkeypatch.setattr(modal_app, "_POOL", None)
    monkeypatch.setenv("JMOSHI_NB_TOKEN", TOKEN)
    yield


def _get(url: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


async def _talk(url: str, token: str | None, frames: int = 4) -> list[dict[str, Any]]:
    async with connect(url, token=token) as s:
        pcm = np.random.default_rng(1).normal(0, 0.1, FRAME_SIZE * frames).astype(np.float32)
        await s.send_frame(pcm)
        await s.drain(timeout=60)
        return s.recording.metrics


def test_server_class_lifecycle_loads_once_and_serves_the_kit_protocol(local_container: None) -> None:
    server_cls = modal_app.JMoshiServer._get_user_cls()
    container = server_cls()
    container.load()  # @modal.enter(snap=True): weights into CPU memory
    assert container.loaded is not None and container.loaded.resolved.name == "tiny"
    container.warm_up()  # @modal.enter(snap=False): onto the device, warmed up
    assert container.loaded is None and container.engine.frame_index == 0
    container.serve()  # @modal.web_server: the kit's ChatServer
    try:
        base = container.server.url
        status, health = _get(base + "/api/health")
        assert status == 200 and health["model"] == "tiny" and health["status"] == "ok"
        status, info = _get(base + "/api/modal", TOKEN)
        assert status == 200 and info["app"] == modal_app.APP_NAME and info["model"] == "tiny"
        assert _get(base + "/api/modal")[0] == 401
        metrics = asyncio.run(_talk(base.replace("http", "ws"), TOKEN))
        assert [m["frame"] for m in metrics] == [0, 1, 2, 3]
        for bad in (None, "wrong-token-wrong-token"):
            with pytest.raises(ServerError, match="401"):
                asyncio.run(_talk(base, bad))
    finally:
        container.shutdown()  # @modal.exit


def test_sweep_worker_lifecycle_runs_a_job(local_container: None) -> None:
    worker = modal_app.SweepWorker._get_user_cls()()
    worker.load()
    worker.warm_up()
    pool = modal_app.sweep_pool()
    assert ("tiny", None) in pool and worker.loaded is None
    cfg = SessionConfig(model="tiny", seed=5)
    pcm = np.random.default_rng(2).normal(0, 0.1, FRAME_SIZE * 3).astype(np.float32)
    first = Recording.from_dict(worker.run(cfg.model_dump(mode="json"), encode_audio(pcm), "job"))
    again = Recording.from_dict(worker.run(cfg.model_dump(mode="json"), encode_audio(pcm), "job"))
    assert pool.loads == 0  # the engine loaded at container start served both calls
    assert len(first.metrics) == 3 and first.meta["executor"] == "modal" and first.meta["job"] == "job"
    assert first.frame_tokens() == again.frame_tokens()


def test_fetch_weights_reports_the_checkpoint_files(tiny_path) -> None:  # type: ignore[no-untyped-def]
    result = modal_app.fetch_weights("tiny")
    assert result["model"] == "tiny"
    assert set(result["files"]) == {"model.safetensors", "mimi.safetensors", "tokenizer_ja.model"}
    assert all(size > 0 for size in result["files"].values())


def test_hub_refusals_become_one_clear_message() -> None:
    from huggingface_hub.errors import GatedRepoError

    class Response:
        status_code = 401
        request = None
        headers: dict[str, str] = {}
        url = "https://huggingface.co/nu-dialogue/j-moshi-ext"

    err = modal_app._hf_access_error(GatedRepoError("gated", response=Response()), "j-moshi-ext")  # type: ignore[arg-type]
    assert err is not None and str(err).startswith("HF_ACCESS:")
    assert "modal secret create huggingface HF_TOKEN" in str(err)
    assert modal_app._hf_access_error(ValueError("other"), "j-moshi-ext") is None


def test_gpu_containers_read_weights_offline_and_say_how_to_fill_the_volume(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub.errors import LocalEntryNotFoundError

    import jmoshi_nb.model.checkpoints

    def resolve(model: str, revision: str | None = None) -> Any:
        raise LocalEntryNotFoundError("outgoing traffic has been disabled")

    monkeypatch.setattr(jmoshi_nb.model.checkpoints, "resolve", resolve)
    with pytest.raises(RuntimeError, match="not in the Volume.*jmoshi-nb modal download-weights --model j-moshi-ext"):
        modal_app.load_to_cpu("j-moshi-ext")


def test_concurrency_follows_the_session_count(recorded: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JMOSHI_MODAL_MAX_SESSIONS", "3")
    m = importlib.reload(modal_app)
    assert recorded["concurrent"] == [{"max_inputs": 6, "target_inputs": 3}]
    assert m.SETTINGS_ENV["JMOSHI_MODAL_MAX_SESSIONS"] == "3"


def test_server_class_with_several_sessions_serves_them_at_once(
    local_container: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(modal_app, "MAX_SESSIONS", 2)
    container = modal_app.JMoshiServer._get_user_cls()()
    container.load()
    container.warm_up()
    assert container.engine.slots == 2
    container.serve()
    try:
        base = container.server.url
        status, health = _get(base + "/api/health")
        assert status == 200 and health["max_sessions"] == 2 and health["sessions"] == 0

        async def both() -> list[list[dict[str, Any]]]:
            return await asyncio.gather(_talk(base, TOKEN), _talk(base, TOKEN))

        for metrics in asyncio.run(both()):
            assert [m["frame"] for m in metrics] == [0, 1, 2, 3]
    finally:
        container.shutdown()


def test_sweep_worker_with_several_server_sessions_runs_single_and_batched_jobs(
    local_container: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JMOSHI_MODAL_MAX_SESSIONS > 1 sizes the server's engine; the sweep worker still runs a plain job on
    the engine it warmed up, and a batch on a batched engine of the batch's size."""
    monkeypatch.setattr(modal_app, "MAX_SESSIONS", 2)
    worker = modal_app.SweepWorker._get_user_cls()()
    worker.load()
    worker.warm_up()
    pool = modal_app.sweep_pool()
    assert ("tiny", None) in pool  # a single-conversation engine, under its own key
    cfg = SessionConfig(model="tiny", seed=5)
    pcm = np.random.default_rng(2).normal(0, 0.1, FRAME_SIZE * 3).astype(np.float32)
    first = Recording.from_dict(worker.run(cfg.model_dump(mode="json"), encode_audio(pcm), "job"))
    again = Recording.from_dict(worker.run(cfg.model_dump(mode="json"), encode_audio(pcm), "job"))
    assert pool.loads == 0  # the engine loaded at container start served both jobs
    assert len(first.metrics) == 3 and first.meta["seed"] == 5 and "slot" not in first.meta
    assert first.frame_tokens() == again.frame_tokens()
    batch = worker.run([cfg.model_dump(mode="json")] * 2, [encode_audio(pcm)] * 2, ["a", "b"])
    recs = [Recording.from_dict(r) for r in batch]
    assert [r.meta["job"] for r in recs] == ["a", "b"] and [r.meta["slot"] for r in recs] == [0, 1]
    assert ("tiny", None, 2) in pool and pool.loads == 1
    assert recs[0].frame_tokens() == recs[1].frame_tokens()  # same job in two slots: same tokens
