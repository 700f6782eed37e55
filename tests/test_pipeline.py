"""The conversation loop driven by scripted fakes: flow, bounded lag, errors, sessions."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from assistant.conversation.lag import LagPolicy
from assistant.conversation.loop import ConversationLoop, LoopEvents
from assistant.errors import CodecError
from assistant.telemetry.records import FrameRecord
from tests.support.fakes import FakeAudio, FakeCodec, ScriptedEngine, speech_like


def make_loop(audio, codec=None, engine=None, session_dir: Path | None = None, **kwargs):
    codec = codec or FakeCodec()
    engine = engine or ScriptedEngine(["Hel", "lo", " there"])
    loop = ConversationLoop(audio, codec, engine, **kwargs)
    if session_dir is not None:
        from assistant.conversation.session import SessionWriter

        loop.session = SessionWriter(session_dir, loop.stats)
    return loop


def test_every_frame_flows_through_every_stage(tmp_path: Path) -> None:
    frames = speech_like(30)
    audio = FakeAudio(frames)
    texts: list[tuple[float, str]] = []
    records: list[FrameRecord] = []
    engine = ScriptedEngine(["Hel", "lo", " there"])
    loop = make_loop(
        audio,
        engine=engine,
        events=LoopEvents(on_text=lambda t, p: texts.append((t, p)), on_frame=records.append),
    )
    loop.run(duration_s=30)
    assert engine.steps == 30 and loop.counters.frames_stepped == 30
    assert len(audio.played) == 30 and loop.counters.frames_played == 30
    assert texts == [(0.0, "Hel"), (0.08, "lo"), (0.16, " there")]
    assert [r.index for r in records] == list(range(30))
    assert all(r.encode_ms is not None and r.step_ms is not None for r in records)
    # The user's frames reach the model in order, unaltered by the loop.
    expected = [FakeCodec().encode(f)[0] for f in frames]
    assert [int(x[0]) for x in engine.inputs] == expected


def test_acoustic_delay_plays_silence_first() -> None:
    audio = FakeAudio(speech_like(3))
    make_loop(audio).run(duration_s=10)
    assert np.all(audio.played[0] == 0) and np.abs(audio.played[1]).max() > 0


@pytest.mark.slow
@pytest.mark.realtime  # real-time input against a slow model: the drops depend on the pace
def test_slow_model_drops_frames_and_keeps_delay_bounded() -> None:
    # Real-time input (80 ms frames), a model taking 200 ms a step: 2.5x too slow.
    audio = FakeAudio(speech_like(40), period_s=0.08)
    policy = LagPolicy(max_delay_ms=400)
    loop = make_loop(audio, engine=ScriptedEngine(step_s=0.2), policy=policy)
    loop.run(duration_s=20)
    c = loop.counters
    assert c.dropped_input > 10
    assert c.frames_stepped + c.dropped_input == 40
    assert 0 < audio.holes_expected <= c.dropped_input  # drops told the speaker's cushion
    delay = loop.timings["delay"]
    # Bounded by the policy; the slack covers one step running over its estimate and
    # scheduling noise on a loaded 2-core machine.
    assert delay.maximum < policy.max_delay_ms + 300, delay.summary()


@pytest.mark.realtime  # real-time input against a slow model: the drops depend on the pace
def test_without_a_ceiling_the_same_slow_model_would_lag(monkeypatch) -> None:
    """Control for the test above: the bound comes from the policy, not from the fakes.
    Each step falls 120 ms further behind: by the 18th frame the delay is past 2 s."""
    audio = FakeAudio(speech_like(18), period_s=0.08)
    policy = LagPolicy(max_delay_ms=400)
    monkeypatch.setattr(LagPolicy, "max_model_backlog", property(lambda self: 10_000))
    for rule in ("_stale", "_too_late", "_late_for_speaker"):
        monkeypatch.setattr(ConversationLoop, rule, lambda self, record, *more: False)
    loop = make_loop(audio, engine=ScriptedEngine(step_s=0.2), policy=policy)
    loop.run(duration_s=20)
    assert loop.counters.dropped_input == 0
    assert loop.timings["delay"].maximum > 1500


def test_worker_failure_stops_the_loop_and_is_raised(tmp_path: Path) -> None:
    audio = FakeAudio(speech_like(50))
    loop = make_loop(audio, codec=FakeCodec(fail_at=10), session_dir=tmp_path)
    with pytest.raises(CodecError, match="scripted codec failure"):
        loop.run(duration_s=30)
    # Everything up to the failure is saved and valid.
    with wave.open(str(tmp_path / "user.wav")) as w:
        assert w.getnframes() == 10 * 1920
    assert json.loads((tmp_path / "summary.json").read_text())["errors"]


def test_session_folder_has_both_sides_transcript_and_stats(tmp_path: Path) -> None:
    audio = FakeAudio(speech_like(25))
    loop = make_loop(audio, session_dir=tmp_path)
    loop.run(duration_s=30)
    with wave.open(str(tmp_path / "user.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (24000, 1, 25 * 1920)
    with wave.open(str(tmp_path / "moshi.wav")) as w:
        assert w.getnframes() == 25 * 1920
    assert (tmp_path / "transcript.txt").read_text() == "[    0.00s] Hello there\n"
    lines = (tmp_path / "frames.jsonl").read_text().splitlines()
    assert len(lines) == 25 and json.loads(lines[3])["model_step"] == 3
    stats = json.loads((tmp_path / "summary.json").read_text())
    assert stats["frames_stepped"] == 25 and stats["stages_ms"]["step"]["count"] == 25


def test_silent_microphone_is_reported_once() -> None:
    audio = FakeAudio([np.zeros(1920, np.float32)] * 10)
    warnings: list[str] = []
    calls = iter(["microphone is silent"] + [None] * 20)
    loop = make_loop(
        audio,
        silence_check=lambda mic: next(calls),
        events=LoopEvents(on_warning=warnings.append),
    )
    loop.run(duration_s=10)
    assert warnings == ["microphone is silent"]


def test_full_disk_stops_the_recording_not_the_conversation(tmp_path: Path, monkeypatch) -> None:
    from assistant.audio import wav_writer
    from assistant.errors import AudioError

    calls = {"n": 0}
    real_write = wav_writer.StreamingWavWriter.write

    def filling_disk(self, samples):
        calls["n"] += 1
        if calls["n"] > 20:
            raise AudioError(
                "cannot write audio ([Errno 28] No space left on device)", path=self.path
            )
        return real_write(self, samples)

    monkeypatch.setattr(wav_writer.StreamingWavWriter, "write", filling_disk)
    warnings: list[str] = []
    audio = FakeAudio(speech_like(40))
    loop = make_loop(audio, session_dir=tmp_path, events=LoopEvents(on_warning=warnings.append))
    loop.run(duration_s=30)
    assert loop.counters.frames_stepped == 40 and loop.counters.frames_played == 40
    assert loop.session.error is not None and "No space left" in loop.session.error
    assert len(warnings) == 1 and "goes on without recording" in warnings[0]
    with wave.open(str(tmp_path / "user.wav")) as w:  # what was written before stays valid
        assert w.getnframes() > 0


@pytest.mark.realtime  # real-time input against a slow model: the drops depend on the pace
def test_dropping_frames_is_announced_once() -> None:
    audio = FakeAudio(speech_like(30), period_s=0.08)
    warnings: list[str] = []
    loop = make_loop(
        audio,
        engine=ScriptedEngine(step_s=0.2),
        policy=LagPolicy(max_delay_ms=400),
        events=LoopEvents(on_warning=warnings.append),
    )
    loop.run(duration_s=20)
    assert loop.counters.dropped_input > 0
    assert [w for w in warnings if "slower than real time" in w] == warnings
    assert len(warnings) == 1


def test_lag_policy_rules() -> None:
    p = LagPolicy(max_delay_ms=400)
    assert p.max_model_backlog == 3  # 5 frames of budget less the one captured and answered
    assert not p.stale(400) and p.stale(401)
    # Predictions aim `margin_ms` (25) inside the budget.
    assert not p.too_late_for_model(75, 300) and p.too_late_for_model(76, 300)
    # Nothing queued: dropping would leave silence and save no delay, however late.
    assert not p.late_for_speaker(999, 0, 0)
    assert not p.late_for_speaker(275, 100, 1.5) and p.late_for_speaker(276, 100, 1.5)
    for bad in (100, -5, float("nan"), float("inf"), 1e9):
        with pytest.raises(ValueError, match="--max-delay-ms"):
            LagPolicy(max_delay_ms=bad)
