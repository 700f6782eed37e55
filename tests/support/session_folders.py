"""Conversation folders for the history's API and page tests, written file by file as the loop
and the transcriber would leave them: tiny recordings, summary, frames, metrics, transcript."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np

from assistant.frames import FRAME_SECONDS, SAMPLE_RATE
from assistant.paths import sessions_dir

# (speaker, start s, end s, text): both sides, in time order.
LINES = [
    ("user", 0.4, 1.2, "hello there"),
    ("moshi", 1.6, 2.4, "hi how can I help"),
    ("user", 3.0, 3.8, "tell me about the weather"),
    ("moshi", 4.4, 5.4, "it is sunny and warm today"),
]


def make_conversation(
    conversation_id: str = "2026-11-22_14-03-05-chat",
    *,
    seconds: float = 6.0,
    lines: list[tuple[str, float, float, str]] | None = None,
    root: Path | None = None,
) -> Path:
    """A finished, transcribed conversation of `seconds`: a tone on each side, Moshi's words
    in frames.jsonl, a metrics snapshot a second, both sides in transcript.json."""
    lines = LINES if lines is None else lines
    folder = (root or sessions_dir()) / conversation_id
    folder.mkdir(parents=True, mode=0o700)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    for name, hz in (("user.wav", 220.0), ("moshi.wav", 330.0)):
        write_pcm16(folder / name, 0.2 * np.sin(2 * np.pi * hz * t))
    day, clock = conversation_id.split("_")[:2]
    summary = {
        "started": f"{day}T{clock[:8].replace('-', ':')}+00:00",
        "elapsed_s": seconds,
        "model": {"voice": "moshiko", "quantization": "q4"},
        "stages_ms": {"delay": {"count": 50, "p50": 180.0, "p95": 240.0}},
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    frames = []
    for speaker, start, _, text in lines:
        if speaker == "moshi":
            first = round(start / FRAME_SECONDS)
            frames += [{"index": first + i, "text": " " + w} for i, w in enumerate(text.split())]
    (folder / "frames.jsonl").write_text("".join(json.dumps(f) + "\n" for f in frames))
    (folder / "metrics.jsonl").write_text(
        "".join(json.dumps(snapshot(s + 1.0, 150.0 + 10 * s)) + "\n" for s in range(int(seconds)))
    )
    transcript = [
        {"speaker": who, "start": start, "end": end, "text": text, "words": []}
        for who, start, end, text in lines
    ]
    (folder / "transcript.json").write_text(json.dumps(transcript))
    return folder


def snapshot(elapsed_s: float, delay_p50: float) -> dict:
    """The parts of `Snapshot.to_dict()` the history reads."""
    window = {"count": 12, "mean": delay_p50, "p50": delay_p50, "p95": delay_p50 + 40.0}
    return {"elapsed_s": elapsed_s, "stages": {"delay": {"last": delay_p50, "window": window}}}


def write_pcm16(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(np.round(np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
