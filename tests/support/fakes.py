"""Scripted stand-ins for the audio device, the codec and the model, to drive the real loop."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assistant.audio.buffers import AudioCounters, CapturedFrame
from assistant.audio.interface import StreamLatency
from assistant.audio.playout import Started
from assistant.telemetry.records import FrameRecord
from assistant.voice.engine import StepResult

FRAME = 1920


@dataclass
class Played:
    """A played chunk with no stream position (`PlayedChunk` less its `index`): the echo
    reference timeline places such chunks one after the other."""

    samples: np.ndarray
    t_play: float


@dataclass
class FakeAudio:
    """Delivers `frames` of input, paced every `period_s` (0 = as fast as read), and plays
    output through a simulated speaker at the same pace: every `period_s` it takes the next
    queued frame (one queued before that moment), and that frame counts as heard then. With no
    pace, frames play at once and with no clock (no delay figure)."""

    frames: list[np.ndarray]
    period_s: float = 0.0
    finished: bool = False
    played: list[np.ndarray] = field(default_factory=list)
    holes_expected: int = 0  # frames the loop said it dropped (`expect_hole`)
    _next: int = 0
    _start: float | None = None
    _slots: int = 0  # speaker slots already passed
    _buffer: list[tuple[np.ndarray, object, float]] = field(default_factory=list)
    _drained: list[Played] = field(default_factory=list)
    _started: list[Started] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def realtime(self) -> bool:
        return self.period_s > 0

    @property
    def counters(self) -> AudioCounters:
        return AudioCounters()  # a simulated speaker: never an underrun

    @property
    def latency(self) -> StreamLatency:
        return StreamLatency(0.0, 0.0, 0.0)

    def start(self) -> FakeAudio:
        return self

    def stop(self) -> None:
        pass

    def read_frame(self, timeout: float | None = 1.0) -> CapturedFrame | None:
        timeout = 1.0 if timeout is None else timeout
        if self._start is None:
            self._start = time.monotonic()
        if self._next >= len(self.frames):
            self.finished = True
            return None
        due = self._start + self._next * self.period_s
        wait = due - time.monotonic()
        if wait > timeout:
            time.sleep(timeout)
            return None
        if wait > 0:
            time.sleep(wait)
        frame = CapturedFrame(self.frames[self._next], time.monotonic())
        self._next += 1
        return frame

    def discard_input(self) -> None:
        pass

    def pending_frames(self) -> int:
        if self.period_s == 0 or self._start is None:
            return 0
        due = int((time.monotonic() - self._start) / self.period_s) + 1
        return max(0, min(due, len(self.frames)) - self._next)

    def _advance(self) -> None:
        """Play what the speaker's slots up to now took (called with the lock held)."""
        if self.period_s == 0 or self._start is None:
            return
        now = time.monotonic()
        while self._start + self._slots * self.period_s <= now:
            slot_t = self._start + self._slots * self.period_s
            self._slots += 1
            if self._buffer and self._buffer[0][2] <= slot_t:
                pcm, tag, _ = self._buffer.pop(0)
                self.played.append(pcm)
                self._drained.append(Played(pcm, slot_t))
                if tag is not None:
                    self._started.append(Started(tag, slot_t))

    def play_frame(self, samples: np.ndarray, tag: object = None) -> None:
        pcm = np.asarray(samples, np.float32)
        with self._lock:
            if self.period_s == 0:  # no real clock: the speaker keeps up instantly
                self.played.append(pcm)
                if tag is not None:
                    self._started.append(Started(tag, None))
                return
            self._advance()
            self._buffer.append((pcm, tag, time.monotonic()))

    def drain_played(self) -> list[Any]:  # Played, where AudioIO gives PlayedChunk
        with self._lock:
            self._advance()
            out, self._drained = self._drained, []
        return out

    def drain_started(self) -> list[Started]:
        with self._lock:
            self._advance()
            out, self._started = self._started, []
        return out

    def upcoming(self, n: int) -> tuple[int, np.ndarray]:
        # Its played chunks carry no index: the timeline places them one after the other.
        return 0, np.zeros(n, dtype=np.float32)

    def drain_dropped(self) -> list[object]:
        return []

    def drain_notices(self) -> list[str]:
        return []

    def describe(self) -> dict[str, object]:
        return {"profile": "fake"}

    def heard_in_s(self) -> float:
        with self._lock:
            self._advance()
            return len(self._buffer) * self.period_s

    def expect_hole(self) -> None:
        self.holes_expected += 1

    def playout_depth(self) -> float:
        with self._lock:
            self._advance()
            return float(len(self._buffer))


class FakeCodec:
    """Codes from frame energy; decoding makes a tone whose pitch follows the codes."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.encoded = self.decoded = 0
        self.fail_at = fail_at

    def encode(self, frame: np.ndarray) -> np.ndarray:
        self.encoded += 1
        if self.fail_at is not None and self.encoded >= self.fail_at:
            from assistant.errors import CodecError

            raise CodecError("scripted codec failure", path="fake-mimi.safetensors")
        level = int(min(np.abs(frame).mean() * 1000, 2047))
        return np.full(8, level, dtype=np.uint32)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        self.decoded += 1
        t = np.arange(FRAME) / 24000
        return (0.1 * np.sin(2 * np.pi * (200 + int(codes[0])) * t)).astype(np.float32)


class ScriptedEngine:
    """Says `words` one per step after a delay of one step, optionally slowly."""

    def __init__(self, words: list[str] | None = None, step_s: float = 0.0) -> None:
        self.words = words or []
        self.step_s = step_s
        self.steps = 0
        self.inputs: list[np.ndarray] = []

    def step(self, user_codes: np.ndarray) -> StepResult:
        if self.step_s:
            time.sleep(self.step_s)
        self.inputs.append(np.asarray(user_codes))
        s = self.steps
        self.steps += 1
        piece = self.words[s] if s < len(self.words) else None
        codes = None if s == 0 else np.full(8, s % 2048, dtype=np.uint32)
        return StepResult(
            step=s, text_token=3 if piece is None else 100, piece=piece, audio_codes=codes
        )


def speech_like(n_frames: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(FRAME)).astype(np.float32) for _ in range(n_frames)]


def scripted(
    index: int, *, encode: float, step: float | None, decode: float, delay: float | None
) -> FrameRecord:
    """A frame captured at index * 80 ms whose stages took exactly the given milliseconds."""
    t = index * 0.08
    r = FrameRecord(index=index, captured=t)
    r.encode_start, r.encode_end = t, t + encode * 0.001
    if step is None:  # dropped before the model
        r.dropped = True
        return r
    r.step_start = r.encode_end
    r.step_end = r.step_start + step * 0.001
    r.decode_start = r.step_end
    r.decode_end = r.decode_start + decode * 0.001
    r.model_step = index
    if delay is None:  # dropped before the speaker
        r.dropped = True
    else:
        r.queued_for_playout = r.decode_end
        r.played, r.heard = True, t + delay * 0.001
    return r
