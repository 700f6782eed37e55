"""The attention window over long conversations: RingKVCache vs an explicit windowed reference.

The reference recomputes every step's output from the whole input sequence at once, with
attention masked to exactly the positions p allowed by the window (0 <= q - p < w), so it
shares no state and no slicing logic with the streaming caches under test.
"""

from __future__ import annotations

import itertools
from typing import Any

import mlx.core as mx
import numpy as np
import pytest
from moshi_mlx.modules.kv_cache import RotatingKVCache
from moshi_mlx.modules.transformer import LayerCache, Transformer, TransformerConfig

from assistant.errors import AssistantError, PrefillNotSupportedError
from assistant.voice.lm_config import transformer_config
from assistant.voice.step_graph import KVRing, ring_transformer, span_for
from benchmarks.kv_cache import RingKVCache, make_ring_cache

D_MODEL, HEADS, LAYERS = 16, 2, 2
HEAD_DIM = D_MODEL // HEADS
CHECK_STEPS = (4095, 4096, 4097, 5000, 10000)
TOTAL = CHECK_STEPS[-1] + 1
# A 16-step window has wrapped 300 times by step 5,000; positions up to 10,000 (RoPE at large
# positions, three wraps of a 3000-step ring) are the 3000-step context's to check.
SMALL_WINDOW_TOTAL = 5001


def total_steps(context: int) -> int:
    return SMALL_WINDOW_TOTAL if context <= 16 else TOTAL


TOL = 1e-5  # float32 streaming vs batched: ~3e-7 apart here
DIFF = 1e-4  # a window off by even one key moves the output by more than this


def tiny_config(context: int) -> TransformerConfig:
    """moshi_mlx's main-transformer recipe (RoPE, gating, RMSNorm) at toy width, float32."""
    return transformer_config(D_MODEL, HEADS, LAYERS, 4 * D_MODEL, context, 10000)


def make_transformer(context: int) -> Transformer:
    mx.random.seed(1234)  # same weights whatever the context
    t = Transformer(tiny_config(context))
    mx.eval(t.parameters())
    return t


def windowed_attention(
    q: mx.array, k: mx.array, v: mx.array, scale: float, window: int, a: int, b: int
) -> mx.array:
    """Attention of queries a..b-1 ([1, heads, T, head_dim] each), masked to their windows."""
    lo = max(0, a - window + 1)
    scores = (q[:, :, a:b] @ k[:, :, lo:b].transpose(0, 1, 3, 2)) * scale
    dist = mx.arange(a, b)[:, None] - mx.arange(lo, b)[None]
    allowed = (dist >= 0) & (dist < window)
    scores = mx.where(allowed, scores, -mx.inf)
    out = mx.softmax(scores, axis=-1) @ v[:, :, lo:b]
    mx.eval(out)
    return out


def runs(mask: np.ndarray) -> list[tuple[int, int, bool]]:
    """The mask as consecutive runs (start, end, value), in order."""
    edges = [0, *(np.flatnonzero(mask[1:] != mask[:-1]) + 1).tolist(), len(mask)]
    return [(a, b, bool(mask[a])) for a, b in itertools.pairwise(edges)]


def windowed_reference(
    t: Transformer, xs: mx.array, window: int, rows: list[int] | None = None, chunk: int = 128
) -> np.ndarray:
    """The outputs [len(rows), d] of `t` on xs [T, d] at `rows` (default: all T), each query
    attending to keys in its window. The last layer's queries are limited to `rows`, each
    earlier layer's to the positions a needed query of the next one reads (their windows;
    for the long windows here, all but ~2,000 steps between 5,000 and 10,000): the others get
    no attention output, and no needed query reads them. Queries go `chunk` at a time (each
    chunk computes its keys' scores past a query's window too: fewer with smaller chunks)."""
    seq_len = xs.shape[0]
    needed = [np.ones(seq_len, bool) for _ in t.layers]
    if rows is not None:
        needed[-1] = np.zeros(seq_len, bool)
        needed[-1][rows] = True
        for n in range(len(t.layers) - 2, -1, -1):  # p is read by queries p..p+window-1
            reads = np.concatenate([[0], np.cumsum(needed[n + 1])])
            ends = np.minimum(np.arange(seq_len) + window, seq_len)
            needed[n] = reads[ends] > reads[:seq_len]
    x = xs[None]  # [1, T, d]
    for n, layer in enumerate(t.layers):
        attn = layer.self_attn
        qkv = attn.in_proj(layer.norm1(x)).reshape(1, seq_len, 3, HEADS, HEAD_DIM)
        q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
        assert attn.rope is not None  # (the main transformer's recipe has RoPE)
        q, k = attn.rope(q), attn.rope(k)  # absolute positions 0..T-1
        if rows is not None and n == len(t.layers) - 1:
            x = x[:, mx.array(rows)]
            outs = [windowed_attention(q, k, v, attn.scale, window, r, r + 1) for r in rows]
        else:
            outs = []
            for a, b, wanted in runs(needed[n]):
                if not wanted:
                    outs.append(mx.zeros((1, HEADS, b - a, HEAD_DIM)))
                    continue
                for c in range(a, b, chunk):
                    outs.append(
                        windowed_attention(q, k, v, attn.scale, window, c, min(c + chunk, b))
                    )
        o = mx.concatenate(outs, axis=2).transpose(0, 2, 1, 3).reshape(1, x.shape[1], D_MODEL)
        x = x + attn.out_proj(o)
        x = x + layer.gating(layer.norm2(x))
        mx.eval(x)
    return np.array(x[0])


KEEP = {*CHECK_STEPS, 0, 1, 15, 16, 17, 100, 255, 256, 1023, 1024, 2999, 3000}


class AttendedSpy:
    """Wraps a layer's cache and records, at KEEP steps, what moshi_mlx's Attention attends
    to after its own trimming (`k[:, :, k_len - (1 + min(context, k_len - 1)):]`)."""

    def __init__(self, inner: Any, context: int) -> None:  # a RingKVCache or RotatingKVCache
        self.inner = inner
        self.context = context
        self.log: dict[int, tuple[int, bool]] = {}  # step -> (keys attended, current among them)

    @property
    def offset(self) -> int:
        return self.inner.offset

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        step = self.inner.offset
        k, v = self.inner.update_and_fetch(keys, values)
        if step in KEEP:
            k_len = k.shape[2]
            kept = k[:, :, k_len - (1 + min(self.context, k_len - 1)) :]
            current = bool(mx.any(mx.all(kept == keys, axis=-1)))
            self.log[step] = (kept.shape[2], current)
        return k, v


# The streams evaluate every EVAL_EVERY steps (and at each KEEP step, where an output is read):
# the same computations, one evaluation's overhead for several steps (~25% less CPU here);
# outputs bit for bit those of evaluating every step (measured).
EVAL_EVERY = 8


def stream(
    t: Transformer, cache: list[LayerCache], xs: mx.array, steps: int
) -> dict[int, np.ndarray]:
    """Feed xs one step at a time; keep the outputs at KEEP steps."""
    out: dict[int, np.ndarray] = {}
    for s in range(steps):
        y = t(xs[s : s + 1][None], cache=cache)
        if s in KEEP:
            out[s] = np.array(y[0, 0])
        elif s % EVAL_EVERY == 0 or s == steps - 1:
            mx.eval(y)
    return out


@pytest.fixture(scope="module")
def inputs() -> mx.array:
    xs = mx.array(np.random.default_rng(7).standard_normal((TOTAL, D_MODEL)).astype(np.float32))
    mx.eval(xs)
    return xs


@pytest.fixture(scope="module")
def references(inputs: mx.array) -> dict[int, dict[int, np.ndarray]]:
    """Each window's outputs at the KEEP steps, the only ones the streams are compared at."""
    t = make_transformer(3000)  # the window is a reference argument; weights are the same
    rows = sorted(KEEP)
    return {
        w: dict(zip(rows, windowed_reference(t, inputs, w, rows), strict=True))
        for w in (16, 3000, 3001)
    }


@pytest.mark.slow
# The ring cache serves only the benchmark's rebuilt "before" engine now: one small context is
# enough to show its window; the engine's own is checked at both below.
@pytest.mark.parametrize("context", [16])
def test_ring_cache_attends_to_exactly_the_last_context_steps(context, inputs, references):
    t = make_transformer(context)
    cache = make_ring_cache(t)
    rings = [c.self_attn for c in cache]
    spy = AttendedSpy(rings[0], context)
    cache[0].self_attn = spy  # type: ignore[assignment]
    steps = total_steps(context)
    got = stream(t, cache, inputs, steps)
    assert sorted(got) == sorted(k for k in KEEP if k < steps)
    ref = references[context]
    for s, y in got.items():
        np.testing.assert_allclose(y, ref[s], atol=TOL, rtol=TOL, err_msg=f"step {s}")
        assert spy.log[s] == (min(s + 1, context), True), f"step {s}"
    for ring in rings:
        assert isinstance(ring, RingKVCache)
        assert ring.offset == steps
        assert ring.keys.shape == (1, HEADS, context, HEAD_DIM)


def stream_fixed_shape(
    t: Transformer, context: int, xs: mx.array, steps: int
) -> dict[int, np.ndarray]:
    """The engine's compiled main transformer: fixed shapes (one per attention span), the
    position an input array."""

    def step(ring: list[mx.array], x: mx.array, pos: mx.array, span: int) -> list[mx.array]:
        y, new_ring = ring_transformer(t, x, ring, pos, context, span)
        return [y, *new_ring]

    fn = mx.compile(step)
    ring = KVRing(t, context, mx.float32).arrays
    out: dict[int, np.ndarray] = {}
    for s in range(steps):
        span = span_for(s, context)
        y, *ring = fn(ring, xs[s : s + 1][None], mx.array(s, dtype=mx.int32), span)
        if s in KEEP or s % EVAL_EVERY == 0 or s == steps - 1:
            mx.eval(y, ring)
        if s in KEEP:
            out[s] = np.array(y[0, 0])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("context", [16, 3000])
def test_engine_step_attends_to_exactly_the_last_context_steps(context, inputs, references):
    t = make_transformer(context)
    steps = total_steps(context)
    got = stream_fixed_shape(t, context, inputs, steps)
    assert sorted(got) == sorted(k for k in KEEP if k < steps)
    for s, y in got.items():
        np.testing.assert_allclose(y, references[context][s], atol=TOL, rtol=TOL, err_msg=f"s {s}")
    # One slot fewer or more is visibly different at every checked step past the context.
    for w in (context - 1, context + 1):
        if w in references:
            for s in (c for c in CHECK_STEPS if c < steps):
                assert np.abs(got[s] - references[w][s]).max() > DIFF, f"step {s}, window {w}"


@pytest.mark.slow
def test_reference_rotating_cache_breaks_from_step_4096(inputs, references):
    """moshi_mlx's own cache (4096 slots, context 3000): right until 4095, wrong from 4096."""
    t = make_transformer(3000)
    cache = [LayerCache(RotatingKVCache(HEAD_DIM, HEADS, max_size=4096)) for _ in t.layers]
    spy = AttendedSpy(cache[0].self_attn, 3000)
    cache[0].self_attn = spy  # type: ignore[assignment]
    got = stream(t, cache, inputs, 5001)
    # Up to step 4095 it attends to the current step and the 3000 before it (context + 1).
    np.testing.assert_allclose(got[4095], references[3001][4095], atol=TOL, rtol=TOL)
    assert spy.log[4095] == (3001, True)
    for s in (4096, 4097, 5000):
        assert spy.log[s] == (3001, False), f"step {s}: the current step should be left out"
        for w in (3000, 3001):
            diff = np.abs(got[s] - references[w][s]).max()
            assert diff > DIFF, f"step {s}: reference matches window {w} (diff {diff})"


def test_ring_cache_slots_offset_and_returned_length():
    ring = RingKVCache(head_dim=4, n_kv_heads=2, context=3)
    for step in range(7):
        k = mx.full((1, 2, 1, 4), float(step))
        keys, values = ring.update_and_fetch(k, -k)
        assert ring.offset == step + 1
        got = sorted(np.array(keys)[0, 0, :, 0].tolist())
        assert got == list(range(max(0, step - 2), step + 1))  # the last 3 steps, itself included
        np.testing.assert_array_equal(np.array(values), -np.array(keys))
        assert ring.keys.shape == (1, 2, 3, 4)  # allocated once, never grows


def test_ring_cache_reset_keeps_buffers_and_forgets_steps():
    ring = RingKVCache(head_dim=4, n_kv_heads=1, context=4)
    for step in range(6):
        ring.update_and_fetch(mx.full((1, 1, 1, 4), float(step)), mx.zeros((1, 1, 1, 4)))
    buffer = ring.keys
    ring.reset()
    assert ring.offset == 0 and ring.filled == 0
    keys, _ = ring.update_and_fetch(mx.full((1, 1, 1, 4), 9.0), mx.zeros((1, 1, 1, 4)))
    assert keys.shape == (1, 1, 1, 4) and float(keys[0, 0, 0, 0]) == 9.0
    assert ring.keys.shape == buffer.shape


def test_ring_cache_refuses_prefill_and_wrong_shapes():
    ring = RingKVCache(head_dim=4, n_kv_heads=2, context=8)
    with pytest.raises(PrefillNotSupportedError) as err:
        ring.update_and_fetch(mx.zeros((1, 2, 3, 4)), mx.zeros((1, 2, 3, 4)))
    assert isinstance(err.value, AssistantError) and "one step at a time" in str(err.value)
    with pytest.raises(ValueError):
        ring.update_and_fetch(mx.zeros((1, 3, 1, 4)), mx.zeros((1, 3, 1, 4)))
    with pytest.raises(ValueError):
        RingKVCache(head_dim=4, n_kv_heads=2, context=0)
    with pytest.raises(ValueError, match="exceeds"):  # Attention would trim in ring order
        make_ring_cache(make_transformer(16), context=17)


def test_moshi_attention_keeps_every_returned_slot():
    """Short run, small window: the streaming output equals the windowed reference each step."""
    context, steps = 5, 40
    t = make_transformer(context)
    xs = mx.array(np.random.default_rng(3).standard_normal((steps, D_MODEL)).astype(np.float32))
    ref = windowed_reference(t, xs, context)
    cache = make_ring_cache(t)
    for s in range(steps):
        y = t(xs[s : s + 1][None], cache=cache)
        np.testing.assert_allclose(np.array(y[0, 0]), ref[s], atol=TOL, rtol=TOL)
    # A window one step too wide or too narrow is visibly different: the check has teeth.
    for w in (context - 1, context + 1):
        assert np.abs(windowed_reference(t, xs, w)[-1] - ref[-1]).max() > DIFF
