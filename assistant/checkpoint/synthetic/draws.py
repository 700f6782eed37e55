"""Random values for synthetic weights, drawn from a table of their distribution's quantiles.

A full-size checkpoint holds billions of random values, and numpy's normal sampler costs about
12 ns a value. Here each value is one of 65,536 equiprobable quantiles of the distribution,
picked by a random 16-bit index: about 2 ns a value (half of it the random bits), already in
the file's dtype. The quantiles are finer than bfloat16's resolution, so a bf16 tensor holds
the same values a sampler would give, up to the sampler's tails beyond 4.3 standard deviations.
"""

from __future__ import annotations

import functools
from statistics import NormalDist

import numpy as np

from ..layout import BF16
from ..mimi_layout import F32

TABLE_SIZE = 1 << 16  # one 16-bit index a value
# Indices drawn and looked up at once: they stay in the CPU's cache (the main saving).
_BLOCK = 1 << 16


@functools.cache
def _standard_normal() -> np.ndarray:
    """The standard normal's quantiles at the middle of each 1/65,536 of probability."""
    inv_cdf = NormalDist().inv_cdf
    table = np.array([inv_cdf((i + 0.5) / TABLE_SIZE) for i in range(TABLE_SIZE)])
    table.flags.writeable = False
    return table


@functools.cache  # (a tensor source asks for the same few tables again and again)
def normal_table(std: float, dtype: str) -> np.ndarray:
    """Quantiles of N(0, std²) as `dtype` ("F32", or "BF16" as its uint16 bits)."""
    return _as(_standard_normal() * std, dtype)


@functools.cache
def uniform_table(low: float, high: float, dtype: str) -> np.ndarray:
    """Quantiles of the uniform distribution on [low, high] as `dtype` (see `normal_table`)."""
    middles = (np.arange(TABLE_SIZE) + 0.5) / TABLE_SIZE
    return _as(low + (high - low) * middles, dtype)


def draw(rng: np.random.Generator, table: np.ndarray, count: int) -> np.ndarray:
    """`count` values picked from `table` (TABLE_SIZE entries) uniformly at random."""
    if len(table) != TABLE_SIZE:
        raise ValueError(f"a table of {len(table)} values, expected {TABLE_SIZE}")
    out = np.empty(count, dtype=table.dtype)
    for start in range(0, count, _BLOCK):
        n = min(_BLOCK, count - start)
        # Four 16-bit indices from each 64-bit draw: the cheapest random bits numpy gives.
        index = rng.bit_generator.random_raw((n + 3) // 4).view(np.uint16)[:n]
        # Every index is in range: "wrap" skips the bounds check "raise" would make.
        np.take(table, index, out=out[start : start + n], mode="wrap")
    return out


def bf16_bits(values: np.ndarray) -> np.ndarray:
    """float -> bfloat16 bits, rounded to nearest even (finite values)."""
    bits = values.astype(np.float32).view(np.uint32)
    bits = bits + (np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1)))
    return (bits >> 16).astype(np.uint16)


def _as(values: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == F32:
        table = values.astype(np.float32)
    elif dtype == BF16:
        table = bf16_bits(values)
    else:
        raise ValueError(f"no table for dtype {dtype}")
    table.flags.writeable = False
    return table
