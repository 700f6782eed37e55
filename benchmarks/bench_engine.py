"""The engine's host overhead and speed against moshi_mlx's LmGen, side by side in one run.

    python -m benchmarks.bench_engine                     # all parts, then the summary line
    python -m benchmarks.bench_engine --parts micro,tiny --steps 300
    python -m benchmarks.bench_engine --checkpoint FOLDER # also time a real checkpoint

Three implementations of one step, on the same weights and user codes:
- `LmGen`: moshi_mlx's reference, timed as its client runs it (`LmGen.step`, `.item()` on the
  text token, `last_audio_tokens()`);
- `before`: the engine before issue 12 (main transformer built in Python each step, compiled
  tail; rebuilt in `engine_baselines.py`);
- `engine`: today's `StreamingEngine`, the whole step one compiled call.

Parts:
1. `full`: host work per step (`host_work.py`): on the micro config, built and evaluated for
   real, each implementation's main-thread CPU to build a step and to dispatch it, per
   primitive; then at full size (moshiko v0.1, q4 and q8) with nothing evaluated (the weights
   are one-element broadcasts, see `engine_baselines.py`): the build timed, the primitives
   counted, their dispatch estimated at the micro cost. Host ms/step = build + dispatch.
2. `micro`: a made-up tiny architecture (dim 64, 2 layers, vocabulary 100, random weights never
   saved) where compute is negligible: step time there is host overhead.
3. `tiny`: the TINY config (what the tests' synthetic checkpoints use), random weights, in bf16
   and quantized q4 / q8 as the published checkpoints are.
The implementations alternate step by step (the order rotates), so all see the same machine.
The default run ends with one line a script can read, `summary: host ms/step at full size
q4 A q8 B (LmGen q4 C q8 D); micro speed-up E x; tiny speed-up F x` (speed-up: the median over
the steps of LmGen's step time over the engine's in the same round, greedy; tiny: bf16).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import mlx.core as mx
import numpy as np
from moshi_mlx import models, utils
from moshi_mlx.models import Lm

from assistant.checkpoint.config import MICRO, MOSHIKO_V0_1, TINY, MoshiConfig
from assistant.checkpoint.layout import Q4, Q8, Quantization
from assistant.checkpoint.resolve import CheckpointSpec, resolve
from assistant.errors import AssistantError
from assistant.voice.engine import StreamingEngine
from assistant.voice.loader import prepare
from assistant.voice.model import build_model
from assistant.voice.sampling import SamplingConfig
from benchmarks.engine_baselines import PreviousStep
from benchmarks.host_work import IMPLS, calibrate, full_size, print_calibration, print_full_size


# --- parts 2 and 3: step time against LmGen -------------------------------------------------
@dataclass
class SpeedRow:
    label: str
    p50: dict[str, float]  # impl -> ms
    mean: dict[str, float]
    ratio: dict[str, float]  # impl -> median over steps of LmGen's ms / the impl's, same round
    identical: bool  # greedy: all three gave the same tokens every step
    compiled: bool

    def speedup(self, impl: str = "engine") -> float:
        return self.ratio[impl]


def step_times(
    label: str,
    config: MoshiConfig,
    model: Lm,
    sampling: SamplingConfig,
    codes: np.ndarray,
    warmup: int,
    seed: int,
) -> SpeedRow:
    """Alternate the three on the same codes; ms per step after `warmup` steps."""
    engine = StreamingEngine(model, config, sampling)
    engine.warmup()
    before = StreamingEngine(model, config, sampling)
    before.graph = PreviousStep(model, sampling, config.context)  # type: ignore[assignment]
    before.warmup()
    model.warmup()
    for c in model.transformer_cache:
        c.reset()
    gen = models.LmGen(
        model=model,
        max_steps=len(codes) + 5,
        text_sampler=reference_sampler(
            sampling.text_temperature, sampling.text_top_k, config.text_card
        ),
        audio_sampler=reference_sampler(
            sampling.audio_temperature, sampling.audio_top_k, config.card
        ),
    )
    mx.random.seed(seed)  # the reference samples from the global MLX state

    def lmgen(frame: np.ndarray) -> tuple[int, np.ndarray | None]:
        text = gen.step(mx.array(frame[None]))[0].item()
        audio = gen.last_audio_tokens()
        return text, None if audio is None else np.array(audio).astype(np.uint32).reshape(-1)

    def ours(e: StreamingEngine) -> Callable[[np.ndarray], tuple[int, np.ndarray | None]]:
        def step(frame: np.ndarray) -> tuple[int, np.ndarray | None]:
            r = e.step(frame)
            return r.text_token, r.audio_codes

        return step

    fns = {"LmGen": lmgen, "before": ours(before), "engine": ours(engine)}
    times: dict[str, list[float]] = {name: [] for name in IMPLS}
    same = 0
    for i, frame in enumerate(codes):
        order = IMPLS[i % 3 :] + IMPLS[: i % 3]
        outs = {}
        for name in order:
            started = time.perf_counter()
            outs[name] = fns[name](frame)
            times[name].append(time.perf_counter() - started)
        same += all(_same(outs["LmGen"], outs[name]) for name in ("before", "engine"))
    ms = {name: [t * 1e3 for t in ts[warmup:]] for name, ts in times.items()}
    ref = np.array(ms["LmGen"])
    return SpeedRow(
        label=label,
        p50={name: statistics.median(v) for name, v in ms.items()},
        mean={name: statistics.fmean(v) for name, v in ms.items()},
        # Paired: a slow spell on a shared machine slows one round of all three alike.
        ratio={name: float(np.median(ref / np.array(v))) for name, v in ms.items()},
        identical=same == len(codes),
        compiled=engine.compiled,
    )


def _same(a: tuple[int, np.ndarray | None], b: tuple[int, np.ndarray | None]) -> bool:
    if a[0] != b[0] or (a[1] is None) != (b[1] is None):
        return False
    return a[1] is None or bool((a[1] == b[1]).all())


def reference_sampler(temperature: float, top_k: int, vocab: int) -> utils.Sampler:
    """moshi_mlx's sampler doing what `sample_token` does (a top-k of the whole vocabulary,
    or 0, is no truncation: moshi_mlx refuses it, and would use top-p without top_p=1)."""
    if temperature == 0:
        return utils.Sampler(temp=0.0)
    if top_k <= 0 or top_k >= vocab:
        return utils.Sampler(temp=temperature, top_p=1.0)
    return utils.Sampler(temp=temperature, top_k=top_k)


def random_model(config: MoshiConfig, quant: Quantization | None, seed: int) -> Lm:
    mx.random.seed(seed)
    model = build_model(config, quant)
    mx.eval(model.parameters())
    return model


def checkpoint_model(target: str) -> tuple[str, MoshiConfig, Lm]:
    """A real checkpoint as the product loads it (headers checked first)."""
    try:
        report, _ = prepare(resolve(CheckpointSpec(target=target)), check_memory=True)
    except AssistantError as e:
        sys.exit(f"error: {e}")
    m = report.model
    model = build_model(m.config, m.quantization)
    try:
        model.load_weights(str(m.path), strict=True)
    except ValueError as e:
        sys.exit(f"{m.path}: weights do not fit the config ({str(e).splitlines()[0][:300]})")
    mx.eval(model.parameters())
    return f"{m.path.name} ({m.quant_label})", m.config, model


def print_speed(title: str, rows: list[SpeedRow], steps: int, warmup: int) -> None:
    print(
        f"\n{title}: {steps} timed steps after {warmup} warm-up steps, p50 (mean) ms per step;\n"
        "speed-ups: median over the steps of LmGen's time / the other's in the same round"
    )
    head = ("", "LmGen", "before", "engine", "LmGen/engine", "LmGen/before", "same tokens")
    print("{:28} {:>15} {:>15} {:>15} {:>13} {:>13} {:>12}".format(*head))
    for r in rows:
        cells = [f"{r.p50[n]:7.2f} ({r.mean[n]:6.2f})" for n in IMPLS]
        same = ("yes" if r.identical else "NO") if "greedy" in r.label else "-"
        print(
            f"{r.label:28} {cells[0]:>15} {cells[1]:>15} {cells[2]:>15} "
            f"{r.speedup():12.2f}x {r.speedup('before'):12.2f}x {same:>12}"
        )
    if rows and not rows[0].compiled:
        print("  (the engine ran uncompiled: mx.compile is not available here)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--parts", default="full,micro,tiny", help="comma-separated: full, micro, tiny")
    p.add_argument("--checkpoint", help="also time this checkpoint folder (or preset)")
    p.add_argument("--reps", type=int, default=20, help="full size: builds timed per row")
    p.add_argument("--steps", type=int, default=200, help="micro: timed steps")
    p.add_argument("--tiny-steps", type=int, default=80, help="tiny and --checkpoint: timed steps")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    p.add_argument("--seed", type=int, default=0, help="weights, codes, sampling")
    p.add_argument("--sampled", action="store_true", help="also time sampled steps")
    args = p.parse_args(argv)
    parts = set(args.parts.split(","))
    unknown = parts - {"full", "micro", "tiny"}
    if unknown:
        sys.exit(f"unknown part(s) {', '.join(sorted(unknown))} (full, micro, tiny)")
    modes = {"greedy": SamplingConfig.greedy()}
    if args.sampled:
        modes["sampled"] = SamplingConfig(seed=args.seed)
    print(f"MLX {mx.__version__} on {mx.default_device()}")

    full = {}
    if "full" in parts:
        micro_model = random_model(MICRO, None, args.seed)
        per_node = calibrate(micro_model, MICRO, args.steps, args.warmup)
        del micro_model
        print_calibration(per_node, args.steps)
        for name, quant in (("q4", Q4), ("q8", Q8)):
            full[name] = full_size(MOSHIKO_V0_1, quant, args.reps, per_node)
        print_full_size(full)

    def speed(label: str, config: MoshiConfig, model: Lm, steps: int) -> list[SpeedRow]:
        rng = np.random.default_rng(args.seed)
        codes = rng.integers(0, config.card, size=(args.warmup + steps, config.user_codebooks))
        return [
            step_times(
                f"{label} {mode}", config, model, s, codes.astype(np.int32), args.warmup, args.seed
            )
            for mode, s in modes.items()
        ]

    micro: list[SpeedRow] = []
    if "micro" in parts:
        micro = speed("micro bf16", MICRO, random_model(MICRO, None, args.seed), args.steps)
        print_speed("Micro config (compute negligible)", micro, args.steps, args.warmup)
    tiny: list[SpeedRow] = []
    if "tiny" in parts:
        quants: tuple[tuple[str, Quantization | None], ...] = (
            ("bf16", None),
            ("q4", Q4),
            ("q8", Q8),
        )
        for name, tiny_quant in quants:
            model = random_model(TINY, tiny_quant, args.seed)
            tiny += speed(f"tiny {name}", TINY, model, args.tiny_steps)
            del model
        print_speed("TINY config, random weights", tiny, args.tiny_steps, args.warmup)
    if args.checkpoint:
        label, config, model = checkpoint_model(args.checkpoint)
        rows = speed(label, config, model, args.tiny_steps)
        print_speed(f"Checkpoint {args.checkpoint}", rows, args.tiny_steps, args.warmup)

    if {"full", "micro", "tiny"} <= parts:
        e, lm = ({q: full[q][impl].host_ms for q in full} for impl in ("engine", "LmGen"))
        print(
            f"summary: host ms/step at full size q4 {e['q4']:.2f} q8 {e['q8']:.2f} "
            f"(LmGen q4 {lm['q4']:.2f} q8 {lm['q8']:.2f}); micro speed-up "
            f"{micro[0].speedup():.2f} x; tiny speed-up {tiny[0].speedup():.2f} x"
        )


if __name__ == "__main__":
    main()
