"""One conversation's summary: what `summary.json` holds and `assistant chat` prints at the end.

Built in one place (`summarize`) from the loop's counters and the metrics collector's session
histograms: there is one set of histograms per stage, the collector's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..version import assistant_version
from .metrics import FrameCounts, MemoryStats, Percentiles, Snapshot
from .model_card import ModelCard
from .records import LoopCounters


@dataclass(frozen=True)
class SessionSummary:
    elapsed_s: float
    counters: LoopCounters  # frames captured, stepped, played and dropped, errors
    frames: FrameCounts  # the same frames as the collector saw them leave the pipeline
    stages_ms: dict[str, Percentiles]  # encode, step, decode, delay over the whole session
    real_time_factor: float  # mean model step / 80 ms over the session
    bottleneck: str
    model_queue_max: int
    max_delay_ms: float
    audio: dict[str, Any]  # the audio backend's counters (underruns, overruns ...)
    audio_path: dict[str, Any]  # latency profile, block and cushion (ms)
    memory: MemoryStats
    echo_reduction_db: float | None
    collection_us_per_frame: float
    collection_share_of_budget: float
    model: ModelCard | None = None
    codec: dict[str, Any] | None = None  # the codec's per-side counters

    def stage(self, name: str) -> Percentiles:
        return self.stages_ms.get(name, Percentiles())

    def to_dict(self) -> dict[str, Any]:
        """summary.json: the loop's counters at the top level, then the metrics."""
        c = self.counters
        d: dict[str, Any] = {
            "version": assistant_version(),  # the assistant's, which wrote this file
            "elapsed_s": round(self.elapsed_s, 3),
            "frames_captured": c.frames_captured,
            "frames_stepped": c.frames_stepped,
            "frames_played": c.frames_played,
            "dropped_input": c.dropped_input,
            "dropped_output": c.dropped_output,
            "real_time_factor": round(self.real_time_factor, 3),
            "max_delay_ms": self.max_delay_ms,
            "stages_ms": {k: _rounded(asdict(v)) for k, v in self.stages_ms.items()},
            "echo_reduction_db": self.echo_reduction_db,
            "audio": dict(self.audio),
            "audio_path": dict(self.audio_path),
            "errors": list(c.errors),
            "frames": {**asdict(self.frames), "dropped": self.frames.dropped},
            "bottleneck": self.bottleneck,
            "model_queue_max": self.model_queue_max,
            "memory": asdict(self.memory),
            "collection_us_per_frame": round(self.collection_us_per_frame, 3),
            "collection_share_of_budget": round(self.collection_share_of_budget, 6),
        }
        if self.model is not None:
            d["model"] = asdict(self.model)
        if self.codec is not None:
            d["codec"] = self.codec
        return d


def summarize(
    snap: Snapshot,
    counters: LoopCounters,
    *,
    max_delay_ms: float,
    audio: dict[str, Any],
    model: ModelCard | None = None,
    codec: dict[str, Any] | None = None,
) -> SessionSummary:
    return SessionSummary(
        elapsed_s=snap.elapsed_s,
        counters=counters,
        frames=snap.frames,
        stages_ms={name: stage.session for name, stage in snap.stages.items()},
        real_time_factor=snap.real_time_factor_session,
        bottleneck=snap.bottleneck,
        model_queue_max=snap.model_queue_max,
        max_delay_ms=max_delay_ms,
        audio=audio,
        audio_path=snap.audio_path,
        memory=snap.memory,
        echo_reduction_db=snap.echo_reduction_db,
        collection_us_per_frame=snap.collection_us_per_frame,
        collection_share_of_budget=snap.collection_share_of_budget,
        model=model,
        codec=codec,
    )


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in d.items()}
