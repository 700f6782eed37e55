"""Echo cancellation: WebRTC's audio processing module (AEC3), as shipped in `livekit`.

The mic hears the assistant's own voice from the speaker; without cancelling it Moshi answers
itself. Per 80 ms frame, the audio that was playing while the mic frame was captured is fed as
the reverse (far-end) stream, 10 ms at a time, before the mic audio. AEC3 finds the delay
itself, from about 5 ms to 500 ms of lead of the reference over its echo (measured), and fails
when the reference comes after its echo. A sound played at t is heard at t + the acoustic
delay, so the reference for a mic frame captured at t is what was played from t + a small lead
on (`ReferenceTimeline.reference_for`): known by the time the frame is processed, from what
was played and, past it, what is queued to play next. `set_stream_delay_ms` changed nothing
measurable.
Side effects of AEC3 on the user's voice: ~9 ms of delay (222 samples at 24 kHz) and shifted
phases, the spectrum kept within 0.5 dB. Cost here: ~0.6 ms per 80 ms frame.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from ..errors import AudioError
from ..frames import FRAME_SAMPLES, SAMPLE_RATE
from .buffers import CapturedFrame, PlayedChunk

log = logging.getLogger(__name__)

# A 10 ms subframe counts towards the echo reduction when the far end plays (~ -50 dBFS) and
# the mic hears something (~ -70 dBFS; below that there is no echo to speak of).
FAR_ACTIVE_RMS = 3e-3
MIC_ACTIVE_RMS = 3e-4
# How far after the mic frame's capture time its reference starts: the margin by which the
# reference leads the echo, on top of the acoustic delay, against errors in the timestamps.
# Kept small: the loop must know the reference when it processes the frame, from what was
# played and what is queued to play next (`ReferenceTimeline.expect`).
REFERENCE_LEAD_S = 0.04


@dataclass
class AecStats:
    frames: int = 0  # process() calls
    errors: int = 0  # bad frames or APM failures (the mic audio was passed through)
    last_error: str = ""
    measured: int = 0  # 10 ms subframes in the echo-reduction window
    seconds: float = 0.0  # total time spent in process()
    window: deque[float] = field(default_factory=lambda: deque(maxlen=1000))  # dB per subframe

    @property
    def mean_ms(self) -> float:
        return 1000 * self.seconds / self.frames if self.frames else 0.0

    @property
    def echo_reduction_db(self) -> float | None:
        """The upper quartile of 10*log10(mic energy / output energy) over the last 10 s of
        subframes with far-end audio. Not the energy sum, nor the median: while the user talks
        over the assistant their voice (rightly) comes through, and such subframes were up to
        half of those counted when Moshi plays with gaps (a run whose echo was down 43 dB
        reported 4.7). A canceller that fails fails in the quartile too."""
        if not self.window:
            return None
        return float(np.percentile(np.fromiter(self.window, dtype=np.float64), 75))

    def snapshot(self) -> AecStats:
        return replace(self, window=deque(self.window, maxlen=self.window.maxlen))


class Canceller(Protocol):
    stats: AecStats

    @property
    def echo_reduction_db(self) -> float | None: ...
    def process(self, mic: np.ndarray, reference: np.ndarray) -> np.ndarray: ...


def _as_samples(x: Any) -> np.ndarray | None:
    if x is None or isinstance(x, (str, bytes)):
        return None
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
        far = np.mean(np.square(r.reshape(n, self.sub), dtype=np.float64), axis=1)
        e_in = np.mean(np.square(m.reshape(n, self.sub), dtype=np.float64), axis=1)
        e_out = np.mean(np.square(out.reshape(n, self.sub), dtype=np.float64), axis=1)
        active = (far > FAR_ACTIVE_RMS**2) & (e_in > MIC_ACTIVE_RMS**2)
        # int16 output: its quantisation noise (~1e-10) is the floor, i.e. at most ~80 dB
        db = 10 * np.log10(e_in[active] / np.maximum(e_out[active], 1e-10))
        self.stats.window.extend(db.tolist())
        self.stats.measured = len(self.stats.window)


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


class PlayingAudio(Protocol):
    """What a reference is taken from: the audio output's played and queued samples."""

    def drain_played(self) -> list[PlayedChunk]: ...

    def upcoming(self, n: int) -> tuple[int, np.ndarray]: ...


class ReferenceTimeline:
    """What the speaker played, by position in the output stream, to fetch each mic frame's
    echo reference.

    Timestamps of the two streams wander by some milliseconds relative to each other
    (PortAudio's estimates are noisy) and AEC3 lost 20-50 dB for a second or two at each shift
    (measured through PulseAudio). Both streams count their samples exactly, though, so a mic
    frame's reference is found by position: its input index plus an offset, which comes from
    the timestamps once and is re-estimated only when they disagree with it by more than
    `tolerance_s` for `patience` frames in a row (a clock drifting, a stream losing samples);
    for the first `warmup` frames, while the streams' clocks settle, at once.

    One shift is known when it happens: an output underflow, where the sound device ran dry
    (a late callback on a loaded machine; 15-40 in a 14 s chat beside the test suite, each
    moving the stream 10-70 ms). The device played silence of its own, so the output is heard
    later from there on, and the timestamps show that step at once, steady to 1-3 ms between
    steps. A frame is estimated with the timing in force when it was heard (the anchor just
    before the next underflow still ahead of it), and for `settle` frames from the first one
    heard after an underflow the offset follows any disagreement over `step_tolerance_s`.
    With the patience above alone, the reference was 30-60 ms off for up to half a second
    after each, and where they came close together the echo reduction fell from ~49 dB to
    13-25 dB. Beside the test suite, the half-seconds under 20 dB went from 5 % to 0-3 %
    (12-20 chats a measurement) and those under 30 dB from 16 % to 9-13 %: better, not
    cured, as the device's silence still lands inside a frame."""

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        *,
        keep_s: float = 4.0,
        lead_s: float = REFERENCE_LEAD_S,
        tolerance_s: float = 0.03,
        patience: int = 5,
        warmup: int = 60,
        step_tolerance_s: float = 0.005,
        settle: int = 2,
    ) -> None:
        self.sample_rate = sample_rate
        self.lead_s = lead_s
        self.tolerance = round(tolerance_s * sample_rate)
        self.patience = patience
        self.warmup = warmup
        self.step_tolerance = round(step_tolerance_s * sample_rate)
        self.settle = settle
        # Underflows no frame is past yet: (t_play after it, the anchor in force before it).
        self._steps: deque[tuple[float, tuple[float, int]]] = deque(maxlen=64)
        self._after_underflow = 0  # frames left to follow the offset closely
        self._frames = 0
        self._ring = np.zeros(int(keep_s * sample_rate), dtype=np.float32)
        self._end: int | None = None  # output index just after the last sample stored
        self._anchor: tuple[float, int] | None = None  # (t_play, index) of the latest chunk
        self._offset: int | None = None  # output index - input index
        self._disagree = 0
        self.reanchors = 0  # times the offset was re-estimated
        self.unknown_samples = 0  # asked-for samples neither played nor queued yet
        self._upcoming: tuple[int, np.ndarray] | None = None  # (index, samples) about to play

    def add(self, chunks: list[PlayedChunk]) -> None:
        """Store played chunks at their `index` (without one: right after the previous)."""
        size = len(self._ring)
        for chunk in chunks:
            x: np.ndarray = np.asarray(chunk.samples, dtype=np.float32).reshape(-1)
            index = getattr(chunk, "index", None)
            index = (self._end or 0) if index is None else int(index)
            start = index + max(0, len(x) - size)
            x = x[-size:]
            if self._end is not None and start > self._end:  # a gap: call it silence
                self._ring[np.arange(self._end, min(start, self._end + size)) % size] = 0.0
            self._ring[np.arange(start, start + len(x)) % size] = x
            self._end = max(self._end or 0, start + len(x))
            if getattr(chunk, "after_underflow", False) and self._anchor is not None:
                self._steps.append((chunk.t_play, self._anchor))
            self._anchor = (chunk.t_play, index)

    def expect(self, index: int, samples: np.ndarray) -> None:
        """What the output will play from position `index` on, as far as it is queued: used
        where nothing played is known yet, until played chunks replace it."""
        self._upcoming = (int(index), np.asarray(samples, dtype=np.float32).reshape(-1))

    @property
    def end(self) -> int | None:
        """The output position just after the last sample played (None before any)."""
        return self._end

    def take_in(self, audio: PlayingAudio, frame_samples: int) -> None:
        """Before fetching a frame's reference: what the speaker played and, beyond it, what
        it is about to play. A frame's reference runs `lead_s` past its capture, and output
        is played only about a block plus the output latency after it is written: without
        the queued audio, a frame read the moment it is captured found the tail of its
        reference unknown (zeros), and the echo reduction fell from 30-44 to 20-23 dB under
        overload; waiting for it to be played instead cost every frame 20-45 ms of delay."""
        # The reference ends about `lead_s` past what was played; 100 ms more covers a frame
        # whose timestamps put it further out (they wobble by tens of ms).
        ahead = frame_samples + round((self.lead_s + 0.1) * self.sample_rate)
        for _ in range(3):  # a block played between the two calls: take it in, look again
            self.add(audio.drain_played())
            start, upcoming = audio.upcoming(ahead)
            if start <= (self._end or 0):
                break
        self.expect(start, upcoming)

    def output_index(self, t: float, anchor: tuple[float, int] | None = None) -> int | None:
        """The output position heard at time `t`, per the latest chunk's timestamp (or the
        `anchor` given: a chunk's (t_play, index))."""
        anchor = anchor or self._anchor
        if anchor is None:
            return None
        t0, i0 = anchor
        return i0 + round((t - t0) * self.sample_rate)

    def at(self, index: int, n: int = FRAME_SAMPLES) -> np.ndarray:
        """`n` samples from output position `index`; zeros where nothing is known."""
        out = np.zeros(n, dtype=np.float32)
        if self._end is None:
            return out
        idx = np.arange(index, index + n)
        ok = (idx < self._end) & (idx >= max(0, self._end - len(self._ring)))
        out[ok] = self._ring[idx[ok] % len(self._ring)]
        later = idx >= self._end
        if self._upcoming is not None:
            start, ahead = self._upcoming
            queued = later & (idx >= start) & (idx < start + len(ahead))
            out[queued] = ahead[idx[queued] - start]
            later &= ~queued
        self.unknown_samples += int(np.count_nonzero(later))
        return out

    def window(self, t_start: float, n: int = FRAME_SAMPLES) -> np.ndarray:
        """`n` samples played from time `t_start` on (by timestamp alone)."""
        index = self.output_index(t_start)
        return np.zeros(n, dtype=np.float32) if index is None else self.at(index, n)

    def reference_for(self, frame: CapturedFrame | float, n: int = FRAME_SAMPLES) -> np.ndarray:
        """The reference for a mic frame: what played from its capture time + `lead_s` on.
        Pass the frame itself: given only a capture time (or a frame without `index`), the
        lookup is by timestamp alone, which wobbles (see the class docstring)."""
        index = getattr(frame, "index", None)
        if isinstance(frame, (int, float)) or index is None:
            t = frame if isinstance(frame, (int, float)) else frame.t_capture
            return self.window(float(t) + self.lead_s, n)
        n = len(frame.samples)
        t = frame.t_capture + self.lead_s
        # An underflow counts for the frames whose reference is mostly after it; one still
        # ahead means this frame was heard with the timing from before it (the latest
        # timestamps already show the step).
        middle = t + n / 2 / self.sample_rate
        passed = False
        while self._steps and self._steps[0][0] <= middle:
            self._steps.popleft()
            passed = True
        estimate = self.output_index(t, self._steps[0][1] if self._steps else None)
        if estimate is None:
            return np.zeros(n, dtype=np.float32)
        estimate -= index
        self._frames += 1
        if passed:
            self._after_underflow = self.settle
        if self._offset is None:
            self._offset = estimate
        elif self._after_underflow and abs(estimate - self._offset) > self.step_tolerance:
            self._reanchor(estimate, "after an output underflow")
        elif abs(estimate - self._offset) > self.tolerance:
            self._disagree += 1
            if self._disagree >= (1 if self._frames <= self.warmup else self.patience):
                self._reanchor(estimate, "")
        else:
            self._disagree = 0
        self._after_underflow = max(0, self._after_underflow - 1)
        return self.at(index + self._offset, n)

    def _reanchor(self, estimate: int, why: str) -> None:
        assert self._offset is not None
        log.info(
            "echo reference re-anchored at frame %d: %+.1f ms%s",
            self._frames,
            (estimate - self._offset) * 1000 / self.sample_rate,
            f" ({why})" if why else "",
        )
        self._offset, self._disagree = estimate, 0
        self.reanchors += 1
