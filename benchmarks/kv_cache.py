"""A ring-buffer KV cache that attends to exactly the last `context` steps, forever.

moshi_mlx's `RotatingKVCache` keeps 4096 slots for a 3000-step context and, from step 4096
on, its trimming picks buffer positions rather than the latest steps: the window freezes and
then leaves out the current step. This cache keeps exactly `context` slots; step `p` lives
in slot `p % context`, so after writing step `q` the slots hold steps `q - context + 1 .. q`:
the keys with `0 <= q - p < context`, the current step included (PyTorch moshi's ring cache).

Why slot order does not matter: RoPE is applied to keys before they are cached (with the
absolute position `offset`), so each key carries its own position; with a single query
the softmax over keys is permutation invariant.

Why moshi_mlx's `Attention` keeps every slot we return: for a one-step query (t = 1) it
computes `k_target_len = t + min(context, k_len - t)` and only trims when that is below
`k_len`. We return `k_len = min(steps seen, context)` slots, so `k_len - 1 < context` and
`k_target_len = 1 + (k_len - 1) = k_len`: nothing is trimmed.

The engine's compiled step keeps the same window in its own fixed-shape ring
(`assistant/voice/step_graph.py`); this cache is for moshi_mlx's modules run step by step: the
engine's previous, uncompiled main transformer (`engine_baselines.py`) runs on it, and
`tests/test_kv_window.py` checks both windows against the same reference.

Memory: both buffers are allocated once, at the first update, at full size, and written in
place (a slice update of an array nobody else holds reuses its buffer): no concatenation,
nothing that grows with the conversation.
"""

from __future__ import annotations

import mlx.core as mx
from moshi_mlx.modules.transformer import LayerCache, Transformer

from assistant.errors import PrefillNotSupportedError


class RingKVCache:
    """Keys and values of the last `context` steps, in a preallocated ring of `context` slots.

    Drop-in for moshi_mlx's `KVCache` / `RotatingKVCache` inside a `LayerCache`:
    `offset` is the absolute position of the next step (RoPE reads it before the update).
    """

    def __init__(self, head_dim: int, n_kv_heads: int, context: int) -> None:
        if context < 1:
            raise ValueError(f"context must be at least 1, got {context}")
        self.head_dim = head_dim
        self.n_kv_heads = n_kv_heads
        self.context = context
        self.offset = 0
        self.keys: mx.array | None = None
        self.values: mx.array | None = None

    @property
    def filled(self) -> int:
        """Number of slots holding a step (at most `context`)."""
        return min(self.offset, self.context)

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        """Store one step's keys/values [B, heads, 1, head_dim]; return the filled slots."""
        b, h, t, d = keys.shape
        if t != 1:
            raise PrefillNotSupportedError(
                f"RingKVCache takes one step at a time, got {t} (prefill is not supported)"
            )
        if h != self.n_kv_heads or d != self.head_dim:
            raise ValueError(
                f"keys have {h} heads x {d} dims, cache expects {self.n_kv_heads} x {self.head_dim}"
            )
        if self.keys is None or self.keys.shape[0] != b or self.keys.dtype != keys.dtype:
            # Allocated once, at full size, in the model's dtype (bf16, or f32 in tests).
            shape = (b, self.n_kv_heads, self.context, self.head_dim)
            self.keys = mx.zeros(shape, dtype=keys.dtype)
            self.values = mx.zeros(shape, dtype=values.dtype)
        assert self.values is not None
        slot = self.offset % self.context
        self.keys[:, :, slot : slot + 1, :] = keys
        self.values[:, :, slot : slot + 1, :] = values
        self.offset += 1
        n = self.filled
        if n < self.context:
            return self.keys[:, :, :n, :], self.values[:, :, :n, :]
        return self.keys, self.values

    def reset(self) -> None:
        """Forget every step; the buffers are kept (stale slots are never returned)."""
        self.offset = 0

    @property
    def state(self) -> tuple[mx.array | None, mx.array | None]:
        return self.keys, self.values


def make_ring_cache(transformer: Transformer, context: int | None = None) -> list[LayerCache]:
    """One `LayerCache(RingKVCache)` per layer of a moshi_mlx `Transformer`.

    `context` defaults to the transformer's own (`cfg.context`, 3000 for Moshi); it may be
    smaller, never larger: moshi_mlx's Attention trims to `cfg.context + 1` keys by buffer
    position, which in a bigger ring is not time order.
    """
    cfg = transformer.cfg
    if cfg.kv_repeat != 1:
        raise ValueError("only kv_repeat == 1 is supported (as in moshi_mlx's Attention)")
    ctx = cfg.context if context is None else context
    if ctx > cfg.context:
        raise ValueError(f"a ring of {ctx} slots exceeds the transformer's context {cfg.context}")
    return [
        LayerCache(self_attn=RingKVCache(cfg.head_dim, cfg.num_heads, ctx))  # type: ignore[arg-type]
        for _ in transformer.layers
    ]
