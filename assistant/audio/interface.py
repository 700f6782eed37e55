"""What the conversation loop sees of any audio backend (devices or files)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .buffers import AudioCounters, CapturedFrame, PlayedChunk


@dataclass(frozen=True)
class StreamLatency:
    input_s: float  # as reported by PortAudio for the opened streams
    output_s: float
    playout_s: float  # the playout buffer's priming depth, on top of output_s

    @property
    def round_trip_s(self) -> float:
        return self.input_s + self.output_s + self.playout_s


class AudioIO(Protocol):
    """What the conversation loop needs from an audio backend."""

    @property
    def counters(self) -> AudioCounters: ...
    @property
    def latency(self) -> StreamLatency: ...
    @property
    def realtime(self) -> bool:
        """True when frames arrive on a clock the loop must keep up with (a microphone, a
        paced file): late frames are then dropped; False: the loop waits instead."""
        ...

    @property
    def finished(self) -> bool: ...
    def start(self) -> AudioIO: ...
    def read_frame(self, timeout: float | None = 1.0) -> CapturedFrame | None: ...
    def play_frame(self, samples: np.ndarray) -> None: ...
    def playout_depth(self) -> int: ...
    def drain_played(self) -> list[PlayedChunk]: ...
    def stop(self) -> None: ...
