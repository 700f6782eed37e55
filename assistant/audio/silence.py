"""Noticing a microphone that delivers nothing.

On macOS, an app without microphone permission gets a working stream of exact zeros: no error
anywhere, the assistant just never hears anything. So the first seconds are checked (while the
user has not muted it: muted seconds are not counted), and the hint names the app macOS asks.
"""

from __future__ import annotations

import math

import numpy as np

from ..frames import SAMPLE_RATE
from .permission import permission_hint

SILENT_RMS = 1e-4  # ~ -80 dBFS: below any real microphone's noise floor


class SilenceDetector:
    """Feed captured frames; `feed` returns a message, once, if the first `window_s` unmuted
    seconds were all (near) silence. Any frame above `threshold_rms` settles it the other way.
    `hint` says what to check (default: the microphone permission of the app macOS asks)."""

    def __init__(
        self,
        window_s: float = 3.0,
        threshold_rms: float = SILENT_RMS,
        sample_rate: int = SAMPLE_RATE,
        hint: str | None = None,
    ) -> None:
        self.hint = hint
        self.window_samples = int(window_s * sample_rate)
        self.threshold_rms = threshold_rms
        self.sample_rate = sample_rate
        self._seen = 0
        self._energy = 0.0
        self.decided = False
        self.silent: bool | None = None  # None until decided
        self.message: str | None = None

    def feed(self, samples: np.ndarray, muted: bool = False) -> str | None:
        """`muted`: the user muted the microphone; the frame is silence on purpose, not counted."""
        if self.decided or muted:
            return None
        x = np.nan_to_num(np.asarray(samples, dtype=np.float32).reshape(-1))
        if not len(x):
            return None
        energy = float(np.sum(np.square(x, dtype=np.float64)))
        if math.sqrt(energy / len(x)) >= self.threshold_rms:
            self.decided, self.silent = True, False
            return None
        self._seen += len(x)
        self._energy += energy
        if self._seen < self.window_samples:
            return None
        rms = math.sqrt(self._energy / self._seen)
        level = "digital silence" if rms == 0.0 else f"near silence (RMS {rms:.1e})"
        seconds = self._seen / self.sample_rate
        self.decided, self.silent = True, True
        hint = self.hint if self.hint is not None else permission_hint()
        self.message = f"the microphone gave only {level} for {seconds:.1f} s; {hint}"
        return self.message
