"""Will this checkpoint fit? Estimated before loading, against what the machine can hold.

On Apple Silicon the GPU shares the machine's RAM, but Metal only keeps a part of it resident:
its recommended working set (`max_recommended_working_set_size`), about two thirds of RAM on
8-32 GB Macs and three quarters above. What runs on the GPU (the weights, the KV cache at full
context, MLX's working margin) must fit in it; MLX does not refuse more, macOS swaps and the
conversation lags. Everything (those plus the codec instances, which run on the CPU) must also
fit in RAM less a reserve for the system. Off macOS (MLX's CPU backend) RAM is the only budget.
"""

from __future__ import annotations

import gc
import os
import sys
from dataclasses import dataclass

import mlx.core as mx

from ..checkpoint.config import MoshiConfig
from ..errors import InsufficientMemoryError

GiB = 1024**3
OS_RESERVE = 1 * GiB  # RAM left to the system and the apps beside it
WORKING_MARGIN = 256 * 1024**2  # activations, sampling buffers, allocator slack
TIGHT_FRACTION = 0.85  # above this share of a budget it fits, but other apps will push it out
# Codec (rustymimi) instances alive at once, as the loop runs them: one per side (encoder and
# decoder, each in its own worker process, ~365 MB RSS each as measured) plus one successor
# built during a hand-over every ~40 s; the two sides' hand-overs are staggered, so at most one
# extra exists at a time. Each holds its own copy of the codec's weights.
CODEC_INSTANCES = 3
DEFAULT_CACHE_LIMIT = 512 * 1024**2


@dataclass(frozen=True)
class MachineMemory:
    """What this machine offers: its RAM and, on a Mac, Metal's recommended working set."""

    ram: int
    gpu_working_set: int | None = None  # None: no separate GPU budget (MLX on the CPU)

    @property
    def ram_budget(self) -> int:
        return max(self.ram - OS_RESERVE, 0)

    @property
    def gpu_budget(self) -> int:
        return self.ram_budget if self.gpu_working_set is None else self.gpu_working_set

    @property
    def gpu_label(self) -> str:
        if self.gpu_working_set is None:
            return "usable RAM"
        return "Metal's recommended working set"


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    kv_cache: int
    codec_each: int  # one codec instance (its weights)
    margin: int
    machine: MachineMemory
    codec_instances: int = CODEC_INSTANCES

    @property
    def codec(self) -> int:
        return self.codec_each * self.codec_instances

    @property
    def on_gpu(self) -> int:
        """What must stay resident for the model's steps: weights, KV cache, margin."""
        return self.weights + self.kv_cache + self.margin

    @property
    def total(self) -> int:
        return self.on_gpu + self.codec

    @property
    def fits_gpu(self) -> bool:
        return self.on_gpu <= self.machine.gpu_budget

    @property
    def fits_ram(self) -> bool:
        return self.total <= self.machine.ram_budget

    @property
    def fits(self) -> bool:
        return self.fits_gpu and self.fits_ram

    @property
    def tight(self) -> bool:
        """It fits, but with less than 15 % to spare in one of the budgets."""
        return self.fits and (
            self.on_gpu > TIGHT_FRACTION * self.machine.gpu_budget
            or self.total > TIGHT_FRACTION * self.machine.ram_budget
        )

    @property
    def verdict(self) -> str:
        return "does not fit" if not self.fits else "fits, tightly" if self.tight else "fits"

    def to_dict(self) -> dict[str, int | bool | str | None]:
        return {
            "weights": self.weights,
            "kv_cache": self.kv_cache,
            "codec": self.codec,
            "codec_instances": self.codec_instances,
            "margin": self.margin,
            "on_gpu": self.on_gpu,
            "total": self.total,
            "ram": self.machine.ram,
            "gpu_working_set": self.machine.gpu_working_set,
            "fits": self.fits,
            "tight": self.tight,
        }


def kv_cache_bytes(config: MoshiConfig) -> int:
    """Keys and values, bf16, at full context: main transformer plus the depformer."""
    main = 2 * config.num_layers * config.context * config.dim * 2
    dep = 2 * config.depformer_num_layers * config.dep_q * config.depformer_dim * 2
    return main + dep


def physical_ram() -> int:
    """Physical RAM in bytes (the same call works on macOS and Linux)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def metal_working_set() -> int | None:
    """Metal's recommended working set in bytes; None off macOS or without Metal."""
    if sys.platform != "darwin":
        return None
    try:
        if not mx.metal.is_available():
            return None
        info = getattr(mx, "device_info", None) or mx.metal.device_info  # newer MLX: mx.*
        size = int(info().get("max_recommended_working_set_size", 0))
    except (AttributeError, RuntimeError, TypeError, ValueError):
        return None
    return size or None


def machine_memory() -> MachineMemory:
    return MachineMemory(ram=physical_ram(), gpu_working_set=metal_working_set())


def estimate(
    config: MoshiConfig,
    weights_bytes: int,
    codec_bytes: int,
    machine: MachineMemory | None = None,
) -> MemoryEstimate:
    """`codec_bytes`: one codec instance (the size of its weights file)."""
    return MemoryEstimate(
        weights=weights_bytes,
        kv_cache=kv_cache_bytes(config),
        codec_each=codec_bytes,
        margin=WORKING_MARGIN,
        machine=machine if machine is not None else machine_memory(),
    )


_SMALLER = {
    "bf16": "use --quant q8 or --quant q4 (8.2 or 4.8 GB of weights instead of 15.4 GB)",
    "q8": "use --quant q4 (about 4.8 GB of weights instead of 8.2 GB)",
}


def require_fit(est: MemoryEstimate, label: str, quant_label: str) -> None:
    """Refuse a checkpoint that cannot fit, with advice on what would."""
    m = est.machine
    # Off macOS the RAM check covers the model too (everything runs in RAM): one message.
    if not est.fits_gpu and m.gpu_working_set is not None:
        advice = _SMALLER.get(
            quant_label,
            "no smaller published quantization exists: this needs a Mac with more memory",
        )
        raise InsufficientMemoryError(
            f"{label} needs about {est.on_gpu / GiB:.1f} GiB resident for the model (weights "
            f"{est.weights / GiB:.1f}, KV cache {est.kv_cache / GiB:.1f}, margin "
            f"{est.margin / GiB:.2f}) but {m.gpu_label} here is {m.gpu_budget / GiB:.1f} GiB "
            f"(of {m.ram / GiB:.1f} GiB RAM): it would swap and fall behind real time",
            hint=f"{advice}; --skip-memory-check loads it anyway",
        )
    if not est.fits:
        advice = _SMALLER.get(quant_label, "close other apps or use a machine with more memory")
        raise InsufficientMemoryError(
            f"{label} needs about {est.total / GiB:.1f} GiB (weights {est.weights / GiB:.1f}, "
            f"KV cache {est.kv_cache / GiB:.1f}, {est.codec_instances} codec instances "
            f"{est.codec / GiB:.1f}) but this machine has {m.ram / GiB:.1f} GiB of which about "
            f"{m.ram_budget / GiB:.1f} can be used",
            hint=f"{advice}; --skip-memory-check loads it anyway",
        )


def memory_warning(est: MemoryEstimate, label: str, quant_label: str) -> str | None:
    """A one-line warning when it fits with little to spare; None when it is comfortable."""
    if not est.tight:
        return None
    m = est.machine
    if m.gpu_working_set is not None and est.on_gpu > TIGHT_FRACTION * m.gpu_budget:
        used = f"{est.on_gpu / GiB:.1f} of {m.gpu_budget / GiB:.1f} GiB of {m.gpu_label}"
        share = est.on_gpu / m.gpu_budget
    else:
        used = f"{est.total / GiB:.1f} of {m.ram_budget / GiB:.1f} GiB of usable RAM"
        share = est.total / m.ram_budget
    smaller = _SMALLER.get(quant_label)
    advice = "close other apps (browsers, other models)" + (
        f", or {smaller.split(' (')[0]}" if smaller else ""
    )
    return f"{label} fits, but tightly: {used} ({share:.0%}); {advice}"


def set_cache_limit(limit: int = DEFAULT_CACHE_LIMIT) -> int:
    """Cap MLX's buffer cache so freed memory goes back instead of piling up into swap."""
    return mx.set_cache_limit(limit)


def release_freed_memory() -> None:
    """Give back what dropped models and engines held: collect their reference cycles (an
    engine and its compiled step refer to each other), then empty MLX's buffer cache."""
    gc.collect()
    mx.clear_cache()


def memory_snapshot() -> dict[str, int]:
    """MLX's own counters, in bytes."""
    return {
        "active": mx.get_active_memory(),
        "peak": mx.get_peak_memory(),
        "cache": mx.get_cache_memory(),
    }
