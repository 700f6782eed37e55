"""A conversation's delay over time, from the metrics snapshot it wrote each second
(`metrics.jsonl`, `Snapshot.to_dict()`): the mic-to-speaker delay's median and p95 over the
recent window (the last 10 s) at each second, thinned to a series short enough for a chart.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..conversation import session_files as files
from ..errors import HistoryError
from ..files import open_regular

MAX_POINTS = 600  # a chart's worth; an hour of snapshots is 3,600
MAX_LINE_BYTES = 64 << 10  # a snapshot is ~2 kB; a longer line is not one
MAX_LINES = 1 << 20  # 12 days of snapshots: beyond that the file is not ours


@dataclass(frozen=True)
class DelayPoint:
    t: float  # seconds into the conversation
    delay_p50: float  # ms
    delay_p95: float  # ms

    def to_dict(self) -> dict[str, float]:
        return {
            "t": round(self.t, 2),
            "delay_p50": round(self.delay_p50, 1),
            "delay_p95": round(self.delay_p95, 1),
        }


def delay_series(folder: Path, max_points: int = MAX_POINTS) -> list[DelayPoint]:
    """The delay at each second the conversation recorded one, at most `max_points` long:
    when thinned, each point covers consecutive seconds (the first one's time, the mean of
    their medians, the highest of their p95s, so no spike is smoothed away). A missing or
    damaged file gives what could be read; damaged lines are skipped."""
    points = _read(folder / files.METRICS)
    if len(points) <= max_points:
        return points
    size = math.ceil(len(points) / max_points)
    thinned = []
    for i in range(0, len(points), size):
        group = points[i : i + size]
        p50 = sum(p.delay_p50 for p in group) / len(group)
        thinned.append(DelayPoint(group[0].t, p50, max(p.delay_p95 for p in group)))
    return thinned


def _read(path: Path) -> list[DelayPoint]:
    points: list[DelayPoint] = []
    try:
        f = open_regular(path, HistoryError, what="metrics file")
    except HistoryError:
        return points
    with f:
        for _ in range(MAX_LINES):
            line = f.readline(MAX_LINE_BYTES)
            if not line:
                break
            point = _point(line)
            if point is not None:
                points.append(point)
    return points


def _point(line: bytes) -> DelayPoint | None:
    try:
        snap = json.loads(line)
        t = snap["elapsed_s"]
        window = snap["stages"]["delay"]["window"]
        count, p50, p95 = window["count"], window["p50"], window["p95"]
    except (ValueError, KeyError, TypeError):
        return None  # a line cut by a crash, or not a snapshot
    values = (t, count, p50, p95)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    if not count or not all(math.isfinite(v) and 0 <= v < 1e9 for v in values):
        return None
    return DelayPoint(float(t), float(p50), float(p95))
