"""The real-audio tests' measuring tools (tests/support/pulse_harness.py), on signals whose
answer is known: a wrong lag there fails an audio test that did nothing wrong."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.pulse_harness import best_match, piecewise_match

SR = 24000


def noise(seconds: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(round(seconds * SR)).astype(np.float32)


@pytest.mark.parametrize("lag_s", [0.0, 1.0, 6.0, 8.5])
def test_best_match_finds_a_template_anywhere_in_a_long_recording(lag_s: float) -> None:
    # A 9.5 s recording: a 1 s template starting past the middle of the correlation's FFT
    # (5.5 s here) used to come back as a "negative" lag with a correlation of 0.
    template = noise(1.0, seed=1)
    signal = 0.01 * noise(9.5, seed=2)
    at = round(lag_s * SR)
    signal[at : at + len(template)] += 0.5 * template
    lag, corr = best_match(signal, template)
    assert lag == at
    assert corr > 0.99


def test_best_match_of_a_template_that_starts_before_the_signal() -> None:
    template = noise(1.0, seed=3)
    signal = np.concatenate([template[SR // 4 :], np.zeros(2 * SR, np.float32)])
    lag, corr = best_match(signal, template)
    assert lag == -(SR // 4)
    assert corr > 0.74  # the three quarters that overlap, against the whole template


def test_piecewise_match_of_speech_heard_late_in_a_long_recording() -> None:
    clean = noise(4.0, seed=4)
    # (the recorder starts well before the speech, as when a loaded machine opens the
    # streams slowly: three of the four 1 s pieces sit past the FFT's middle)
    silence = np.zeros(SR // 2, np.float32)
    heard = np.concatenate([np.zeros(5 * SR, np.float32), 0.3 * clean, silence])
    assert piecewise_match(heard, clean) > 0.99
