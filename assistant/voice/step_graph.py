"""One whole Moshi step as one fixed-shape function, traced once by `mx.compile` and replayed.

The main transformer keeps a ring of exactly `context` key/value slots per layer: step `p`
writes its keys and values into slot `p % context`, and slots not written yet are masked out.
So the shapes do not follow the step, and the whole step (embeddings, main transformer, text
head and sampling, the depformer's `dep_q` slices and their sampling) is built in Python once,
when it is traced; later steps replay the trace in C++, with element-wise chains fused. The
position is an input array (RoPE's offset), never a Python int, so no step retraces. The ring
is the function's state: passed in, returned updated. The update is a slice update of a
buffer nobody else holds, which MLX does in place.

Attention spans: before the ring fills, the step attends to its first 256 slots, then to its
first 1024 (x4 ... below the context), then to all of them; each span is one trace, made at
`warmup`. Masked slots cost nothing in Metal's attention kernel (it skips them), but MLX's
CPU attention computes every slot: a span keeps the first minutes' attention close to what
the conversation has filled (on the TINY config here, 3000 slots cost ~6 ms a step).

Same numbers as moshi_mlx's `LmGen` (same modules, same ops, in the same order), and the same
window as `RingKVCache` (benchmarks/kv_cache.py): after writing step `q` the slots hold steps
`q - context + 1 .. q`, the current one included. Masked slots get a weight of exactly zero
(keys carry their own RoPE position, and a single query's softmax does not care about slot
order), so while fewer than `context` steps were taken the result is the reference's, which
attends to the filled slots only.

Where `mx.compile` cannot run (MLX's CPU backend needs a C++ compiler at run time) the same
function runs plain: same results, a Python-built graph per step.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TypeAlias

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from moshi_mlx.models import Lm
from moshi_mlx.models.lm import ScaledEmbedding
from moshi_mlx.modules.transformer import MlpGating, Transformer, TransformerLayer

from ..errors import EngineConfigError, PrefillNotSupportedError
from .sampling import SamplingConfig, sample_token

# The step's function: (ring, ids[, keys]) -> [tokens, (text logits,) *new ring].
StepFunction: TypeAlias = Callable[..., list[mx.array]]


class KVRing:
    """The main transformer's keys and values: `[1, heads, context, head_dim]` per layer.

    Allocated once (lazily: MLX materialises the zeros at the first step), replaced each step
    by the step's outputs, which reuse the same buffers.
    """

    def __init__(self, transformer: Transformer, context: int, dtype: mx.Dtype) -> None:
        cfg = transformer.cfg
        if cfg.kv_repeat != 1:
            raise EngineConfigError("only kv_repeat == 1 is supported (as in moshi_mlx)")
        if not 0 < context <= cfg.context:
            raise EngineConfigError(
                f"a ring of {context} slots must be between 1 and the model's context {cfg.context}"
            )
        self.context = context
        self.shape = (1, cfg.num_heads, context, cfg.head_dim)
        self.dtype = dtype
        self.layers = len(transformer.layers)
        self.arrays = self.fresh()

    def fresh(self) -> list[mx.array]:
        """New zeroed buffers (lazy), keys and values interleaved layer by layer."""
        return [mx.zeros(self.shape, self.dtype) for _ in range(2 * self.layers)]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays)


def attention_spans(context: int) -> tuple[int, ...]:
    """The key lengths the step is traced for: 256, 1024, ... below `context`, then `context`."""
    spans = []
    span = 256
    while span < context:
        spans.append(span)
        span *= 4
    return (*spans, context)


def span_for(position: int, context: int) -> int:
    """The shortest span holding every slot written up to `position` (all once it wraps)."""
    return next(s for s in attention_spans(context) if s > position or s == context)


def make_step_function(
    model: Lm,
    sampling: SamplingConfig,
    context: int,
    *,
    capture_text_logits: bool,
    span: int | None = None,
) -> StepFunction:
    """The whole step as a pure function of the ring, the step's ids and (sampled) its keys,
    attending to the ring's first `span` slots (default: all of them).

    `ids` is int32 `[2 + n_q, 1]`: the position, the text token fed, then one audio token per
    codebook (Moshi's first, then the user's). `keys` is uint32 `[1 + dep_q, 2]`, one random
    key per sampled token. Returns the sampled tokens, int32 `[1 + dep_q]`, then the text
    logits (float32 `[1, 1, text_card]`) when captured, then the new ring.
    """

    def step(ring: list[mx.array], ids: mx.array, keys: mx.array | None = None) -> list[mx.array]:
        pos = ids[0, 0]
        xs = embed(model, ids[1:])
        out, new_ring = ring_transformer(model.transformer, xs, ring, pos, context, span)
        sampled, logits = head(model, out, sampling, keys)
        extra = [logits.astype(mx.float32)] if capture_text_logits else []
        return [sampled, *extra, *new_ring]

    return step


def embed(model: Lm, tokens: mx.array) -> mx.array:
    """The step's input `[1, 1, dim]` from tokens `[1 + n_q, 1]`: the text embedding plus each
    codebook's, in the reference's order of bf16 additions."""
    xs = lookup(model.text_emb, tokens[:1])
    for cb, emb in enumerate(model.audio_embs, start=1):
        xs = xs + lookup(emb, tokens[cb : cb + 1])
    return xs


def ring_transformer(
    transformer: Transformer,
    xs: mx.array,
    ring: list[mx.array],
    pos: mx.array,
    context: int,
    span: int | None = None,
) -> tuple[mx.array, list[mx.array]]:
    """moshi_mlx's `Transformer` for one step at absolute position `pos`, keys and values in
    the ring, attending to its first `span` slots (all by default: a shorter span is only
    right while `pos < span`); returns the output and the updated ring."""
    span = context if span is None else span
    slot = (pos % context).reshape(1)
    written = mx.arange(span) <= pos  # slot p holds step p until the ring wraps
    new_ring = []
    for i, layer in enumerate(transformer.layers):
        attn = layer.self_attn
        q, k, v = _qkv(layer, xs, pos)
        keys = mx.slice_update(ring[2 * i], k, slot, axes=(2,))
        values = mx.slice_update(ring[2 * i + 1], v, slot, axes=(2,))
        if span < context:
            k_span, v_span = keys[:, :, :span], values[:, :, :span]
        else:
            k_span, v_span = keys, values
        a = mx.fast.scaled_dot_product_attention(q, k_span, v_span, scale=attn.scale, mask=written)
        xs = _residual_and_mlp(layer, xs, a)
        new_ring += [keys, values]
    return xs, new_ring


def depformer_transformer(
    transformer: Transformer, xs: mx.array, past: list[list[tuple[mx.array, mx.array]]], k: int
) -> mx.array:
    """moshi_mlx's `Transformer` over the depformer's slices: slice `k` attends to the keys
    and values of slices `0..k` (`past[layer]`, appended here), trimmed to the context as
    moshi_mlx's `Attention` trims them."""
    for layer, cache in zip(transformer.layers, past, strict=True):
        attn = layer.self_attn
        q, key, value = _qkv(layer, xs, k)
        cache.append((key, value))
        kept = cache[len(cache) - (1 + min(attn.cfg.context, len(cache) - 1)) :]
        if len(kept) == 1:
            keys, values = key, value
        else:
            keys = mx.concatenate([kv[0] for kv in kept], axis=2)
            values = mx.concatenate([kv[1] for kv in kept], axis=2)
        a = mx.fast.scaled_dot_product_attention(q, keys, values, scale=attn.scale)
        xs = _residual_and_mlp(layer, xs, a)
    return xs


# The two halves of moshi_mlx's `TransformerLayer.__call__` (with `Attention.__call__` and
# `MlpGating.__call__` inlined) for one step, t = 1: the same arithmetic in the same order.
# Only views differ: for t = 1, [b, 1, 3 * heads * head_dim] splits straight into q, k, v as
# [b, heads, 1, head_dim], and the attention's output reshapes back without a transpose, which
# makes fewer graph nodes for the host to build and dispatch each step.
def _qkv(
    layer: TransformerLayer, xs: mx.array, pos: mx.array | int
) -> tuple[mx.array, mx.array, mx.array]:
    attn = layer.self_attn
    cfg = attn.cfg
    n1 = layer.norm1(xs)
    b, t, _ = n1.shape
    if t != 1:
        raise PrefillNotSupportedError(f"the step takes one position at a time, got {t}")
    qkv = attn.in_proj(n1).reshape(b, 3 * cfg.num_heads, t, cfg.head_dim)
    q, k, v = mx.split(qkv, 3, axis=1)
    if attn.rope is not None:
        q = attn.rope(q, offset=pos)
        k = attn.rope(k, offset=pos)
    return q, k, v


def _residual_and_mlp(layer: TransformerLayer, xs: mx.array, attended: mx.array) -> mx.array:
    attn = layer.self_attn
    b, t, hd = xs.shape
    xs = xs + layer.layer_scale_1(attn.out_proj(attended.reshape(b, t, hd)))
    gating = layer.gating
    gate, value = mx.split(gating.linear_in(layer.norm2(xs)), 2, axis=-1)
    return xs + layer.layer_scale_2(gating.linear_out(nn.silu(gate) * value))


def head(
    model: Lm,
    out: mx.array,
    sampling: SamplingConfig,
    keys: mx.array | None,
) -> tuple[mx.array, mx.array]:
    """Text head and sampling, then the depformer's slices, each fed the last token sampled.

    Returns the tokens, int32 `[1 + dep_q]`, and the text logits (the model's dtype)."""
    sp = sampling
    out = model.out_norm(out)
    text_logits = model.text_linear(out)
    token = sample_token(
        text_logits, sp.text_temperature, sp.text_top_k, None if keys is None else keys[0]
    )
    tokens = [token]
    dep_layers = model.depformer.slices[0].transformer.layers
    past: list[list[tuple[mx.array, mx.array]]] = [[] for _ in dep_layers]
    for k, sl in enumerate(model.depformer.slices):
        ys = sl.linear_in(out) + lookup(sl.emb, token)
        ys = depformer_transformer(sl.transformer, ys, past, k)
        logits = sl.linear_out(ys)
        key = None if keys is None else keys[1 + k]
        token = sample_token(logits, sp.audio_temperature, sp.audio_top_k, key)
        tokens.append(token)
    return mx.concatenate(tokens, axis=-1).reshape(-1), text_logits


def lookup(emb: object, tokens: mx.array) -> mx.array:
    """Embedding rows; skips ScaledEmbedding's -1 masking (4 extra ops) as we never feed -1."""
    if isinstance(emb, ScaledEmbedding) and emb.low_rank is None and not emb.demux_second_stream:
        return emb.weight[tokens]
    return emb(tokens)  # type: ignore[operator]


def ring_dtype(model: Lm) -> mx.Dtype:
    """The dtype the main transformer's keys come out in, read from a lazy graph (nothing
    is evaluated): the embeddings' dtype through the first layer's norm and projection."""
    layer = model.transformer.layers[0]
    probe = lookup(model.text_emb, mx.zeros((1, 1), dtype=mx.int32))
    return layer.self_attn.in_proj(layer.norm1(probe)).dtype


def check_layers(model: Lm) -> None:
    """What the step does not implement: cross-attention, an MLP without gating."""
    transformers = [model.transformer] + [sl.transformer for sl in model.depformer.slices]
    for layer in (layer for t in transformers for layer in t.layers):
        if layer.cross_attention is not None:
            raise EngineConfigError("the engine does not support cross-attention layers")
        if not isinstance(layer.gating, MlpGating):
            raise EngineConfigError("the engine needs gated MLPs (gating 'silu')")


class StepGraph:
    """The ring and the step function, compiled where MLX can compile.

    `compile`: None tries `mx.compile` and falls back to running the same function plain if
    this machine cannot compile (warned once); True raises instead; False never compiles.
    Weights are captured when the step is traced; `load_weights` on the model later is noticed
    (the step is traced again), partial in-place edits of a parameter are not.
    """

    def __init__(
        self,
        model: Lm,
        sampling: SamplingConfig,
        context: int,
        *,
        compile: bool | None = None,
    ) -> None:
        check_layers(model)
        self.model = model
        self.sampling = sampling
        self.ring = KVRing(model.transformer, context, ring_dtype(model))
        self._use_compile = compile
        self._checked = False  # a compiled step has run (and so compiled) successfully
        self._functions: dict[tuple[bool, int], StepFunction] = {}
        self._traced_for: tuple[mx.array, ...] = ()

    @property
    def compiled(self) -> bool:
        """Whether steps run compiled (known after the first step)."""
        return self._use_compile is not False and self._checked

    def build(
        self, ids: np.ndarray, keys: mx.array | None, *, capture_text_logits: bool = False
    ) -> tuple[mx.array, mx.array | None]:
        """Build the step's graph (replaying the trace when compiled) and advance the ring to
        its outputs; nothing is evaluated. `ids`: int32 `[2 + n_q]`, the position first (see
        `make_step_function`, which takes them as a column). Returns the tokens and, if
        captured, the text logits."""
        fn = self._function(capture_text_logits, span_for(int(ids[0]), self.ring.context))
        arr = mx.array(ids.reshape(-1, 1))  # the step's one host -> device transfer (and keys)
        outs = fn(self.ring.arrays, arr) if keys is None else fn(self.ring.arrays, arr, keys)
        n = 2 if capture_text_logits else 1
        # The old ring now lives only in the graph, so its buffers can be updated in place.
        self.ring.arrays = outs[n:]
        return outs[0], outs[1] if capture_text_logits else None

    def run(
        self, ids: np.ndarray, keys: mx.array | None, *, capture_text_logits: bool = False
    ) -> tuple[mx.array, mx.array | None]:
        """One evaluated step: the sampled tokens and (if captured) the text logits."""
        if self._use_compile is not False and not self._checked:
            return self._first_compiled_run(ids, keys, capture_text_logits)
        tokens, logits = self.build(ids, keys, capture_text_logits=capture_text_logits)
        mx.eval(tokens, logits, self.ring.arrays)
        return tokens, logits

    def _first_compiled_run(
        self, ids: np.ndarray, keys: mx.array | None, capture: bool
    ) -> tuple[mx.array, mx.array | None]:
        # A compile failure surfaces at the first evaluation. Past the first position, keep
        # the ring until then, so the plain function can take the step again from the same
        # state (at position 0 no slot is read: nothing to keep, and no copy of the ring).
        before = self.ring.arrays if int(ids[0]) > 0 else None
        try:
            tokens, logits = self.build(ids, keys, capture_text_logits=capture)
            mx.eval(tokens, logits, self.ring.arrays)
        except (RuntimeError, IndexError, ValueError) as e:
            self.ring.arrays = before if before is not None else self.ring.fresh()
            if self._use_compile:
                raise  # asked for explicitly: do not hide it
            warnings.warn(f"mx.compile failed, running uncompiled: {e}", stacklevel=4)
            self._use_compile = False
            self._functions.clear()
            return self.run(ids, keys, capture_text_logits=capture)
        self._checked = True
        return tokens, logits

    @property
    def spans(self) -> tuple[int, ...]:
        """The attention spans, shortest first (each has its own trace)."""
        return attention_spans(self.ring.context)

    def _function(self, capture: bool, span: int) -> StepFunction:
        # Parameters are captured as constants: trace again when the model's arrays changed.
        m = self.model
        sentinels = (
            m.text_emb.weight,
            m.transformer.layers[0].self_attn.in_proj.weight,
            m.out_norm.weight,
            m.depformer.slices[-1].linear_out.weight,
        )
        if len(sentinels) != len(self._traced_for) or any(
            a is not b for a, b in zip(sentinels, self._traced_for, strict=True)
        ):
            self._functions.clear()
            self._traced_for = sentinels
            self._checked = False
        fn = self._functions.get((capture, span))
        if fn is None:
            fn = make_step_function(
                m, self.sampling, self.ring.context, capture_text_logits=capture, span=span
            )
            if self._use_compile is not False:
                fn = mx.compile(fn)
            self._functions[capture, span] = fn
        return fn
