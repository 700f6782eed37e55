"""Constant-memory running statistics, so a session of hours keeps flat memory."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# 0.1 ms bins up to 2 s, then one overflow bin: exact enough for percentiles of frame timings.
_BIN_MS = 0.1
_BINS = 20_000


@dataclass
class Histogram:
    """Millisecond values: count, mean, max and percentiles in O(1) memory."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros(_BINS + 1, dtype=np.int64))
    n: int = 0
    total: float = 0.0
    maximum: float = 0.0

    def add(self, ms: float) -> None:
        if not math.isfinite(ms):
            return
        ms = max(ms, 0.0)
        self.counts[min(int(ms / _BIN_MS), _BINS)] += 1
        self.n += 1
        self.total += ms
        self.maximum = max(self.maximum, ms)

    def percentile(self, q: float) -> float:
        """The value below which `q` percent of the values fall (bin upper edge)."""
        if self.n == 0:
            return 0.0
        rank = math.ceil(q / 100.0 * self.n)
        index = int(np.searchsorted(np.cumsum(self.counts), max(rank, 1)))
        return min((index + 1) * _BIN_MS, self.maximum)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    def summary(self) -> dict[str, float]:
        return {
            "count": self.n,
            "mean": round(self.mean, 2),
            "p50": round(self.percentile(50), 2),
            "p95": round(self.percentile(95), 2),
            "p99": round(self.percentile(99), 2),
            "max": round(self.maximum, 2),
        }
