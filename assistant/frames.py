"""Moshi's frame format, the one home of these numbers: every stage streams 80 ms frames of
24 kHz mono float32 audio, 12.5 frames a second (Mimi's frame rate)."""

from __future__ import annotations

SAMPLE_RATE = 24_000  # Hz, mono
FRAME_SAMPLES = 1_920  # one frame: 80 ms at 24 kHz
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE  # 0.08
FRAME_MS = FRAME_SECONDS * 1000.0  # 80.0: each stage's real-time budget per frame
FRAME_RATE = SAMPLE_RATE / FRAME_SAMPLES  # 12.5 frames a second
