"""Bounded lag: when the model falls behind real time, drop frames instead of queueing them.

The microphone-to-speaker delay is: the frame's own 80 ms and the device's input latency, the
frames waiting for the model, the model step, decoding, and the speaker's cushion plus the
device's output latency. The reference client lets its queue grow without limit (it only
prints [LAG]); here every queue has a ceiling derived from `max_delay_ms`, and what overflows
is dropped and counted. Decisions use the delay as it will be heard (the playout buffer says
how long until audio queued now is played, from PortAudio's DAC times), not a frame count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import SettingError
from ..frames import FRAME_MS

DEFAULT_MAX_DELAY_MS = 500.0  # `chat`, `serve` and the service's default budget
MAX_MAX_DELAY_MS = 60_000.0  # beyond a minute nothing is a conversation any more
MIN_MAX_DELAY_MS = 2 * FRAME_MS  # the frame being captured and the one being answered


@dataclass(frozen=True)
class LagPolicy:
    max_delay_ms: float = DEFAULT_MAX_DELAY_MS
    # Predictions are means and the device's timing jitters by a block: aim this far inside
    # the budget so that what is heard stays within it.
    margin_ms: float = 25.0

    def __post_init__(self) -> None:
        low = MIN_MAX_DELAY_MS
        if not (math.isfinite(self.max_delay_ms) and low <= self.max_delay_ms <= MAX_MAX_DELAY_MS):
            raise SettingError(
                f"--max-delay-ms must be between {low:.0f} and {MAX_MAX_DELAY_MS:.0f}, "
                f"got {self.max_delay_ms}"
            )

    @property
    def max_model_backlog(self) -> int:
        """Frames allowed to wait for the model: the budget less the frame being captured and
        the one being answered."""
        return max(int(self.max_delay_ms // FRAME_MS) - 2, 1)

    # --- the three places a frame can be dropped (ages and costs in ms) ---------------------
    def stale(self, age_ms: float) -> bool:
        """Already older than the whole budget when read from the microphone."""
        return age_ms > self.max_delay_ms

    def too_late_for_model(self, age_ms: float, still_to_come_ms: float) -> bool:
        """Could no longer be answered in time: its age plus the step, decoding and the wait
        for the speaker still ahead of it exceed the budget."""
        return age_ms + still_to_come_ms > self.max_delay_ms - self.margin_ms

    def late_for_speaker(self, age_ms: float, heard_in_ms: float, queued_frames: float) -> bool:
        """Decoded audio that would be heard too late. Only with audio already queued ahead of
        it: dropping into an empty buffer leaves silence and saves no delay (under overload the
        listener then hears Moshi with gaps, never nothing)."""
        if queued_frames <= 0:
            return False
        return age_ms + heard_in_ms > self.max_delay_ms - self.margin_ms
