"""Clicks for measuring delay: a short burst that cross-correlation finds again exactly.

Used by `assistant latency` (a click played, found in the microphone) and by the latency
benchmark (each click of a train found twice in a recording: as played, and after the loop).
"""

from __future__ import annotations

import numpy as np

from ..frames import SAMPLE_RATE

CLICK_SAMPLES = 48  # 2 ms


def click(amplitude: float = 0.5, length: int = CLICK_SAMPLES) -> np.ndarray:
    """A Hann-windowed 3 kHz burst: broadband enough to locate to a sample, short enough
    that a room's reflections don't smear it."""
    t = np.arange(length)
    burst = np.hanning(length) * np.sin(2 * np.pi * 3000 * t / SAMPLE_RATE)
    return (amplitude * burst).astype(np.float32)


def find_clicks(
    signal: np.ndarray,
    template: np.ndarray | None = None,
    *,
    min_gap: int = SAMPLE_RATE // 20,
    threshold: float = 0.3,
) -> list[int]:
    """Sample positions where `template` (default: `click()`) starts in `signal`: peaks of
    the normalised cross-correlation above `threshold` of the strongest, at least `min_gap`
    samples apart (strongest first within each neighbourhood)."""
    x = np.asarray(signal, dtype=np.float64).reshape(-1)
    t = np.asarray(template if template is not None else click(), dtype=np.float64)
    if len(x) < len(t) or not np.any(x):
        return []
    n = 1 << int(np.ceil(np.log2(len(x) + len(t))))
    corr = np.fft.irfft(np.fft.rfft(x, n) * np.conj(np.fft.rfft(t, n)), n)[: len(x) - len(t) + 1]
    energy = np.sqrt(np.convolve(x * x, np.ones(len(t)), "valid")) * np.linalg.norm(t)
    score = np.where(energy > 1e-9, corr / np.maximum(energy, 1e-12), 0.0)
    if score.max() <= 0:
        return []
    # A click must also be loud enough: its correlation against the loudest one found.
    strength = corr / max(float(corr.max()), 1e-12)
    candidates = np.flatnonzero((score > 0.8) & (strength > threshold))
    found: list[int] = []
    for i in candidates[np.argsort(-corr[candidates])]:
        if all(abs(int(i) - j) >= min_gap for j in found):
            found.append(int(i))
    return sorted(found)
