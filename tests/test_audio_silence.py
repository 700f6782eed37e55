"""Telling the user their microphone gives nothing (on macOS: a missing permission)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from assistant.audio.silence import SilenceDetector
from assistant.audio.sound_files import frames, read_audio
from assistant.frames import FRAME_SAMPLES

HELLO = Path(__file__).parents[1] / "assistant" / "data" / "hello.wav"


def feed(detector: SilenceDetector, pcm: np.ndarray) -> list[str]:
    return [m for f in frames(pcm) if (m := detector.feed(f))]


def test_digital_silence_is_reported_once_after_three_seconds() -> None:
    detector = SilenceDetector()
    zeros = np.zeros(FRAME_SAMPLES, np.float32)
    said = [detector.feed(zeros) for _ in range(37)]  # 2.96 s: not yet
    assert not any(said) and not detector.decided
    message = detector.feed(zeros)
    assert message and detector.silent is True
    assert "digital silence" in message
    assert "System Settings > Privacy & Security > Microphone" in message
    assert "\n" not in message
    assert feed(detector, np.zeros(24000 * 5, np.float32)) == []  # once only


def test_near_silence_is_reported_with_its_level() -> None:
    hiss = np.random.default_rng(0).normal(0, 3e-5, 24000 * 4).astype(np.float32)
    detector = SilenceDetector(window_s=2.0)
    (message,) = feed(detector, hiss)
    assert "near silence (RMS 3.0e-05)" in message


def test_a_working_microphone_is_never_reported() -> None:
    for pcm in (
        np.random.default_rng(1).normal(0, 1e-3, 24000 * 5).astype(np.float32),  # room noise
        np.concatenate([np.zeros(24000, np.float32), read_audio(HELLO)]),  # late speech
    ):
        detector = SilenceDetector()
        assert feed(detector, pcm) == []
        assert detector.silent is False


def test_garbage_frames_count_as_silence() -> None:
    detector = SilenceDetector(window_s=0.16)
    assert detector.feed(np.array([], np.float32)) is None
    assert detector.feed(np.full(FRAME_SAMPLES, np.nan, np.float32)) is None
    assert detector.feed(np.zeros(FRAME_SAMPLES)) is not None
