"""Bounded lag: when the model falls behind real time, drop frames instead of queueing them.

The microphone-to-speaker delay is roughly: frames waiting for the model + the model step +
decoding + frames waiting in the playout buffer, times 80 ms each. The reference client lets
its queue grow without limit (it only prints [LAG]); here every queue has a ceiling derived
from `max_delay_ms`, and what overflows is dropped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

FRAME_MS = 80.0


@dataclass(frozen=True)
class LagPolicy:
    max_delay_ms: float = 400.0
    playout_frames: int = 2  # the playout buffer's jitter cushion (see NOTES)

    def __post_init__(self) -> None:
        if self.max_delay_ms < 2 * FRAME_MS:
            raise ValueError(f"max delay must be at least {2 * FRAME_MS:.0f} ms")

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
