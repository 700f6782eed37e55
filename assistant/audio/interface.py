"""What the conversation loop sees of any audio backend (devices or files)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .buffers import AudioCounters, CapturedFrame, PlayedChunk
from .playout import Started


@dataclass(frozen=True)
class StreamLatency:
    input_s: float  # as reported by PortAudio for the opened streams
    output_s: float
    playout_s: float  # the playout buffer's cushion now, on top of output_s


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
    def drain_notices(self) -> list[str]:
        """What the user should be told since the last call (a fallback block size, a
        speaker that went away ...)."""
        ...

    def start(self) -> AudioIO: ...
    def read_frame(self, timeout: float | None = 1.0) -> CapturedFrame | None: ...
    def discard_input(self) -> None:
        """Forget what was captured so far (before the conversation began)."""
        ...

    def pending_frames(self) -> int:
        """Captured frames waiting to be read (a backlog: the loop is behind)."""
        ...

    def play_frame(self, samples: np.ndarray, tag: object = None) -> None:
        """Queue audio; `tag` comes back from `drain_started` when its first sample is heard,
        or from `drain_dropped` if it never is."""
        ...

    def playout_depth(self) -> float:
        """Frames queued for the speaker, not yet played."""
        ...

    def expect_hole(self) -> None:
        """A frame of Moshi's audio will be missing (the loop dropped it to bound the delay):
        the speaker's cushion does not grow for the gap it leaves."""
        ...

    def heard_in_s(self) -> float:
        """From now until audio queued now is heard (None-free: 0 when unknown)."""
        ...

    def describe(self) -> dict[str, object]:
        """How the audio runs (profile, block, cushion ...), for dashboards and summaries."""
        ...

    def drain_started(self) -> list[Started]: ...
    def drain_dropped(self) -> list[object]: ...
    def drain_played(self) -> list[PlayedChunk]: ...
    def upcoming(self, n: int) -> tuple[int, np.ndarray]:
        """The next `n` samples the speaker will play as things stand, and the output
        position of the first (see `PlayoutBuffer.upcoming`); silence where none is known."""
        ...

    def stop(self) -> None: ...
