"""Per-call times summarised the same way everywhere in the report."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Timing:
    """Summary of per-call times, in milliseconds."""

    count: int
    mean: float
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, ms: list[float] | np.ndarray) -> Timing:
        a = np.asarray(ms, dtype=np.float64)
        if a.size == 0:
            return cls(0, 0.0, 0.0, 0.0, 0.0, 0.0)
        p50, p95, p99 = np.percentile(a, [50, 95, 99])
        return cls(int(a.size), float(a.mean()), float(p50), float(p95), float(p99), float(a.max()))

    def to_dict(self) -> dict[str, float | int]:
        return {
            "count": self.count,
            "mean": round(self.mean, 3),
            "p50": round(self.p50, 3),
            "p95": round(self.p95, 3),
            "p99": round(self.p99, 3),
            "max": round(self.max, 3),
        }
