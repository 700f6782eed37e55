"""A conversation's two recordings as one stereo WAV: the user on the left, Moshi on the right.

Both recordings start with the conversation's first frame, so laid side by side they line up
with each other and with the transcript's times (Moshi's frames dropped to stay under the delay
bound are missing from `moshi.wav`, so his side runs early by those frames). The files are our
own 16-bit WAVs; each is read through the regular-file check with a size bound, and a damaged
one (a header cut short) is read as far as its data goes.
"""

from __future__ import annotations

import io
import os
import struct
import wave
from pathlib import Path

import numpy as np

from ..conversation import session_files as files
from ..errors import HistoryError
from ..files import open_regular
from ..frames import SAMPLE_RATE
from .transcriber import user_audio_path

MAX_WAV_BYTES = 4 << 30  # RIFF's own limit


def read_pcm16(path: Path) -> np.ndarray:
    """A mono 16-bit WAV of ours as int16 samples; missing: empty; not ours: HistoryError."""
    if not path.exists():
        return np.zeros(0, np.int16)
    with open_regular(path, HistoryError, what="recording") as f:
        try:
            with wave.open(f, "rb") as w:
                _check_ours(w, path)
                data = w.readframes(min(w.getnframes(), MAX_WAV_BYTES // 2))
        except (wave.Error, EOFError, struct.error) as e:
            raise HistoryError(f"damaged recording ({e})", path=path) from None
    return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2")


def _check_ours(w: wave.Wave_read, path: Path) -> None:
    ok = w.getnchannels() == 1 and w.getsampwidth() == 2
    if not ok or w.getframerate() != SAMPLE_RATE:
        raise HistoryError("not a recording of the assistant's", path=path)


def conversation_samples(folder: Path) -> np.ndarray:
    """[n, 2] int16: the user's side (echo-cancelled when recorded so) and Moshi's."""
    user = read_pcm16(user_audio_path(folder))
    moshi = read_pcm16(folder / files.MOSHI_WAV)
    n = max(len(user), len(moshi))
    both = np.zeros((n, 2), np.int16)
    both[: len(user), 0] = user
    both[: len(moshi), 1] = moshi
    return both


def conversation_wav(folder: Path) -> bytes:
    """The conversation as a stereo WAV file's bytes."""
    both = conversation_samples(folder)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(both.astype("<i2").tobytes())
    return out.getvalue()


HEADER_BYTES = 44  # a plain PCM WAV header, as the wave module writes it
FRAME_BYTES = 4  # a stereo frame: two 16-bit samples


class StereoWav:
    """The bytes of `conversation_wav(folder)`, read a range at a time: a player seeking in an
    hour-long conversation asks for pieces of a 345 MB file, never for all of it at once.

    The lengths are read from the recordings when made; the caller holds the folder (`using`)
    while it reads, so they cannot change underneath."""

    def __init__(self, folder: Path) -> None:
        self._paths = (user_audio_path(folder), folder / files.MOSHI_WAV)
        self._frames = [_frames_in(p) for p in self._paths]
        self.frames = max(self._frames)
        self.size = HEADER_BYTES + FRAME_BYTES * self.frames

    def read(self, start: int, end: int) -> bytes:
        """Bytes [start, end) of the file (clipped to its size)."""
        start, end = max(start, 0), min(end, self.size)
        if start >= end:
            return b""
        head = _stereo_header(self.frames)[start:end]
        first = max(start - HEADER_BYTES, 0) // FRAME_BYTES
        last = -(-(end - HEADER_BYTES) // FRAME_BYTES)  # ceil: a partial frame is read whole
        both = np.zeros((max(last - first, 0), 2), "<i2")
        for channel, (path, frames) in enumerate(zip(self._paths, self._frames, strict=True)):
            if first < frames:
                samples = _read_frames(path, first, min(last, frames))
                both[: len(samples), channel] = samples
        data = both.tobytes()
        skip = max(start - HEADER_BYTES, 0) - first * FRAME_BYTES
        return head + data[skip : skip + max(end - max(start, HEADER_BYTES), 0)]


def _stereo_header(frames: int) -> bytes:
    data = frames * FRAME_BYTES
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 2, SAMPLE_RATE, SAMPLE_RATE * FRAME_BYTES, FRAME_BYTES, 16)
        + b"data"
        + struct.pack("<I", data)
    )


def _frames_in(path: Path) -> int:
    """Samples a recording really holds: its header's count, or less where the data was cut."""
    if not path.exists():
        return 0
    with open_regular(path, HistoryError, what="recording") as f:
        try:
            with wave.open(f, "rb") as w:
                _check_ours(w, path)
                # wave.open leaves the file at the start of the samples.
                there = (os.fstat(f.fileno()).st_size - f.tell()) // 2
                return max(min(w.getnframes(), there, MAX_WAV_BYTES // 2), 0)
        except (wave.Error, EOFError, struct.error) as e:
            raise HistoryError(f"damaged recording ({e})", path=path) from None


def _read_frames(path: Path, first: int, last: int) -> np.ndarray:
    with open_regular(path, HistoryError, what="recording") as f:
        try:
            with wave.open(f, "rb") as w:
                w.setpos(first)
                data = w.readframes(last - first)
        except (wave.Error, EOFError, struct.error) as e:
            raise HistoryError(f"damaged recording ({e})", path=path) from None
    return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2")
