"""Scripted stand-ins for the audio device, the codec and the model, to drive the real loop."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from assistant.voice.engine import StepResult

FRAME = 1920


@dataclass
class Captured:
    samples: np.ndarray
    t_capture: float


@dataclass
class Played:
    samples: np.ndarray
    t_play: float


@dataclass
class FakeAudio:
    """Delivers `frames` of input, paced every `period_s` (0 = as fast as read), and plays
    output into a buffer drained by a simulated speaker at the same pace."""

    frames: list[np.ndarray]
    period_s: float = 0.0
    finished: bool = False
    played: list[np.ndarray] = field(default_factory=list)
    _next: int = 0
    _start: float | None = None
    _buffer: list[np.ndarray] = field(default_factory=list)
    _drained: list[Played] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def realtime(self) -> bool:
        return self.period_s > 0

    def read_frame(self, timeout: float) -> Captured | None:
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
        self._speaker_tick()
        frame = Captured(self.frames[self._next], time.monotonic())
        self._next += 1
        return frame

    def _speaker_tick(self) -> None:
        """One frame leaves the playout buffer per captured frame, as real devices pace it."""
        with self._lock:
            if self._buffer:
                pcm = self._buffer.pop(0)
                self.played.append(pcm)
                self._drained.append(Played(pcm, time.monotonic()))

    def play_frame(self, samples: np.ndarray) -> None:
        with self._lock:
            self._buffer.append(np.asarray(samples, np.float32))
            if self.period_s == 0:  # no real clock: the speaker keeps up instantly
                self.played.append(self._buffer.pop(0))

    def drain_played(self) -> list[Played]:
        with self._lock:
            out, self._drained = self._drained, []
        return out

    def playout_depth(self) -> int:
        with self._lock:
            return len(self._buffer)


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
