"""Time the streaming engine's step against moshi_mlx's LmGen on the same weights and inputs.

    python scripts/bench_engine.py                       # random TINY weights (fixed seed)
    python scripts/bench_engine.py --checkpoint FOLDER --steps 200 --warmup 20

The reference is timed the way moshi_mlx's own client runs it: `LmGen.step`, then
`text_token[0].item()`, `last_audio_tokens()` and a numpy copy of the codes. The two
implementations alternate step by step (which goes first flips every step), on the same
user codes, so both see the same machine state.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
from moshi_mlx import models, utils
from moshi_mlx.models import Lm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from assistant.checkpoint.config import TINY, MoshiConfig
from assistant.checkpoint.layout import Quantization
from assistant.checkpoint.resolve import CheckpointSpec, resolve
from assistant.errors import AssistantError
from assistant.voice.engine import StreamingEngine
from assistant.voice.loader import prepare
from assistant.voice.model import build_model
from assistant.voice.sampling import SamplingConfig


@dataclass
class Checkpoint:
    config: MoshiConfig
    quant: Quantization | None
    file: Path | None  # None: random weights
    label: str


def open_checkpoint(target: str | None) -> Checkpoint:
    """The checkpoint as the product sees it: resolved, headers inspected and validated."""
    if target is None:
        return Checkpoint(TINY, None, None, "RANDOM weights, TINY config (no --checkpoint given)")
    try:
        report, _ = prepare(resolve(CheckpointSpec(target=target)), check_memory=True)
    except AssistantError as e:
        sys.exit(f"error: {e}")
    m = report.model
    kind = (
        "bf16" if m.quantization is None else f"{m.quant_label} (group {m.quantization.group_size})"
    )
    return Checkpoint(m.config, m.quantization, m.path, f"{m.path} [{kind}, {m.config_source}]")


def load_model(ckpt: Checkpoint, seed: int) -> Lm:
    mx.random.seed(seed)  # same seed -> the same random weights for both implementations
    model = build_model(ckpt.config, ckpt.quant)
    if ckpt.file is not None:
        try:
            model.load_weights(str(ckpt.file), strict=True)
        except ValueError as e:  # names or shapes: wrong config for these tensors
            first = str(e).splitlines()[0][:300]
            sys.exit(f"{ckpt.file}: weights do not fit the config ({first}...)")
    mx.eval(model.parameters())  # loading is lazy: the disk read happens here
    return model


def reference_sampler(temperature: float, top_k: int) -> utils.Sampler:
    if temperature == 0:
        return utils.Sampler(temp=0.0)
    return utils.Sampler(temp=temperature, top_k=top_k)


def run_mode(
    name: str,
    ckpt: Checkpoint,
    ref_model: Lm,
    eng_model: Lm,
    sampling: SamplingConfig,
    codes: np.ndarray,
    warmup: int,
    seed: int,
) -> dict[str, Any]:
    """Alternate engine and reference steps on the same codes; ms per step after warmup."""
    engine = StreamingEngine(eng_model, ckpt.config, sampling)
    engine.warmup()
    ref_model.warmup()
    for c in ref_model.transformer_cache:
        c.reset()
    gen = models.LmGen(
        model=ref_model,
        max_steps=len(codes) + 5,
        text_sampler=reference_sampler(sampling.text_temperature, sampling.text_top_k),
        audio_sampler=reference_sampler(sampling.audio_temperature, sampling.audio_top_k),
    )
    mx.random.seed(seed)  # the reference samples from the global MLX state

    def ref_step(frame: np.ndarray) -> tuple[int, np.ndarray | None]:
        data = mx.array(frame[None])  # [1, n_user], as the reference client builds it
        text = gen.step(data)[0].item()
        audio = gen.last_audio_tokens()
        return text, None if audio is None else np.array(audio).astype(np.uint32)

    def eng_step(frame: np.ndarray) -> tuple[int, np.ndarray | None]:
        r = engine.step(frame)
        return r.text_token, r.audio_codes

    times: dict[str, list[float]] = {"engine": [], "reference": []}
    same = 0
    for i, frame in enumerate(codes):
        order = [("reference", ref_step), ("engine", eng_step)]
        if i % 2:
            order.reverse()
        outs: dict[str, tuple[int, np.ndarray | None]] = {}
        for label, fn in order:
            t0 = time.perf_counter()
            outs[label] = fn(frame)
            times[label].append(time.perf_counter() - t0)
        (rt, ra), (et, ea) = outs["reference"], outs["engine"]
        same += rt == et and _same_codes(ra, ea)
    row: dict[str, Any] = {
        "mode": name,
        "steps": len(codes) - warmup,
        "identical": same == len(codes),
    }
    for label, ts in times.items():
        ms = [t * 1e3 for t in ts[warmup:]]
        row[f"{label}_p50"] = statistics.median(ms)
        row[f"{label}_mean"] = statistics.fmean(ms)
    return row


def _same_codes(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool((a.reshape(-1) == b.reshape(-1)).all())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", help="folder holding the LM .safetensors (and config.json)")
    p.add_argument("--steps", type=int, default=200, help="timed steps per mode")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps before timing")
    p.add_argument("--seed", type=int, default=0, help="weights (when random), codes, sampling")
    p.add_argument("--modes", default="greedy,sampled", help="comma-separated: greedy, sampled")
    p.add_argument(
        "--share-weights",
        action="store_true",
        help="one model for both implementations (halves memory; caches stay separate)",
    )
    args = p.parse_args(argv)

    ckpt = open_checkpoint(args.checkpoint)
    print(f"weights: {ckpt.label}")
    t0 = time.perf_counter()
    ref_model = load_model(ckpt, args.seed)
    eng_model = ref_model if args.share_weights else load_model(ckpt, args.seed)
    print(f"models built and evaluated in {time.perf_counter() - t0:.1f} s")
    cfg = ckpt.config
    rng = np.random.default_rng(args.seed)
    codes = rng.integers(0, cfg.card, size=(args.warmup + args.steps, cfg.user_codebooks))
    codes = codes.astype(np.int32)
    modes = {
        "greedy": SamplingConfig.greedy(),
        "sampled": SamplingConfig(seed=args.seed),
    }
    rows = []
    for name in args.modes.split(","):
        if name not in modes:
            sys.exit(f"unknown mode {name!r} (greedy, sampled)")
        rows.append(
            run_mode(name, ckpt, ref_model, eng_model, modes[name], codes, args.warmup, args.seed)
        )

    print(f"{args.steps} timed steps after {args.warmup} warm-up steps, ms per step:")
    head = ("mode", "engine p50", "mean", "reference p50", "mean", "ratio p50", "mean")
    print("{:8} {:>11} {:>8} {:>14} {:>8} {:>10} {:>6}".format(*head))
    for r in rows:
        print(
            f"{r['mode']:8} {r['engine_p50']:11.2f} {r['engine_mean']:8.2f} "
            f"{r['reference_p50']:14.2f} {r['reference_mean']:8.2f} "
            f"{r['reference_p50'] / r['engine_p50']:10.2f} "
            f"{r['reference_mean'] / r['engine_mean']:6.2f}"
        )
    for r in rows:
        if r["mode"] == "greedy":
            print(f"greedy tokens identical to the reference on every step: {r['identical']}")
            if len(codes) >= cfg.context:
                print(f"  (expected only below the context, {cfg.context} steps: the reference")
                print("   attends to context + 1 keys, and to the wrong ones from step 4096)")
    print("ratio = reference / engine (above 1: the engine is faster)")


if __name__ == "__main__":
    main()
