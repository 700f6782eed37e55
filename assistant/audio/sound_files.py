"""Sound files at Moshi's rate (24 kHz mono float32): read the formats users have, write WAV,
split into frames. (`file_backend.FileAudio` is the loop's audio backend over such files.)

`read_audio` is the one reader of every audio file a command takes (`chat --input`, `demo
--input`, `bench --input`, the service's `--input`): a regular file of bounded size, its
header checked in Python (`audio_headers`) before any native decoder sees it, WAV decoded
here with numpy, the other formats by sphn with a cap on what it may decode, and the samples
checked before they reach the codec. Every refusal is one `AudioError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import sphn

from ..errors import AudioError
from ..files import open_regular, replace_atomically
from ..frames import FRAME_SAMPLES, SAMPLE_RATE
from .audio_headers import MAX_SECONDS, WAV_FLOAT, AudioHeader, parse_header

MAX_AUDIO_BYTES = 1 << 30  # an hour of 48 kHz stereo 16-bit WAV is 0.7 GB
MAX_SAMPLE = 16.0  # float audio lies within [-1, 1]; far beyond is not audio
_CHUNK_FRAMES = 1 << 20  # WAV samples are converted this many frames at a time


def read_audio(path: str | Path) -> np.ndarray:
    """A WAV, FLAC, Ogg Vorbis or MP3 file, resampled to 24 kHz and mixed to mono."""
    path = Path(path)
    with open_regular(path, AudioError, what="audio file") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_AUDIO_BYTES:
            raise AudioError(
                f"is {size:,} bytes, too large for an audio file (at most {MAX_AUDIO_BYTES:,})",
                path=path,
            )

        def read_at(offset: int, length: int) -> bytes:
            f.seek(offset)
            return f.read(length)

        try:
            header = parse_header(read_at, size)
            if header.kind == "WAV":
                pcm, rate = _wav_samples(f, header), header.sample_rate
        except ValueError as e:
            raise AudioError(f"unusable audio file: {e}", path=path) from None
        except OSError as e:
            raise AudioError(f"cannot read: {e.strerror or e}", path=path) from None
    if header.kind != "WAV":
        pcm, rate = _decoded(path, header)
    _check_samples(pcm, path, rate)
    if rate != SAMPLE_RATE:
        pcm = np.asarray(sphn.resample(pcm, src_sample_rate=rate, dst_sample_rate=SAMPLE_RATE))
        _check_samples(pcm, path, SAMPLE_RATE)  # (a resampler can ring past the input's peak)
    return np.ascontiguousarray(pcm, dtype=np.float32)


def _wav_samples(f: object, header: AudioHeader) -> np.ndarray:
    """The data chunk as mono float32, converted a chunk at a time (bounded memory)."""
    assert header.frames is not None and hasattr(f, "readinto") and hasattr(f, "seek")
    channels, width = header.channels, header.bits // 8
    mono = np.empty(header.frames, np.float32)
    f.seek(header.data_offset)
    done = 0
    while done < header.frames:
        n = min(_CHUNK_FRAMES, header.frames - done)
        raw = bytearray(n * channels * width)
        got = f.readinto(raw)
        if got != len(raw):
            raise ValueError(f"cut short after {done + got // (channels * width):,} frames")
        block = _to_float(bytes(raw), header).reshape(n, channels)
        mono[done : done + n] = block.mean(axis=1) if channels > 1 else block[:, 0]
        done += n
    return mono


def _to_float(raw: bytes, header: AudioHeader) -> np.ndarray:
    bits = header.bits
    if header.format_tag == WAV_FLOAT:
        return np.frombuffer(raw, "<f4" if bits == 32 else "<f8").astype(np.float32)
    if bits == 8:  # unsigned, centred on 128
        return (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    if bits == 24:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        value = np.where(value >= 1 << 23, value - (1 << 24), value)
        return value.astype(np.float32) / float(1 << 23)
    dtype = "<i2" if bits == 16 else "<i4"
    return np.frombuffer(raw, dtype).astype(np.float32) / float(1 << (bits - 1))


def _decoded(path: Path, header: AudioHeader) -> tuple[np.ndarray, int]:
    """A compressed file through sphn, told to stop at the longest input we take."""
    try:
        data, rate = sphn.read(str(path), duration_sec=MAX_SECONDS)
    except BaseException as e:  # sphn raises plain Exceptions, and pyo3 panics, from Rust
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AudioError(f"cannot decode {header.kind} audio ({reason})", path=path) from None
    data = np.asarray(data, dtype=np.float32)
    if int(rate) != header.sample_rate:
        raise AudioError(
            f"decodes at {int(rate):,} Hz though its header says {header.sample_rate:,}",
            path=path,
        )
    mono = data.mean(axis=0) if data.ndim == 2 else data.reshape(-1)
    if mono.size == 0:
        raise AudioError("audio file holds no samples", path=path)
    return mono, header.sample_rate


def _check_samples(pcm: np.ndarray, path: Path, rate: int) -> None:
    """Finite and within reach of [-1, 1]: what the codec can take."""
    finite = np.isfinite(pcm)
    if not finite.all():
        bad = int(pcm.size - np.count_nonzero(finite))
        first = int(np.argmin(finite))
        raise AudioError(
            f"{bad:,} samples are NaN or infinite (the first at {first / rate:.3f} s "
            "of the input); not audio",
            path=path,
        )
    peak = float(np.abs(pcm).max(initial=0.0))
    if peak > MAX_SAMPLE:
        raise AudioError(
            f"samples reach {peak:.3g}, far outside audio's [-1, 1] (at most {MAX_SAMPLE:g})",
            path=path,
        )


def write_wav(path: str | Path, pcm: np.ndarray) -> Path:
    """A WAV written beside `path` and renamed over it: never over a file this process read,
    and a failure leaves what was there whole."""
    path = Path(path)
    data = np.ascontiguousarray(pcm, dtype=np.float32)

    def write(partial: Path) -> None:
        sphn.write_wav(str(partial), data, SAMPLE_RATE)

    try:
        replace_atomically(path, write, AudioError)
    except AudioError:
        raise
    except Exception as e:
        raise AudioError(f"cannot write audio ({e})", path=path) from None
    return path


def frames(pcm: np.ndarray) -> list[np.ndarray]:
    """Split into whole 80 ms frames, zero-padding the last one."""
    n = -(-len(pcm) // FRAME_SAMPLES)
    padded = np.zeros(n * FRAME_SAMPLES, dtype=np.float32)
    padded[: len(pcm)] = pcm
    return list(padded.reshape(n, FRAME_SAMPLES))
