"""The host's share of a step, per implementation: building its graph and dispatching it.

Measured in the main thread's CPU time (`time.thread_time`): what the host itself spends, not
what it waits for (MLX evaluates on its own worker thread) nor what other processes take.

- On a compute-light config (micro), every step is built and evaluated for real: build = the
  step's Python (and, compiled, the replay of its trace), eval = the main thread's CPU inside
  evaluation and the read-back (dispatching each primitive to the device, freeing the graph as
  it goes). Eval divided by the primitives the step dispatches gives that implementation's cost
  per primitive.
- At full size nothing is evaluated (zero-stride weights, see `engine_baselines`): the build is
  timed, the primitives counted, and dispatch is estimated as primitives x the micro cost per
  primitive of the same implementation. Host ms/step = build + dispatch.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import mlx.core as mx
import numpy as np
from moshi_mlx import models, utils
from moshi_mlx.models import Lm

from assistant.checkpoint.config import MoshiConfig
from assistant.checkpoint.layout import Quantization
from assistant.voice.engine import StreamingEngine
from assistant.voice.model import build_model
from assistant.voice.sampling import SamplingConfig
from benchmarks.engine_baselines import (
    PreviousStep,
    graph_nodes,
    zero_stride_like,
    zero_stride_weights,
)

IMPLS = ("LmGen", "before", "engine")
POSITION = 100  # full size: the step as if 100 steps were taken (LmGen: its first step)
GREEDY = SamplingConfig.greedy()

Outputs = list[mx.array]


@dataclass
class Calibration:
    """One implementation's host work per step on the micro config (medians)."""

    build_ms: float
    eval_ms: float  # main-thread CPU inside evaluation and read-back
    nodes: int  # primitives dispatched per step

    @property
    def us_per_node(self) -> float:
        return self.eval_ms * 1e3 / self.nodes


@dataclass
class FullSize:
    """One implementation's host work per step at full size, nothing evaluated."""

    build_ms: float  # main-thread CPU, median
    build_wall_ms: float  # wall clock, median (other processes' load shows here)
    nodes: int
    dispatch_ms: float  # nodes x the implementation's micro cost per primitive
    first_ms: float  # the first build (the engine traces its step there)

    @property
    def host_ms(self) -> float:
        return self.build_ms + self.dispatch_ms


# --- micro: build and evaluate for real ----------------------------------------------------
def calibrate(model: Lm, config: MoshiConfig, steps: int, warmup: int) -> dict[str, Calibration]:
    codes = np.random.default_rng(0).integers(
        0, config.card, (warmup + steps, config.user_codebooks)
    )
    codes = codes.astype(np.int32)
    engine = StreamingEngine(model, config, GREEDY)
    engine.warmup()
    before = PreviousStep(model, GREEDY, config.context)
    for c in (*model.transformer_cache, *model.depformer_cache):
        c.reset()
    gen = models.LmGen(
        model,
        max_steps=len(codes) + 1,
        text_sampler=utils.Sampler(temp=0.0),
        audio_sampler=utils.Sampler(temp=0.0),
    )

    def engine_build(i: int) -> Outputs:
        tokens, _ = engine.graph.build(engine.step_ids(i), None)
        return [tokens, *engine.graph.ring.arrays]

    def before_build(i: int) -> Outputs:
        tokens, _ = before.build(engine.step_ids(i), None)
        return [tokens, *(a for c in before.cache for a in c.self_attn.state)]

    def ours_finish(outs: Outputs) -> None:
        mx.eval(outs)
        np.array(outs[0])

    def lmgen_build(i: int) -> Outputs:
        text = gen.step(mx.array(codes[i][None]))
        return [text, gen.gen_sequence]

    def lmgen_finish(outs: Outputs) -> None:  # as moshi_mlx's client reads a step back
        outs[0][0].item()
        audio = gen.last_audio_tokens()
        if audio is not None:
            np.array(audio)

    runs = {
        "LmGen": (lmgen_build, lmgen_finish),
        "before": (before_build, ours_finish),
        "engine": (engine_build, ours_finish),
    }
    return {name: _calibrate(b, f, len(codes), warmup) for name, (b, f) in runs.items()}


def _calibrate(
    build: Callable[[int], Outputs], finish: Callable[[Outputs], None], steps: int, warmup: int
) -> Calibration:
    builds, evals = [], []
    nodes = 0
    for i in range(steps):
        c0 = time.thread_time()
        outs = build(i)
        c1 = time.thread_time()
        if i == warmup:
            nodes = graph_nodes(*outs)
        c2 = time.thread_time()
        finish(outs)
        del outs
        c3 = time.thread_time()
        if i >= warmup:
            builds.append(c1 - c0)
            evals.append(c3 - c2)
    return Calibration(statistics.median(builds) * 1e3, statistics.median(evals) * 1e3, nodes)


# --- full size: build only -----------------------------------------------------------------
def full_size(
    config: MoshiConfig, quant: Quantization, reps: int, per_node: dict[str, Calibration]
) -> dict[str, FullSize]:
    mx.random.seed(0)
    model = build_model(config, quant)
    zero_stride_weights(model)
    codes = np.zeros(config.user_codebooks, dtype=np.int32)
    engine = StreamingEngine(model, config, GREEDY)
    before = PreviousStep(model, GREEDY, config.context)
    ring = [zero_stride_like(a) for a in engine.graph.ring.arrays]
    mx.eval(ring)
    ids = engine.step_ids(POSITION)

    def engine_build() -> Outputs:
        tokens, _ = engine.graph.build(ids, None)
        return [tokens, *engine.graph.ring.arrays]

    def engine_reset() -> None:
        engine.graph.ring.arrays = list(ring)

    def before_build() -> Outputs:
        tokens, _ = before.build(ids, None)
        return [tokens, *(a for c in before.cache for a in c.self_attn.state)]

    def before_reset() -> None:
        # RingKVCache writes into its arrays (`keys[...] = k`): fresh ones every time.
        fresh = [zero_stride_like(a) for a in ring]
        mx.eval(fresh)
        for c, k, v in zip(before.cache, fresh[0::2], fresh[1::2], strict=True):
            c.self_attn.keys, c.self_attn.values = k, v

    gens: list[models.LmGen] = []

    def lmgen_build() -> Outputs:
        gen = gens[-1]
        return [gen.step(mx.array(codes[None])), gen.gen_sequence]

    def lmgen_reset() -> None:
        for c in (*model.transformer_cache, *model.depformer_cache):
            c.reset()
        greedy = utils.Sampler(temp=0.0)
        gens[:] = [models.LmGen(model, max_steps=4, text_sampler=greedy, audio_sampler=greedy)]

    runs = {
        "LmGen": (lmgen_build, lmgen_reset),
        "before": (before_build, before_reset),
        "engine": (engine_build, engine_reset),
    }
    return {
        name: _time_builds(build, reset, reps, per_node[name].us_per_node)
        for name, (build, reset) in runs.items()
    }


def _time_builds(
    build: Callable[[], Outputs], reset: Callable[[], None], reps: int, us_per_node: float
) -> FullSize:
    cpu, wall = [], []
    nodes, first_ms = 0, 0.0
    for i in range(reps + 1):
        reset()  # also drops the previous step's graph (freeing is part of dispatch's share)
        w0, c0 = time.perf_counter(), time.thread_time()
        outs = build()
        c1, w1 = time.thread_time(), time.perf_counter()
        if i == 0:
            nodes = graph_nodes(*outs)
            first_ms = (w1 - w0) * 1e3
        else:
            cpu.append(c1 - c0)
            wall.append(w1 - w0)
        del outs
    reset()
    return FullSize(
        build_ms=statistics.median(cpu) * 1e3,
        build_wall_ms=statistics.median(wall) * 1e3,
        nodes=nodes,
        dispatch_ms=nodes * us_per_node / 1e3,
        first_ms=first_ms,
    )


def print_calibration(rows: dict[str, Calibration], steps: int) -> None:
    print(
        f"\nHost work per step on the micro config, built and evaluated ({steps} steps, "
        "medians, main-thread CPU)"
    )
    head = ("impl", "build ms", "eval ms", "primitives", "us/primitive", "host ms")
    print("{:7} {:>9} {:>8} {:>11} {:>13} {:>8}".format(*head))
    for name, r in rows.items():
        print(
            f"{name:7} {r.build_ms:9.2f} {r.eval_ms:8.2f} {r.nodes:11d} {r.us_per_node:13.2f} "
            f"{r.build_ms + r.eval_ms:8.2f}"
        )


def print_full_size(results: dict[str, dict[str, FullSize]]) -> None:
    print(
        f"\nHost work per step at full size (moshiko v0.1), nothing evaluated (step {POSITION}; "
        "LmGen: its first);\ndispatch = primitives x the implementation's us/primitive above"
    )
    head = ("quant", "impl", "build ms", "(wall)", "primitives", "dispatch ms", "host ms")
    print("{:5} {:7} {:>9} {:>8} {:>11} {:>12} {:>8}".format(*head))
    for quant, rows in results.items():
        for name, r in rows.items():
            print(
                f"{quant:5} {name:7} {r.build_ms:9.2f} {r.build_wall_ms:8.2f} {r.nodes:11d} "
                f"{r.dispatch_ms:12.2f} {r.host_ms:8.2f}"
            )
    for quant, rows in results.items():
        print(
            f"{quant}: the engine's first build (its trace) took {rows['engine'].first_ms:.0f} ms"
        )
