"""The one model registry: config validation and checkpoint resolution read the same list and rule."""

from __future__ import annotations

import pytest

from jmoshi_nb.core.config import ConfigError, Sampling, SessionConfig
from jmoshi_nb.core.models import GPU_DEFAULT, MODELS, TINY, looks_hub, looks_local
from jmoshi_nb.model.checkpoints import ModelNotFoundError, resolve


def test_every_known_model_validates_and_the_gpu_default_is_known() -> None:
    assert GPU_DEFAULT in MODELS and TINY in MODELS
    for name, spec in MODELS.items():
        assert SessionConfig(model=name).model == name
        with pytest.raises(ConfigError, match="top_k"):  # the registry's vocabulary sizes bound top_k
            SessionConfig.from_dict({"model": name, "sampling": Sampling(top_k=spec.card + 1).model_dump()})


@pytest.mark.parametrize(
    ("name", "local", "hub"),
    [("./ckpt", True, False), ("/abs/ckpt", True, False), ("~/ckpt", True, False), ("owner/repo", False, True),
     ("owner/", False, False), ("a/b/c", False, False), ("plain", False, False)],  # fmt: skip
)
def test_local_folder_or_hub_repo_is_one_rule(name: str, local: bool, hub: bool) -> None:
    assert (looks_local(name), looks_hub(name)) == (local, hub)
    if not (local or hub):
        with pytest.raises(ConfigError, match="unknown model"):
            SessionConfig.from_dict({"model": name})
        with pytest.raises(ModelNotFoundError, match="unknown model"):
            resolve(name)
