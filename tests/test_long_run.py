"""Hours of conversation, compressed: a simulated clock, a micro model, thousands of frames."""

from __future__ import annotations

import dataclasses
import resource
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from assistant.checkpoint.config import TINY, MoshiConfig
from assistant.codec.streaming import StreamingCodec
from assistant.conversation.loop import ConversationLoop, LoopEvents
from assistant.voice.engine import StreamingEngine
from assistant.voice.model import build_model
from assistant.voice.sampling import SamplingConfig
from tests.support.fakes import FakeAudio, FakeCodec, speech_like

# TINY's structure (context 3000, the published delays) at the smallest width MLX runs fast.
MICRO = dataclasses.replace(
    TINY,
    dim=64,
    num_heads=2,
    num_layers=1,
    depformer_dim=64,
    depformer_num_heads=2,
    depformer_dim_feedforward=176,
    text_card=256,
)
# With FakeCodec (codes ~80: the frames' level) Mimi's 2048 codes are not needed: a vocabulary
# of 128 halves a step's time here, and memory per step does not depend on it.
FAKE_CODEC_MICRO = dataclasses.replace(MICRO, card=128)


def micro_engine(seed: int = 0, config: MoshiConfig = MICRO) -> StreamingEngine:
    mx.random.seed(seed)
    model = build_model(config, None)
    mx.eval(model.parameters())
    return StreamingEngine(model, config, SamplingConfig(seed=seed))


@pytest.mark.slow
def test_thousands_of_frames_cross_every_limit_with_flat_memory() -> None:
    # Past 3000 (the context fills), 4000 (the reference's max_steps) and 4096 (its window bug),
    # with memory watched over the 1,150 frames from 3,050 to 4,200, the context full all along.
    # The engine alone streams on to 10,000 steps and is checked there slot by slot
    # (test_kv_window.py): the loop adds no state per frame.
    frames = 4_250
    engine = micro_engine(config=FAKE_CODEC_MICRO)
    audio = FakeAudio(speech_like(64) * (frames // 64 + 1))
    audio.frames = audio.frames[:frames]
    samples: dict[int, tuple[int, int]] = {}
    checked = (2_000, 3_050, 4_000, 4_096, 4_200)

    def watch(record) -> None:
        if record.model_step in checked:
            rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            samples[record.model_step] = (mx.get_active_memory(), rss_kb)
        if record.model_step is not None and record.model_step % 500 == 0:
            audio.played.clear()  # the fake speaker's own record, not the loop's memory

    loop = ConversationLoop(audio, FakeCodec(), engine, events=LoopEvents(on_frame=watch))
    loop.run(duration_s=900)
    assert loop.counters.errors == []
    assert engine.steps_taken == frames and loop.counters.frames_played == frames
    assert sorted(samples) == list(checked)
    # Flat once the 3000-step context is full: no growth of MLX memory between 3050 and 4200
    # (0.5 MB of slack: ~430 bytes a frame; it moves by ~40 kB here), and the process' peak
    # RSS grows by less than 14 MB over those 1150 frames (12 kB a frame: the codec leak this
    # replaced grew 130 kB a frame).
    active = {k: v[0] for k, v in samples.items()}
    assert active[4_200] <= active[3_050] * 1.01 + 500_000, active
    assert samples[4_200][1] - samples[3_050][1] < 14_000, samples


def test_loop_survives_real_codec_rollovers(mimi_file: Path) -> None:
    # A real rustymimi codec whose instances only last 24 frames: the loop must keep going
    # through several roll-overs on both sides with no error and no missing frame. (Due at
    # frames 18 and 28, or up to 3 later each with a successor late to start.)
    codec = StreamingCodec(mimi_file, rollover_after=18, frame_limit=24, lead_frames=4)
    audio = FakeAudio(speech_like(36))
    loop = ConversationLoop(audio, codec, micro_engine())
    try:
        loop.run(duration_s=120)
    finally:
        codec.close()
    assert loop.counters.errors == []
    assert loop.counters.frames_played == 36
    stats = codec.stats
    assert stats.encode.rollovers >= 2 and stats.decode.rollovers >= 2
    played = np.concatenate(audio.played)
    assert np.isfinite(played).all()


def test_a_codec_worker_killed_mid_conversation_is_restarted_transparently(
    mimi_file: Path,
) -> None:
    """Kill the decoder's worker process while the loop talks: the next frame restarts it (a
    counted glitch), the conversation carries on and ends normally."""
    import os
    import signal
    import threading

    codec = StreamingCodec(mimi_file)
    audio = FakeAudio(speech_like(24))
    loop = ConversationLoop(audio, codec, micro_engine())
    victim = codec.stats.decode.pid

    def kill_once_frames_flow() -> None:
        while loop.counters.frames_played < 10 and not audio.finished:
            threading.Event().wait(0.02)
        os.kill(victim, signal.SIGKILL)

    killer = threading.Thread(target=kill_once_frames_flow, daemon=True)
    killer.start()
    try:
        loop.run(duration_s=120)
    finally:
        codec.close()
    killer.join(5)
    stats = codec.stats
    assert loop.counters.errors == []
    assert stats.decode.restarts == 1 and stats.decode.pid != victim
    assert loop.counters.frames_played == 24
