"""The engine: frames in, tokens/audio out; determinism, parity with a plain moshi loop, live params."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jmoshi_nb.core.audio import frames
from jmoshi_nb.core.config import ConfigError, Sampling
from jmoshi_nb.model.engine import FRAME_SIZE, Engine, seed_everything
from jmoshi_nb.model.moshi_api import LMGen

N_FRAMES = 24


def run(engine: Engine, pcm: np.ndarray, n: int = N_FRAMES, seed: int = 42, changes: dict | None = None):
    """Tokens per frame; ``changes`` = {frame: dict of set_params kwargs} applied before that frame."""
    engine.reset(sampling=Sampling(), seed=seed)
    out = []
    for i, frame in enumerate(frames(pcm[: n * FRAME_SIZE])):
        if changes and i in changes:
            engine.set_params(**changes[i])
        out.append(engine.step(frame))
    return out


def tokens_of(results) -> list[list[int] | None]:  # type: ignore[no-untyped-def]
    return [None if r.tokens is None else r.tokens.tolist() for r in results]


def test_frame_contract(engine: Engine, speech_pcm: np.ndarray) -> None:
    results = run(engine, speech_pcm, n=6)
    assert results[0].pcm is None and results[0].tokens is None  # the LM's initial delay
    for r in results[1:]:
        assert r.pcm is not None and r.pcm.shape == (FRAME_SIZE,) and r.pcm.dtype == np.float32
        assert np.isfinite(r.pcm).all()
        assert r.tokens is not None and r.tokens.shape == (9,)  # text + 8 audio codebooks
        assert 0 <= r.text_token < engine.text_card
        assert (r.tokens[1:] < engine.card).all()
        assert r.encode_ms > 0 and r.lm_ms > 0 and r.decode_ms > 0
        assert r.total_ms >= r.encode_ms + r.lm_ms
    assert [r.index for r in results] == list(range(6))


def test_wrong_frame_size_is_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="1920 samples"):
        engine.step(np.zeros(1000, np.float32))


def test_same_seed_same_input_same_tokens(engine: Engine, speech_pcm: np.ndarray) -> None:
    a = tokens_of(run(engine, speech_pcm, seed=1))
    b = tokens_of(run(engine, speech_pcm, seed=1))
    c = tokens_of(run(engine, speech_pcm, seed=2))
    assert a == b
    assert a != c


def test_the_model_hears_its_input_causally(engine: Engine, speech_pcm: np.ndarray) -> None:
    """Same seed, inputs equal up to frame 8 and silent after it: the tokens are equal up to there
    (nothing depends on audio not heard yet) and differ after it (the model hears what it is sent)."""
    cut = 8
    silenced = speech_pcm.copy()
    silenced[cut * FRAME_SIZE :] = 0.0
    assert np.abs(speech_pcm[cut * FRAME_SIZE : N_FRAMES * FRAME_SIZE]).max() > 0.05  # speech after the cut
    a = tokens_of(run(engine, speech_pcm, seed=1))
    b = tokens_of(run(engine, silenced, seed=1))
    assert a[:cut] == b[:cut]
    assert a[cut:] != b[cut:]


def test_the_depformer_graph_is_reachable_where_the_engine_recaptures_it(engine: Engine) -> None:
    """The engine's one private reach into moshi (``recapture_depformer_graph``): if moshi renames or
    reshapes ``LMGen._streaming_state.graphed_depth`` or ``CUDAGraphed.reset``, this fails."""
    import inspect

    from moshi.utils.compile import CUDAGraphed

    from jmoshi_nb.model.engine import recapture_depformer_graph

    graph = engine.lm_gen._streaming_state.graphed_depth
    assert isinstance(graph, CUDAGraphed)
    assert "warmup_steps" in inspect.signature(CUDAGraphed.reset).parameters
    graph._graph = object()  # as if captured (CPU never captures)
    assert recapture_depformer_graph(engine.lm_gen) is True
    assert graph._graph is None and graph.warmup_steps == 0


def test_pad_tokens_come_from_the_lm(engine: Engine) -> None:
    lm = engine.lm_gen.lm_model
    assert engine.pad_tokens == (lm.end_of_text_padding_id, lm.text_padding_token_id)
    assert engine.describe()["pad_tokens"] == list(engine.pad_tokens)


def bare_moshi_loop(engine: Engine, pcm: np.ndarray, seed: int, sampling: Sampling) -> list:
    """moshi.server's loop written out plainly, on fresh models from the same checkpoint."""
    info = engine.model.info
    mimi = info.get_mimi(device="cpu")
    lm = info.get_moshi(device="cpu", dtype=torch.float32)
    lm_gen = LMGen(lm, **sampling.model_dump())
    mimi.streaming_forever(1)
    lm_gen.streaming_forever(1)
    seed_everything(seed)
    out: list = []
    skip_frames = 1
    with torch.no_grad():
        for frame in frames(pcm):
            codes = mimi.encode(torch.from_numpy(frame)[None, None])
            if skip_frames:
                mimi.reset_streaming()
                skip_frames -= 1
            for c in range(codes.shape[-1]):
                tokens = lm_gen.step(codes[:, :, c : c + 1])
                if tokens is None:
                    out.append((None, None))
                    continue
                main_pcm = mimi.decode(tokens[:, 1:])
                out.append((tokens[0, :, 0].tolist(), main_pcm[0, 0].numpy()))
    return out


def test_parity_with_plain_moshi_loop(engine: Engine, speech_pcm: np.ndarray) -> None:
    pcm = speech_pcm[: N_FRAMES * FRAME_SIZE]
    sampling = Sampling(temp=0.9, top_k=100, temp_text=0.8, top_k_text=40)
    ref = bare_moshi_loop(engine, pcm, seed=123, sampling=sampling)
    engine.reset(sampling=sampling, seed=123)
    ours = [engine.step(f) for f in frames(pcm)]
    assert [t for t, _ in ref] == tokens_of(ours)
    for (_, ref_pcm), r in zip(ref, ours, strict=True):
        if ref_pcm is None:
            assert r.pcm is None
        else:
            np.testing.assert_array_equal(ref_pcm, r.pcm)


def test_params_take_effect_at_the_next_frame(engine: Engine, speech_pcm: np.ndarray) -> None:
    greedy = {"temp": 0.0, "temp_text": 0.0}
    results = run(engine, speech_pcm, changes={10: greedy})
    for r in results[:10]:
        assert r.sampling.temp == 0.8 and not r.params_changed
    assert results[10].params_changed
    for r in results[10:]:
        assert r.sampling.temp == 0.0 and r.sampling.temp_text == 0.0


def test_greedy_after_the_change_really_samples_argmax(engine: Engine, speech_pcm: np.ndarray) -> None:
    """Capture the logits moshi samples from: after the change every token is their argmax."""
    seen: list[tuple[str, torch.Tensor]] = []
    lm = engine.lm_gen.lm_model
    original = lm.forward_depformer

    def spy(cb_index, sequence, transformer_out):  # type: ignore[no-untyped-def]
        logits = original(cb_index, sequence, transformer_out)
        seen.append(("audio", logits[0, 0, 0].argmax().item()))
        return logits

    engine.lm_gen.on_text_logits_hook = lambda logits: seen.append(("text", logits[0, 0, 0].argmax().item()))
    lm.forward_depformer = spy  # type: ignore[method-assign]
    try:
        per_frame = []
        engine.reset(sampling=Sampling(temp=1.5, temp_text=1.5, top_k=200, top_k_text=200), seed=3)
        for i, frame in enumerate(frames(speech_pcm[: 20 * FRAME_SIZE])):
            if i == 10:
                engine.set_params(temp=0.0, temp_text=0.0)
            seen.clear()
            r = engine.step(frame)
            per_frame.append((r, [v for _, v in seen]))
    finally:
        lm.forward_depformer = original  # type: ignore[method-assign]
        engine.lm_gen.on_text_logits_hook = None

    # The output of frame i+1 holds the text token and audio codebook 1 sampled at step i (delay 0
    # streams come out one frame later); the hooks saw 9 argmaxes per step: text, then 8 audio.
    hot = [len(a) == 9 for _, a in per_frame]
    assert all(hot)
    after = per_frame[11:]  # tokens of steps >= 10 come out from frame 11 on
    for (r, _), (_, argmaxes_prev) in zip(after, per_frame[10:-1], strict=True):
        assert r.tokens is not None
        assert r.tokens[0] == argmaxes_prev[0]  # text: greedy
        # audio codebook 1 has no delay: sampled and output at the same frame offset
        assert r.tokens[1] == argmaxes_prev[1]
    before = per_frame[2:10]
    mismatches = sum(int(r.tokens[0] != prev[0]) for (r, _), (_, prev) in zip(before, per_frame[1:9], strict=True))
    assert mismatches > 0, "at temperature 1.5 with top_k 200 some text tokens should differ from the argmax"


def test_seed_change_mid_session(engine: Engine, speech_pcm: np.ndarray) -> None:
    a = tokens_of(run(engine, speech_pcm, seed=1, changes={12: {"seed": 99}}))
    b = tokens_of(run(engine, speech_pcm, seed=1, changes={12: {"seed": 99}}))
    c = tokens_of(run(engine, speech_pcm, seed=1))
    assert a == b
    assert a[:12] == c[:12]
    # Frame 12 outputs text/codebook 1 sampled at step 11 (old seed) and codebooks 2-8 of step 12.
    assert a[12][:2] == c[12][:2] and a[12][2:] != c[12][2:]
    assert a[13:] != c[13:]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"temp": -0.1}, "temp=-0.1 is out of range: allowed 0.0..5.0"),
        ({"top_k": 0}, "top_k=0 is out of range"),
        ({"top_k": 257}, "top_k=257 is above the audio codebook size: allowed 1..256"),
        ({"top_k_text": 10_000}, "top_k_text=10000 is above the text vocabulary"),
        ({"tmp": 1.0}, "unknown key 'tmp'"),
    ],
)
def test_bad_params_are_refused_and_nothing_changes(engine: Engine, changes: dict, message: str) -> None:
    engine.reset(sampling=Sampling(), seed=1)
    with pytest.raises(ConfigError, match=message):
        engine.set_params(**changes)
    r = engine.step(np.zeros(FRAME_SIZE, np.float32))
    assert r.sampling == Sampling() and not r.params_changed
