"""The file-driven conversation and `assistant demo`, end to end on a synthetic checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import assistant
from assistant.audio.sound_files import read_audio, write_wav
from assistant.checkpoint.resolve import CheckpointSpec
from assistant.cli.demo import user_speech
from assistant.conversation.chat import Chat, ChatSettings
from assistant.errors import AudioError
from assistant.frames import FRAME_SAMPLES
from assistant.voice.sampling import SamplingConfig
from tests.support.helpers import only_session

BUNDLED = Path(__file__).parents[1] / "assistant" / "data" / "hello.wav"


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint) -> Path:
    # The run's shared one (tiny config, seed 0). bf16: its step costs a fifth of q4's on a
    # CPU, and the loop's claims below do not depend on the quantization (q4 goes through
    # the loop in the chats of test_interrupts and test_data_folder's private-files test).
    return tiny_checkpoint("bf16")


def test_bundled_sample_is_real_speech() -> None:
    pcm = read_audio(BUNDLED)
    assert 4 < len(pcm) / 24000 < 8
    assert np.sqrt(np.mean(pcm**2)) > 0.01


def test_audio_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="no such audio file"):
        read_audio(tmp_path / "nope.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF....garbage")
    with pytest.raises(AudioError, match="unusable audio file: not a WAV") as info:
        read_audio(junk)
    assert str(info.value).startswith(str(junk))


def test_wav_roundtrip(tmp_path: Path) -> None:
    tone = (0.3 * np.sin(np.arange(24000) / 24000 * 2 * np.pi * 440)).astype(np.float32)
    back = read_audio(write_wav(tmp_path / "tone.wav", tone))
    assert len(back) == 24000 and np.abs(back - tone).max() < 1e-3


def test_file_conversation_through_the_loop(tiny: Path) -> None:
    speech = read_audio(BUNDLED)[:24000]  # "Hello Moshi": 26 frames with the tail
    settings = ChatSettings(
        checkpoint=CheckpointSpec(target=str(tiny)),
        input_file=speech,
        echo_cancellation=False,
        sampling=SamplingConfig(seed=7),
        download=False,
        session_kind="test",
    )
    outcome = Chat(settings).run()
    assert outcome.error is None and not outcome.interrupted
    frames = -(-len(speech) // FRAME_SAMPLES) + 13  # speech, then the 1 s tail: 13 frames
    stats = outcome.stats
    assert stats["frames_captured"] == stats["frames_stepped"] == stats["frames_played"] == frames
    assert stats["dropped_input"] == stats["dropped_output"] == 0
    assert stats["model"]["quantization"] == "bf16"
    assert stats["version"] == assistant.__version__
    assert stats["codec"]["encode"]["frames"] >= frames
    reply = read_audio(outcome.session / "moshi.wav")
    assert len(reply) == frames * FRAME_SAMPLES
    assert np.all(reply[:FRAME_SAMPLES] == 0)  # the acoustic delay: nothing yet
    assert np.abs(reply[FRAME_SAMPLES:]).max() > 0
    assert len(read_audio(outcome.session / "user.wav")) == frames * FRAME_SAMPLES
    assert (outcome.session / "transcript.txt").read_text().startswith("[")


@pytest.mark.slow
def test_demo_command_end_to_end(tmp_path: Path) -> None:
    env = os.environ | {"ASSISTANT_HOME": str(tmp_path / "home"), "COLUMNS": "100"}
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "random weights" in result.stdout
    assert (tmp_path / "checkpoints" / "demo-tiny-bf16" / "model.safetensors").is_file()
    session = only_session(tmp_path / "home" / "sessions")
    stats = json.loads((session / "summary.json").read_text())
    # The whole default sentence went through, then the 1 s tail (13 frames).
    speech, _ = user_speech(None, None)
    assert stats["frames_stepped"] == -(-len(speech) // FRAME_SAMPLES) + 13
    assert stats["model"]["quantization"] == "bf16"
    reply = read_audio(session / "moshi.wav")
    assert len(reply) == stats["frames_played"] * FRAME_SAMPLES
    assert np.sqrt(np.mean(reply**2)) > 1e-4  # Moshi's side is not silent
    assert (session / "transcript.txt").is_file()
    # Not a terminal: no live dashboard, no cursor tricks; the transcript as plain text.
    assert "\x1b[" not in result.stdout and "latency (ms)" not in result.stdout
    words = [w for w in (session / "transcript.txt").read_text().split() if w.isalpha()]
    assert words and all(w in result.stdout for w in words[:3])
    # Every export of the session.
    for name in ("summary.json", "metrics.jsonl", "trace.json", "frames.jsonl"):
        assert (session / name).stat().st_size > 0, name
    assert stats["memory"]["mlx_peak"] > 0 and stats["collection_us_per_frame"] > 0
