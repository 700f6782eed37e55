"""Hearing the user's first words: the moment "listen first" lets Moshi speak.

A level detector, not a speech recogniser: the microphone (after echo cancellation) is speech
once its RMS stays above `threshold_rms` (-40 dBFS: a voice at arm's length is -30 to -15,
a quiet room's noise below -55) for `min_frames` frames in a row (160 ms: a click, a cough or
a door is shorter). Until then Moshi is silent, so there is no echo of it to mistake.
"""

from __future__ import annotations

import math

import numpy as np

SPEECH_RMS = 0.01  # -40 dBFS
MIN_SPEECH_FRAMES = 2  # 80 ms frames in a row


class SpeechOnset:
    """Feed frames in order; `feed` is True from the frame that completes the first speech."""

    def __init__(self, threshold_rms: float = SPEECH_RMS, min_frames: int = MIN_SPEECH_FRAMES):
        self.threshold_rms = threshold_rms
        self.min_frames = min_frames
        self._run = 0
        self.heard = False

    def feed(self, samples: np.ndarray) -> bool:
        if self.heard:
            return True
        x = np.nan_to_num(np.asarray(samples, dtype=np.float32).reshape(-1))
        loud = len(x) > 0 and math.sqrt(float(np.mean(np.square(x, dtype=np.float64)))) >= (
            self.threshold_rms
        )
        self._run = self._run + 1 if loud else 0
        self.heard = self._run >= self.min_frames
        return self.heard
