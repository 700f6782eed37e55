"""`AudioIO` over files: the user's side from an audio file, the assistant's side to a WAV."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from ..errors import AudioError
from ..frames import FRAME_SAMPLES, FRAME_SECONDS
from .buffers import AudioCounters, CapturedFrame, PlayedChunk
from .interface import StreamLatency
from .playout import Started
from .sound_files import frames, read_audio
from .wav_writer import StreamingWavWriter


class FileAudio:
    """`AudioIO` over files: the user's side comes from an audio file (or an array at 24 kHz),
    followed by `tail_s` of silence; what the loop plays is written to `output` (a WAV) if given.
    `realtime=True` releases one frame every 80 ms, and a frame counts as heard when the loop
    plays it (a mic-to-speaker figure on the file's clock); `realtime=False` delivers frames as
    fast as they are read, so there is no clock and no mic-to-speaker figure."""

    def __init__(
        self,
        source: str | Path | np.ndarray,
        output: str | Path | None = None,
        *,
        realtime: bool = True,
        tail_s: float = 1.0,
        max_played: int = 500,
    ) -> None:
        self._source = source
        self._output = output
        self.realtime = realtime
        self.tail_s = tail_s
        self._frames: list[np.ndarray] = []
        self._next = 0
        self._t0 = 0.0
        self._counters = AudioCounters()
        self._played: deque[PlayedChunk] = deque(maxlen=max_played)
        self._played_samples = 0
        self._lock = threading.Lock()
        self._writer: StreamingWavWriter | None = None
        self._started = False
        self._stopped = False
        self._heard: list[Started] = []

    def start(self) -> FileAudio:
        if self._started:
            return self
        pcm = (
            np.asarray(self._source, dtype=np.float32).reshape(-1)
            if isinstance(self._source, np.ndarray)
            else read_audio(self._source)
        )
        tail = np.zeros(math.ceil(self.tail_s / FRAME_SECONDS) * FRAME_SAMPLES, np.float32)
        self._frames = frames(np.concatenate([pcm, tail])) if len(pcm) + len(tail) else []
        if self._output is not None:
            self._writer = StreamingWavWriter(self._output, replace=True)
        self._t0 = time.monotonic()
        self._started = True
        return self

    @property
    def finished(self) -> bool:
        return self._stopped or (self._started and self._next >= len(self._frames))

    @property
    def counters(self) -> AudioCounters:
        return self._counters.snapshot()

    @property
    def latency(self) -> StreamLatency:
        return StreamLatency(0.0, 0.0, 0.0)

    def read_frame(self, timeout: float | None = 1.0) -> CapturedFrame | None:
        """The next frame; None on timeout (realtime, not due yet) or at the end (`finished`)."""
        if not self._started:
            raise AudioError("the audio source is not started")
        if self.finished:
            return None
        i = self._next
        if self.realtime:
            wait = self._t0 + (i + 1) * FRAME_SECONDS - time.monotonic()
            if timeout is not None and wait > timeout:
                time.sleep(max(0.0, timeout))
                return None
            if wait > 0:
                time.sleep(wait)
            t_capture = self._t0 + i * FRAME_SECONDS
        else:
            t_capture = time.monotonic() - FRAME_SECONDS
        self._next += 1
        self._counters.frames_captured += 1
        return CapturedFrame(self._frames[i], t_capture, i * FRAME_SAMPLES)

    def discard_input(self) -> None:
        """Nothing to forget: a file starts where the conversation starts."""

    def pending_frames(self) -> int:
        """Frames already due (real-time pace) but not read yet."""
        if not (self.realtime and self._started) or self.finished:
            return 0
        due = int((time.monotonic() - self._t0) / FRAME_SECONDS)
        return max(0, min(due, len(self._frames)) - self._next)

    def play_frame(self, samples: np.ndarray, tag: object = None) -> None:
        """Record what the loop plays; an unwritable output raises AudioError once."""
        data = np.array(samples, dtype=np.float32).reshape(-1)
        now = time.monotonic()
        with self._lock:
            self._played.append(PlayedChunk(now, data, self._played_samples))
            self._played_samples += len(data)
            self._counters.frames_played += 1
            if tag is not None:
                self._heard.append(Started(tag, now if self.realtime else None))
        if self._writer is not None:
            self._writer.write(data)

    def expect_hole(self) -> None:
        pass  # no speaker cushion: a file is written as it comes

    def playout_depth(self) -> float:
        return 0.0  # a file never makes the loop wait

    def drain_notices(self) -> list[str]:
        return []

    def describe(self) -> dict[str, object]:
        return {"profile": "file (real-time pace)" if self.realtime else "file"}

    def heard_in_s(self) -> float:
        return 0.0  # written at once

    def drain_started(self) -> list[Started]:
        with self._lock:
            out, self._heard = self._heard, []
        return out

    def drain_dropped(self) -> list[object]:
        return []  # nothing is ever dropped on the way to a file

    def drain_played(self) -> list[PlayedChunk]:
        with self._lock:
            chunks = list(self._played)
            self._played.clear()
        return chunks

    def upcoming(self, n: int) -> tuple[int, np.ndarray]:
        with self._lock:  # nothing waits: a frame is written the moment it is played
            return self._played_samples, np.zeros(n, dtype=np.float32)

    def stop(self) -> None:
        self._stopped = True
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    def __enter__(self) -> FileAudio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
