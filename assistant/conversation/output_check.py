"""Notice when the codec's output can only be garbage: all zero or non-finite while Moshi talks.

A damaged Mimi file (weights relabelled to another dtype, or holding NaN) still decodes, into
silence or NaN; without this check the conversation would play that silently. Moshi's own
silence decodes to quiet noise, never to exact zeros, so exact zeros are the fault's mark.
"""

from __future__ import annotations

import numpy as np

from ..frames import FRAME_RATE

SILENT_PEAK = 1e-7  # below this the frame is digital silence, not a quiet voice


class OutputCheck:
    """Fed every decoded frame; says once (a message) when `window_s` of consecutive decoded
    frames were all zero or held NaN/Inf."""

    def __init__(self, codec_path: str, window_s: float = 1.0) -> None:
        self.codec_path = codec_path
        self.window = max(1, round(window_s * FRAME_RATE))
        self.bad_run = 0
        self.non_finite_frames = 0
        self.reported = False

    def feed(self, pcm: np.ndarray) -> str | None:
        finite = bool(np.isfinite(pcm).all())
        if not finite:
            self.non_finite_frames += 1
        silent = finite and float(np.abs(pcm).max(initial=0.0)) < SILENT_PEAK
        self.bad_run = self.bad_run + 1 if (silent or not finite) else 0
        if self.bad_run < self.window or self.reported:
            return None
        self.reported = True
        what = "NaN or infinite samples" if self.non_finite_frames else "all-zero audio"
        return (
            f"the Mimi codec decodes Moshi's speech to {what} "
            f"(for {self.bad_run / FRAME_RATE:.1f} s): {self.codec_path} looks damaged; "
            "Moshi cannot be heard"
        )
