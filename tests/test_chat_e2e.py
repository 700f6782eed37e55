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
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from assistant.audio.sound_files import read_audio
from tests.pulse_harness import best_match, make_speech, rms, start_server, stop_server

pytestmark = pytest.mark.slow

FRAME_S = 0.08


class ChatProcess:
    """`python -m assistant chat ...` in the background, with its output collected."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.listening = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "assistant", "chat", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if "Listening" in line:
                self.listening.set()

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        time.sleep(0.2)  # let the reader thread drain the pipe
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


def chat_env(pulse, home: Path) -> dict[str, str]:
    env = os.environ | pulse.env | {"ASSISTANT_HOME": str(home), "COLUMNS": "100"}
    env.pop("ASSISTANT_DEBUG", None)
    return env


def only_session(home: Path) -> Path:
    (session,) = (home / "sessions").iterdir()
    return session


# The real codec is slower than real time on 2 cores (encode and decode ~110 ms a frame each):
# in 1 of 7 full runs, the stages' variance (decode p99 ~300 ms) took the delay's median past
# the bound below. One reported rerun tells that from a regression, which fails twice.
@pytest.mark.flaky(reruns=1)
def test_chat_answers_through_the_speaker(pulse, tiny_checkpoint, tmp_path: Path) -> None:
    speech = make_speech(tmp_path / "user.wav", "Hello Moshi, how are you today?")
    home = tmp_path / "home"
    recorder = pulse.record_speaker(tmp_path / "speaker.wav")
    chat = ChatProcess(
        [
            "--checkpoint",
            str(tiny_checkpoint("bf16")),
            "--duration",
            "10",
            "--no-aec",
            "--max-delay-ms",
            "500",
            "--seed",
            "3",
        ],
        chat_env(pulse, home),
    )
    try:
        assert chat.listening.wait(120), chat.output
        pulse.play_into_mic(speech)
        assert chat.wait(timeout=120) == 0, chat.output
    finally:
        if chat.proc.poll() is None:
            chat.proc.kill()
        heard = recorder.stop()
    assert "Traceback" not in chat.output

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
    assert "answered of" in chat.output and "saved in" in chat.output


# Real-time audio on a shared 2-core machine: a stall of the sound server now and then makes
# the canceller re-converge inside the measured window. One rerun (reported by pytest -ra)
# tells such a glitch from a regression, which fails both times.
@pytest.mark.flaky(reruns=1)
def test_echo_cancellation_removes_moshi_from_what_it_hears(
    pulse, tiny_checkpoint, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    speech = make_speech(tmp_path / "user.wav", "Testing echo cancellation, one two three.")
    # A room attenuates the speaker on its way to the mic; 30% (about -10 dB) keeps Moshi's
    # echo as loud as the user's voice, so both halves of the test mean something.
    echo = pulse.add_echo(latency_ms=60, volume_percent=30)
    chat = ChatProcess(
        [
            "--checkpoint",
            str(tiny_checkpoint("bf16")),
            "--duration",
            "14",
            "--max-delay-ms",
            "500",
            "--seed",
            "5",
        ],
        chat_env(pulse, home),
    )
    try:
        assert chat.listening.wait(120), chat.output
        time.sleep(6)  # Moshi talks alone first: the mic hears only its echo
        pulse.play_into_mic(speech)  # then the user talks over it
        assert chat.wait(timeout=120) == 0, chat.output
    finally:
        if chat.proc.poll() is None:
            chat.proc.kill()
        pulse.remove_echo(echo)
    session = only_session(home)
    raw = read_audio(session / "user.wav")
    cleaned = read_audio(session / "user_aec.wav")
    assert len(raw) == len(cleaned)

    # Moshi alone (from 1 s to 5 s): the echo in what Moshi hears is down by at least 20 dB.
    a, b = int(1.0 / FRAME_S) * 1920, int(5.0 / FRAME_S) * 1920
    assert rms(raw[a:b]) > 1e-3, "no echo reached the microphone: the loopback is not working"
    reduction_db = 20 * np.log10(rms(raw[a:b]) / max(rms(cleaned[a:b]), 1e-9))
    print(
        f"\necho in what Moshi hears reduced by {reduction_db:.1f} dB (loop AEC stats: "
        f"{json.loads((session / 'summary.json').read_text())['echo_reduction_db']})"
    )
    assert reduction_db >= 20, reduction_db

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
    chat = ChatProcess(
        ["--checkpoint", str(tiny_checkpoint("bf16")), "--no-aec"], chat_env(pulse, home)
    )
    try:
        assert chat.listening.wait(120), chat.output
        time.sleep(3)
        chat.proc.send_signal(signal.SIGINT)
        assert chat.wait(timeout=60) == 0, chat.output
    finally:
        if chat.proc.poll() is None:
            chat.proc.kill()
    assert "Stopped." in chat.output and "Traceback" not in chat.output
    session = only_session(home)
    stats = json.loads((session / "summary.json").read_text())
    assert stats["frames_stepped"] > 10
    assert len(read_audio(session / "user.wav")) >= 10 * 1920


def test_vanishing_sound_server_is_a_clear_error(pulse, tiny_checkpoint, tmp_path) -> None:
    # A server of its own to kill, so the other tests keep theirs.
    runtime_dir = Path(tempfile.mkdtemp(prefix="pa-", dir="/tmp"))  # short: a socket path
    home = tmp_path / "home"
    try:
        env = chat_env(pulse, home) | start_server(runtime_dir)
        chat = ChatProcess(["--checkpoint", str(tiny_checkpoint("bf16")), "--no-aec"], env)
        try:
            assert chat.listening.wait(120), chat.output
            time.sleep(3)
            stop_server(runtime_dir)  # as if the audio device was unplugged
            code = chat.wait(timeout=60)
        finally:
            if chat.proc.poll() is None:
                chat.proc.kill()
    finally:
        stop_server(runtime_dir)
        shutil.rmtree(runtime_dir, ignore_errors=True)
    assert code == 1, chat.output
    assert "Traceback" not in chat.output
    last = [line for line in chat.output.splitlines() if line.strip()][-1]
    assert last.startswith("error:") and "stream" in last, last
    session = only_session(home)
    assert json.loads((session / "summary.json").read_text())["frames_stepped"] > 10
    assert len(read_audio(session / "user.wav")) >= 10 * 1920
