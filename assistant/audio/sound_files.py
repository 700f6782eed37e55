"""Sound files at Moshi's rate (24 kHz mono float32): read any format, write WAV, split
into frames. (`file_backend.FileAudio` is the loop's audio backend over such files.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sphn

from ..errors import AudioError
from ..files import require_regular
from ..frames import FRAME_SAMPLES, SAMPLE_RATE


def read_audio(path: str | Path) -> np.ndarray:
    """Any file sphn can decode (wav, mp3, flac, ogg...), resampled to 24 kHz and mixed to mono."""
    path = Path(path)
    require_regular(path, AudioError, what="audio file")  # sphn opens it: never a FIFO
    try:
        data, _ = sphn.read(str(path), sample_rate=SAMPLE_RATE)
    except Exception as e:  # sphn raises plain Exceptions from Rust for undecodable input
        raise AudioError(f"cannot decode audio ({e})", path=path) from None
    data = np.asarray(data, dtype=np.float32)
    mono = data.mean(axis=0) if data.ndim == 2 else data
    if mono.size == 0:
        raise AudioError("audio file holds no samples", path=path)
    return np.ascontiguousarray(mono, dtype=np.float32)


def write_wav(path: str | Path, pcm: np.ndarray) -> Path:
    path = Path(path)
    try:
        sphn.write_wav(str(path), np.ascontiguousarray(pcm, dtype=np.float32), SAMPLE_RATE)
    except Exception as e:
        raise AudioError(f"cannot write audio ({e})", path=path) from None
    return path


def frames(pcm: np.ndarray) -> list[np.ndarray]:
    """Split into whole 80 ms frames, zero-padding the last one."""
    n = -(-len(pcm) // FRAME_SAMPLES)
    padded = np.zeros(n * FRAME_SAMPLES, dtype=np.float32)
    padded[: len(pcm)] = pcm
    return list(padded.reshape(n, FRAME_SAMPLES))
