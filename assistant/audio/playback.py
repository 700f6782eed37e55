"""Playing a recording through the speaker (the history's `play`), until it ends or Ctrl-C.

The callback only copies the next block out of the whole recording, already in memory: it
never blocks and never raises (a failure in it is kept and raised after the stream stops).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ..frames import SAMPLE_RATE
from .devices import DeviceInfo, audio_error, open_rate, sounddevice

BLOCK = 1_920


def play_stereo(samples: np.ndarray, *, start_s: float = 0.0, device: DeviceInfo) -> None:
    """`samples` ([n, 2] int16 at 24 kHz) from `start_s`; folded to mono on a mono device."""
    sd = sounddevice()
    channels = 2 if device.max_output_channels >= 2 else 1
    audio = samples.astype(np.float32) / 32768.0
    if channels == 1:
        audio = audio.mean(axis=1, keepdims=True)
    audio = audio[int(max(0.0, start_s) * SAMPLE_RATE) :]
    rate = open_rate(device, "output")
    if rate != SAMPLE_RATE:
        import soxr

        audio = soxr.resample(audio, SAMPLE_RATE, rate)
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    done = threading.Event()
    position = [0]
    failures: list[BaseException] = []

    def callback(out: np.ndarray, frames: int, _time: Any, _status: Any) -> None:
        try:
            start = position[0]
            chunk = audio[start : start + frames]
            out[: len(chunk)] = chunk
            out[len(chunk) :] = 0
            position[0] = start + frames
            if start + frames >= len(audio):
                done.set()
        except BaseException as e:  # never raise into PortAudio's thread
            failures.append(e)
            out.fill(0)
            done.set()

    try:
        stream = sd.OutputStream(
            samplerate=rate,
            channels=channels,
            dtype="float32",
            blocksize=BLOCK,
            device=device.index,
            callback=callback,
        )
    except Exception as e:
        raise audio_error(e, f"output device {device.label}") from None
    with stream:
        while not done.wait(0.1):
            pass
    if failures:
        raise failures[0]
