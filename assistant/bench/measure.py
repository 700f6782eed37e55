"""Measure one variant: cold and warm load, memory, every step's time and tokens; then decode
what it said with Mimi (after every model is measured, so Mimi's memory never sits in a
model's memory figures).

The step loop is the product's own engine on the same user codes for every variant, warmed up
as a chat warms it up. With a reference recording the variant is teacher-forced (see
`fidelity`): forcing is a host-side write of a few integers, made after the step's timer stops.
When the run's sampling is not the one a chat uses (greedy, by default, for the fidelity
comparison), the steps are timed again, free-running, sampled as a chat samples them.

Memory is the variant's own: MLX's peak and the process's resident set above where they
stood when the variant's warm load began.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import mlx.core as mx
import numpy as np

from ..audio.sound_files import write_wav
from ..checkpoint.config import MoshiConfig
from ..codec.streaming import StreamingCodec
from ..voice.engine import StreamingEngine
from ..voice.loader import load
from ..voice.memory import release_freed_memory
from .fidelity import Recording
from .results import BenchSettings, VariantResult
from .system import RssPeak, prepare_cold_load, return_freed_heap
from .timing import Timing
from .variants import Variant

Status = Callable[[str], None]


def quiet(message: str) -> None:
    """The default progress callback: say nothing."""


def measure_variant(
    variant: Variant,
    codes: np.ndarray,
    settings: BenchSettings,
    *,
    reference: Recording | None = None,
    status: Status = quiet,
) -> VariantResult:
    """Load twice, then stream `codes` (one row per step) on the second copy."""
    label = variant.label
    status(f"{label}: cold load")
    cold = prepare_cold_load(variant.files.model)
    loaded = load(variant.files, check_memory=settings.check_memory)
    cold_s = loaded.load_seconds
    del loaded
    release_freed_memory()  # the warm load must not find the first copy still in memory

    status(f"{label}: warm load")
    return_freed_heap()  # so that the resident set's increase is this variant's own
    mx.reset_peak_memory()
    mlx_before = mx.get_active_memory()
    with RssPeak() as rss:
        loaded = load(variant.files, check_memory=settings.check_memory)
        warm_s = loaded.load_seconds
        active = mx.get_active_memory()
        model, config = loaded.model, loaded.config
        del loaded
        engine = StreamingEngine(model, config, settings.sampling, capture_text_logits=True)
        engine.warmup()
        step_ms, recording = _stream(engine, codes, reference, label, status)
        del engine  # one engine (and one ring) at a time, as in a chat
        chat_ms = None
        chat = settings.chat_sampling
        if chat is not None:
            engine = StreamingEngine(model, config, chat)
            engine.warmup()
            chat_ms = _time_steps(engine, codes, f"{label} (sampled as a chat)", status)
            del engine
        peak = mx.get_peak_memory()
        del model
    release_freed_memory()
    return VariantResult(
        label=label,
        model=variant.model,
        cold_load_s=cold_s,
        cold_load_kind=cold.kind,
        cold_load_doubt=cold.doubt,
        warm_load_s=warm_s,
        mlx_before=mlx_before,
        mlx_active_after_load=active,
        mlx_peak=peak,
        rss_peak=rss.peak,
        rss_before=rss.start,
        step_ms=step_ms,
        warmup=settings.warmup,
        recording=recording,
        chat_step_ms=chat_ms,
    )


def _stream(
    engine: StreamingEngine,
    codes: np.ndarray,
    reference: Recording | None,
    label: str,
    status: Status,
) -> tuple[list[float], Recording]:
    step_ms: list[float] = []
    tokens: list[np.ndarray] = []
    logits: list[np.ndarray] = []
    total = len(codes)
    for i, frame in enumerate(codes):
        started = time.perf_counter()
        r = engine.step(frame)
        step_ms.append((time.perf_counter() - started) * 1000)
        assert r.tokens is not None and r.text_logits is not None  # captured by this engine
        tokens.append(r.tokens)
        logits.append(r.text_logits)
        if reference is not None:
            engine.force_tokens(reference.tokens[i])
        if i % 10 == 9 or i == total - 1:
            status(f"{label}: step {i + 1}/{total}")
    return step_ms, Recording(np.stack(tokens), np.stack(logits))


def _time_steps(
    engine: StreamingEngine, codes: np.ndarray, label: str, status: Status
) -> list[float]:
    """Free-running steps, each timed as `_stream` times them."""
    step_ms = []
    for i, frame in enumerate(codes):
        started = time.perf_counter()
        engine.step(frame)
        step_ms.append((time.perf_counter() - started) * 1000)
        if i % 10 == 9 or i == len(codes) - 1:
            status(f"{label}: step {i + 1}/{len(codes)}")
    return step_ms


def own_audio_codes(tokens: np.ndarray, config: MoshiConfig) -> np.ndarray:
    """The frames a run's sampled tokens make, uint32 [frames, dep_q].

    Codebook k's token sampled at step s belongs to frame s - delay_k; frames are complete
    from step max_delay on, as `StepResult.audio_codes` delivers them in a free run.
    """
    dep_q = config.dep_q
    delays = np.array(config.delays[1 : 1 + dep_q])
    n = len(tokens) - int(delays.max())
    if n <= 0:
        return np.zeros((0, dep_q), dtype=np.uint32)
    rows = np.arange(n)[:, None] + delays[None, :]
    return tokens[rows, 1 + np.arange(dep_q)[None, :]].astype(np.uint32)


def decode_variant(result: VariantResult, mimi: Path, audio_file: Path | None = None) -> None:
    """Time Mimi decoding the variant's own codes; write them as audio when asked."""
    decode, pcm = decode_own_audio(result.recording.tokens, result.model.config, mimi)
    result.decode = decode
    if audio_file is not None and pcm.size:
        write_wav(audio_file, pcm)
        result.audio_file = audio_file


def decode_own_audio(
    tokens: np.ndarray, config: MoshiConfig, mimi: Path
) -> tuple[Timing, np.ndarray]:
    """Decode the run's own codes with a fresh Mimi (no state from another variant), timed."""
    frames = own_audio_codes(tokens, config)
    ms, pcm = [], []
    with StreamingCodec(mimi, config.dep_q) as codec:
        for codes in frames:
            started = time.perf_counter()
            pcm.append(codec.decode(codes))
            ms.append((time.perf_counter() - started) * 1000)
    audio = np.concatenate(pcm) if pcm else np.zeros(0, dtype=np.float32)
    return Timing.of(ms), audio
