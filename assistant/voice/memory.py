"""Will this checkpoint fit? Estimated before loading, against the machine's memory.

On Apple Silicon the GPU shares the machine's RAM, so the budget is physical memory less
room for macOS and other apps. The estimate counts the weights as stored, the KV cache at
full context (bf16 keys and values for every layer), the Mimi codec, and a working margin.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import mlx.core as mx

from ..checkpoint.config import MoshiConfig
from ..errors import InsufficientMemoryError

GiB = 1024**3
OS_RESERVE = 1 * GiB  # below this much headroom macOS starts swapping hard
WORKING_MARGIN = 256 * 1024**2  # activations, sampling buffers, allocator slack
COMFORT_FRACTION = 0.75  # above this share of RAM, expect pressure from other apps
DEFAULT_CACHE_LIMIT = 512 * 1024**2


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    kv_cache: int
    codec: int
    margin: int
    machine: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.codec + self.margin

    @property
    def budget(self) -> int:
        return max(self.machine - OS_RESERVE, 0)

    @property
    def fits(self) -> bool:
        return self.total <= self.budget

    @property
    def tight(self) -> bool:
        return self.total > COMFORT_FRACTION * self.machine

    def to_dict(self) -> dict[str, int | bool]:
        return {
            "weights": self.weights,
            "kv_cache": self.kv_cache,
            "codec": self.codec,
            "margin": self.margin,
            "total": self.total,
            "machine": self.machine,
            "fits": self.fits,
        }


def kv_cache_bytes(config: MoshiConfig) -> int:
    """Keys and values, bf16, at full context: main transformer plus the depformer."""
    main = 2 * config.num_layers * config.context * config.dim * 2
    dep = 2 * config.depformer_num_layers * config.dep_q * config.depformer_dim * 2
    return main + dep


def machine_memory() -> int:
    """Physical RAM in bytes (the same call works on macOS and Linux)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def estimate(
    config: MoshiConfig, weights_bytes: int, codec_bytes: int, machine: int | None = None
) -> MemoryEstimate:
    return MemoryEstimate(
        weights=weights_bytes,
        kv_cache=kv_cache_bytes(config),
        codec=codec_bytes,
        margin=WORKING_MARGIN,
        machine=machine if machine is not None else machine_memory(),
    )


def require_fit(est: MemoryEstimate, label: str, quant_label: str) -> None:
    """Refuse a checkpoint that cannot fit, with advice on what would."""
    if est.fits:
        return
    advice = {
        "bf16": "use --quant q8 or --quant q4",
        "q8": "use --quant q4 (about 4.8 GB of weights instead of 8.2 GB)",
    }.get(quant_label, "close other apps or use a machine with more memory")
    raise InsufficientMemoryError(
        f"{label} needs about {est.total / GiB:.1f} GiB (weights {est.weights / GiB:.1f}, "
        f"KV cache {est.kv_cache / GiB:.1f}, codec {est.codec / GiB:.1f}) but this machine has "
        f"{est.machine / GiB:.1f} GiB of which about {est.budget / GiB:.1f} can be used",
        hint=f"{advice}; --skip-memory-check loads it anyway",
    )


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
