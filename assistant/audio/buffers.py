"""The microphone's side between PortAudio's callbacks and the conversation loop, and the
stream timing both sides share (the speaker's side is `playout.py`).

The callbacks run on PortAudio's real-time thread: they only copy samples under a short lock,
never wait for the model, and never raise (an exception there would stop the stream); errors are
counted instead. All times are `time.monotonic()` seconds.
"""

from __future__ import annotations

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
    gaps: int = 0  # those of them after audio first played: the ones a listener hears
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


def playback_time(now: float, time_info: Any) -> float:
    """When the first sample of an output block will be heard, per PortAudio's DAC time."""
    try:
        delay = float(time_info.outputBufferDacTime) - float(time_info.currentTime)
        if 0.0 <= delay < 2.0 and float(time_info.outputBufferDacTime) > 0.0:
            return now + delay
    except Exception:
        pass
    return now


class StreamClock:
    """Steady times for the samples of a continuous stream, from per-callback estimates.

    A sample's time is its count since the start plus an anchor. Callbacks jitter by up to a
    block (PulseAudio delivers some in pairs) and a late callback makes its estimate late,
    never early, so the anchor targets the smallest (estimate - count) offset of the last
    `window` callbacks. For the first `warmup` callbacks it follows that target (start-up is
    erratic: through PulseAudio, estimates 0.1-0.25 s off for up to 2 s); after that it moves
    by at most `slew_s` per callback, enough for clock drift but not for outliers to make
    times wobble. It jumps when `jumps` callbacks in a row run later than `jump_s` or the
    target falls that much earlier (the stream lost or gained time).
    With `skip_bursts` (output streams), a callback coming less than half a block after the
    previous one is PortAudio filling its buffer ahead (priming): its samples play later than
    its estimate says, so it is not used as evidence. (An input burst is a backlog being
    delivered: late estimates, which the minimum ignores anyway.)"""

    def __init__(
        self,
        sample_rate: int,
        *,
        skip_bursts: bool = False,
        window: int = 25,
        warmup: int = 60,
        slew_s: float = 0.00005,
        jump_s: float = 0.12,
        jumps: int = 10,
    ) -> None:
        self.sample_rate = sample_rate
        self.skip_bursts = skip_bursts
        self.warmup = warmup
        self.slew_s = slew_s
        self.jump_s = jump_s
        self.jumps = jumps
        self._offsets: deque[float] = deque(maxlen=window)
        self._anchor = 0.0
        self._seen = 0  # estimates used since the last (re-)anchoring
        self._count = 0
        self._late = 0
        self._previous: tuple[float, int] | None = None  # (estimate, samples) of last callback
        self.reanchors = 0

    def stamp(self, t_estimate: float, n: int) -> float:
        """The time of the first of the next `n` samples, given a noisy estimate of it."""
        start = self._count
        self._count += n
        previous, self._previous = self._previous, (t_estimate, n)
        burst = previous and t_estimate - previous[0] < 0.5 * previous[1] / self.sample_rate
        if not (burst and self.skip_bursts and self._offsets):
            self._observe(t_estimate - start / self.sample_rate)
        return self._anchor + start / self.sample_rate

    def _observe(self, offset: float) -> None:
        if self._offsets and offset - min(self._offsets) > self.jump_s:
            self._late += 1
            if self._late < self.jumps:
                return
            self._offsets.clear()
            self.reanchors += 1
        self._late = 0
        if self._offsets and offset < self._anchor - self.jump_s:
            self._offsets.clear()
            self.reanchors += 1
        if not self._offsets:
            self._seen = 0
        self._offsets.append(offset)
        self._seen += 1
        target = min(self._offsets)
        if self._seen <= self.warmup:
            self._anchor = target
        else:
            self._anchor += max(-self.slew_s, min(self.slew_s, target - self._anchor))


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
