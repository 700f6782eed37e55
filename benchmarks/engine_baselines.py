"""What `bench_engine.py` compares the engine with, and how it measures host work.

- `PreviousStep`: the engine's step as it was before issue 12, rebuilt here so one run can
  time both: the main transformer built in Python every step over a `RingKVCache` (its key
  length grows until the context is full, so it could not be compiled), `mx.async_eval`, then
  the compiled tail (text head, sampling, depformer). It has `StepGraph`'s interface, so a
  `StreamingEngine` runs it unchanged (`engine.graph = PreviousStep(...)`).
- `zero_stride_weights`: a model's parameters replaced by evaluated arrays of the right shape
  and dtype that hold one element each (a broadcast of a scalar): a full-size model whose step
  graph can be built, traced and counted with nothing evaluated and ~no memory. Lazily
  initialised random weights would not do for a compiled step: `mx.compile` records every op
  it meets, so their initialisation would become part of the traced step.
- `graph_nodes`: how many primitives a step hands to the device (what `mx.eval` dispatches).
- `dispatch_us_per_node`: the main thread's CPU time per primitive dispatched, on a chain of
  one-element additions whose compute is negligible.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
from mlx.utils import tree_map
from moshi_mlx.models import Lm
from moshi_mlx.modules.transformer import LayerCache

from assistant.voice.sampling import SamplingConfig, sample_token
from assistant.voice.step_graph import lookup
from benchmarks.kv_cache import RingKVCache, make_ring_cache


class PreviousStep:
    """The step before issue 12 (see the module's docstring); always compiles its tail."""

    compiled = True

    def __init__(self, model: Lm, sampling: SamplingConfig, context: int) -> None:
        self.model = model
        self.sampling = sampling
        self.cache = make_ring_cache(model.transformer, context)
        self.spans = (context,)  # one shape: its keys are sliced to the filled slots
        self._tails: dict[bool, Callable[..., Any]] = {}

    def build(
        self, ids: np.ndarray, keys: mx.array | None, *, capture_text_logits: bool = False
    ) -> tuple[mx.array, mx.array | None]:
        out = self.main(ids)
        return self.tail(out, keys, capture_text_logits)

    def run(
        self, ids: np.ndarray, keys: mx.array | None, *, capture_text_logits: bool = False
    ) -> tuple[mx.array, mx.array | None]:
        out = self.main(ids)
        mx.async_eval(out)  # the device starts on the main transformer while the tail is built
        tokens, logits = self.tail(out, keys, capture_text_logits)
        mx.eval(tokens, logits)
        return tokens, logits

    def main(self, ids: np.ndarray) -> mx.array:
        m = self.model
        for c in self.cache:  # the absolute position (the engine resets by starting again at 0)
            c.self_attn.offset = int(ids[0])
        xs = lookup(m.text_emb, mx.array([[int(ids[1])]], dtype=mx.int32))
        audio = mx.array(ids[2:].reshape(-1, 1, 1))
        for cb, emb in enumerate(m.audio_embs):
            xs = xs + lookup(emb, audio[cb])
        return m.transformer(xs, cache=self.cache)

    def tail(
        self, out: mx.array, keys: mx.array | None, capture: bool
    ) -> tuple[mx.array, mx.array | None]:
        fn = self._tails.get(capture)
        if fn is None:
            fn = self._tails[capture] = mx.compile(self._make_tail(capture))
        outs = fn(out) if keys is None else fn(out, keys)
        return outs[0], outs[1] if capture else None

    def _make_tail(self, capture: bool) -> Callable[..., list[mx.array]]:
        m, sp = self.model, self.sampling

        def tail(out: mx.array, keys: mx.array | None = None) -> list[mx.array]:
            dcfg = m.depformer.slices[0].transformer.cfg
            dep_cache = [
                LayerCache(RingKVCache(dcfg.head_dim, dcfg.num_heads, len(m.depformer.slices)))  # type: ignore[arg-type]
                for _ in range(dcfg.num_layers)
            ]
            out = m.out_norm(out)
            text_logits = m.text_linear(out)
            key = None if keys is None else keys[0]
            token = sample_token(text_logits, sp.text_temperature, sp.text_top_k, key)
            tokens = [token]
            for k, sl in enumerate(m.depformer.slices):
                ys = sl.linear_in(out) + lookup(sl.emb, token)
                ys = sl.transformer(ys, cache=dep_cache)
                key = None if keys is None else keys[1 + k]
                token = sample_token(sl.linear_out(ys), sp.audio_temperature, sp.audio_top_k, key)
                tokens.append(token)
            sampled = mx.concatenate([t.reshape(1) for t in tokens])
            return [sampled, text_logits.astype(mx.float32)] if capture else [sampled]

        return tail


def zero_stride_weights(model: Lm) -> None:
    """Replace every parameter by an evaluated one-element broadcast of the same shape."""
    model.update(tree_map(zero_stride_like, model.parameters()))
    mx.eval(model.parameters())


def zero_stride_like(a: mx.array) -> mx.array:
    return mx.broadcast_to(mx.zeros((1,) * a.ndim, a.dtype), a.shape)


def graph_nodes(*outputs: mx.array) -> int:
    """Primitives between `outputs` and evaluated arrays: what one `mx.eval` would dispatch."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graph.dot"
        mx.export_to_dot(str(path), *outputs)
        return len(re.findall(r"shape=rectangle", path.read_text()))


def dispatch_us_per_node(nodes: int = 2000, repeats: int = 5) -> float:
    """Main-thread CPU microseconds per primitive `mx.eval` dispatches (median of repeats)."""
    per_node = []
    for _ in range(repeats):
        x = mx.zeros((1,))
        mx.eval(x)
        for _ in range(nodes):
            x = x + 1
        started = time.thread_time()
        mx.eval(x)
        per_node.append((time.thread_time() - started) / nodes * 1e6)
    return statistics.median(per_node)
