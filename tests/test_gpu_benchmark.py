"""The GPU frame-loop benchmark's CPU path: tiny checkpoint, a few frames, same code as on CUDA."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from scripts import load_benchmark


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark("gpu_frame_loop")


def test_cpu_tiny_path_measures_both_loops_and_passes_the_params_check(
    bench: ModuleType, tiny_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "result.json"
    argv = ["--device", "cpu", "--tiny", "--frames", "4", "--warmup", "1", "--switch-at", "3", "--after-switch", "3"]
    assert bench.main([*argv, "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "(a) bare moshi loop" in text and "(b) jmoshi_nb Engine" in text
    assert "switch to greedy at frame 3): PASS" in text
    result = json.loads(out.read_text())
    for loop in ("bare", "engine"):
        st = result[loop]
        assert st["frames"] == 4 and 0 < st["p50"] <= st["p99"] <= st["max"]
    params = result["params"]
    assert params["pass"] is True and all(params["checks"].values())
    assert params["cuda_graphs"] is False and params["control_as_expected"] is True
    assert result["model"] == "tiny checkpoint" and result["cuda_graphs"] is False


def test_the_params_check_can_fail(bench: ModuleType, engine) -> None:  # type: ignore[no-untyped-def]
    """If a change of parameters did not take effect, the check says so."""
    sampling, seed = engine.sampling, engine.seed
    real_set_params = engine.set_params
    try:
        engine.set_params = lambda seed=None, **changes: real_set_params(seed=seed)  # drops the new sampling
        frames = bench.input_frames(6, seed=1)
        result = bench.params_check(engine, frames, switch_at=3)
    finally:
        del engine.set_params
        engine.reset(sampling, seed)
    assert result["checks"]["greedy_after_switch_independent_of_seed"] is False
    assert result["pass"] is False


def test_random_7b_setup_is_described_without_building_it(bench: ModuleType) -> None:
    args = bench.parse_args([])
    assert args.device == "cuda" and not args.tiny and args.dtype == "bfloat16"
    assert bench.NumberedPieces().id_to_piece(7) == "\u2581t7"
    frames = bench.input_frames(3)
    assert len(frames) == 3 and all(f.shape == (bench.FRAME_SIZE,) for f in frames)


def test_engine_path_runs_with_the_stand_in_tokenizer_of_the_random_weight_model(
    bench: ModuleType, tiny_path: Path
) -> None:
    """The random-7B path's engine, on CPU: the tiny LM with the stand-in tokenizer the 7B path gets.

    The stand-in must give the engine every text token's display text, as a SentencePiece would."""
    import dataclasses

    from jmoshi_nb.core.text import PAD_TOKENS

    setup = bench.build("cpu", tiny=True, dtype_name="float32")
    setup = dataclasses.replace(setup, tokenizer=bench.NumberedPieces())
    engine = bench.make_engine(setup)
    results = [engine.step(frame) for frame in bench.input_frames(12, seed=3)]
    texts = [(r.text_token, r.text) for r in results if r.text_token is not None and r.text_token not in PAD_TOKENS]
    assert texts, "the tiny LM produced no text token: the check would not reach the tokenizer"
    for token, text in texts:
        assert text == f"t{token}" or text == f" t{token}"
    wall, own = bench.engine_loop(engine, bench.input_frames(3))
    assert len(wall) == len(own) == 3
