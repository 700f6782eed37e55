"""The speaker's side: an adaptive jitter buffer between the loop and PortAudio's callback.

Counted in samples, not frames. Moshi's audio arrives a frame (80 ms) at a time with some
jitter; the device asks for small blocks (10-40 ms). Playback starts as soon as audio is
there plus a short cushion (`target`): the first samples wait `target` before they play, so
the next frame has that much slack to arrive. When the buffer runs dry mid-stream (an
underrun: a gap the listener hears) the cushion grows by `grow`, up to `max`; after
`steady_s` without one it shrinks by `shrink`, down to `min`. An underrun where the loop said
a frame would be missing (`expect_hole`: it dropped one to bound the delay) is that hole, not
late audio: a bigger cushion could not fill it, so it does not grow (under overload it only
added delay, which made the loop drop more frames). When the buffer's low-water mark
stays above the cushion (plus `slack`) for a whole `trim_s` window, the excess is dropped,
oldest first, so the delay comes back down; bursts (two frames arriving together) are
left alone. Audio above two frames plus `max` is dropped at once. Nothing waits for a fixed
number of frames: under overload the listener hears Moshi with gaps, never silence. (Kyutai's
web client does much the same: a 10-80 ms adaptive buffer that drops the oldest audio above it.)

Each pushed chunk may carry a tag; the buffer reports when the chunk's first sample reached
the speaker (the DAC time, from PortAudio's timing) or that it was dropped. That is how the
loop learns, honestly, when each frame was heard.

The callback side (`pull`) runs on PortAudio's real-time thread: it copies under a short lock,
never waits, never raises (errors are counted).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..frames import FRAME_SAMPLES, SAMPLE_RATE
from .buffers import AudioCounters, OutputTiming, PlayedChunk, output_underflowed

FADE_SAMPLES = 120  # 5 ms ramps where playback stops or resumes mid-sound: no clicks
GAP_LEVEL = 1e-3  # -60 dBFS: running dry after sound louder than this is a gap one hears
TAIL_SAMPLES = 240  # the last 10 ms played decide whether running dry is heard


@dataclass(frozen=True)
class JitterBounds:
    """The playout cushion: where it starts, its range, how it adapts (milliseconds)."""

    min_ms: float = 20.0
    max_ms: float = 80.0
    start_ms: float | None = None  # None: min_ms
    grow_ms: float = 10.0  # after each underrun
    shrink_ms: float = 5.0  # after `steady_s` without one
    steady_s: float = 30.0
    slack_ms: float = 20.0  # queued audio beyond the cushion tolerated before trimming
    trim_s: float = 2.0  # how long the excess must last before it is trimmed

    def __post_init__(self) -> None:
        if not 0 <= self.min_ms <= self.max_ms:
            raise ValueError(f"need 0 <= min_ms <= max_ms, got {self.min_ms}, {self.max_ms}")


@dataclass(frozen=True)
class Started:
    """A tagged chunk's first sample reached the speaker at `t` (monotonic seconds; None
    where there is no clock to say when, e.g. a file written as fast as possible)."""

    tag: Any
    t: float | None


class _Chunk:
    __slots__ = ("samples", "tag")

    def __init__(self, samples: np.ndarray, tag: Any) -> None:
        self.samples, self.tag = samples, tag


class PlayoutBuffer:
    def __init__(
        self,
        bounds: JitterBounds | None = None,
        *,
        max_played: int = 2000,
        frame_samples: int = FRAME_SAMPLES,
        sample_rate: int = SAMPLE_RATE,
        counters: AudioCounters | None = None,
    ) -> None:
        self.bounds = b = bounds or JitterBounds()
        self.counters = counters if counters is not None else AudioCounters()
        self.sample_rate = sample_rate
        self.frame_samples = frame_samples
        self.max_played = max_played
        ms = sample_rate / 1000.0
        self._min, self._max = round(b.min_ms * ms), round(b.max_ms * ms)
        self._grow, self._shrink = round(b.grow_ms * ms), round(b.shrink_ms * ms)
        self._slack = round(b.slack_ms * ms)
        self._trim_window = round(b.trim_s * sample_rate)
        self._low_water: int | None = None  # least queued at a pull, this trim window
        self._window_left = self._trim_window
        self._steady = round(b.steady_s * sample_rate)
        self._target = round((b.min_ms if b.start_ms is None else b.start_ms) * ms)
        self._lock = threading.Lock()
        self._chunks: deque[_Chunk] = deque()
        self._offset = 0  # samples of _chunks[0] already played
        self._buffered = 0  # samples queued, net of _offset
        self._playing = False
        self._wait_left: int | None = None  # priming: samples to wait before playing
        self._fade_in = False
        self._since_underrun = 0  # samples played since the last underrun (or last shrink)
        self._tail_peak = 0.0  # loudest of the last TAIL_SAMPLES played
        self._pulled = 0  # everything sent out, silence included: the output stream's index
        self._samples_played = 0  # pushed audio sent out
        self._played: deque[PlayedChunk] = deque()
        self._started: list[Started] = []
        self._dropped: list[Any] = []
        self._dac_lead_s = 0.0  # how far ahead of the callback its first sample is heard
        self._hole_until: int | None = None  # output index by which an expected hole shows
        self.timing = OutputTiming()

    # --- the loop's side ----------------------------------------------------------------------
    def expect_hole(self) -> None:
        """A frame will be missing from the stream (the loop dropped it): running dry once
        what is queued now has played, plus two frames of slack, is that hole."""
        with self._lock:
            self._hole_until = self._pulled + self._buffered + 2 * self.frame_samples

    def push(self, samples: np.ndarray, tag: Any = None) -> None:
        """Queue audio (any length; normally a frame). Never blocks."""
        data = np.array(samples, dtype=np.float32).reshape(-1)  # a copy: the caller may reuse
        if not len(data):
            return
        np.nan_to_num(data, copy=False)
        with self._lock:
            self._chunks.append(_Chunk(data, tag))
            self._buffered += len(data)
            if not self._playing and self._wait_left is None:
                self._wait_left = self._target  # priming starts with the first audio
            limit = 2 * self.frame_samples + self._max
            if self._buffered > limit:  # the output stalled or the loop bunched up
                self._drop_head(self._buffered - self.frame_samples - self._target)

    def ahead_s(self) -> float:
        """How long a sample pushed now waits before the device takes it (the cushion still
        to wait while priming, plus everything queued before it)."""
        with self._lock:
            wait = self._buffered
            if not self._playing:
                wait += self._target if self._wait_left is None else max(self._wait_left, 0)
        return wait / self.sample_rate

    @property
    def output_lead_s(self) -> float:
        """From the callback to the moment its first sample is heard (the device's latency,
        as PortAudio's DAC times say)."""
        return self._dac_lead_s

    @property
    def target_ms(self) -> float:
        return self._target * 1000.0 / self.sample_rate

    @property
    def playing(self) -> bool:
        return self._playing

    def buffered_frames(self) -> float:
        with self._lock:
            return self._buffered / self.frame_samples

    def drain_started(self) -> list[Started]:
        """Tagged chunks whose first sample was played since the last call, in order."""
        with self._lock:
            out, self._started = self._started, []
        return out

    def drain_dropped(self) -> list[Any]:
        """Tags of chunks dropped (overflow or catch-up) before any of them played."""
        with self._lock:
            out, self._dropped = self._dropped, []
        return out

    def drain_played(self) -> list[PlayedChunk]:
        """Everything played since the last drain, oldest first (for the echo canceller)."""
        with self._lock:
            chunks = list(self._played)
            self._played.clear()
        return chunks

    def upcoming(self, n: int) -> tuple[int, np.ndarray]:
        """The next `n` samples the output will take, as things stand, and the output position
        (`PlayedChunk.index`) of the first: the rest of the priming wait in silence, then what
        is queued, then silence. Exact unless audio is queued or dropped before it plays (the
        echo canceller's reference runs a little ahead of what has already been played)."""
        out = np.zeros(n, dtype=np.float32)
        with self._lock:
            start = self._pulled
            if not self._playing and self._wait_left is None:
                return start, out  # nothing queued: silence
            pos = 0 if self._playing else max(self._wait_left or 0, 0)
            first, offset = pos, self._offset
            for chunk in self._chunks:
                if pos >= n:
                    break
                take = min(n - pos, len(chunk.samples) - offset)
                out[pos : pos + take] = chunk.samples[offset : offset + take]
                pos, offset = pos + take, 0
            if (self._fade_in or not self._playing) and pos > first:
                ramp = min(FADE_SAMPLES, pos - first)
                out[first : first + ramp] *= np.linspace(0.0, 1.0, ramp, endpoint=False)
        return start, out

    def clear(self) -> None:
        """Forget queued audio (e.g. when the assistant is interrupted)."""
        with self._lock:
            for chunk in self._chunks:
                if chunk.tag is not None and (chunk is not self._chunks[0] or not self._offset):
                    self._dropped.append(chunk.tag)
            self._chunks.clear()
            self._offset = self._buffered = 0
            self._playing, self._wait_left = False, None

    # --- the callback's side --------------------------------------------------------------------
    def callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        """sounddevice OutputStream callback (device at `sample_rate`). Never raises."""
        try:
            if status:
                self.count_status()
            now = time.monotonic()
            t_play = self.timing.stamp(now, time_info)
            block = self.pull(frames, t_play, now, underflow=output_underflowed(status))
            outdata[:] = block.reshape(-1, 1)  # broadcasts over channels
        except Exception as e:
            with contextlib.suppress(Exception):
                outdata.fill(0)
            self.count_error(e)

    def pull(
        self, n: int, t_play: float, now: float | None = None, *, underflow: bool = False
    ) -> np.ndarray:
        """Exactly `n` samples for the device, whose first is heard at `t_play`;
        `underflow`: the device ran dry before this call (PortAudio said so)."""
        out = np.zeros(n, dtype=np.float32)
        with self._lock:
            if now is not None:  # smoothed: PortAudio's DAC times jitter by a block
                lead = t_play - now
                self._dac_lead_s += 0.05 * (lead - self._dac_lead_s) if self._pulled else lead
            pos = 0
            if not self._playing and self._buffered and self._wait_left is not None:
                if self._wait_left < n:
                    pos = max(self._wait_left, 0)  # the cushion ends inside this block
                    self._playing, self._fade_in, self._wait_left = True, True, None
                else:
                    self._wait_left -= n
            got = self._copy_out(out, pos, t_play)
            if self._fade_in and got > pos:
                ramp = min(FADE_SAMPLES, got - pos)
                out[pos : pos + ramp] *= np.linspace(0.0, 1.0, ramp, endpoint=False)
                self._fade_in = False
            if got > pos:
                tail = out[max(pos, got - TAIL_SAMPLES) : got]
                self._tail_peak = float(np.abs(tail).max())
            if self._playing and got < n:
                self._underrun(out, pos, got)
            elif self._playing:
                self._watch_level(n)
                self._since_underrun += n
                if self._since_underrun >= self._steady and self._target > self._min:
                    self._target = max(self._target - self._shrink, self._min)
                    self._since_underrun = 0
            self._samples_played += got - pos
            self.counters.frames_played = self._samples_played // self.frame_samples
            self._played.append(PlayedChunk(t_play, out, self._pulled, after_underflow=underflow))
            self._pulled += n
            while len(self._played) > self.max_played:
                self._played.popleft()
                self.counters.played_drops += 1
        return out

    # --- internals (called with the lock held) ------------------------------------------------
    def _copy_out(self, out: np.ndarray, pos: int, t_play: float) -> int:
        got = pos
        n = len(out)
        while self._playing and got < n and self._chunks:
            head = self._chunks[0]
            if self._offset == 0 and head.tag is not None:
                self._started.append(Started(head.tag, t_play + got / self.sample_rate))
            take = min(n - got, len(head.samples) - self._offset)
            out[got : got + take] = head.samples[self._offset : self._offset + take]
            got += take
            self._offset += take
            self._buffered -= take
            if self._offset == len(head.samples):
                self._chunks.popleft()
                self._offset = 0
        return got

    def _watch_level(self, n: int) -> None:
        """Track the low-water mark; trim a lasting excess at the end of each window."""
        level = self._buffered
        self._low_water = level if self._low_water is None else min(self._low_water, level)
        self._window_left -= n
        if self._window_left > 0:
            return
        excess = self._low_water - self._target
        self._low_water, self._window_left = None, self._trim_window
        if excess > self._slack:
            self._drop_head(excess)

    def _underrun(self, out: np.ndarray, pos: int, got: int) -> None:
        """Ran dry mid-stream: fade the tail out, wait for audio again with a bigger cushion."""
        ramp = min(FADE_SAMPLES, got - pos)
        if ramp > 0:
            out[got - ramp : got] *= np.linspace(1.0, 0.0, ramp, endpoint=False)
        self._playing, self._wait_left = False, None
        self._low_water, self._window_left = None, self._trim_window
        self.counters.underruns += 1
        # Running dry after silence is not heard: only a gap in sound counts as one.
        self.counters.gaps += self._tail_peak > GAP_LEVEL
        hole, self._hole_until = self._hole_until, None
        if hole is not None and self._pulled <= hole:
            self.counters.holes += 1  # a frame the loop dropped: no cushion would have filled it
        else:
            self._target = min(self._target + self._grow, self._max)
        self._since_underrun = 0

    def _drop_head(self, excess: int) -> None:
        """Drop `excess` samples, oldest first; the next sample played fades in."""
        dropped = 0
        while dropped < excess and self._chunks:
            head = self._chunks[0]
            left = len(head.samples) - self._offset
            take = min(left, excess - dropped)
            if self._offset == 0 and head.tag is not None:
                self._dropped.append(head.tag)  # its first sample will never play
            self._offset += take
            dropped += take
            self._buffered -= take
            if self._offset == len(head.samples):
                self._chunks.popleft()
                self._offset = 0
            elif head.tag is not None:
                head.tag = None  # partly played or cut: no longer reported
        if dropped:
            self.counters.playout_drops += 1
            self.counters.dropped_ms += round(dropped * 1000 / self.sample_rate)
            self._fade_in = True

    # --- counters ---------------------------------------------------------------------------
    def count_status(self) -> None:
        with self._lock:
            self.counters.output_flags += 1

    def count_error(self, e: BaseException) -> None:
        """Count an exception caught inside a callback (never raises itself)."""
        with contextlib.suppress(Exception), self._lock:
            self.counters.callback_errors += 1
            self.counters.last_error = f"{type(e).__name__}: {e}"[:200]
