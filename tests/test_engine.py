"""StreamingEngine: same model as moshi_mlx's LmGen, reset, determinism, padding, memory."""

from __future__ import annotations

from dataclasses import replace

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten
from moshi_mlx import models, utils

from assistant.checkpoint.config import MICRO as MICRO_PRESET
from assistant.checkpoint.config import MoshiConfig
from assistant.checkpoint.layout import Quantization
from assistant.errors import (
    AssistantError,
    EngineConfigError,
    InvalidCodesError,
    SamplingConfigError,
    TokenizerError,
)
from assistant.voice.engine import StepResult, StreamingEngine
from assistant.voice.model import build_model
from assistant.voice.sampling import KeyStream, SamplingConfig, sample_token
from assistant.voice.step_graph import attention_spans, span_for

# Toy widths, steps of ~3 ms; a short context so tests cross it quickly.
MICRO = replace(MICRO_PRESET, context=64)
GREEDY = SamplingConfig.greedy()


def tokens(result: StepResult) -> np.ndarray:
    """A step's raw tokens (text, then each codebook), which every step here returns."""
    assert result.tokens is not None
    return result.tokens


def logits(result: StepResult) -> np.ndarray:
    """A step's text logits (an engine made with capture_text_logits=True)."""
    assert result.text_logits is not None
    return result.text_logits


def make_model(config: MoshiConfig = MICRO, quant: Quantization | None = None, seed: int = 0):
    mx.random.seed(seed)
    model = build_model(config, quant)
    mx.eval(model.parameters())
    return model


def user_codes(steps: int, config: MoshiConfig = MICRO, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, config.card, size=(steps, config.user_codebooks)).astype(np.int32)


def run(engine: StreamingEngine, codes: np.ndarray) -> list[tuple]:
    """Comparable summary of each step: (step, text token, piece, audio codes or None)."""
    out = []
    for frame in codes:
        r = engine.step(frame)
        audio = None if r.audio_codes is None else tuple(r.audio_codes.tolist())
        out.append((r.step, r.text_token, r.piece, audio))
    return out


@pytest.fixture(scope="module")
def model():
    return make_model()


# --- (g) the same model as the reference ------------------------------------------------------
@pytest.mark.parametrize(
    ("quant", "compile"),
    [(None, None), (None, False), (Quantization(4, 32), None)],
    ids=["bf16", "bf16-uncompiled", "q4"],
)
def test_matches_lmgen_token_for_token_with_greedy_sampling(quant, compile):
    """While the history is shorter than the context both windows hold every step, so the
    engine and LmGen (argmax sampler) must agree exactly, text and audio, step by step."""
    config = MICRO
    steps = 50
    assert steps < config.context  # the reference attends to context + 1 keys beyond this
    model = make_model(config, quant)
    gen = models.LmGen(
        model=model,
        max_steps=steps,
        text_sampler=utils.Sampler(temp=0.0),
        audio_sampler=utils.Sampler(temp=0.0),
    )
    engine = StreamingEngine(model, config, GREEDY, compile=compile)
    texts = set()
    for s, frame in enumerate(user_codes(steps, config)):
        ref_text = gen.step(mx.array(frame[None]))[0].item()
        ref_audio = gen.last_audio_tokens()
        r = engine.step(frame)
        assert r.step == s
        assert r.text_token == ref_text, f"text differs at step {s}"
        if ref_audio is None:
            assert r.audio_codes is None, f"step {s}"
        else:
            np.testing.assert_array_equal(r.audio_codes, np.array(ref_audio)[0], f"step {s}")
        texts.add(r.text_token)
    assert len(texts) > 1  # not a degenerate constant stream


def test_matches_lmgen_across_attention_spans():
    """Before the ring fills, the step attends to its first 256 slots, then to all of them:
    still the reference's tokens on both sides of the switch."""
    config = replace(MICRO, context=300)
    steps = 260
    model = make_model(config)
    greedy = utils.Sampler(temp=0.0)
    gen = models.LmGen(model=model, max_steps=steps, text_sampler=greedy, audio_sampler=greedy)
    engine = StreamingEngine(model, config, GREEDY)
    assert engine.graph.spans == (256, 300)
    for s, frame in enumerate(user_codes(steps, config)):
        ref_text = gen.step(mx.array(frame[None]))[0].item()
        ref_audio = gen.last_audio_tokens()
        r = engine.step(frame)
        assert r.text_token == ref_text, f"text differs at step {s}"
        if ref_audio is not None:
            np.testing.assert_array_equal(r.audio_codes, np.array(ref_audio)[0], f"step {s}")


def test_attention_spans():
    assert attention_spans(3000) == (256, 1024, 3000)
    assert attention_spans(300) == (256, 300)
    assert attention_spans(256) == (256,) and attention_spans(64) == (64,)
    expected = {0: 256, 255: 256, 256: 1024, 1023: 1024, 1024: 3000, 2999: 3000, 10**6: 3000}
    assert {p: span_for(p, 3000) for p in expected} == expected
    assert span_for(0, 64) == span_for(5000, 64) == 64


def test_warmup_traces_every_span_and_leaves_no_trace_to_make():
    config = replace(MICRO, context=300)
    engine = StreamingEngine(make_model(config), config, GREEDY)
    engine.warmup()
    assert engine.steps_taken == 0 and engine.compiled
    traced = set(engine.graph._functions)
    assert traced == {(False, 256), (False, 300)}


def mlx_can_compile() -> bool:
    """MLX's CPU backend compiles fused kernels with a C++ compiler found at run time."""
    try:
        mx.eval(mx.compile(lambda x: mx.exp(x) * 2 + 1)(mx.ones(3)))
        return True
    except RuntimeError:
        return False


def test_compiled_and_uncompiled_agree(model):
    if not mlx_can_compile():
        pytest.skip("mx.compile does not work on this machine (no C++ compiler for MLX's CPU)")
    codes = user_codes(30)
    auto = StreamingEngine(model, MICRO, GREEDY)
    plain = StreamingEngine(model, MICRO, GREEDY, compile=False)
    assert run(auto, codes) == run(plain, codes)
    assert auto.compiled and not plain.compiled


@pytest.mark.parametrize("compile", [None, False], ids=["compiled", "plain"])
def test_new_weights_loaded_into_the_model_are_used(compile):
    """The compiled step captures the weights when traced: loading others must retrace."""
    codes = user_codes(8)
    model = make_model()
    engine = StreamingEngine(model, MICRO, GREEDY, compile=compile)
    first = run(engine, codes)
    other = make_model(seed=1)
    model.load_weights(list(tree_flatten(other.parameters())))
    engine.reset()
    assert run(engine, codes) == run(StreamingEngine(other, MICRO, GREEDY), codes) != first


def test_falls_back_when_mlx_cannot_compile(model, monkeypatch):
    """MLX's CPU backend compiles with a C++ compiler at run time; without one, run plain."""

    def broken_compile(fn, *args, **kwargs):
        def fail(*a, **k):
            raise RuntimeError("[Compile::eval_cpu] Failed to compile function: g++: not found")

        return fail

    codes = user_codes(10)
    expected = run(StreamingEngine(model, MICRO, GREEDY, compile=False), codes)
    monkeypatch.setattr(mx, "compile", broken_compile)
    auto = StreamingEngine(model, MICRO, GREEDY)
    with pytest.warns(UserWarning, match="running uncompiled"):
        assert run(auto, codes) == expected
    assert not auto.compiled
    with pytest.raises(RuntimeError):
        StreamingEngine(model, MICRO, GREEDY, compile=True).step(codes[0])


def test_uses_a_ring_of_exactly_context_slots():
    config = replace(MICRO, context=5)
    engine = StreamingEngine(make_model(config), config, GREEDY)
    run(engine, user_codes(12))
    ring = engine.graph.ring
    head_dim = config.dim // config.num_heads
    assert ring.context == 5 and len(ring.arrays) == 2 * config.num_layers
    assert all(a.shape == (1, config.num_heads, 5, head_dim) for a in ring.arrays)


@pytest.mark.parametrize("compile", [None, False], ids=["compiled", "plain"])
def test_the_ring_is_updated_in_place(compile):
    """A step writes one slot of each buffer; copying a buffer instead would show in MLX's
    peak memory (each is 512 kB here, the step's other temporaries ~50 kB)."""
    config = replace(MICRO, context=4096)
    engine = StreamingEngine(make_model(config), config, GREEDY, compile=compile)
    codes = user_codes(8, config)
    for frame in codes[:4]:
        engine.step(frame)
    buffer = engine.graph.ring.nbytes // len(engine.graph.ring.arrays)
    mx.clear_cache()
    for frame in codes[4:]:
        before = mx.get_active_memory()
        mx.reset_peak_memory()
        engine.step(frame)
        assert mx.get_peak_memory() - before < buffer // 2


# --- (c) reset, (d) determinism ------------------------------------------------------------------
@pytest.mark.parametrize("sampling", [GREEDY, SamplingConfig(seed=11)], ids=["greedy", "seeded"])
def test_reset_equals_a_fresh_engine(sampling):
    config = replace(MICRO, context=8)  # the ring wraps before the reset
    model = make_model(config)
    engine = StreamingEngine(model, config, sampling)
    run(engine, user_codes(20, seed=1))
    assert engine.steps_taken == 20
    engine.reset()
    assert engine.steps_taken == 0
    codes = user_codes(30, seed=2)
    assert run(engine, codes) == run(StreamingEngine(model, config, sampling), codes)


def test_warmup_leaves_a_fresh_engine(model):
    codes = user_codes(10)
    engine = StreamingEngine(model, MICRO, GREEDY)
    engine.warmup()
    assert engine.steps_taken == 0
    assert run(engine, codes) == run(StreamingEngine(model, MICRO, GREEDY), codes)


def test_greedy_is_deterministic(model):
    codes = user_codes(25)
    assert run(StreamingEngine(model, MICRO, GREEDY), codes) == run(
        StreamingEngine(model, MICRO, GREEDY), codes
    )


def test_sampling_is_reproducible_per_seed_and_independent_of_global_state(model):
    codes = user_codes(30)
    first = run(StreamingEngine(model, MICRO, SamplingConfig(seed=3)), codes)
    mx.random.seed(999)  # the engine keeps its own random stream
    again = run(StreamingEngine(model, MICRO, SamplingConfig(seed=3)), codes)
    other = run(StreamingEngine(model, MICRO, SamplingConfig(seed=4)), codes)
    assert first == again
    assert first != other


def test_sampling_respects_top_k():
    config = replace(MICRO, text_card=100)
    model = make_model(config)
    engine = StreamingEngine(model, config, SamplingConfig(text_top_k=1, audio_top_k=1, seed=7))
    codes = user_codes(20, config)
    # top-k 1 is argmax whatever the temperature
    assert run(engine, codes) == run(StreamingEngine(model, config, GREEDY), codes)


# --- (e) text padding, (f) audio delay -----------------------------------------------------------
class FakeTokenizer:
    def __init__(self, size: int) -> None:
        self.size = size
        self.asked: list[int] = []

    def get_piece_size(self) -> int:
        return self.size

    def id_to_piece(self, id: int) -> str:
        self.asked.append(id)
        return f"▁w{id}"


class FixedLogits(nn.Module):
    """Stands in for the text head: always prefers one id."""

    def __init__(self, vocab: int, token: int) -> None:
        super().__init__()
        self.vocab, self.token = vocab, token

    def __call__(self, x: mx.array) -> mx.array:
        logits = mx.where(mx.arange(self.vocab) == self.token, 1.0, 0.0).astype(x.dtype)
        return mx.broadcast_to(logits, (*x.shape[:-1], self.vocab))


@pytest.mark.parametrize("token", [0, 3, 7])
def test_text_padding_is_filtered_and_pieces_decoded(token):
    model = make_model()
    model.text_linear = FixedLogits(MICRO.text_card, token)
    tok = FakeTokenizer(MICRO.text_card)
    engine = StreamingEngine(model, MICRO, GREEDY, text_tokenizer=tok)
    results = [engine.step(frame) for frame in user_codes(3)]
    assert all(r.text_token == token for r in results)
    if token in (0, MICRO.existing_text_padding_id):
        assert all(r.piece is None and r.is_padding for r in results)
        assert tok.asked == []  # padding ids are never looked up
    else:
        assert all(r.piece == f" w{token}" for r in results)  # '▁' -> ' '


def test_audio_codes_none_during_delay_then_uint32_codes(model):
    engine = StreamingEngine(model, MICRO, SamplingConfig(seed=1))
    max_delay = max(MICRO.delays)
    results = [engine.step(frame) for frame in user_codes(12)]
    for r in results:
        assert isinstance(r, StepResult)
        if r.step < max_delay:
            assert r.audio_codes is None
        else:
            assert r.audio_codes is not None
            assert r.audio_codes.dtype == np.uint32 and r.audio_codes.shape == (MICRO.dep_q,)
            assert (r.audio_codes < MICRO.card).all()
        assert 0 <= r.text_token < MICRO.text_card


# --- (b) no step limit, flat memory --------------------------------------------------------------
def test_memory_stays_flat_for_thousands_of_steps_after_the_context_fills():
    config = replace(MICRO, context=16)
    model = make_model(config)
    engine = StreamingEngine(model, config, SamplingConfig(seed=2))
    codes = user_codes(64, config)
    for i in range(200):  # fill the ring (16) and settle the allocator
        engine.step(codes[i % 64])
    ring = engine.graph.ring
    shapes = [a.shape for a in ring.arrays]
    mx.clear_cache()
    before = mx.get_active_memory()
    for i in range(2000):
        engine.step(codes[i % 64])
    mx.clear_cache()
    after = mx.get_active_memory()
    assert engine.steps_taken == 2200  # no max_steps
    assert [a.shape for a in ring.arrays] == shapes
    assert after - before < 64 * 1024, f"active memory grew by {after - before} bytes"


# --- input checking ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(8,), (8, 1), (1, 8)])
def test_accepts_the_three_frame_layouts(model, shape):
    codes = user_codes(1)[0]
    engine = StreamingEngine(model, MICRO, GREEDY)
    a = engine.step(codes.reshape(shape))
    engine.reset()
    b = engine.step(codes.tolist())
    assert (a.step, a.text_token, a.audio_codes) == (0, b.text_token, None)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros(7, int),
        np.zeros((2, 8), int),
        np.full(8, MICRO.card),
        np.full(8, -1),
        np.full(8, 0.5),
        "x",
    ],
    ids=["short", "two-frames", "too-big", "negative", "fractional", "text"],
)
def test_rejects_bad_codes_with_a_clear_error(model, bad):
    engine = StreamingEngine(model, MICRO, GREEDY)
    with pytest.raises(InvalidCodesError) as err:
        engine.step(bad)
    assert isinstance(err.value, ValueError) and isinstance(err.value, AssistantError)
    assert engine.steps_taken == 0


@pytest.mark.parametrize("change", [{"card": 64}, {"context": 32}, {"text_card": 50}])
def test_rejects_a_config_that_does_not_match_the_model(model, change):
    with pytest.raises(EngineConfigError):
        StreamingEngine(model, replace(MICRO, **change), GREEDY)


def test_rejects_a_tokenizer_smaller_than_the_text_vocabulary(model):
    with pytest.raises(TokenizerError):
        StreamingEngine(model, MICRO, GREEDY, text_tokenizer=FakeTokenizer(10))


def test_sampling_config_validation():
    assert SamplingConfig() == SamplingConfig(0.7, 25, 0.8, 250, None)
    for bad in ({"text_temperature": -1.0}, {"audio_top_k": -2}, {"seed": 1.5}):
        with pytest.raises(SamplingConfigError):
            SamplingConfig(**bad)


def test_sample_token_top_k_and_temperature_follow_the_softmax():
    logits = mx.array([[1.0, 2.0, 0.5, -1.0, 1.5]])
    many = mx.broadcast_to(logits, (4000, 5))  # 4000 independent draws under one key
    key = mx.random.key(0)
    draws = np.array(sample_token(many, 0.5, 2, key))
    assert set(draws.tolist()) <= {1, 4}  # only the top 2 ids
    p = np.exp(np.array([2.0, 1.5]) / 0.5)
    p /= p.sum()
    freq = (draws == 1).mean()
    assert abs(freq - p[0]) < 4 * np.sqrt(p[0] * p[1] / len(draws))
    np.testing.assert_array_equal(draws, np.array(sample_token(many, 0.5, 2, key)))
    assert np.array(sample_token(logits, 0.0, 2, None)).tolist() == [1]  # greedy
    full = np.array(sample_token(many, 1.0, 0, key))  # top-k 0: the whole vocabulary
    assert set(full.tolist()) == {0, 1, 2, 3, 4}


def test_key_stream_reset_replays_a_seed_or_draws_a_new_one():
    fixed = KeyStream(5)
    first = np.array(fixed.next_keys(3))
    fixed.reset()
    np.testing.assert_array_equal(first, np.array(fixed.next_keys(3)))
    free = KeyStream(None)
    seed = free.seed
    free.reset()
    assert free.seed != seed


# --- raw tokens, text logits and teacher forcing (for `assistant bench`) -------------------------
def test_step_returns_its_raw_tokens_and_on_request_its_text_logits(model):
    codes = user_codes(12)
    plain = StreamingEngine(model, MICRO, GREEDY)
    capturing = StreamingEngine(model, MICRO, GREEDY, capture_text_logits=True)
    results = [plain.step(frame) for frame in codes]
    captured = [capturing.step(frame) for frame in codes]
    delays = MICRO.delays[1 : 1 + MICRO.dep_q]
    for r, c in zip(results, captured, strict=True):
        assert r.text_logits is None
        assert r.tokens.dtype == np.int32 and r.tokens.shape == (1 + MICRO.dep_q,)
        assert tokens(r)[0] == r.text_token
        np.testing.assert_array_equal(c.tokens, r.tokens)  # capturing changes nothing
        assert c.text_logits.dtype == np.float32 and c.text_logits.shape == (MICRO.text_card,)
        assert int(np.argmax(logits(c))) == c.text_token  # greedy: the argmax
        if r.audio_codes is not None:
            # Frame g's codebook k was sampled at step g + delay_k.
            g = r.step - max(MICRO.delays)
            own = [tokens(results[g + d])[1 + k] for k, d in enumerate(delays)]
            assert r.audio_codes.tolist() == own


@pytest.mark.parametrize("sampling", [GREEDY, SamplingConfig(seed=8)], ids=["greedy", "seeded"])
def test_forcing_a_run_with_its_own_tokens_reproduces_it_exactly(model, sampling):
    codes = user_codes(20)
    free = StreamingEngine(model, MICRO, sampling, capture_text_logits=True)
    reference = [free.step(frame) for frame in codes]
    forced = StreamingEngine(model, MICRO, sampling, capture_text_logits=True)
    for frame, ref in zip(codes, reference, strict=True):
        r = forced.step(frame)
        np.testing.assert_array_equal(r.tokens, ref.tokens)
        np.testing.assert_array_equal(r.text_logits, ref.text_logits)
        assert r.audio_codes is None or r.audio_codes.tolist() == ref.audio_codes.tolist()
        forced.force_tokens(tokens(ref))


def test_forcing_replaces_the_history_the_next_step_reads(model):
    """Another model's tokens, forced after each step, are exactly what the next step is fed:
    the text token, and every generated codebook (at its own delay)."""
    codes = user_codes(10)
    other = StreamingEngine(make_model(seed=1), MICRO, GREEDY)
    theirs = [tokens(other.step(frame)) for frame in codes]
    free = StreamingEngine(model, MICRO, GREEDY, capture_text_logits=True)
    ours = [free.step(frame) for frame in codes]
    engine = StreamingEngine(model, MICRO, GREEDY, capture_text_logits=True)
    forced = []
    for s, frame in enumerate(codes):
        forced.append(engine.step(frame))
        engine.force_tokens(theirs[s])
        text_in, audio_in = engine._inputs(s + 1)
        assert text_in == theirs[s][0]
        for k, d in enumerate(MICRO.delays[1 : 1 + MICRO.dep_q]):
            # Step s + 1 is fed codebook k of frame s - d, which step s sampled.
            if s - d >= 0:
                assert audio_in[k] == theirs[s][1 + k]
    # Step 0 sees no history, so it matches the free run; later steps do not.
    np.testing.assert_array_equal(logits(forced[0]), logits(ours[0]))
    assert any(
        not np.array_equal(logits(f), logits(o)) for f, o in zip(forced[1:], ours[1:], strict=True)
    )


def test_force_tokens_rejects_bad_input(model):
    engine = StreamingEngine(model, MICRO, GREEDY)
    ok = np.zeros(1 + MICRO.dep_q, dtype=np.int32)
    with pytest.raises(AssistantError, match="call step"):
        engine.force_tokens(ok)
    engine.step(user_codes(1)[0])
    for bad in (ok[:-1], ok.astype(np.float32), np.r_[MICRO.text_card, ok[1:]], ok - 1):
        with pytest.raises(InvalidCodesError):
            engine.force_tokens(bad)
    engine.force_tokens(ok)
