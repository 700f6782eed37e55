"""The microphone's side between PortAudio's callbacks and the conversation loop, and the
stream timing both sides share (the speaker's side is `playout.py`).

The callbacks run on PortAudio's real-time thread: they only copy samples under a short lock,
never wait for the model, and never raise (an exception there would stop the stream); errors are
counted instead. All times are `time.monotonic()` seconds.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..frames import FRAME_SAMPLES, SAMPLE_RATE


@dataclass
class AudioCounters:
    frames_captured: int = 0  # complete 80 ms frames handed to the capture queue
    frames_played: int = 0  # 80 ms frames' worth of pushed audio sent to the speaker
    underruns: int = 0  # times playback ran dry mid-stream (the cushion grows after each)
    gaps: int = 0  # those of them right after sound (not silence): the ones a listener hears
    holes: int = 0  # underruns at a frame the loop dropped (the cushion does not grow for them)
    overruns: int = 0  # captured frames dropped because the loop did not read them in time
    playout_drops: int = 0  # times queued audio was dropped (above the cushion's maximum)
    dropped_ms: int = 0  # how much audio those drops removed
    played_drops: int = 0  # played chunks dropped because nobody drained the record
    input_flags: int = 0  # callbacks where PortAudio reported an input overflow/underflow
    output_flags: int = 0  # callbacks where PortAudio reported an output underflow/overflow
    callback_errors: int = 0  # exceptions caught inside callbacks (the stream kept going)
    last_error: str = ""

    def snapshot(self) -> AudioCounters:
        return replace(self)


@dataclass(frozen=True)
class CapturedFrame:
    samples: np.ndarray  # float32 [1920]
    t_capture: float  # when its first sample was captured
    index: int = 0  # position of its first sample in the input stream (24 kHz samples)


@dataclass(frozen=True)
class PlayedChunk:
    t_play: float  # when its first sample reaches the speaker (as PortAudio estimates it)
    samples: np.ndarray  # float32, exactly what the output callback wrote (silence included)
    index: int = 0  # position of its first sample in the output stream (24 kHz samples)
    # The device ran dry just before it (`output_underflowed`): from this chunk on the stream
    # is heard later than before.
    after_underflow: bool = False


def capture_time(now: float, time_info: Any, frames: int, sample_rate: int) -> float:
    """When the first sample of an input block was captured. PortAudio's ADC time is used when
    it is plausible; a block can't be complete sooner than its own duration, so that is the
    floor (ALSA reports the ADC time as 'now')."""
    age = frames / sample_rate
    try:
        delay = float(time_info.currentTime) - float(time_info.inputBufferAdcTime)
        if 0.0 < delay < 1.0 and float(time_info.inputBufferAdcTime) > 0.0:
            age = max(age, delay)
    except Exception:
        pass  # a None or odd time_info: the floor will do
    return now - age


def output_underflowed(status: Any) -> bool:
    """Whether PortAudio says the output device ran dry before this callback: it then played
    silence of its own, so everything from this block on is heard later than it was."""
    try:
        return bool(getattr(status, "output_underflow", False))
    except Exception:  # an odd status object: no news
        return False


def output_lead(time_info: Any) -> float | None:
    """How far ahead of this callback its first sample is heard (outputBufferDacTime -
    currentTime), or None where PortAudio gives nothing plausible."""
    try:
        lead = float(time_info.outputBufferDacTime) - float(time_info.currentTime)
        if 0.0 <= lead < 2.0 and float(time_info.outputBufferDacTime) > 0.0:
            return lead
    except Exception:
        pass
    return None


class OutputTiming:
    """When the first sample of an output block is heard: the callback's own time plus the
    device's delay as PortAudio measured it for this very callback, the median of the last
    few reports (one odd report moves nothing; a real change shows within a few blocks).

    No sample-count anchor: PulseAudio primes an output stream with a burst of callbacks and
    may stall it for a second after; an anchor fitted across that was seconds off."""

    def __init__(self, window: int = 9) -> None:
        self._leads: deque[float] = deque(maxlen=window)

    def stamp(self, now: float, time_info: Any) -> float:
        lead = output_lead(time_info)
        if lead is not None:
            self._leads.append(lead)
        return now + (statistics.median(self._leads) if self._leads else 0.0)


class StreamClock:
    """Steady times for the samples of a continuous input stream, from per-callback estimates.

    A sample's time is its count since the start plus an anchor. Callbacks jitter by up to a
    block (PulseAudio delivers some in pairs) and a late callback makes its estimate late,
    never early, so the anchor targets the smallest (estimate - count) offset of the last
    `window_s` of audio. For the first `warmup_s` it follows that target (start-up is erratic:
    through PulseAudio, estimates 0.1-0.25 s off for up to 2 s); after that it moves by at
    most `slew` seconds per second of audio, enough for clock drift but not for outliers to
    make times wobble. It jumps when estimates run later than `jump_s` for `late_s` of audio
    in a row, or the target falls that much earlier (the stream lost or gained time). All in
    seconds of audio, so any block size behaves the same."""

    def __init__(
        self,
        sample_rate: int,
        *,
        window_s: float = 0.5,
        warmup_s: float = 2.0,
        slew: float = 0.0025,
        jump_s: float = 0.12,
        late_s: float = 0.25,
    ) -> None:
        self.sample_rate = sample_rate
        self.window = round(window_s * sample_rate)
        self.warmup = round(warmup_s * sample_rate)
        self.slew = slew
        self.jump_s = jump_s
        self.late = round(late_s * sample_rate)
        self._offsets: deque[tuple[int, float]] = deque()  # (sample count, offset)
        self._anchor = 0.0
        self._since_anchor = 0  # samples observed since the last (re-)anchoring
        self._count = 0
        self._late_run = 0  # samples of late estimates in a row
        self.reanchors = 0

    def stamp(self, t_estimate: float, n: int) -> float:
        """The time of the first of the next `n` samples, given a noisy estimate of it."""
        start = self._count
        self._count += n
        self._observe(start, n, t_estimate - start / self.sample_rate)
        return self._anchor + start / self.sample_rate

    def _observe(self, start: int, n: int, offset: float) -> None:
        if self._offsets and offset - self._target() > self.jump_s:
            self._late_run += n
            if self._late_run < self.late:
                return
            self._reanchor()
        self._late_run = 0
        if self._offsets and offset < self._anchor - self.jump_s:
            self._reanchor()
        self._offsets.append((start, offset))
        while self._offsets and self._offsets[0][0] < start - self.window:
            self._offsets.popleft()
        first = self._since_anchor == 0
        self._since_anchor += n
        target = self._target()
        if first or self._since_anchor <= self.warmup:
            self._anchor = target
        else:
            step = self.slew * n / self.sample_rate
            self._anchor += max(-step, min(step, target - self._anchor))

    def _target(self) -> float:
        return min(offset for _, offset in self._offsets)

    def _reanchor(self) -> None:
        self._offsets.clear()
        self._since_anchor = 0
        self.reanchors += 1


class _Counted:
    def __init__(self, counters: AudioCounters | None) -> None:
        self.counters = counters if counters is not None else AudioCounters()
        self._cond = threading.Condition(threading.Lock())

    def count_status(self, kind: str) -> None:
        """Count a PortAudio status flag ('input' or 'output') reported to a callback."""
        with self._cond:
            if kind == "input":
                self.counters.input_flags += 1
            else:
                self.counters.output_flags += 1

    def count_error(self, e: BaseException) -> None:
        """Count an exception caught inside a callback (never raises itself)."""
        try:
            with self._cond:
                self.counters.callback_errors += 1
                self.counters.last_error = f"{type(e).__name__}: {e}"[:200]
        except Exception:
            pass


class CaptureBuffer(_Counted):
    """Input side: callbacks append samples; the loop takes complete 1920-sample frames.

    Bounded at `max_frames`: when the loop falls behind, the oldest frames are dropped and
    counted as overruns (stale audio is worth less than fresh audio to a live conversation)."""

    def __init__(
        self,
        *,
        max_frames: int = 25,
        frame_samples: int = FRAME_SAMPLES,
        sample_rate: int = SAMPLE_RATE,
        counters: AudioCounters | None = None,
    ) -> None:
        super().__init__(counters)
        if max_frames < 1:
            raise ValueError("max_frames must be at least 1")
        self.max_frames = max_frames
        self.frame_samples = frame_samples
        self.sample_rate = sample_rate
        self._frames: deque[CapturedFrame] = deque()
        self._pending = np.zeros(frame_samples, dtype=np.float32)
        self._fill = 0
        self._pending_t = 0.0
        self._pending_index = 0
        self._written = 0  # samples written since the start
        self.clock = StreamClock(sample_rate)

    def callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        """sounddevice InputStream callback (device at `sample_rate`). Never raises."""
        try:
            t_est = capture_time(time.monotonic(), time_info, frames, self.sample_rate)
            t_first = self.clock.stamp(t_est, frames)
            if status:
                self.count_status("input")
            data = np.asarray(indata, dtype=np.float32)
            self.write(data[:, 0] if data.ndim == 2 else data, t_first)
        except Exception as e:
            self.count_error(e)

    def write(self, samples: np.ndarray, t_first: float) -> None:
        """Append samples whose first one was captured at `t_first` (producer thread only)."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        done: list[CapturedFrame] = []
        pos, n = 0, len(samples)
        while pos < n:
            if self._fill == 0:
                self._pending_t = t_first + pos / self.sample_rate
                self._pending_index = self._written + pos
            take = min(self.frame_samples - self._fill, n - pos)
            self._pending[self._fill : self._fill + take] = samples[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == self.frame_samples:
                done.append(
                    CapturedFrame(self._pending.copy(), self._pending_t, self._pending_index)
                )
                self._fill = 0
        self._written += n
        if not done:
            return
        with self._cond:
            self._frames.extend(done)
            self.counters.frames_captured += len(done)
            while len(self._frames) > self.max_frames:
                self._frames.popleft()
                self.counters.overruns += 1
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> CapturedFrame | None:
        """The oldest complete frame, waiting up to `timeout` seconds (None: forever)."""
        with self._cond:
            if not self._frames and timeout != 0:
                self._cond.wait_for(lambda: bool(self._frames), timeout)
            return self._frames.popleft() if self._frames else None

    def wake(self) -> None:
        """Wake a waiting `get` (it returns None if there is still no frame)."""
        with self._cond:
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._frames.clear()

    def __len__(self) -> int:
        with self._cond:
            return len(self._frames)
