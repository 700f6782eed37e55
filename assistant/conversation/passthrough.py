"""Stand-ins for the codec and the model that let the loop's real audio path run on its own.

`assistant latency` and the latency benchmark use them: the microphone's frames go through
the same threads, queues, lag control and playout buffer as a conversation, but the "codes"
are the samples themselves and the "model" answers each frame with itself (or, for a
round-trip check, with clicks: `latency_check.ClickProbe`), so what comes out of the speaker
can be compared, sample for sample, with what went in.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..voice.engine import StepResult


class PassthroughCodec:
    """ "Encodes" a frame as its own samples and "decodes" them back."""

    def encode(self, frame: np.ndarray) -> np.ndarray:
        return np.asarray(frame, dtype=np.float32).copy()

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(codes, dtype=np.float32)


class PassthroughEngine:
    """Answers each frame with `answer(step, frame)` (default: the frame itself), at once and
    with no acoustic delay; `step_s` makes each step take that long (a model too slow)."""

    def __init__(
        self,
        answer: Callable[[int, np.ndarray], np.ndarray] | None = None,
        *,
        step_s: float = 0.0,
    ) -> None:
        self.answer = answer or (lambda step, frame: frame)
        self.step_s = step_s
        self.steps = 0

    def step(self, user_codes: np.ndarray) -> StepResult:
        if self.step_s:
            time.sleep(self.step_s)
        s = self.steps
        self.steps += 1
        out = np.asarray(self.answer(s, np.asarray(user_codes, np.float32)), np.float32)
        return StepResult(step=s, text_token=0, piece=None, audio_codes=out)
