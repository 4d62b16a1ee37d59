"""Tested is what runs: the tests, scripts/setup.sh and the Modal image install the same torch and moshi,
and the image's GPU containers reserve CPU for the work around each step."""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jmoshi_nb.core import pins

ROOT = Path(__file__).resolve().parents[1]


def test_the_tests_run_the_pinned_torch_and_moshi() -> None:
    assert md.version("torch").split("+")[0] == pins.TORCH_VERSION  # "+cpu"/"+cu128": the build, same release
    assert md.version("moshi") == pins.MOSHI_VERSION


def test_setup_script_and_conda_environment_install_the_pins() -> None:
    script = str(ROOT / "jmoshi_nb" / "core" / "pins.py")
    for name in ("torch", "moshi"):
        out = subprocess.run([sys.executable, script, name], capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout.strip() == pins.SPECS[name]
        setup = (ROOT / "scripts" / "setup.sh").read_text()
        assert f'$("$PYTHON" jmoshi_nb/core/pins.py {name})' in setup  # the default spec, when no override is set
    assert f"torch=={pins.TORCH_VERSION}" in (ROOT / "environment.yml").read_text()
    bad = subprocess.run([sys.executable, script, "numpy"], capture_output=True, text=True)
    assert bad.returncode != 0 and "usage" in bad.stderr


def test_torch_compile_setting_is_read_from_the_deploy_environment() -> None:
    assert pins.torch_compile_enabled({}) is False
    assert pins.torch_compile_enabled({pins.TORCH_COMPILE_ENV: "1"}) is True
    assert pins.torch_compile_enabled({pins.TORCH_COMPILE_ENV: "0"}) is False


@pytest.fixture()
def image_installs(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Re-run the Modal app module recording what its image installs with uv."""
    modal = pytest.importorskip("modal")
    from jmoshi_nb.cloud import app as modal_app

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    real = modal.Image.uv_pip_install

    def uv_pip_install(self: Any, *packages: Any, **kwargs: Any) -> Any:
        calls.append((packages, kwargs))
        return real(self, *packages, **kwargs)

    monkeypatch.setattr(modal.Image, "uv_pip_install", uv_pip_install)
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("JMOSHI_MODAL_")}
    try:
        yield importlib.reload(modal_app), calls
    finally:
        monkeypatch.undo()
        os.environ.update(saved)
        importlib.reload(modal_app)


def test_modal_image_installs_the_pinned_torch_and_moshi(image_installs: Any) -> None:
    modal_app, calls = image_installs
    installed = [p for packages, _ in calls for p in packages]
    assert pins.SPECS["torch"] in installed and pins.SPECS["moshi"] in installed
    torch_call = next(kw for packages, kw in calls if pins.SPECS["torch"] in packages)
    assert torch_call["index_url"] == pins.TORCH_INDEX_URL  # the CUDA build of the same release
    assert not any(p.startswith(("torch==", "moshi==")) and p not in pins.SPECS.values() for p in installed)


def test_gpu_containers_reserve_cpu_for_opus_mimi_host_work_and_the_websocket() -> None:
    modal_app = pytest.importorskip("jmoshi_nb.cloud.app")
    assert modal_app.GPU_CPU_CORES >= 2.0  # one core drives the GPU, one serves the streams
    for cls in (modal_app.JMoshiServer, modal_app.SweepWorker):
        info = cls._get_class_service_function().info()
        assert info.gpus and info.cpu == modal_app.GPU_CPU_CORES
