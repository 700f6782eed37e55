"""Speech to text with Kyutai's STT model on MLX: samples in, words with times out.

The audio (24 kHz mono float32) is fed as the model expects it: `audio_silence_prefix_seconds`
of silence, the audio cut into 80 ms frames (the last one padded with zeros), then
`audio_delay_seconds` + 1 s of silence so the text of the last words comes out (the text
stream runs that far behind the audio), as Kyutai's `run_inference` does. Each frame is
encoded by Mimi (32 codebooks) and the model takes one step, decoding greedily (Kyutai's
`lm_gen_config` says temperature 0).

A step is moshi_mlx's own computation for dep_q 0 (what its `LmGen.step` does with no
depformer and all delays 0): the embedding of the previous text token plus, codebook by
codebook in order, the embeddings of the previous frame's codes (the padding code at step 0),
through the transformer, the output norm and the text head; the arg-max is the step's token.
A test checks the tokens against `LmGen` itself.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import mlx.core as mx
import numpy as np

from ..errors import TranscriptionStopped, UsageError
from ..frames import FRAME_RATE, FRAME_SAMPLES, FRAME_SECONDS, SAMPLE_RATE
from .encoder import FrameEncoder
from .loader import LoadedStt, load_stt
from .words import Word, words_from_tokens

END_OF_PADDING = 0  # the text token that announces a word after padding: no text itself
FLUSH_SECONDS = 1.0  # silence fed beyond the audio delay, as Kyutai's run_inference does

Progress = Callable[[float, float], None]


class SpeechToText:
    """A loaded STT model. `transcribe` may be called many times, one call at a time (calls
    from several threads wait for each other)."""

    def __init__(self, loaded: LoadedStt) -> None:
        self.loaded = loaded
        self.config = loaded.report.config
        self.tokenizer = loaded.report.text_tokenizer.processor
        self.mimi = loaded.report.files.mimi
        self._lock = threading.Lock()
        c = self.config
        self.silent_ids = frozenset({END_OF_PADDING, c.existing_text_padding_id})
        self.prefix_frames = math.ceil(c.audio_silence_prefix_seconds * FRAME_RATE)
        self.flush_frames = math.ceil((c.audio_delay_seconds + FLUSH_SECONDS) * FRAME_RATE)

    @classmethod
    def load(cls, folder: Path, *, check_memory: bool = True) -> SpeechToText:
        """Validate the folder's files (one-line errors), check memory, load onto MLX."""
        return cls(load_stt(folder, check_memory=check_memory))

    @property
    def offset_seconds(self) -> float:
        """How far the text stream's step times run ahead of the given audio's times."""
        return self.prefix_frames * FRAME_SECONDS + self.config.audio_delay_seconds

    def transcribe(
        self,
        samples: np.ndarray,
        *,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Word]:
        """Words of `samples` (float32 mono 24 kHz), times in seconds from its start.
        `progress(seconds_done, seconds_total)` after each frame; `should_stop()` is asked
        before each frame and, when true, raises TranscriptionStopped."""
        audio = _check_samples(samples)
        total = len(audio) / SAMPLE_RATE
        if not len(audio):
            return []
        with self._lock:
            tokens = self.text_tokens(audio, progress=progress, should_stop=should_stop)
        return words_from_tokens(
            list(enumerate(tokens)),
            piece=self.tokenizer.IdToPiece,
            decode=self.tokenizer.DecodeIds,
            silent_ids=self.silent_ids,
            offset_s=self.offset_seconds,
            duration_s=total,
        )

    def text_tokens(
        self,
        audio: np.ndarray,
        *,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
        flush: bool = True,
    ) -> list[int]:
        """The greedy text token of every step for `audio` (padded as described above;
        `flush=False` leaves out the silence after it: for timing frames)."""
        total = len(audio) / SAMPLE_RATE
        audio_frames = math.ceil(len(audio) / FRAME_SAMPLES)
        encoder = FrameEncoder(self.mimi, self.config.n_q)
        model = self.loaded.model
        for cache in model.transformer_cache:
            cache.reset()
        text = mx.array([[self.config.text_card]], dtype=mx.int32)  # the initial token
        codes = [mx.array([[self.config.card]], dtype=mx.int32)] * self.config.n_q  # padding
        tokens: list[int] = []
        for index, frame in enumerate(self._frames(audio, audio_frames, flush)):
            if should_stop is not None and should_stop():
                raise TranscriptionStopped(
                    f"stopped after {min(index * FRAME_SECONDS, total):.1f} of {total:.1f} s"
                )
            token = self._step(text, codes)
            mx.async_eval(token)  # the model's step runs while Mimi encodes this frame
            codes = [mx.array([[int(c)]], dtype=mx.int32) for c in encoder.encode(frame)]
            tokens.append(int(token.item()))
            text = token
            if progress is not None:
                done = index + 1 - self.prefix_frames
                progress(min(max(done, 0) * FRAME_SECONDS, total), total)
        return tokens

    def _frames(self, audio: np.ndarray, audio_frames: int, flush: bool) -> Iterator[np.ndarray]:
        silence = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        for _ in range(self.prefix_frames):
            yield silence
        for i in range(audio_frames):
            frame = audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]
            if len(frame) < FRAME_SAMPLES:
                frame = np.concatenate([frame, silence[len(frame) :]])
            yield frame
        for _ in range(self.flush_frames if flush else 0):
            yield silence

    def _step(self, text: mx.array, codes: list[mx.array]) -> mx.array:
        model = self.loaded.model
        xs = model.text_emb(text)
        for token, emb in zip(codes, model.audio_embs, strict=True):
            xs = xs + emb(token).transpose(1, 0, 2)
        out = model.transformer(xs, cache=model.transformer_cache)
        logits = model.text_linear(model.out_norm(out))
        return mx.argmax(logits, axis=-1).astype(mx.int32)


def _check_samples(samples: np.ndarray) -> np.ndarray:
    audio = np.asarray(samples)
    if audio.ndim != 1:
        raise UsageError(f"expected mono samples (one dimension), got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise UsageError(f"expected float samples in [-1, 1], got {audio.dtype}")
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if not np.all(np.isfinite(audio)):
        raise UsageError("the samples contain NaN or infinity")
    return audio
