"""The speaker's adaptive jitter buffer: cushion, growth and shrinking, drops, honest timing.

Driven block by block as PortAudio's callback would (`pull`), with scripted DAC times.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from assistant.audio.playout import FADE_SAMPLES, JitterBounds, PlayoutBuffer

N = 1920  # a Mimi frame
B = 480  # a 20 ms device block
RATE = 24_000


def ramp(n: int, start: int = 0) -> np.ndarray:
    return (0.1 + np.arange(start, start + n) % 1000 / 2000).astype(np.float32)


def make(**bounds: float) -> PlayoutBuffer:
    defaults = {"min_ms": 20.0, "max_ms": 80.0}
    return PlayoutBuffer(JitterBounds(**(defaults | bounds)))


def run(buf: PlayoutBuffer, blocks: int, t0: float = 0.0) -> np.ndarray:
    """`blocks` callbacks of B samples; the first heard at t0, each B/RATE later."""
    return np.concatenate([buf.pull(B, t0 + k * B / RATE) for k in range(blocks)])


def test_playback_starts_after_the_cushion_and_plays_exactly_what_was_pushed() -> None:
    buf = make(min_ms=20)
    assert not run(buf, 3).any()  # nothing pushed: silence, and no underrun (nothing ran dry)
    assert buf.counters.underruns == 0
    buf.push(ramp(N), tag="a")
    assert buf.ahead_s() == pytest.approx(0.020 + N / RATE)  # the cushion, then its own audio
    out = run(buf, 6, t0=1.0)
    # 20 ms = 480 samples of cushion, then the frame (its first 5 ms fade in).
    assert not out[:480].any()
    np.testing.assert_array_equal(out[480 + FADE_SAMPLES : 480 + N], ramp(N)[FADE_SAMPLES:])
    assert np.all(np.diff(out[480 : 480 + FADE_SAMPLES]) >= 0)
    started = buf.drain_started()
    assert [(s.tag, s.t) for s in started] == [("a", pytest.approx(1.0 + 480 / RATE))]  # type: ignore[comparison-overlap]
    assert buf.counters.frames_played == 1


def test_a_late_frame_is_an_underrun_and_the_cushion_grows() -> None:
    buf = make(min_ms=20, max_ms=60, grow_ms=10)
    buf.push(ramp(N))
    run(buf, 5)  # cushion (1 block) + the frame (4 blocks)
    assert buf.counters.underruns == 0
    out = run(buf, 1)  # ran dry mid-stream: an audible gap
    assert buf.counters.underruns == 1 and buf.counters.gaps == 1
    assert not out.any()
    assert buf.target_ms == 30
    for _ in range(5):  # every gap adds 10 ms, up to the maximum
        buf.push(ramp(N))
        run(buf, 8)
    assert buf.target_ms == 60


def test_a_hole_the_loop_announced_does_not_grow_the_cushion() -> None:
    """Under overload the loop drops frames to bound the delay: the gap each leaves is no
    late audio, and growing the cushion for it would only add delay."""
    buf = make(min_ms=20, max_ms=60, grow_ms=10)
    for _ in range(4):
        buf.push(ramp(N))
        buf.expect_hole()  # the next frame was dropped upstream
        run(buf, 9)  # cushion + the frame, then dry for the missing one
    assert buf.counters.underruns == 4 and buf.counters.holes == 4
    assert buf.target_ms == 20
    # Running dry without an announced hole (or long after one) still grows it.
    buf.expect_hole()
    run(buf, 20)  # the announcement expires: nothing ran dry while it held
    buf.push(ramp(N))
    run(buf, 6)
    assert buf.counters.underruns == 5 and buf.counters.holes == 4
    assert buf.target_ms == 30


def test_the_tail_fades_out_when_playback_runs_dry_mid_block() -> None:
    buf = make(min_ms=0)
    buf.push(ramp(B + 200))
    first = buf.pull(B, 0.0)
    tail = buf.pull(B, 0.02)
    assert buf.counters.underruns == 1
    assert first.any() and not tail[200:].any()
    assert tail[199] < 0.05 * ramp(B + 200)[B + 199]  # faded, not cut


def test_a_steady_stream_shrinks_the_cushion_and_trims_the_excess() -> None:
    buf = make(
        min_ms=20, max_ms=80, start_ms=80, shrink_ms=20, steady_s=1.0, slack_ms=20, trim_s=0.5
    )
    k = 0
    for _ in range(40):  # 3.2 s of frames arriving exactly on time
        buf.push(ramp(N, k))
        k += N
        run(buf, 4)
    assert buf.target_ms == 20  # 80 -> 20 in steps of 20 ms, one a second
    assert buf.counters.underruns == 0
    # What was queued beyond the smaller cushion was dropped, so the delay came down too.
    assert buf.counters.playout_drops >= 1
    assert buf.ahead_s() <= (20 + 20) / 1000 + N / RATE


def test_a_burst_is_kept_but_a_lasting_excess_is_trimmed() -> None:
    buf = make(min_ms=20, max_ms=80, trim_s=0.5, slack_ms=20)
    buf.push(ramp(N))
    buf.push(ramp(N))  # two frames at once, then one every 80 ms: a frame too many, for good
    run(buf, 4)
    for _ in range(4):
        buf.push(ramp(N))
        run(buf, 4)
    assert buf.counters.playout_drops == 0  # 400 ms in: could still be a passing burst
    for _ in range(6):
        buf.push(ramp(N))
        run(buf, 4)
    assert buf.counters.playout_drops == 1 and buf.counters.underruns == 0
    assert 50 <= buf.counters.dropped_ms <= 80  # the extra frame, less the cushion
    assert buf.ahead_s() < (N + 480 + 480) / RATE  # back to a frame plus the cushion


def test_audio_beyond_two_frames_plus_the_maximum_is_dropped_oldest_first() -> None:
    buf = make(min_ms=20, max_ms=40)
    for k in range(6):
        buf.push(np.full(N, k + 1, np.float32), tag=k)
        assert buf.buffered_frames() <= 2 + 40 / 80  # the cap: two frames and the maximum
    dropped = buf.drain_dropped()
    assert dropped and dropped == sorted(dropped) and 5 not in dropped  # oldest first
    assert buf.counters.playout_drops >= 1 and buf.counters.dropped_ms > 0
    out = run(buf, 12)
    # Only the newest audio plays (its first 5 ms fade in after the cut).
    first = int(np.flatnonzero(out)[0])
    assert 6.0 in out and not np.isin(out[first + FADE_SAMPLES :], [1.0, 2.0, 3.0]).any()


def test_nothing_is_dropped_before_playback_starts_however_late() -> None:
    """The starvation fix: frames arriving slower than real time into an empty buffer are
    all played, each after the cushion: gaps, never silence."""
    buf = make(min_ms=20, max_ms=80)
    heard = 0
    for k in range(10):
        buf.push(ramp(N), tag=k)
        out = run(buf, 8)  # 160 ms between frames: twice too slow
        heard += int(np.count_nonzero(out))
    assert [s.tag for s in buf.drain_started()] == list(range(10))
    assert buf.drain_dropped() == []
    assert heard >= 10 * (N - FADE_SAMPLES)


def test_records_what_was_played_for_the_echo_canceller() -> None:
    buf = PlayoutBuffer(JitterBounds(min_ms=0), max_played=3)
    buf.push(ramp(B))
    buf.pull(B, 1.0)
    buf.pull(B, 1.02)
    chunks = buf.drain_played()
    assert [c.t_play for c in chunks] == [1.0, 1.02] and [c.index for c in chunks] == [0, B]
    assert chunks[0].samples.any() and not chunks[1].samples.any()
    for k in range(5):
        buf.pull(10, float(k))
    assert len(buf.drain_played()) == 3 and buf.counters.played_drops == 2


def test_upcoming_is_what_the_next_pulls_play() -> None:
    """The echo canceller's reference reaches past what was played into what is queued: the
    prediction must be what the output then takes, in every state of the buffer."""
    buf = make(min_ms=20)
    position, samples = buf.upcoming(N)
    assert position == 0 and len(samples) == N and not samples.any()  # nothing queued: silence
    buf.push(ramp(N))
    buf.push(ramp(N, N))
    for blocks in (1, 3):  # priming (the rest of the cushion, then a fade-in), then playing
        start, expected = buf.upcoming(2 * N)
        played = run(buf, blocks)
        assert start == buf.drain_played()[0].index
        np.testing.assert_array_equal(expected[: len(played)], played)
    left = 2 * N - (4 * B - 480)  # queued audio not played yet
    start, expected = buf.upcoming(2 * N)  # it runs out: silence after it (and a fade-out)
    played = run(buf, 2 * N // B)
    assert left == 2400 and expected[:left].all() and not expected[left:].any()
    np.testing.assert_array_equal(expected[: left - FADE_SAMPLES], played[: left - FADE_SAMPLES])
    assert not played[left:].any()


def test_callback_uses_dac_time_fills_every_channel_and_never_raises() -> None:
    buf = PlayoutBuffer(JitterBounds(min_ms=0))
    buf.push(ramp(B), tag="x")
    out = np.full((B, 2), 9.0, np.float32)
    info = SimpleNamespace(currentTime=5.0, outputBufferDacTime=5.05, inputBufferAdcTime=0.0)
    buf.callback(out, B, info, None)
    np.testing.assert_array_equal(out[:, 0], out[:, 1])
    assert out[FADE_SAMPLES:, 0].tolist() == ramp(B)[FADE_SAMPLES:].tolist()
    assert buf.output_lead_s == pytest.approx(0.05, abs=0.005)  # the device's own latency
    (started,) = buf.drain_started()
    assert started.tag == "x" and started.t is not None
    for outdata in [None, "speaker", np.zeros((3, 1))]:
        buf.callback(outdata, B, None, "output underflow")  # wrong shapes, not even arrays
    assert buf.counters.callback_errors == 3 and buf.counters.output_flags == 3


def test_an_output_underflow_reported_by_portaudio_marks_the_next_chunk_played() -> None:
    """The echo canceller's reference must know where the device played silence of its own."""
    buf = PlayoutBuffer(JitterBounds(min_ms=0))
    info = SimpleNamespace(currentTime=5.0, outputBufferDacTime=5.05, inputBufferAdcTime=0.0)
    out = np.zeros((B, 1), np.float32)
    underflow = SimpleNamespace(output_underflow=True)  # as sounddevice's CallbackFlags
    other_flag = SimpleNamespace(output_underflow=False)  # (truthy: another flag is set)
    for status in (None, underflow, other_flag, None):
        buf.callback(out, B, info, status)
    flags = [c.after_underflow for c in buf.drain_played()]
    assert flags == [False, True, False, False]
    assert buf.counters.output_flags == 2


def test_push_copies_and_cleans_its_input() -> None:
    buf = PlayoutBuffer(JitterBounds(min_ms=0))
    frame = np.full(B, np.nan, np.float32)
    buf.push(frame)
    frame[:] = 1.0  # the caller reuses its array: what was pushed must not change
    assert not buf.pull(B, 0.0).any()


def test_clear_reports_what_never_played() -> None:
    buf = make(min_ms=0)
    buf.push(ramp(N), tag="playing")
    buf.push(ramp(N), tag="queued")
    buf.pull(B, 0.0)
    buf.clear()
    assert [s.tag for s in buf.drain_started()] == ["playing"]
    assert buf.drain_dropped() == ["queued"]


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        JitterBounds(min_ms=50, max_ms=20)
