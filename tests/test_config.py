"""Shareable configs: save/load in YAML and JSON, presets, and every kind of bad file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import jmoshi_nb
from jmoshi_nb.core.config import SCHEMA_VERSION, ConfigError, Sampling, SessionConfig, load_config

PRESETS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    cfg = SessionConfig(
        name="穏やか",
        model="j-moshi-ext",
        revision="abc123",
        seed=9,
        sampling=Sampling(temp=0.55, top_k=80, temp_text=0.4, top_k_text=12),
        notes="メモ",
    )
    path = cfg.save(tmp_path / f"calm{suffix}")
    back = jmoshi_nb.load_config(path)
    assert back == cfg
    assert back.versions["moshi"] and back.versions["torch"]  # package versions it was made with
    assert "穏やか" in path.read_text(encoding="utf-8")  # Japanese stays readable in the file


def test_presets_load() -> None:
    assert {p.stem for p in PRESETS} >= {"default", "calm", "lively"}
    for p in PRESETS:
        cfg = load_config(p)
        assert cfg.model == "j-moshi-ext" and cfg.schema_version == SCHEMA_VERSION


def write(tmp_path: Path, data: object, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True) if isinstance(data, dict) else str(data))
    return path


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sampling": {"temp": 7}}, "sampling.temp=7 is out of range: allowed 0.0..5.0"),
        ({"sampling": {"temp_text": -1}}, "sampling.temp_text=-1 is out of range: allowed 0.0..5.0"),
        ({"sampling": {"top_k": 0}}, "sampling.top_k=0 is out of range: allowed >= 1"),
        (
            {"model": "j-moshi-ext", "sampling": {"top_k": 4096}},
            "top_k=4096 is above the audio codebook size: allowed 1..2048 for model 'j-moshi-ext'",
        ),
        (
            {"model": "tiny", "sampling": {"top_k_text": 300}},
            "top_k_text=300 is above the text vocabulary: allowed 1..256 for model 'tiny'",
        ),
        ({"temperature": 0.8}, "unknown key 'temperature'"),
        ({"sampling": {"tempp": 0.8}}, "unknown key 'sampling.tempp'"),
        ({"model": "j-moshi-xl"}, "unknown model 'j-moshi-xl'"),
        ({"sampling": {"temp": "hot"}}, "sampling.temp: Input should be a valid number"),
        ({"seed": -1}, "seed=-1 is out of range"),
        ({"schema_version": 99}, "schema_version 99 is newer than this jmoshi-nb understands"),
        ({"schema_version": 0}, "schema_version 0 predates jmoshi-nb's first config format (1)"),
    ],
)
def test_bad_values_name_the_field(tmp_path: Path, data: dict, message: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid yaml"):
        load_config(write(tmp_path, "sampling: [unclosed"))
    with pytest.raises(ConfigError, match="not valid json"):
        load_config(write(tmp_path, "{nope", name="c.json"))
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="unknown config format '.txt'"):
        SessionConfig().save(tmp_path / "c.txt")


def test_config_from_json_written_by_hand(tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"model": "nu-dialogue/j-moshi", "sampling": {"temp": 0.7}}))
    cfg = load_config(path)
    assert cfg.model == "nu-dialogue/j-moshi" and cfg.sampling.temp == 0.7 and cfg.sampling.top_k == 250


def test_seed_check_and_params_text_have_one_home() -> None:
    from jmoshi_nb.core.config import SEED_MAX, check_seed, describe_params

    assert check_seed(None) is None and check_seed(0) == 0 and check_seed(SEED_MAX) == SEED_MAX
    for bad in (-1, SEED_MAX + 1, 1.5, True, "3"):
        with pytest.raises(ConfigError, match="seed=.* is out of range"):
            check_seed(bad)
    assert describe_params({"temp": 0.30000, "top_k": 250}, 7) == "temp=0.3 top_k=250 seed=7"
    assert describe_params({"temp": 0.3, "top_k": 250}, 7, {"temp": 0.8, "top_k": 250, "seed": 7}) == "temp=0.3"
    assert describe_params({"temp": 0.3}, None, {"temp": 0.3}) == ""
