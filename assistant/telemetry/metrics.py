"""Live metrics of a conversation, computed from the loop's per-frame records.

The loop hands every finished frame (played or dropped) to `MetricsCollector.on_frame`, from
its worker threads; that only appends a few numbers, so it stays far below the 80 ms budget
(its own cost is measured and reported). `snapshot()` does the arithmetic (percentiles over a
recent window and over the session, memory, counters) when someone looks: the dashboard a few
times a second, the session's exports once a second.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import psutil

from ..frames import FRAME_MS
from .histogram import Histogram
from .records import FrameRecord

STAGES = ("encode", "step", "decode", "delay")
WINDOW_FRAMES = 125  # the "recent" window: 10 s of frames
HISTORY_FRAMES = 60  # values kept for the dashboard's sparklines


@dataclass(frozen=True)
class Percentiles:
    """Milliseconds; nearest-rank percentiles (the value at rank ceil(q * n))."""

    count: int = 0
    mean: float = 0.0
    p50: float = 0.0
    p95: float = 0.0
    p99: float = 0.0
    max: float = 0.0


@dataclass(frozen=True)
class StageStats:
    last: float | None
    window: Percentiles
    session: Percentiles


@dataclass(frozen=True)
class FrameCounts:
    finished: int = 0  # frames that left the pipeline, played or dropped
    answered: int = 0  # went through a model step
    played: int = 0
    dropped_input: int = 0  # dropped before the model (the lag control)
    dropped_output: int = 0  # dropped before the speaker (the lag control)

    @property
    def dropped(self) -> int:
        return self.dropped_input + self.dropped_output


@dataclass(frozen=True)
class MemoryStats:
    """Bytes: MLX's own counters and the whole process' resident memory."""

    mlx_active: int = 0
    mlx_peak: int = 0
    mlx_cache: int = 0
    rss: int = 0  # this process and its children (the codec's worker processes)
    rss_peak: int = 0  # the highest RSS seen by a snapshot


@dataclass(frozen=True)
class Snapshot:
    elapsed_s: float
    frames: FrameCounts
    stages: dict[str, StageStats]
    real_time_factor: float  # recent model step time / 80 ms: under 1 keeps up
    real_time_factor_session: float
    bottleneck: str  # the slowest of encode, step, decode over the window
    model_queue: int  # frames that were waiting for the model (last frame)
    model_queue_max: int  # the most over the window
    playout_queue: float  # frames buffered for the speaker (last frame)
    audio: dict[str, int]
    audio_path: dict[str, Any]  # latency profile, block and cushion ms; {} for files
    memory: MemoryStats
    echo_reduction_db: float | None
    history: dict[str, list[float]]  # recent values per stage, oldest first
    collection_us_per_frame: float

    @property
    def collection_share_of_budget(self) -> float:
        return self.collection_us_per_frame / (FRAME_MS * 1000.0)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["frames"]["dropped"] = self.frames.dropped
        d["collection_share_of_budget"] = self.collection_share_of_budget
        return _rounded(d)


def _no_model_memory() -> Mapping[str, int]:
    return {"active": 0, "peak": 0, "cache": 0}


@dataclass
class MetricSources:
    """Where the figures that are not in the frame records come from."""

    audio_counters: Callable[[], Mapping[str, Any]] = dict
    echo_reduction_db: Callable[[], float | None] = lambda: None
    # How the audio runs: latency profile, block and cushion (ms); {} for files.
    audio_path: Callable[[], Mapping[str, Any]] = dict
    # MLX's active, peak and cache bytes (the runtime passes `voice.memory.memory_snapshot`).
    model_memory: Callable[[], Mapping[str, int]] = _no_model_memory


class _Window:
    """The last `size` values, thread-safe (writers are the loop's workers)."""

    def __init__(self, size: int) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        with self._lock:
            self._values.append(value)

    def values(self) -> list[float]:
        with self._lock:
            return list(self._values)


@dataclass
class _Stage:
    window: _Window = field(default_factory=lambda: _Window(WINDOW_FRAMES))
    session: Histogram = field(default_factory=Histogram)
    last: float | None = None


class MetricsCollector:
    def __init__(
        self,
        sources: MetricSources | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        window_frames: int = WINDOW_FRAMES,
    ) -> None:
        self._clock = clock
        self._window_frames = window_frames
        self._lock = threading.Lock()
        self._process = psutil.Process()
        self.reset(sources)

    def reset(self, sources: MetricSources | None = None) -> None:
        """Start over for a new run, reading `sources` (its audio, its echo canceller ...):
        whoever holds this collector (a dashboard) sees the new run without re-binding."""
        with self._lock:
            self.sources = sources or MetricSources()
            self.started = self._clock()
            self._stages = {s: _Stage(window=_Window(self._window_frames)) for s in STAGES}
            self._model_queue = _Window(self._window_frames)
            self._playout_queue = 0.0
            self._counts = dict.fromkeys(("finished", "answered", "played", "din", "dout"), 0)
            self._rss_peak = 0
            # What collecting costs: time inside on_frame and inside snapshot().
            self._frame_ns = 0
            self._snapshot_ns = 0

    def on_frame(self, record: FrameRecord) -> None:
        """Called once per frame as it leaves the pipeline (from the loop's threads)."""
        t0 = time.perf_counter_ns()
        values = (record.encode_ms, record.step_ms, record.decode_ms, record.delay_ms)
        for name, value in zip(STAGES, values, strict=True):
            if value is not None:
                stage = self._stages[name]
                stage.window.add(value)
                stage.last = value
                with self._lock:
                    stage.session.add(value)
        answered = record.step_end is not None
        self._model_queue.add(record.model_queue_depth)
        with self._lock:
            c = self._counts
            c["finished"] += 1
            c["answered"] += answered
            c["played"] += record.played
            c["din"] += record.dropped and not answered
            c["dout"] += record.dropped and answered
            if not record.dropped and answered:
                self._playout_queue = record.playout_depth
            self._frame_ns += time.perf_counter_ns() - t0

    def snapshot(self) -> Snapshot:
        t0 = time.perf_counter_ns()
        stages, history = {}, {}
        for name, stage in self._stages.items():
            window = stage.window.values()
            with self._lock:
                session = _from_histogram(stage.session)
            stages[name] = StageStats(stage.last, _percentiles(window), session)
            history[name] = window[-HISTORY_FRAMES:]
        step_window = stages["step"].window
        bottleneck = max(("encode", "step", "decode"), key=lambda s: stages[s].window.mean)
        queue = self._model_queue.values()
        with self._lock:
            c = dict(self._counts)
            frames_ns, playout = self._frame_ns, self._playout_queue
        snap = Snapshot(
            elapsed_s=self._clock() - self.started,
            frames=FrameCounts(c["finished"], c["answered"], c["played"], c["din"], c["dout"]),
            stages=stages,
            real_time_factor=step_window.mean / FRAME_MS,
            real_time_factor_session=stages["step"].session.mean / FRAME_MS,
            bottleneck=bottleneck,
            model_queue=int(queue[-1]) if queue else 0,
            model_queue_max=int(max(queue)) if queue else 0,
            playout_queue=playout,
            audio=_audio_figures(self.sources.audio_counters()),
            audio_path=dict(self.sources.audio_path()),
            memory=self._memory(),
            echo_reduction_db=self.sources.echo_reduction_db(),
            history=history,
            collection_us_per_frame=0.0,
        )
        self._snapshot_ns += time.perf_counter_ns() - t0
        cost = (frames_ns + self._snapshot_ns) / 1000.0 / max(c["finished"], 1)
        return replace(snap, collection_us_per_frame=cost)

    def recent_high(self, stage: str, q: float = 0.9) -> float:
        """The stage's `q` quantile over the recent window (ms; 0 before any frame), for the
        lag control, which must follow a machine whose load changes: planning with the mean,
        a jittery stage (the real codec on 2 cores: p50 115, p95 150 ms) put the delay's p95
        at 513 ms against a 500 ms budget."""
        values = sorted(self._stages[stage].window.values())
        return values[min(int(q * len(values)), len(values) - 1)] if values else 0.0

    def session_histograms(self) -> dict[str, Histogram]:
        """Each stage's histogram over the whole session (live objects: read, don't write)."""
        return {name: stage.session for name, stage in self._stages.items()}

    def _memory(self) -> MemoryStats:
        rss = tree_rss(self._process)
        self._rss_peak = max(self._rss_peak, rss)
        mlx = self.sources.model_memory()
        return MemoryStats(
            mlx_active=mlx["active"],
            mlx_peak=mlx["peak"],
            mlx_cache=mlx["cache"],
            rss=rss,
            rss_peak=self._rss_peak,
        )


def tree_rss(process: psutil.Process) -> int:
    """Resident memory of a process and all its children (0 where /proc is hidden).

    A grandchild forked by a child (a codec worker forked by the codec's fork server) maps
    its parent's pages, shared copy-on-write, so its RSS counts them again: only what it holds
    beyond its parent's RSS is added (exact RSS-level accounting, PSS or USS, reads every
    mapping: ~20 ms a worker, too slow for a live dashboard)."""
    try:
        family = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0
    rss: dict[int, int] = {}
    parent: dict[int, int] = {}
    for member in family:
        try:
            size, up = member.memory_info().rss, member.ppid()
        except psutil.Error:  # exited meanwhile
            continue
        rss[member.pid], parent[member.pid] = size, up
    total = 0
    for pid, size in rss.items():
        up = parent[pid]
        forked = pid != process.pid and up != process.pid and up in rss
        total += max(0, size - rss[up]) if forked else size
    return total


def _percentiles(values: list[float]) -> Percentiles:
    if not values:
        return Percentiles()
    ordered = sorted(values)
    n = len(ordered)

    def rank(q: float) -> float:
        return ordered[max(math.ceil(q * n), 1) - 1]

    return Percentiles(n, sum(ordered) / n, rank(0.50), rank(0.95), rank(0.99), ordered[-1])


def _from_histogram(h: Histogram) -> Percentiles:
    return Percentiles(h.n, h.mean, h.percentile(50), h.percentile(95), h.percentile(99), h.maximum)


def _audio_figures(counters: Mapping[str, Any]) -> dict[str, int]:
    keys = ("underruns", "gaps", "overruns", "playout_drops", "callback_errors")
    return {k: int(counters.get(k, 0)) for k in keys}


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value
