"""What happened to each 80 ms frame, stage by stage, for stats and the dashboard.

All times are `time.monotonic()` seconds. A frame's record is filled in as it moves through
the pipeline; `None` means the frame never reached that stage (dropped, or still in flight).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class FrameRecord:
    index: int  # capture order, counting dropped frames too
    captured: float
    encode_start: float | None = None
    encode_end: float | None = None
    step_start: float | None = None
    step_end: float | None = None
    decode_start: float | None = None
    decode_end: float | None = None
    queued_for_playout: float | None = None
    # When the first sample of Moshi's audio for this frame reached the listener: the DAC time
    # PortAudio gave for it as it played. None if not played, or played with no clock (a file
    # read as fast as possible).
    heard: float | None = None
    heard_expected: float | None = None  # the loop's prediction when it queued the audio
    model_step: int | None = None  # engine step index, None if the frame was dropped
    played: bool = False
    dropped: bool = False
    model_queue_depth: int = 0  # frames waiting for the model when this one arrived
    playout_depth: float = 0.0  # frames buffered for the speaker when this one was queued
    text: str | None = None

    @property
    def encode_ms(self) -> float | None:
        return _ms(self.encode_start, self.encode_end)

    @property
    def step_ms(self) -> float | None:
        return _ms(self.step_start, self.step_end)

    @property
    def decode_ms(self) -> float | None:
        return _ms(self.decode_start, self.decode_end)

    @property
    def delay_ms(self) -> float | None:
        """Microphone to speaker: the first sample captured until its answer's first sample
        is heard."""
        return _ms(self.captured, self.heard)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoopCounters:
    frames_captured: int = 0
    frames_stepped: int = 0
    frames_played: int = 0
    dropped_input: int = 0  # user frames dropped before the model to bound the delay
    dropped_output: int = 0  # Moshi frames dropped before the speaker to bound the delay
    errors: list[str] = field(default_factory=list)


def _ms(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else (end - start) * 1000.0
