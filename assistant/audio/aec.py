"""Echo cancellation: WebRTC's audio processing module (AEC3), as shipped in `livekit`.

The mic hears the assistant's own voice from the speaker; without cancelling it Moshi answers
itself. Per 80 ms frame, the audio that was playing while the mic frame was captured is fed as
the reverse (far-end) stream, 10 ms at a time, before the mic audio. AEC3 finds the delay
itself, from about 5 ms to 500 ms of lead of the reference over its echo (measured), and fails
when the reference comes after its echo. A sound played at t is heard at t + the acoustic
delay, so the reference for a mic frame captured at t is what was played from t + a small lead
on (`ReferenceTimeline.reference_for`): it is already known then, since output is stamped when
it is written, ahead of its play time. `set_stream_delay_ms` changed nothing measurable.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from ..errors import AudioError
from ..voice.audio_files import FRAME_SAMPLES, SAMPLE_RATE
from .buffers import PlayedChunk

# Far-end RMS above which a subframe counts towards the echo reduction (~ -50 dBFS).
FAR_ACTIVE_RMS = 3e-3
# How far after the mic frame's capture time its reference starts: the margin by which the
# reference leads the echo, on top of the acoustic delay, against errors in the timestamps.
# Kept small: the reference must already have been written to the output when the frame is
# processed, and that is only ~ one block plus the output latency ahead.
REFERENCE_LEAD_S = 0.04


@dataclass
class AecStats:
    frames: int = 0  # process() calls
    errors: int = 0  # bad frames or APM failures (the mic audio was passed through)
    last_error: str = ""
    measured: int = 0  # 10 ms subframes in the echo-reduction window
    seconds: float = 0.0  # total time spent in process()
    window: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=1000))

    @property
    def mean_ms(self) -> float:
        return 1000 * self.seconds / self.frames if self.frames else 0.0

    @property
    def echo_reduction_db(self) -> float | None:
        """10*log10(mic energy / output energy) over the recent subframes with far-end audio."""
        if not self.window:
            return None
        e_in = sum(w[0] for w in self.window)
        e_out = sum(w[1] for w in self.window)
        return 10 * float(np.log10(max(e_in, 1e-20) / max(e_out, 1e-20)))

    def snapshot(self) -> AecStats:
        return replace(self, window=deque(self.window, maxlen=self.window.maxlen))


class Canceller(Protocol):
    stats: AecStats

    @property
    def echo_reduction_db(self) -> float | None: ...
    def process(self, mic: np.ndarray, reference: np.ndarray) -> np.ndarray: ...


def _as_samples(x: Any) -> np.ndarray | None:
    try:
        a = np.asarray(x, dtype=np.float32).reshape(-1)
    except Exception:
        return None
    return np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=-1.0)


class _Base:
    def __init__(self, sample_rate: int, frame_samples: int) -> None:
        self.sample_rate = sample_rate
        self.frame_samples = frame_samples
        self.sub = sample_rate // 100  # 10 ms: the only size the APM accepts
        self.stats = AecStats()

    @property
    def echo_reduction_db(self) -> float | None:
        return self.stats.echo_reduction_db

    def _inputs(self, mic: Any, reference: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Sanitised (mic, reference); reference None when the mic can't be processed."""
        m = _as_samples(mic)
        if m is None or len(m) == 0:
            self._error("mic frame is not audio")
            return np.zeros(self.frame_samples, np.float32), None
        if len(m) % self.sub:
            self._error(f"mic frame of {len(m)} samples is not a multiple of 10 ms")
            return m, None
        r = _as_samples(reference)
        if r is None or len(r) != len(m):
            self._error("reference frame does not match the mic frame; treated as silence")
            r = np.zeros_like(m)
        return m, r

    def _error(self, message: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = message[:200]

    def _measure(self, m: np.ndarray, r: np.ndarray, out: np.ndarray) -> None:
        n = len(m) // self.sub
        far = np.sqrt(np.mean(np.square(r.reshape(n, self.sub), dtype=np.float64), axis=1))
        e_in = np.sum(np.square(m.reshape(n, self.sub), dtype=np.float64), axis=1)
        e_out = np.sum(np.square(out.reshape(n, self.sub), dtype=np.float64), axis=1)
        for i in np.flatnonzero(far > FAR_ACTIVE_RMS):
            self.stats.window.append((float(e_in[i]), float(e_out[i])))
        self.stats.measured = len(self.stats.window)


class PassthroughCanceller(_Base):
    """No echo cancellation (`--no-aec`): the mic audio as is, with the same bookkeeping."""

    def __init__(self, sample_rate: int = SAMPLE_RATE, frame_samples: int = FRAME_SAMPLES) -> None:
        super().__init__(sample_rate, frame_samples)

    def process(self, mic: np.ndarray, reference: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        m, r = self._inputs(mic, reference)
        if r is not None:
            self._measure(m, r, m)
        self.stats.frames += 1
        self.stats.seconds += time.perf_counter() - t0
        return m


class EchoCanceller(_Base):
    """WebRTC AEC3 on 10 ms int16 subframes. Never raises from `process`: a bad frame or an
    APM failure passes the mic audio through and is counted in `stats.errors`."""

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        *,
        frame_samples: int = FRAME_SAMPLES,
        noise_suppression: bool = False,
        high_pass_filter: bool = False,
    ) -> None:
        super().__init__(sample_rate, frame_samples)
        if sample_rate % 100:
            raise AudioError(f"echo cancellation needs a rate divisible by 100, not {sample_rate}")
        try:
            from livekit.rtc import AudioFrame, AudioProcessingModule
        except Exception as e:  # ImportError, or OSError loading its native library
            raise AudioError(
                f"echo cancellation needs the livekit package ({e})",
                hint="pip install livekit, or run with --no-aec",
            ) from None
        self._frame_cls = AudioFrame
        try:
            self._apm = AudioProcessingModule(
                echo_cancellation=True,
                noise_suppression=noise_suppression,
                high_pass_filter=high_pass_filter,
            )
        except Exception as e:
            raise AudioError(f"cannot start WebRTC echo cancellation ({e})") from None

    def process(self, mic: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """The mic frame with the echo of `reference` (what was playing) removed."""
        t0 = time.perf_counter()
        self.stats.frames += 1
        m, r = self._inputs(mic, reference)
        if r is None:
            self.stats.seconds += time.perf_counter() - t0
            return m
        try:
            out = self._run(m, r)
        except Exception as e:
            self._error(f"APM failed: {type(e).__name__}: {e}")
            out = m
        else:
            self._measure(m, r, out)
        self.stats.seconds += time.perf_counter() - t0
        return out

    def _run(self, m: np.ndarray, r: np.ndarray) -> np.ndarray:
        mic16, ref16 = _to_int16(m), _to_int16(r)
        out = np.empty(len(m), dtype=np.int16)
        sub, rate = self.sub, self.sample_rate
        for i in range(0, len(m), sub):
            # A bytearray per call: the APM works in place and AudioFrame copies slices anyway.
            far = self._frame_cls(bytearray(ref16[i : i + sub].tobytes()), rate, 1, sub)
            self._apm.process_reverse_stream(far)
            near = self._frame_cls(bytearray(mic16[i : i + sub].tobytes()), rate, 1, sub)
            self._apm.process_stream(near)
            out[i : i + sub] = np.frombuffer(near.data, dtype=np.int16)
        return out.astype(np.float32) / 32767.0


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


class ReferenceTimeline:
    """What the speaker played, laid out by time, to fetch the echo reference for a mic frame.

    Played chunks are placed end to end (the output stream is continuous) from the first
    chunk's timestamp; when a timestamp strays more than `reanchor_s` from that running
    position (dropped callbacks, clock drift) the chunk is placed at its own timestamp."""

    def __init__(
        self, sample_rate: int = SAMPLE_RATE, keep_s: float = 4.0, reanchor_s: float = 0.02
    ) -> None:
        self.sample_rate = sample_rate
        self._ring = np.zeros(int(keep_s * sample_rate), dtype=np.float32)
        self._reanchor = int(reanchor_s * sample_rate)
        self._origin: float | None = None  # time of absolute sample 0
        self._end = 0  # absolute index just after the last sample written
        self.reanchors = 0
        self.unknown_samples = 0  # asked-for samples not played yet (the lead is too long)

    def add(self, chunks: list[PlayedChunk]) -> None:
        for chunk in chunks:
            self._add(chunk.t_play, np.asarray(chunk.samples, dtype=np.float32).reshape(-1))

    def _add(self, t: float, x: np.ndarray) -> None:
        if self._origin is None:
            self._origin = t
        start = self._end
        stamped = round((t - self._origin) * self.sample_rate)
        if abs(stamped - start) > self._reanchor:
            self.reanchors += 1
            if stamped > start:  # a gap: what was there is unknown, call it silence
                gap = np.arange(start, min(stamped, start + len(self._ring)))
                self._ring[gap % len(self._ring)] = 0.0
            start = stamped
        x = x[-len(self._ring) :]
        self._ring[np.arange(start, start + len(x)) % len(self._ring)] = x
        self._end = start + len(x)

    def window(self, t_start: float, n: int = FRAME_SAMPLES) -> np.ndarray:
        """`n` samples played from `t_start` on; zeros where nothing is known."""
        out = np.zeros(n, dtype=np.float32)
        if self._origin is None:
            return out
        first = round((t_start - self._origin) * self.sample_rate)
        idx = np.arange(first, first + n)
        self.unknown_samples += int(np.count_nonzero(idx >= self._end))
        ok = (idx < self._end) & (idx >= max(0, self._end - len(self._ring)))
        out[ok] = self._ring[idx[ok] % len(self._ring)]
        return out

    def reference_for(self, t_capture: float, n: int = FRAME_SAMPLES) -> np.ndarray:
        """The reference for a mic frame captured at `t_capture` (see the module docstring)."""
        return self.window(t_capture + REFERENCE_LEAD_S, n)
