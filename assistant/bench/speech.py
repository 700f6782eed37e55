"""The user's side of the benchmark: speech encoded with Mimi once, the same codes for all."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.sound_files import frames
from ..codec.streaming import StreamingCodec
from ..frames import SAMPLE_RATE
from .timing import Timing


@dataclass(frozen=True)
class UserSpeech:
    source: str
    seconds: float
    codes: np.ndarray  # int32 [frames, user codebooks], one row per 80 ms frame
    encode: Timing  # Mimi encode, per frame
    mimi: Path

    @property
    def frames(self) -> int:
        return len(self.codes)

    def steps(self, n: int) -> np.ndarray:
        """Codes for n steps, the input looped when the conversation is longer than it."""
        return self.codes[np.arange(n) % len(self.codes)]

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "seconds": round(self.seconds, 3),
            "frames": self.frames,
            "mimi_file": str(self.mimi),
            "encode_ms_per_frame": self.encode.to_dict(),
        }


def encode_speech(pcm: np.ndarray, source: str, mimi: Path, codebooks: int) -> UserSpeech:
    """Every 80 ms frame of `pcm` (24 kHz mono) through Mimi, each call timed."""
    codes, ms = [], []
    with StreamingCodec(mimi, codebooks) as codec:
        for frame in frames(pcm):
            started = time.perf_counter()
            c = codec.encode(frame)
            ms.append((time.perf_counter() - started) * 1000)
            if c is not None:
                codes.append(c.astype(np.int32))
    return UserSpeech(
        source=source,
        seconds=len(pcm) / SAMPLE_RATE,
        codes=np.stack(codes),
        encode=Timing.of(ms),
        mimi=mimi,
    )
