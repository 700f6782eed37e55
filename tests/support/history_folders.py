"""Conversation folders written directly, as the loop leaves them, for the history's tests."""

from __future__ import annotations

import json
import wave
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from assistant.frames import SAMPLE_RATE

T0 = datetime(2026, 11, 22, 14, 3, 5).astimezone()


def write_wav(path: Path, seconds: float, freq: float = 220.0) -> Path:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pcm = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())
    return path


def make_conversation(
    root: Path,
    name: str = "2026-11-22_14-03-05-chat",
    *,
    started: datetime = T0,
    seconds: float = 2.0,
    moshi: tuple[tuple[int, str], ...] = ((3, " Hello"), (4, " there"), (5, "."), (22, " Bye")),
    delay: tuple[float, float] | None = (120.0, 180.0),
    aec: bool = False,
) -> Path:
    """A finished conversation: both recordings, its frames with Moshi's pieces, a summary."""
    folder = root / name
    folder.mkdir(parents=True, mode=0o700)
    write_wav(folder / "user.wav", seconds, 220.0)
    if aec:
        write_wav(folder / "user_aec.wav", seconds, 330.0)
    write_wav(folder / "moshi.wav", seconds, 440.0)
    with open(folder / "frames.jsonl", "w") as f:
        for i in range(int(seconds * 12.5)):
            text = dict(moshi).get(i)
            f.write(json.dumps({"index": i, "text": text}) + "\n")
    live_text = "".join(text for _, text in moshi)
    (folder / "transcript.txt").write_text(f"[    0.24s] {live_text}\n")
    stages = {"delay": {"count": 0, "p50": 0.0, "p95": 0.0}}
    if delay is not None:
        stages["delay"] = {"count": 20, "p50": delay[0], "p95": delay[1]}
    summary = {
        "started": started.isoformat(timespec="seconds"),
        "elapsed_s": seconds,
        "stages_ms": stages,
        "model": {"voice": "moshiko", "quantization": "q4"},
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def make_many(root: Path, n: int) -> list[Path]:
    return [
        make_conversation(
            root,
            f"{(T0 + timedelta(minutes=i)):%Y-%m-%d_%H-%M-%S}-chat",
            started=T0 + timedelta(minutes=i),
        )
        for i in range(n)
    ]
