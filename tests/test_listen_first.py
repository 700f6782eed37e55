"""Listen first: Moshi's text and audio streams held to silence until the user's first word,
not its output muted. Shown on the engine (its tokens and history) and end to end on the
synthetic model with a scripted input: silence, then speech."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from assistant.audio.sound_files import read_audio
from assistant.audio.speech_onset import SpeechOnset
from assistant.checkpoint.config import MICRO
from assistant.checkpoint.resolve import CheckpointSpec
from assistant.conversation.chat import Chat, ChatSettings
from assistant.frames import FRAME_SAMPLES, SAMPLE_RATE
from assistant.voice.engine import StreamingEngine
from assistant.voice.model import build_model
from assistant.voice.sampling import SamplingConfig

SPEECH = Path(__file__).parents[1] / "assistant" / "data" / "hello.wav"
CONFIG = replace(MICRO, context=64)


def micro_engine() -> StreamingEngine:
    mx.random.seed(0)
    model = build_model(CONFIG, None)
    mx.eval(model.parameters())
    return StreamingEngine(model, CONFIG, SamplingConfig(seed=3))


def test_a_held_engine_says_nothing_and_remembers_silence() -> None:
    engine = micro_engine()
    rng = np.random.default_rng(1)
    codes = rng.integers(0, CONFIG.card, size=(30, CONFIG.user_codebooks)).astype(np.int32)
    engine.hold = True
    held = [engine.step(c) for c in codes[:12]]
    silence = [CONFIG.existing_text_padding_id] + [CONFIG.card] * CONFIG.dep_q
    for r in held:
        assert r.piece is None and r.audio_codes is None
        assert r.tokens is not None and r.tokens.tolist() == silence
    # Its history is the one of a conversation's start: padding text, the initial audio token.
    ids = engine.step_ids(engine.steps_taken)
    assert ids[1] == CONFIG.existing_text_padding_id
    assert (ids[2 : 2 + CONFIG.dep_q] == CONFIG.card).all()
    engine.hold = False
    after = [engine.step(c) for c in codes[12:]]
    delay = max(CONFIG.delays[1:])
    # Normal again: audio once every codebook of a frame was sampled after the hold.
    assert all(r.audio_codes is None for r in after[:delay])
    assert all(r.audio_codes is not None for r in after[delay:])
    engine.reset()
    assert not engine.hold


def test_speech_onset_needs_a_voice_not_a_click() -> None:
    quiet = np.full(FRAME_SAMPLES, 0.001, np.float32)  # -60 dBFS: a quiet room
    loud = np.full(FRAME_SAMPLES, 0.1, np.float32)
    onset = SpeechOnset()
    assert [onset.feed(f) for f in (quiet, loud, quiet, loud, loud, quiet)] == [
        False,
        False,  # one loud frame: a click
        False,
        False,
        True,  # two in a row: speech
        True,  # and it stays heard
    ]


def _scripted_input(silence_s: float) -> tuple[np.ndarray, int]:
    """Silence, then half a second of the bundled speech ("Hello": Moshi's answer comes in
    the conversation's 1 s tail); and the frame where SpeechOnset first hears it."""
    speech = read_audio(SPEECH)[: SAMPLE_RATE // 2]
    pcm = np.concatenate([np.zeros(int(silence_s * SAMPLE_RATE), np.float32), speech])
    onset = SpeechOnset()
    frames = len(pcm) // FRAME_SAMPLES
    first = next(
        i for i in range(frames) if onset.feed(pcm[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES])
    )
    return pcm, first


def _moshi_frames(chat: Chat, listen_first: bool) -> np.ndarray:
    """One more conversation of `chat`: the RMS of each frame of Moshi's side."""
    chat.set_listen_first(listen_first)  # from this conversation on, as the service does
    outcome = chat.run()
    assert outcome.error is None
    reply = read_audio(outcome.session / "moshi.wav")
    frames = reply[: len(reply) // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
    return np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))


@pytest.mark.slow
def test_no_moshi_audio_before_the_users_first_word(tiny_checkpoint) -> None:
    """The synthetic (random-weight) Moshi babbles from its first frames; with listen first it
    is silent, every sample, until the frame where the user's speech starts, and speaks after.
    Both conversations on one loaded model (a fresh state each), as the service has them."""
    pcm, first = _scripted_input(silence_s=1.0)
    assert first >= 10  # 1 s of silence: 12.5 frames
    chat = Chat(
        ChatSettings(
            checkpoint=CheckpointSpec(target=str(tiny_checkpoint("bf16"))),
            input_file=pcm,
            echo_cancellation=False,
            sampling=SamplingConfig(seed=7),
            download=False,
            session_kind="test",
        )
    )
    eager = _moshi_frames(chat, listen_first=False)
    assert (eager[:first] > 1e-4).any()  # without it, Moshi talks over the silence
    held = _moshi_frames(chat, listen_first=True)
    assert (held[: first + 1] == 0).all(), held[: first + 1]
    assert (held[first + 1 :] > 1e-4).sum() >= 5, held[first:]  # and answers afterwards


def test_the_service_takes_listen_first_from_its_option_and_its_api() -> None:
    from assistant.errors import ServiceRefusedError
    from tests.support.service_harness import ServiceProcess

    svc = ServiceProcess("--no-preload", "--listen-first")
    try:
        assert svc.client.status()["listen_first"] is True
        assert svc.client.listen_first(False)["listen_first"] is False
        with pytest.raises(ServiceRefusedError, match="listen_first"):
            svc.client._call("POST", "/api/listen-first", {"listen_first": "yes"})
        assert svc.client.status()["listen_first"] is False
    finally:
        svc.close()
