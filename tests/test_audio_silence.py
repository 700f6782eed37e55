"""Telling the user their microphone gives nothing (on macOS: a missing permission)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from assistant.audio.permission import microphone_owner, permission_hint
from assistant.audio.silence import SilenceDetector
from assistant.audio.sound_files import frames, read_audio
from assistant.frames import FRAME_SAMPLES

HELLO = Path(__file__).parents[1] / "assistant" / "data" / "hello.wav"


def feed(detector: SilenceDetector, pcm: np.ndarray) -> list[str]:
    return [m for f in frames(pcm) if (m := detector.feed(f))]


def test_digital_silence_is_reported_once_after_three_seconds() -> None:
    detector = SilenceDetector(hint=permission_hint("darwin", {"TERM_PROGRAM": "iTerm.app"}))
    zeros = np.zeros(FRAME_SAMPLES, np.float32)
    said = [detector.feed(zeros) for _ in range(37)]  # 2.96 s: not yet
    assert not any(said) and not detector.decided
    message = detector.feed(zeros)
    assert message and detector.silent is True
    assert "digital silence" in message
    assert "System Settings > Privacy & Security > Microphone and allow iTerm," in message
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


def test_muted_seconds_are_not_counted() -> None:
    # Muted, the loop feeds exact zeros on purpose: no warning, and the window waits.
    detector = SilenceDetector(window_s=1.0, hint="check it")
    zeros = np.zeros(FRAME_SAMPLES, np.float32)
    assert [detector.feed(zeros, muted=True) for _ in range(100)] == [None] * 100
    assert not detector.decided
    said = [detector.feed(zeros) for _ in range(13)]  # 1.04 s unmuted
    assert said[:12] == [None] * 12
    assert said[12] == "the microphone gave only digital silence for 1.0 s; check it"


def test_the_hint_names_whoever_macos_asks() -> None:
    app = {"MOSHI_ASSISTANT_APP": "/Applications/Moshi Assistant.app", "TERM_PROGRAM": "x"}
    assert microphone_owner(app) == "Moshi Assistant"  # the app, even when opened from a shell
    assert microphone_owner({"TERM_PROGRAM": "Apple_Terminal"}) == "Terminal"
    assert microphone_owner({"TERM_PROGRAM": "vscode"}) == "Visual Studio Code"
    assert microphone_owner({"TERM_PROGRAM": "SomeNewTerm"}) == "SomeNewTerm"
    login_item = {"XPC_SERVICE_NAME": "dev.moshi-assistant.menubar"}
    assert microphone_owner(login_item).startswith("Python (")  # a login item running Python
    assert microphone_owner({"XPC_SERVICE_NAME": "0"}) == "your terminal app (Terminal, iTerm...)"
    hint = permission_hint("darwin", app)
    assert "Privacy & Security > Microphone and allow Moshi Assistant, then start it again" in hint
    # Off macOS there is no such permission: only the device advice.
    assert permission_hint("linux", app) == (
        "check the input device (`assistant devices`) and that it is not muted"
    )
