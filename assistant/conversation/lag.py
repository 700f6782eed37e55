"""Bounded lag: when the model falls behind real time, drop frames instead of queueing them.

The microphone-to-speaker delay is roughly: frames waiting for the model + the model step +
decoding + frames waiting in the playout buffer, times 80 ms each. The reference client lets
its queue grow without limit (it only prints [LAG]); here every queue has a ceiling derived
from `max_delay_ms`, and what overflows is dropped and counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import SettingError
from ..frames import FRAME_MS

DEFAULT_MAX_DELAY_MS = 500.0  # `chat`, `serve` and the service's default budget
MAX_MAX_DELAY_MS = 60_000.0  # beyond a minute nothing is a conversation any more


@dataclass(frozen=True)
class LagPolicy:
    max_delay_ms: float = DEFAULT_MAX_DELAY_MS
    playout_frames: int = 2  # the playout buffer's jitter cushion (two frames of slack)

    def __post_init__(self) -> None:
        low = 2 * FRAME_MS
        if not (math.isfinite(self.max_delay_ms) and low <= self.max_delay_ms <= MAX_MAX_DELAY_MS):
            raise SettingError(
                f"--max-delay-ms must be between {low:.0f} and {MAX_MAX_DELAY_MS:.0f}, "
                f"got {self.max_delay_ms}"
            )

    @property
    def max_model_backlog(self) -> int:
        """Frames allowed to wait for the model: the delay budget left after one frame in
        flight and the playout cushion."""
        budget = int(self.max_delay_ms // FRAME_MS) - 1 - self.playout_frames
        return max(budget, 1)

    @property
    def max_playout_backlog(self) -> int:
        """Frames allowed in the playout buffer before the oldest are dropped."""
        return self.playout_frames + 1

    # --- the three places a frame can be dropped (ages and costs in ms) ---------------------
    def stale(self, age_ms: float) -> bool:
        """Already older than the whole budget when read from the microphone."""
        return age_ms > self.max_delay_ms

    def too_late_for_model(self, age_ms: float, still_to_come_ms: float) -> bool:
        """Could no longer be answered in time: its age plus the step, decode, playout
        cushion and output latency still ahead of it exceed the budget."""
        return age_ms + still_to_come_ms > self.max_delay_ms

    def late_for_speaker(self, age_ms: float, playout_depth: int, output_latency_ms: float) -> bool:
        """Decoded audio that would be heard too late, or would overfill the playout buffer.
        Only with audio already queued: dropping into an empty buffer would leave a gap."""
        if playout_depth > self.max_playout_backlog:
            return True
        if playout_depth == 0:
            return False
        return age_ms + playout_depth * FRAME_MS + output_latency_ms > self.max_delay_ms
