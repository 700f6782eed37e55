"""A conversation with an audio file instead of a microphone: frame by frame, timed per stage.

The same sequence the live loop runs (encode the user's frame with Mimi, one model step, decode
Moshi's frame), without devices or threads: what `assistant demo` and file input use.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CodecError
from .audio_files import FRAME_SAMPLES, FRAME_SECONDS, frames
from .engine import StepResult, StreamingEngine


@dataclass(frozen=True)
class FrameTimes:
    """Seconds spent on one frame, per stage."""

    encode: float
    step: float
    decode: float

    @property
    def total(self) -> float:
        return self.encode + self.step + self.decode


@dataclass
class FileConversation:
    user: np.ndarray
    reply: np.ndarray
    transcript: list[tuple[float, str]] = field(default_factory=list)
    times: list[FrameTimes] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(piece for _, piece in self.transcript).strip()

    @property
    def audio_seconds(self) -> float:
        return len(self.times) * FRAME_SECONDS

    @property
    def real_time_factor(self) -> float:
        """Compute time over audio time: below 1.0 keeps up with real time."""
        spent = sum(t.total for t in self.times)
        return spent / self.audio_seconds if self.times else 0.0

    def stage_stats(self) -> dict[str, dict[str, float]]:
        """p50 / p95 / mean milliseconds per stage."""
        stats = {}
        for stage in ("encode", "step", "decode", "total"):
            ms = np.array([getattr(t, stage) for t in self.times]) * 1000
            stats[stage] = {
                "p50": float(np.percentile(ms, 50)) if ms.size else 0.0,
                "p95": float(np.percentile(ms, 95)) if ms.size else 0.0,
                "mean": float(ms.mean()) if ms.size else 0.0,
            }
        return stats


def open_codec(mimi_path: Path, codebooks: int) -> Any:  # a rustymimi.Tokenizer
    import rustymimi

    try:
        return rustymimi.Tokenizer(str(mimi_path), num_codebooks=codebooks)
    except Exception as e:  # rustymimi raises plain Exceptions from Rust
        raise CodecError(f"rustymimi cannot load this Mimi file ({e})", path=mimi_path) from None


def converse_file(
    engine: StreamingEngine,
    mimi_path: Path,
    user_pcm: np.ndarray,
    *,
    tail_seconds: float = 1.0,
    on_step: Callable[[StepResult], None] | None = None,
) -> FileConversation:
    """Stream `user_pcm` (24 kHz mono) through Mimi and the engine; return Moshi's side."""
    codebooks = max(engine.config.user_codebooks, engine.config.dep_q)
    codec = open_codec(mimi_path, codebooks)
    tail = np.zeros(int(tail_seconds / FRAME_SECONDS) * FRAME_SAMPLES, dtype=np.float32)
    user = np.concatenate([user_pcm.astype(np.float32), tail])
    silence = np.zeros(FRAME_SAMPLES, dtype=np.float32)
    out = FileConversation(user=user, reply=np.zeros(0, dtype=np.float32))
    reply = []
    for frame in frames(user):
        t0 = time.perf_counter()
        codes = codec.encode_step(np.ascontiguousarray(frame[None, None, :]))
        t1 = time.perf_counter()
        if codes is None:  # the codec is still buffering its first frame
            continue
        result = engine.step(codes[0, : engine.config.user_codebooks, 0])
        t2 = time.perf_counter()
        if result.audio_codes is None:
            pcm = silence  # acoustic delay: Moshi has nothing to say yet
        else:
            moshi = np.ascontiguousarray(result.audio_codes.reshape(1, -1, 1), dtype=np.uint32)
            pcm = codec.decode_step(moshi)[0, 0]
        t3 = time.perf_counter()
        reply.append(np.asarray(pcm, dtype=np.float32))
        out.times.append(FrameTimes(t1 - t0, t2 - t1, t3 - t2))
        if result.piece is not None:
            out.transcript.append((result.step * FRAME_SECONDS, result.piece))
        if on_step is not None:
            on_step(result)
    out.reply = np.concatenate(reply) if reply else out.reply
    return out
