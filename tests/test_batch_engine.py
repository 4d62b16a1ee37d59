"""The batched engine: slots that do not disturb each other, per-slot sampling and seeds, moshi's distribution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from moshi.utils.sampling import sample_token
from scipy import stats

from jmoshi_nb.core.audio import FRAME_SIZE, frames
from jmoshi_nb.core.config import ConfigError, Sampling
from jmoshi_nb.model.batch_engine import BatchEngine, SlotsFull, check_slots, draw_noise, sample_rows

N_FRAMES = 16
SAMPLING = Sampling(temp=0.9, top_k=100, temp_text=0.8, top_k_text=40)


@pytest.fixture(scope="module")
def batch(tiny_path) -> BatchEngine:  # type: ignore[no-untyped-def]
    return BatchEngine.load("tiny", slots=3, seed=42)


def tokens_of(results) -> list[list[int] | None]:  # type: ignore[no-untyped-def]
    return [None if r.tokens is None else r.tokens.tolist() for r in results]


def noise_pcm(seed: int, n: int = N_FRAMES) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n * FRAME_SIZE) * 0.1).astype(np.float32)


def release_all(engine: BatchEngine) -> None:
    for s in engine.busy_slots:
        engine.release(s)


def run_alone(
    engine: BatchEngine, pcm: np.ndarray, sampling: Sampling = SAMPLING, seed: int = 123, slot: int | None = None
) -> list:
    """``pcm`` through one slot with every other slot free; every slot is free again afterwards."""
    release_all(engine)
    slot = engine.open(sampling, seed, slot=slot)
    out = [engine.step({slot: f})[slot] for f in frames(pcm)]
    engine.release(slot)
    return out


# ---- the sampler ---------------------------------------------------------------------------------


def test_sampler_draws_moshis_tokens_from_the_same_random_stream() -> None:
    """Seeded alike, the per-row sampler and moshi's sample_token draw the very same token."""
    logits = torch.randn(64, 1, 1, 300)
    for row in range(64):
        for temp, k in ((0.8, 250), (1.3, 7), (0.5, 1), (0.0, 25)):
            torch.manual_seed(row)
            ref = sample_token(logits[row : row + 1], True, temp, k)
            gen = torch.Generator().manual_seed(row)
            noise = torch.full((1, k), torch.inf)
            if temp > 0:
                noise[0] = draw_noise(gen, k, torch.device("cpu"))
            ours = sample_rows(logits[row, 0], torch.tensor([temp]), torch.tensor([k]), noise)
            assert ours.item() == ref.item()


@pytest.mark.parametrize(("temp", "k"), [(0.8, 5), (1.5, 12), (0.3, 40)])
def test_sampler_has_moshis_distribution(temp: float, k: int) -> None:
    """Chi-square test of homogeneity: 20 000 draws each from moshi's sampler and from ours."""
    n = 20_000
    logits = torch.randn(40, generator=torch.Generator().manual_seed(7)) * 2
    torch.manual_seed(11)
    ref = np.array([sample_token(logits[None], True, temp, k).item() for _ in range(n)])
    gen = torch.Generator().manual_seed(12)
    noise = torch.full((n, min(k + 3, 40)), torch.inf)
    noise[:, :k] = torch.empty(n, k).exponential_(1, generator=gen)
    ours = sample_rows(logits.expand(n, -1), torch.full((n,), temp), torch.full((n,), k), noise).numpy()
    support = sorted(set(ref) | set(ours))
    assert set(ours) <= set(torch.topk(logits, k).indices.tolist())  # never outside the top-k
    table = np.array([[np.sum(ref == t) for t in support], [np.sum(ours == t) for t in support]])
    assert stats.chi2_contingency(table).pvalue > 1e-3
    # and both match the top-k softmax they should draw from
    probs = torch.softmax(logits / temp, -1)
    top = torch.topk(probs, k)
    expected = top.values.double().numpy()
    expected = expected / expected.sum() * n
    observed = np.array([np.sum(ours == t) for t in top.indices.tolist()])
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_sampler_rows_are_independent() -> None:
    """Each row uses its own temperature and top-k: greedy rows take the argmax, top-1 rows too."""
    logits = torch.randn(4, 50)
    noise = torch.full((4, 50), torch.inf)
    noise[:, :50] = torch.empty(4, 50).exponential_(1, generator=torch.Generator().manual_seed(0))
    out = sample_rows(logits, torch.tensor([0.0, 1.0, 5.0, 0.7]), torch.tensor([50, 1, 50, 1]), noise)
    assert out[0] == logits[0].argmax() and out[1] == logits[1].argmax() and out[3] == logits[3].argmax()


# ---- slots -----------------------------------------------------------------------------------------


def test_frame_contract(batch: BatchEngine, speech_pcm: np.ndarray) -> None:
    release_all(batch)
    a, b = batch.open(SAMPLING, 1), batch.open(SAMPLING, 2)
    chunks = list(frames(speech_pcm[: 6 * FRAME_SIZE]))
    out = [batch.step({a: f, b: f}) for f in chunks]
    for slot in (a, b):
        rs = [o[slot] for o in out]
        assert [r.index for r in rs] == list(range(6))
        assert rs[0].pcm is None and rs[0].tokens is None  # the LM's initial delay
        for r in rs[1:]:
            assert r.pcm is not None and r.pcm.shape == (FRAME_SIZE,) and r.pcm.dtype == np.float32
            assert r.tokens is not None and r.tokens.shape == (9,)
            assert (r.tokens[1:] < batch.card).all() and 0 <= r.text_token < batch.text_card
            assert r.total_ms >= r.encode_ms + r.lm_ms and r.decode_ms > 0
            assert r.seed == (1 if slot == a else 2)
    assert tokens_of([o[a] for o in out]) != tokens_of([o[b] for o in out])  # seeds differ
    release_all(batch)


def test_same_seed_and_input_alone_or_among_busy_masked_neighbours(batch: BatchEngine, speech_pcm: np.ndarray) -> None:
    """A slot's tokens and audio do not depend on what the other slots do, nor on steps it sits out."""
    pcm = speech_pcm[: N_FRAMES * FRAME_SIZE]
    alone = run_alone(batch, pcm)
    slot = batch.open(SAMPLING, 123)
    others = [batch.open(Sampling(temp=1.2, top_k=30), 7), batch.open(Sampling(temp=0.0, temp_text=0.0), 8)]
    rng = np.random.default_rng(5)
    mine: list = []
    todo = list(frames(pcm))
    while todo:
        step: dict[int, np.ndarray] = {
            o: noise_pcm(int(rng.integers(1 << 30)), 1) for o in others if rng.random() < 0.7
        }
        if rng.random() < 0.75:  # this slot sits out a quarter of the steps
            step[slot] = todo.pop(0)
        if step:
            out = batch.step(step)
            if slot in out:
                mine.append(out[slot])
    assert tokens_of(mine) == tokens_of(alone)
    for a, b in zip(alone, mine, strict=True):
        assert (a.pcm is None) == (b.pcm is None)
        if a.pcm is not None:
            np.testing.assert_array_equal(a.pcm, b.pcm)
        assert a.text == b.text
    release_all(batch)


def test_same_tokens_whatever_the_slot_count(batch: BatchEngine, speech_pcm: np.ndarray) -> None:
    """The only slot of a 1-slot engine and the last slot of a 3-slot one: the same conversation."""
    pcm = speech_pcm[: 12 * FRAME_SIZE]
    one = BatchEngine.load("tiny", slots=1, seed=42, warmup=False)
    assert tokens_of(run_alone(one, pcm)) == tokens_of(run_alone(batch, pcm, slot=2))


def test_resetting_one_slot_leaves_the_others_untouched(batch: BatchEngine, speech_pcm: np.ndarray) -> None:
    pcm = speech_pcm[: N_FRAMES * FRAME_SIZE]
    other = noise_pcm(3)
    alone_a = tokens_of(run_alone(batch, pcm, seed=5))
    alone_b = tokens_of(run_alone(batch, other, seed=6))
    a, b = batch.open(SAMPLING, 5), batch.open(SAMPLING, 6)
    got_a, got_b = [], []
    b_frames = list(frames(other))
    for i, f in enumerate(frames(pcm)):
        if i == 8:
            batch.reset(b)  # b starts over: its frame counter, state and random stream
            b_frames = list(frames(other))
        step = {a: f}
        if b_frames:
            step[b] = b_frames.pop(0)
        out = batch.step(step)
        got_a.append(out[a])
        if b in out and i >= 8:
            got_b.append(out[b])
    assert tokens_of(got_a) == alone_a
    assert [r.index for r in got_b] == list(range(len(got_b)))
    assert tokens_of(got_b) == alone_b[: len(got_b)]
    release_all(batch)


def test_a_parameter_change_takes_effect_for_that_slot_only(batch: BatchEngine, speech_pcm: np.ndarray) -> None:
    pcm = speech_pcm[: N_FRAMES * FRAME_SIZE]
    alone = tokens_of(run_alone(batch, pcm, seed=9))
    a, b = batch.open(SAMPLING, 9), batch.open(SAMPLING, 9)
    got: dict[int, list] = {a: [], b: []}
    for i, f in enumerate(frames(pcm)):
        if i == 8:
            assert batch.set_params(a, temp=0.0, temp_text=0.0, top_k=5) == SAMPLING.updated(
                temp=0.0, temp_text=0.0, top_k=5
            )
        out = batch.step({a: f, b: f})
        for s in (a, b):
            got[s].append(out[s])
    ra, rb = got[a], got[b]
    assert tokens_of(rb) == alone and all(r.sampling == SAMPLING and not r.params_changed for r in rb)
    # Frame 8 outputs the text and codebook 1 sampled at step 7 (old settings), codebooks 2-8 of step 8.
    assert tokens_of(ra)[:8] == alone[:8] and tokens_of(ra)[8][:2] == alone[8][:2]
    assert tokens_of(ra)[9:] != alone[9:]
    assert [r.params_changed for r in ra] == [i == 8 for i in range(N_FRAMES)]
    assert all(r.sampling.temp == 0.0 for r in ra[8:]) and all(r.sampling == SAMPLING for r in ra[:8])
    release_all(batch)


def test_greedy_slot_is_deterministic_whatever_its_seed(batch: BatchEngine, speech_pcm: np.ndarray) -> None:
    pcm = speech_pcm[: 8 * FRAME_SIZE]
    greedy = Sampling(temp=0.0, temp_text=0.0)
    assert tokens_of(run_alone(batch, pcm, greedy, seed=1)) == tokens_of(run_alone(batch, pcm, greedy, seed=2))


def test_seed_change_mid_session_for_one_slot(batch: BatchEngine, speech_pcm: np.ndarray) -> None:
    pcm = speech_pcm[: N_FRAMES * FRAME_SIZE]
    plain = tokens_of(run_alone(batch, pcm, seed=1))
    slot = batch.open(SAMPLING, 1)
    got = []
    for i, f in enumerate(frames(pcm)):
        if i == 8:
            batch.set_params(slot, seed=99)
        got.append(batch.step({slot: f})[slot])
    toks = tokens_of(got)
    assert toks[:8] == plain[:8] and toks[9:] != plain[9:]
    assert got[8].params_changed and got[8].seed == 99
    release_all(batch)


def test_forced_audio_goes_to_its_slot_only(batch: BatchEngine, speech_pcm: np.ndarray) -> None:
    pcm = speech_pcm[: 12 * FRAME_SIZE]
    alone = tokens_of(run_alone(batch, pcm, seed=4))
    a, b = batch.open(SAMPLING, 4), batch.open(SAMPLING, 4)
    forced = [np.full(batch.dep_q, 17 + i, dtype=np.int64) for i in range(12)]
    got: dict[int, list] = {a: [], b: []}
    for i, f in enumerate(frames(pcm)):
        out = batch.step({a: f, b: f}, forced_audio={a: forced[i]})
        for s in (a, b):
            got[s].append(out[s])
    assert tokens_of(got[b]) == alone
    # Output frame i holds codebook 1 forced at step i-1 (delay 0) and codebooks 2..8 forced at step i (delay 1).
    for i in range(1, 12):
        toks = got[a][i].tokens
        assert toks is not None and toks[1] == 17 + i - 1 and (toks[2:] == 17 + i).all()
    release_all(batch)


def test_static_shapes_as_under_cuda_graphs_draw_the_same_tokens(batch: BatchEngine, speech_pcm: np.ndarray) -> None:
    """The CUDA path keeps the noise as wide as the vocabulary (fixed shapes for the graphs); on CPU it is as wide
    as the largest top-k. Both must draw the same tokens: the wide columns hold +inf noise and never win."""
    static = BatchEngine.load("tiny", slots=3, seed=42, warmup=False)
    static.use_static_shapes()
    pcm = speech_pcm[: N_FRAMES * FRAME_SIZE]
    settings = [(SAMPLING, 123), (Sampling(temp=1.2, top_k=3, temp_text=0.6, top_k_text=2), 7), (Sampling(temp=0.0), 9)]
    for engine in (batch, static):
        release_all(engine)
    opened = [(batch.open(sp, seed), static.open(sp, seed)) for sp, seed in settings]
    dynamic_tokens: list[list] = [[] for _ in settings]
    static_tokens: list[list] = [[] for _ in settings]
    for f in frames(pcm):
        a = batch.step({slot: f for slot, _ in opened})
        b = static.step({slot: f for _, slot in opened})
        for i, (sa, sb) in enumerate(opened):
            dynamic_tokens[i].append(tokens_of([a[sa]])[0])
            static_tokens[i].append(tokens_of([b[sb]])[0])
    release_all(batch)
    assert static.rows.noise_text.shape[-1] == static.text_card  # the wide path really ran
    assert any(t is not None for t in dynamic_tokens[0])
    assert static_tokens == dynamic_tokens


def test_slot_control_errors(batch: BatchEngine) -> None:
    release_all(batch)
    slots = [batch.open() for _ in range(batch.slots)]
    assert slots == [0, 1, 2] and batch.free_slots == []
    with pytest.raises(SlotsFull, match="all 3 slots"):
        batch.open()
    batch.release(1)
    assert batch.open() == 1
    with pytest.raises(ValueError, match="slot 3 does not exist: this engine has slots 0..2"):
        batch.step({3: np.zeros(FRAME_SIZE, np.float32)})
    with pytest.raises(ValueError, match="1920 samples"):
        batch.step({0: np.zeros(100, np.float32)})
    with pytest.raises(ConfigError, match="top_k=999 is above the audio codebook size"):
        batch.set_params(0, top_k=999)
    with pytest.raises(ValueError, match="forced audio tokens given without a frame"):
        batch.step({0: np.zeros(FRAME_SIZE, np.float32)}, forced_audio={1: np.zeros(8)})
    assert batch.step({}) == {}
    release_all(batch)


@pytest.mark.parametrize(("slots", "message"), [(0, "slots=0 is out of range: allowed 1..64"), (-2, "slots=-2")])
def test_slot_count_is_checked(slots: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_slots(slots)
    with pytest.raises(ConfigError, match="more than this engine can hold: at most 64"):
        check_slots(65)


def test_slot_memory_estimate_matches_the_kv_caches(batch: BatchEngine) -> None:
    from jmoshi_nb.model.batch_engine import slot_bytes, slot_capacity

    total = 0
    for module in (batch.lm_gen.lm_model, batch.mimi):
        for state in module.get_streaming_state().values():
            kv = getattr(state, "kv_cache", None)
            if kv is not None:
                total += kv.cache.numel() * kv.cache.element_size()
    assert slot_bytes(batch.lm_gen.lm_model, batch.mimi) * batch.n_rows == total > 0
    assert slot_capacity(batch.lm_gen.lm_model, batch.mimi, torch.device("cpu")) == 64
