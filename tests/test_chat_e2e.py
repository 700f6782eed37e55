"""`assistant chat` end to end through real PortAudio, against PulseAudio virtual devices.

espeak-ng speech is played into the virtual microphone while `assistant chat` runs as a user
would start it; the virtual speaker is recorded. With the speaker looped back into the
microphone (a room echo), echo cancellation must remove Moshi's own voice from what it hears.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from assistant.audio.sound_files import read_audio
from tests.support import helpers
from tests.support.program import Program
from tests.support.pulse_harness import best_match, make_speech, rms, start_server, stop_server

pytestmark = pytest.mark.slow

FRAME_S = 0.08


def start_chat(pulse, home: Path, *args: str, server: dict[str, str] | None = None) -> Program:
    """`assistant chat ARGS` in the background on the virtual devices (of `server`, a sound
    server's environment, if given), stderr merged."""
    env = os.environ | pulse.env | (server or {})
    return Program("chat", *args, home=home, env=env, merge_stderr=True)


def wait_for_summary(home: Path, done: Callable[[dict], bool], what: str) -> None:
    """Until the running chat's summary.json (replaced whole every second) shows `done`."""
    deadline = time.monotonic() + 60
    while True:
        found = sorted((home / "sessions").glob("*/summary.json")) if home.exists() else []
        if found and done(json.loads(found[0].read_text())):
            return
        assert time.monotonic() < deadline, f"the chat never got to {what}"
        time.sleep(0.1)


def only_session(home: Path) -> Path:
    return helpers.only_session(home / "sessions")


# The real codec is slower than real time on 2 cores (encode and decode ~110 ms a frame each):
# in 1 of 7 full runs, the stages' variance (decode p99 ~300 ms) took the delay's median past
# the bound below. One reported rerun tells that from a regression, which fails twice.
@pytest.mark.flaky(reruns=1)
def test_chat_answers_through_the_speaker(pulse, tiny_checkpoint, tmp_path: Path) -> None:
    speech = make_speech(tmp_path / "user.wav", "Hello Moshi, how are you today?")
    home = tmp_path / "home"
    recorder = pulse.record_speaker(tmp_path / "speaker.wav")
    chat = start_chat(
        pulse,
        home,
        "--checkpoint",
        str(tiny_checkpoint("bf16")),
        "--duration",
        "10",
        "--no-aec",
        "--max-delay-ms",
        "500",
        "--seed",
        "3",
    )
    try:
        assert chat.listening.wait(120), chat.stdout
        pulse.play_into_mic(speech)
        assert chat.wait(timeout=120) == 0, chat.stdout
    finally:
        chat.kill()
        heard = recorder.stop()
    assert "Traceback" not in chat.stdout

    # Moshi's voice came out of the speaker (random weights: noise-like, but not silence).
    assert rms(heard) > 1e-3, rms(heard)
    session = only_session(home)
    stats = json.loads((session / "summary.json").read_text())
    # At least 2 s answered (a loaded 2-core machine drops frames to keep the delay bounded).
    assert stats["frames_stepped"] > 25 and stats["frames_played"] > 25
    assert (session / "transcript.txt").is_file()
    # The user's speech reached the microphone recording.
    user = read_audio(session / "user.wav")
    assert rms(user) > 1e-3
    # Bounded lag, measured as heard (the speaker's DAC time): within the budget, unless the
    # stages alone take longer on this machine at this moment (then the newest frame is still
    # answered, late: gaps, never silence).
    stages = stats["stages_ms"]
    delay = stages["delay"]
    print(f"\nmic-to-speaker delay {delay}; stages {stages}; audio {stats['audio']}")
    # A frame can wait one encode for the busy encoder, then goes through all three stages,
    # the speaker's cushion (at most 80 ms) and the device's buffer.
    work = sum(stages[k]["p50"] for k in ("encode", "step", "decode")) + stages["encode"]["p50"]
    assert delay["count"] > 0 and delay["p50"] < max(500, work + 80 + 250), (delay, work)
    assert "answered of" in chat.stdout and "saved in" in chat.stdout


# Real-time audio on a shared 2-core machine, beside the parallel tests. With the default
# latency profile (5 ms blocks) the sound device ran dry 15-43 times in this chat (output
# underflows: late callbacks), and where several came close together the canceller lost ground
# inside the measured window: one fresh-clone run in five to ten needed a rerun. With `safe`,
# the profile for a busy machine, it ran dry 0-1 times and every half-second was down
# 46-52 dB (9 chats). The check below still allows two of its eight half-seconds a glitch,
# and one rerun (reported, with its reason) tells a longer one from a regression, which fails
# both times.
@pytest.mark.flaky(reruns=1)
def test_echo_cancellation_removes_moshi_from_what_it_hears(
    pulse, tiny_checkpoint, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    speech = make_speech(tmp_path / "user.wav", "Testing echo cancellation, one two three.")
    # A room attenuates the speaker on its way to the mic; 30% (about -10 dB) keeps Moshi's
    # echo as loud as the user's voice, so both halves of the test mean something.
    echo = pulse.add_echo(latency_ms=60, volume_percent=30)
    chat = start_chat(
        pulse,
        home,
        "--checkpoint",
        str(tiny_checkpoint("bf16")),
        "--duration",
        "14",
        "--max-delay-ms",
        "500",
        "--seed",
        "5",
        # The profile for a busy machine: this test runs beside the parallel tests, and its
        # claim is the echo, not the delay (see above the test).
        "--latency",
        "safe",
    )
    try:
        assert chat.listening.wait(120), chat.stdout
        # Moshi talks alone first (6 s recorded): the mic hears only its echo.
        wait_for_summary(home, lambda s: s["frames_captured"] >= 6 / FRAME_S, "6 s heard")
        pulse.play_into_mic(speech)  # then the user talks over it
        assert chat.wait(timeout=120) == 0, chat.stdout
    finally:
        chat.kill()
        pulse.remove_echo(echo)
    session = only_session(home)
    raw = read_audio(session / "user.wav")
    cleaned = read_audio(session / "user_aec.wav")
    assert len(raw) == len(cleaned)

    # Moshi alone (from 1 s to 5 s): the echo in what Moshi hears is down by at least 20 dB,
    # half a second at a time. Each time the sound device runs dry the echo comes later, and a
    # half-second with several such steps fell to 13-25 dB with the default profile (the others
    # at ~49 dB). So 6 of the 8 must be down by 20 dB, rather than the whole 4 s, whose figure
    # the worst half-second decides.
    a, b = int(1.0 / FRAME_S) * 1920, int(5.0 / FRAME_S) * 1920
    assert rms(raw[a:b]) > 1e-3, "no echo reached the microphone: the loopback is not working"
    half = 12000
    reductions = [
        20 * np.log10(rms(raw[i : i + half]) / max(rms(cleaned[i : i + half]), 1e-9))
        for i in range(a, b, half)
    ]
    print(
        "\necho in what Moshi hears reduced by "
        + " ".join(f"{r:.1f}" for r in reductions)
        + f" dB a half-second (loop AEC stats: "
        f"{json.loads((session / 'summary.json').read_text())['echo_reduction_db']})"
    )
    assert len(reductions) == 8 and sorted(reductions)[2] >= 20, reductions

    # The user's speech survives: it is found in what Moshi hears (the cleaned input), well
    # correlated with what was said, and not attenuated away.
    talk = read_audio(speech)[12000:-12000]  # without the half-second pads
    lag, similarity = best_match(cleaned, talk)
    kept = rms(cleaned[lag : lag + len(talk)]) / rms(talk)
    print(f"user speech after echo cancellation: level x{kept:.2f}, correlation {similarity:.2f}")
    assert lag > int(5.5 * 24000), lag / 24000  # where it was played, not in Moshi's monologue
    assert similarity > 0.3 and kept > 0.2, (similarity, kept)
    stats = json.loads((session / "summary.json").read_text())
    assert stats["echo_reduction_db"] is not None and stats["echo_reduction_db"] > 10


def test_ctrl_c_stops_cleanly_and_keeps_the_session(pulse, tiny_checkpoint, tmp_path) -> None:
    home = tmp_path / "home"
    chat = start_chat(pulse, home, "--checkpoint", str(tiny_checkpoint("bf16")), "--no-aec")
    try:
        assert chat.listening.wait(120), chat.stdout
        wait_for_summary(home, lambda s: s["frames_stepped"] > 10, "10 frames answered")
        chat.proc.send_signal(signal.SIGINT)
        assert chat.wait(timeout=60) == 0, chat.stdout
    finally:
        chat.kill()
    assert "Stopped." in chat.stdout and "Traceback" not in chat.stdout
    session = only_session(home)
    stats = json.loads((session / "summary.json").read_text())
    assert stats["frames_stepped"] > 10
    assert len(read_audio(session / "user.wav")) >= 10 * 1920


def test_vanishing_sound_server_is_a_clear_error(pulse, tiny_checkpoint, tmp_path) -> None:
    # A server of its own to kill, so the other tests keep theirs.
    runtime_dir = Path(tempfile.mkdtemp(prefix="pa-", dir="/tmp"))  # short: a socket path
    home = tmp_path / "home"
    try:
        server = start_server(runtime_dir)
        chat = start_chat(
            pulse, home, "--checkpoint", str(tiny_checkpoint("bf16")), "--no-aec", server=server
        )
        try:
            assert chat.listening.wait(120), chat.stdout
            wait_for_summary(home, lambda s: s["frames_stepped"] > 10, "10 frames answered")
            stop_server(runtime_dir)  # as if the audio device was unplugged
            code = chat.wait(timeout=60)
        finally:
            chat.kill()
    finally:
        stop_server(runtime_dir)
        shutil.rmtree(runtime_dir, ignore_errors=True)
    assert code == 1, chat.stdout
    assert "Traceback" not in chat.stdout
    last = [line for line in chat.stdout.splitlines() if line.strip()][-1]
    assert last.startswith("error:") and "stream" in last, last
    session = only_session(home)
    assert json.loads((session / "summary.json").read_text())["frames_stepped"] > 10
    assert len(read_audio(session / "user.wav")) >= 10 * 1920
