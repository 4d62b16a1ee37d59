"""The Modal app imports under every setting the ``jmoshi-nb modal`` CLI can deploy it with.

Each setting is imported fresh in its own process, through ``load_app_module`` (what ``deploy`` and
``download-weights`` call), so a combination that Modal rejects at declaration time fails here, offline.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("modal")

from jmoshi_nb.cli import build_parser  # noqa: E402
from jmoshi_nb.cloud import cli as cli_modal  # noqa: E402
from jmoshi_nb.cloud.talk_deploy import talk_deploy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# The deploy flags that change JMOSHI_MODAL_* settings, each on or off, and whether the Hub secret exists.
DEPLOY_FLAGS = (["--no-snapshot"], ["--torch-compile"], ["--gpu", "L40S", "--max-containers", "2"])

PROBE = """
import json, sys
from modal._partial_function import _find_partial_methods_for_user_cls, _PartialFunctionFlags as F
from jmoshi_nb.remote.modal_client import load_app_module

m = load_app_module(json.loads(sys.argv[1]))
out = {"settings": m.SETTINGS_ENV, "classes": {}, "server_volumes": sorted(
    m.JMoshiServer._get_class_service_function().info().volumes)}
for name in ("JMoshiServer", "SweepWorker"):
    user_cls = getattr(m, name)._get_user_cls()
    info = getattr(m, name)._get_class_service_function().info()
    out["classes"][name] = {
        "pre_snapshot": list(_find_partial_methods_for_user_cls(user_cls, F.ENTER_PRE_SNAPSHOT)),
        "post_snapshot": list(_find_partial_methods_for_user_cls(user_cls, F.ENTER_POST_SNAPSHOT)),
        "gpus": info.gpus,
        "cpu": info.cpu,
        "reserved": m.GPU_CPU_CORES,
    }
print(json.dumps(out))
"""


class _Api:
    def __init__(self, hf_secret: bool) -> None:
        self.hf_secret = hf_secret

    def secret_exists(self, name: str) -> bool:
        return self.hf_secret


def cli_settings() -> list[tuple[str, dict[str, str]]]:
    """Every distinct settings dict ``deploy`` / ``download-weights`` produce (flags on/off x Hub secret)."""
    parser = build_parser()
    found: dict[str, tuple[str, dict[str, str]]] = {}
    commands = [["modal", "download-weights"]]
    for on in itertools.product((False, True), repeat=len(DEPLOY_FLAGS)):
        flags = [flag for flag, o in zip(DEPLOY_FLAGS, on, strict=True) if o]
        commands.append(["modal", "deploy", *itertools.chain.from_iterable(flags)])
    # The talk page's flags: the settings travel in the app's environment, the talk Volume is mounted.
    configs = [str(ROOT / "configs" / "calm.yaml"), str(ROOT / "configs" / "lively.yaml")]
    commands.append(["modal", "deploy", "--configs", *configs, "--record", "pilot", "--rate", "--max-sessions", "2"])
    for argv, hf in itertools.product(commands, (True, False)):
        args = parser.parse_args(argv)
        talk = None
        if argv[1] == "deploy":
            talk = talk_deploy(args.model, args.config, args.configs, args.assign, args.record, args.rate,
                               args.show_controls, args.max_containers)  # fmt: skip
        settings = cli_modal._settings(args, _Api(hf), talk)
        label = " ".join(argv[1:]) + ("" if hf else " (no Hub secret)")
        found.setdefault(json.dumps(settings, sort_keys=True), (label, settings))
    return list(found.values())


SETTINGS = cli_settings()


def test_the_cli_settings_cover_snapshot_and_compile_both_ways() -> None:
    assert {s.get("JMOSHI_MODAL_SNAPSHOT", "1") for _, s in SETTINGS} == {"0", "1"}
    assert {s.get("JMOSHI_MODAL_TORCH_COMPILE", "0") for _, s in SETTINGS} == {"0", "1"}
    assert {s.get("JMOSHI_MODAL_HF_SECRET", "huggingface") for _, s in SETTINGS} == {"", "huggingface"}
    assert any('"record": "pilot"' in s.get("JMOSHI_MODAL_TALK", "") for _, s in SETTINGS)


@pytest.mark.parametrize("label,settings", SETTINGS, ids=[label for label, _ in SETTINGS])
def test_app_module_imports_fresh_under_every_cli_setting(label: str, settings: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODAL_", "JMOSHI_MODAL_"))}
    env["HOME"] = str(tmp_path)  # no Modal account
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(settings)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"{label}: {proc.stderr[-2000:]}"
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    for key, value in settings.items():
        assert out["settings"][key] == value  # the containers get the same settings
    recording = '"record": "pilot"' in settings.get("JMOSHI_MODAL_TALK", "")
    assert out["server_volumes"] == (["/cache", "/talk"] if recording else ["/cache"])
    snapshot = settings.get("JMOSHI_MODAL_SNAPSHOT", "1") == "1"
    for cls in out["classes"].values():
        assert cls["gpus"] == [[settings["JMOSHI_MODAL_GPU"], 1]]
        assert cls["cpu"] == cls["reserved"]  # CPU for Opus, Mimi's host work and the WebSocket
        # load (weights into CPU memory) runs before warm_up (onto the GPU) in either mode: before the
        # snapshot with one, in declaration order after start without one.
        if snapshot:
            assert (cls["pre_snapshot"], cls["post_snapshot"]) == (["load"], ["warm_up"])
        else:
            assert (cls["pre_snapshot"], cls["post_snapshot"]) == ([], ["load", "warm_up"])


def test_app_environment_is_the_one_place_the_variables_are_written() -> None:
    from jmoshi_nb.remote.settings import app_environment

    settings = {"app": "a", "gpu": "L4", "model": "tiny", "revision": "", "snapshot": False, "torch_compile": True}
    env = app_environment(**settings, hf_secret="")
    assert env == {
        "JMOSHI_MODAL_APP": "a", "JMOSHI_MODAL_GPU": "L4", "JMOSHI_MODAL_MODEL": "tiny", "JMOSHI_MODAL_REVISION": "",
        "JMOSHI_MODAL_HF_SECRET": "", "JMOSHI_MODAL_SNAPSHOT": "0", "JMOSHI_MODAL_TORCH_COMPILE": "1",
    }  # fmt: skip
    assert app_environment(app="a", max_containers=None) == {"JMOSHI_MODAL_APP": "a"}  # None: the app's default
    with pytest.raises(ValueError, match="unknown Modal app settings.*'gpus'"):
        app_environment(gpus="A10G")
