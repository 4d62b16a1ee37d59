"""Validated, versioned, shareable settings.

``Sampling`` is what the engine applies per frame (and what sliders and control messages change).
``SessionConfig`` is what a researcher saves and shares: model id + revision, sampling, seed, input
options and the package versions it was made with. YAML or JSON, chosen by file suffix.
"""

from __future__ import annotations

import functools
import json
import secrets
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .models import MODELS, looks_hub, looks_local, unknown_model_message

SCHEMA_VERSION = 1

MAX_TEMP = 5.0
SEED_MAX = 2**63 - 1  # seeds are 63-bit: what torch's generators take from Python ints


class ConfigError(ValueError):
    """A config file or value is invalid; the message names the field and the allowed range."""


class Sampling(BaseModel):
    """Sampling parameters of one frame. ``temp == 0`` means greedy (argmax)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temp: float = Field(0.8, ge=0.0, le=MAX_TEMP, description="audio temperature")
    temp_text: float = Field(0.7, ge=0.0, le=MAX_TEMP, description="text temperature")
    top_k: int = Field(250, ge=1, description="audio top-k (<= audio codebook size)")
    top_k_text: int = Field(25, ge=1, description="text top-k (<= text vocabulary)")

    def check_cards(self, card: int, text_card: int) -> None:
        """Raise ConfigError if a top-k exceeds the model's vocabularies."""
        if self.top_k > card:
            raise ConfigError(f"top_k={self.top_k} is above the audio codebook size: allowed 1..{card}")
        if self.top_k_text > text_card:
            raise ConfigError(f"top_k_text={self.top_k_text} is above the text vocabulary: allowed 1..{text_card}")

    def updated(self, **changes: Any) -> Sampling:
        """A copy with ``changes`` applied and validated (unknown names are refused)."""
        return parse_sampling({**self.model_dump(), **changes})


def parse_sampling(data: dict[str, Any]) -> Sampling:
    return _validated(Sampling, data)


def _bounds(name: str) -> tuple[Any, Any]:
    """The (lower, upper) bounds declared on a field of Sampling or SessionConfig."""
    for model in (Sampling, SessionConfig):
        field = model.model_fields.get(name)
        if field is not None:
            lo = next((m.ge for m in field.metadata if hasattr(m, "ge")), None)
            hi = next((m.le for m in field.metadata if hasattr(m, "le")), None)
            return lo, hi
    return None, None


_Model = TypeVar("_Model", bound=BaseModel)


def _validated(model: type[_Model], data: dict[str, Any]) -> _Model:
    """``data`` validated as a ``model``; a ConfigError naming each bad field (``_explain``) otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        ctx = err.get("ctx") or {}
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key {loc!r}")
        elif "ge" in ctx or "le" in ctx:
            lo, hi = _bounds(str(err["loc"][-1]))
            rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            parts.append(f"{loc}={err.get('input')!r} is out of range: allowed {rng}")
        elif err["type"] == "value_error":
            msg = str(err["msg"]).removeprefix("Value error, ")
            parts.append(msg if loc == "config" else f"{loc}: {msg}")
        else:
            parts.append(f"{loc}: {err['msg']} (got {err.get('input')!r})")
    return "; ".join(parts)


def check_seed(seed: Any) -> int | None:
    """``seed`` if it is None or an integer in ``0..SEED_MAX``; a ConfigError naming it otherwise."""
    if seed is None:
        return None
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= SEED_MAX:
        raise ConfigError(f"seed={seed!r} is out of range: allowed integers 0..2**63-1")
    return seed


def draw_seed() -> int:
    """A fresh random seed in ``0..SEED_MAX`` (63 bits: what torch's generators take)."""
    return secrets.randbits(63)


def resolve_seed(seed: int | None) -> int:
    """The seed a run uses: ``seed``, or a fresh draw when it is None.

    The kit's one seed policy: ``seed=None`` draws a seed, the run uses it and the recording keeps it
    (``meta["seed"]``, the params events), so every run can be repeated. Every path that starts a
    conversation (``run_wav``, the server, sweeps, continuation, the benchmark) resolves its seed here.
    """
    return seed if seed is not None else draw_seed()


def describe_params(params: dict[str, Any], seed: int | None = None, previous: dict[str, Any] | None = None) -> str:
    """``"temp=0.3 seed=7"``: sampling parameters (and seed) as ``key=value``, floats short.

    With ``previous`` (the same keys, ``seed`` included) only what differs from it: "" if nothing.
    """
    values = {**params, **({"seed": seed} if seed is not None else {})}
    changed = {k: v for k, v in values.items() if previous is None or previous.get(k) != v}
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in changed.items())


def package_versions() -> dict[str, str]:
    """The versions of the packages a recording names (read from the installed metadata once per process)."""
    return dict(_package_versions())


@functools.cache
def _package_versions() -> tuple[tuple[str, str], ...]:
    out = []
    for name in ("jmoshi-nb", "moshi", "torch", "sphn", "numpy", "sentencepiece"):
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(out)


class InputOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Literal["mic", "wav"] = "mic"
    wav: str | None = None
    realtime: bool = True
    echo_cancellation: bool = False
    noise_suppression: bool = False
    auto_gain_control: bool = False


class SessionConfig(BaseModel):
    """A shareable configuration. ``seed=None`` means not reproducible (a random seed is drawn)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    name: str = ""
    model: str = "tiny"
    revision: str | None = None
    sampling: Sampling = Field(default_factory=Sampling)
    seed: int | None = Field(42, ge=0, le=SEED_MAX)
    input: InputOptions = Field(default_factory=InputOptions)
    versions: dict[str, str] = Field(default_factory=package_versions)
    notes: str = ""

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v > SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {v} is newer than this jmoshi-nb understands ({SCHEMA_VERSION}); upgrade jmoshi-nb"
            )
        if v < 1:
            raise ValueError(
                f"schema_version {v} predates jmoshi-nb's first config format (1) and cannot be read; "
                "re-save the settings with this version (SessionConfig(...).save)"
            )
        return v

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        if v in MODELS or looks_local(v) or looks_hub(v):
            return v
        raise ValueError(unknown_model_message(v))

    @model_validator(mode="after")
    def _cards(self) -> SessionConfig:
        spec = MODELS.get(self.model)
        if spec is not None:
            try:
                self.sampling.check_cards(spec.card, spec.text_card)
            except ConfigError as exc:
                raise ValueError(f"sampling: {exc} for model {self.model!r}") from None
        return self

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        data = self.model_dump(mode="json")
        if path.suffix.lower() in (".yaml", ".yml"):
            path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        elif path.suffix.lower() == ".json":
            path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
        else:
            raise ConfigError(f"{path}: unknown config format {path.suffix!r}; use .yaml, .yml or .json")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionConfig:
        return _validated(cls, data)


def load_config(path: str | Path) -> SessionConfig:
    """Load a YAML or JSON config, validating every field."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys to values, got {type(data).__name__}")
    try:
        return SessionConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
