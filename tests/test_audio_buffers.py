"""The capture buffer and stream clocks between PortAudio callbacks and the loop: exact counts,
never a raise. (The speaker's jitter buffer: test_audio_playout.py.)"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from assistant.audio.buffers import (
    AudioCounters,
    CaptureBuffer,
    OutputTiming,
    StreamClock,
    capture_time,
)

N = 1920


def ramp(n: int, start: int = 0) -> np.ndarray:
    return (np.arange(start, start + n) % 1000 / 1000).astype(np.float32)


def times(current: float = 0.0, adc: float = 0.0, dac: float = 0.0) -> SimpleNamespace:
    return SimpleNamespace(currentTime=current, inputBufferAdcTime=adc, outputBufferDacTime=dac)


# --- capture ---------------------------------------------------------------------------------


def test_capture_assembles_frames_from_odd_blocks_with_their_times() -> None:
    buf = CaptureBuffer()
    signal = ramp(5 * N)
    pos, t = 0, 100.0
    for size in [700, 1300, 2000, 1, 2599, 3000, 0, 9999]:
        block = signal[pos : pos + size]
        buf.write(block, t + pos / 24000)
        pos += len(block)
    got = [buf.get(timeout=0) for _ in range(5)]
    assert buf.get(timeout=0) is None
    assert all(f is not None for f in got)
    np.testing.assert_array_equal(np.concatenate([f.samples for f in got]), signal)
    assert [f.t_capture for f in got] == pytest.approx([100.0 + k * 0.08 for k in range(5)])
    assert buf.counters.frames_captured == 5


def test_capture_drops_oldest_frames_when_full_and_counts_them_exactly() -> None:
    buf = CaptureBuffer(max_frames=3)
    for k in range(10):
        buf.write(np.full(N, k, np.float32), float(k))
    assert buf.counters.overruns == 7
    assert buf.counters.frames_captured == 10
    kept = [buf.get(timeout=0) for _ in range(3)]
    assert [f.samples[0] for f in kept] == [7, 8, 9]
    assert buf.get(timeout=0.01) is None


def test_capture_callback_takes_the_first_channel_and_stamps_time() -> None:
    buf = CaptureBuffer()
    stereo = np.stack([ramp(N), -ramp(N)], axis=1)
    buf.callback(stereo, N, times(50.0, 49.9), None)
    frame = buf.get(timeout=0)
    np.testing.assert_array_equal(frame.samples, ramp(N))
    assert buf.counters.callback_errors == 0


def test_capture_callback_never_raises_on_garbage() -> None:
    buf = CaptureBuffer()
    for indata in [None, "noise", object(), np.zeros((2, 2, 2)), [[1, 2], ["a", "b"]]]:
        buf.callback(indata, N, None, "input overflow")
    assert buf.counters.callback_errors >= 3
    assert buf.counters.input_flags == 5
    assert buf.counters.last_error
    # and it still works afterwards
    buf.callback(np.ones((N, 1), np.float32), N, times(), None)
    assert buf.get(timeout=0) is not None


def test_capture_time_uses_adc_time_but_never_less_than_a_block() -> None:
    assert capture_time(10.0, times(5.0, 4.8), N, 24000) == pytest.approx(9.8)
    assert capture_time(10.0, times(5.0, 5.0), N, 24000) == pytest.approx(9.92)  # ALSA-like
    assert capture_time(10.0, None, N, 24000) == pytest.approx(9.92)


def test_counters_snapshot_is_a_copy() -> None:
    counters = AudioCounters()
    snap = counters.snapshot()
    counters.underruns += 1
    assert snap.underruns == 0


# --- stream clock ----------------------------------------------------------------------------


def test_stream_clock_ignores_late_callbacks() -> None:
    clock = StreamClock(24000)
    rng = np.random.default_rng(0)
    stamps = []
    for k in range(200):  # every other callback an 80 ms late, like PulseAudio's pairs
        late = 0.08 if k % 2 == 0 else rng.uniform(0, 0.002)
        stamps.append(clock.stamp(100.0 + k * 0.08 + late, N))
    truth = 100.0 + np.arange(200) * 0.08
    assert np.max(np.abs(np.array(stamps[2:]) - truth[2:])) < 0.003
    assert np.diff(stamps[60:]) == pytest.approx(0.08, abs=0.003)


def test_output_timing_follows_each_callbacks_dac_time_not_a_priming_burst() -> None:
    """PulseAudio primes an output stream with a burst of callbacks, then may stall it: the
    play time of each block is its callback's time plus PortAudio's own DAC delay for it."""
    timing = OutputTiming()
    for k in range(5):  # the priming burst: all at t=10, the buffer filling up
        assert timing.stamp(10.0, times(0.0, dac=0.01 * k)) == pytest.approx(
            10.0 + 0.01 * k, abs=0.02
        )
    stamps = [timing.stamp(11.5 + k * 0.02, times(5.0, dac=5.04)) for k in range(20)]
    assert stamps[-1] == pytest.approx(11.5 + 19 * 0.02 + 0.04)
    # One absurd report (and one with no timing at all) moves nothing.
    assert timing.stamp(12.0, times(5.0, dac=6.5)) == pytest.approx(12.04)
    assert timing.stamp(12.02, None) == pytest.approx(12.06)


def test_stream_clock_reanchors_after_a_real_jump() -> None:
    clock = StreamClock(24000, late_s=0.2)
    for k in range(10):
        clock.stamp(k * 0.08, N)
    # the stream lost a second: estimates are now consistently 1 s later
    later = [clock.stamp(1.0 + k * 0.08, N) for k in range(10, 20)]
    assert later[-1] == pytest.approx(1.0 + 19 * 0.08)
    assert clock.reanchors == 1
