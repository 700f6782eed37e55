"""A conversation's two recordings as one stereo WAV: the user on the left, Moshi on the right.

Both recordings start with the conversation's first frame, so laid side by side they line up
with each other and with the transcript's times (Moshi's frames dropped to stay under the delay
bound are missing from `moshi.wav`, so his side runs early by those frames). The files are our
own 16-bit WAVs; each is read through the regular-file check with a size bound, and a damaged
one (a header cut short) is read as far as its data goes.
"""

from __future__ import annotations

import io
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
                ok = w.getnchannels() == 1 and w.getsampwidth() == 2
                if not ok or w.getframerate() != SAMPLE_RATE:
                    raise HistoryError("not a recording of the assistant's", path=path)
                data = w.readframes(min(w.getnframes(), MAX_WAV_BYTES // 2))
        except (wave.Error, EOFError, struct.error) as e:
            raise HistoryError(f"damaged recording ({e})", path=path) from None
    return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2")


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
