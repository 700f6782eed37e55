"""Transcription speed of the speech-to-text path on this machine, in seconds of audio per second.

    python -m benchmarks.bench_stt                          # tiny and full-size synthetic STT
    python -m benchmarks.bench_stt --parts tiny --tiny-seconds 20
    python -m benchmarks.bench_stt --parts full --full-frames 6
    python -m benchmarks.bench_stt --checkpoint FOLDER      # a real (or any) STT checkpoint folder

Synthetic checkpoints are made once under --dir (default `checkpoints/`): `stt-tiny` (toy
widths, the same streams) and `stt-1b-en_fr` (the published architecture, 1.98 GB of random
bf16 weights: the same arithmetic as the real model, so the same speed). Both use the full-size
Mimi (rustymimi is not configurable), made once under --cache (default `--dir`/.stt-cache).

Figures per checkpoint: load time (validation + MLX load + evaluation), then frames timed
as `SpeechToText` runs a recording (Mimi encoding ten frames per call while the model takes
the steps on the ten before; progress comes in bursts, so the mean over all `--warmup` +
frames, less the Mimi build each recording starts with): the frame time, the speed it gives
on long audio (80 ms of audio per frame / frame time), and alone, after `--warmup` frames,
the Mimi encode (one frame per call, as a live stream; and ten) and the model step per frame.
For the tiny one, also a whole `transcribe` call on `--tiny-seconds` of audio (its speed
counts the `audio_delay + 1 s` of silence fed after the audio, so short clips come out
slower).
Full size steps take seconds each on a CPU: a few frames are enough for a steady figure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import mlx.core as mx
import numpy as np

from assistant.checkpoint.synthetic.stt import make_stt_checkpoint
from assistant.errors import AssistantError
from assistant.frames import FRAME_SAMPLES, FRAME_SECONDS, SAMPLE_RATE
from assistant.stt import SpeechToText
from assistant.stt.encoder import FrameEncoder
from assistant.stt.transcriber import ENCODE_BLOCK


def speechlike(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tone = 0.3 * np.sin(2 * np.pi * (180 + 60 * np.sin(2 * np.pi * 0.7 * t)) * t)
    return (tone + 0.05 * rng.standard_normal(n)).astype(np.float32)


def ensure(folder: Path, config_name: str, cache: Path) -> Path:
    started = time.perf_counter()
    made = make_stt_checkpoint(folder, config_name=config_name, cache_dir=cache)
    if made.written:
        print(f"  made {folder} in {time.perf_counter() - started:.1f} s")
    return folder


def bench(label: str, folder: Path, frames: int, warmup: int, whole_seconds: float) -> None:
    print(f"\n{label}: {folder}")
    started = time.perf_counter()
    stt = SpeechToText.load(folder, check_memory=False)
    print(f"  load (validate, MLX load, evaluate): {time.perf_counter() - started:.2f} s")

    started = time.perf_counter()
    encoder = FrameEncoder(stt.mimi, stt.config.n_q)  # as each transcription builds one
    build_s = time.perf_counter() - started
    stamps: list[float] = []
    audio = speechlike((warmup + frames) * FRAME_SECONDS)
    start = time.perf_counter()
    stt.text_tokens(audio, flush=False, progress=lambda _d, _t: stamps.append(time.perf_counter()))
    # (progress comes in bursts of ten frames: the mean, less the Mimi build of the call)
    mean = (stamps[-1] - start - build_s) / len(stamps)
    print(
        f"  frame (encode + step, overlapped): mean {mean * 1000:.0f} ms over {len(stamps)} "
        f"frames -> {FRAME_SECONDS / mean:.2f} s of audio per second (and once per recording, "
        f"the Mimi build: {build_s * 1000:.0f} ms)"
    )

    encode = []
    for i in range(frames + warmup):
        t = time.perf_counter()
        encoder.encode(audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES])
        encode.append(time.perf_counter() - t)
    text = mx.array([[stt.config.text_card]], dtype=mx.int32)
    codes = [mx.array([[7]], dtype=mx.int32)] * stt.config.n_q
    for cache in stt.loaded.model.transformer_cache:
        cache.reset()
    steps = []
    for _ in range(min(frames + warmup, 10)):
        t = time.perf_counter()
        mx.eval(stt._step(text, codes))
        steps.append(time.perf_counter() - t)
    encode_ms = statistics.median(encode[warmup:]) * 1000
    t = time.perf_counter()  # (the same instance, its stream going on)
    for i in range(0, frames + warmup, ENCODE_BLOCK):
        stop = min(i + ENCODE_BLOCK, frames + warmup)
        encoder.encode_frames(
            audio[i * FRAME_SAMPLES : stop * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
        )
    block_ms = (time.perf_counter() - t) / (frames + warmup) * 1000
    step_ms = statistics.median(steps[1:]) * 1000
    print(
        f"  alone: Mimi encode {encode_ms:.0f} ms/frame ({block_ms:.0f} at {ENCODE_BLOCK} frames "
        f"per call), model step {step_ms:.0f} ms/frame"
    )
    if whole_seconds > 0:
        clip = speechlike(whole_seconds)
        t = time.perf_counter()
        words = stt.transcribe(clip)
        elapsed = time.perf_counter() - t
        print(
            f"  transcribe({whole_seconds:g} s): {elapsed:.1f} s, {whole_seconds / elapsed:.2f} s "
            f"of audio per second ({len(words)} words; includes "
            f"{stt.flush_frames * FRAME_SECONDS:.2f} s of trailing silence)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="tiny,full", help="tiny, full (comma-separated)")
    parser.add_argument("--dir", type=Path, default=Path("checkpoints"))
    parser.add_argument("--checkpoint", type=Path, help="also time this STT checkpoint folder")
    parser.add_argument("--tiny-frames", type=int, default=50)
    parser.add_argument("--tiny-seconds", type=float, default=10.0)
    parser.add_argument("--full-frames", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--cache", type=Path, help="where the Mimi is made once (--dir/.stt-cache)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    cache = args.cache or args.dir / ".stt-cache"
    try:
        if "tiny" in parts:
            folder = ensure(args.dir / "stt-tiny", "tiny", cache)
            bench("tiny synthetic STT", folder, args.tiny_frames, args.warmup, args.tiny_seconds)
        if "full" in parts:
            folder = ensure(args.dir / "stt-1b-en_fr", "stt-1b-en_fr", cache)
            bench("full-size synthetic STT (bf16)", folder, args.full_frames, args.warmup, 0)
        if args.checkpoint is not None:
            bench("checkpoint", args.checkpoint, args.full_frames, args.warmup, 0)
    except AssistantError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
