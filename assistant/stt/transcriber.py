"""Speech to text with Kyutai's STT model on MLX: samples in, words with times out.

The audio (24 kHz mono float32) is fed as the model expects it: `audio_silence_prefix_seconds`
of silence, the audio cut into 80 ms frames (the last one padded with zeros), then
`audio_delay_seconds` + 1 s of silence so the text of the last words comes out (the text
stream runs that far behind the audio), as Kyutai's `run_inference` does. Each frame is
encoded by Mimi (32 codebooks) and the model takes one step, decoding greedily (Kyutai's
`lm_gen_config` says temperature 0). A whole recording is encoded ENCODE_BLOCK frames per
Mimi call (the same codes for less than half the CPU), while the model takes the steps on the
block before; the last frame is not encoded at all (its codes would feed the step after it).

A step is moshi_mlx's own computation for dep_q 0 (what its `LmGen.step` does with no
depformer and all delays 0): the embedding of the previous text token plus, codebook by
codebook in order, the embeddings of the previous frame's codes (the padding code at step 0),
through the transformer, the output norm and the text head; the arg-max is the step's token.
A test checks the tokens against `LmGen` itself.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from pathlib import Path

import mlx.core as mx
import numpy as np

from ..errors import TranscriptionStopped, UsageError
from ..frames import FRAME_RATE, FRAME_SAMPLES, FRAME_SECONDS, SAMPLE_RATE
from .encoder import FrameEncoder
from .loader import LoadedStt, load_stt
from .words import Word, WordBuilder, words_from_tokens

END_OF_PADDING = 0  # the text token that announces a word after padding: no text itself
FLUSH_SECONDS = 1.0  # silence fed beyond the audio delay, as Kyutai's run_inference does
# Frames per Mimi call for a whole recording: 0.8 s, 45 % of a lone frame's CPU per frame here
# (more frames per call save little more), and `should_stop` is still asked every 0.8 s.
ENCODE_BLOCK = 10

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
        steps = self.prefix_frames + audio_frames + (self.flush_frames if flush else 0)
        with self._lock:
            run = _Run(self)
            # Step i takes the codes of frame i - 1 (the last frame's would feed no step). Every
            # step whose codes are known is queued (MLX runs them on its own thread) while Mimi
            # encodes the next block.
            codes = np.zeros((max(steps - 1, 0), self.config.n_q), np.int32)
            encoded = queued = 0
            while len(run.tokens) < steps:
                tokens = []
                while queued < steps and queued <= encoded:
                    if should_stop is not None and should_stop():
                        done_s = min(queued * FRAME_SECONDS, total)
                        raise TranscriptionStopped(f"stopped after {done_s:.1f} of {total:.1f} s")
                    tokens.append(run.queue(codes[queued - 1] if queued else None))
                    queued += 1
                if encoded < len(codes):
                    end = min(encoded + ENCODE_BLOCK, len(codes))
                    codes[encoded:end] = run.encoder.encode_frames(
                        self._frames(audio, encoded, end)
                    )
                    encoded = end
                for token in tokens:
                    run.take(token)
                    if progress is not None:
                        done = len(run.tokens) - self.prefix_frames
                        progress(min(max(done, 0) * FRAME_SECONDS, total), total)
            return run.tokens

    def live(self) -> LiveTranscription:
        """Words as the audio arrives (see LiveTranscription). The model is this stream's
        until it is finished or closed: other calls wait."""
        return LiveTranscription(self)

    def _frames(self, audio: np.ndarray, start: int, stop: int) -> np.ndarray:
        """Frames start..stop-1 of what is fed: the silence before, `audio` (its last frame
        padded with zeros), the silence after."""
        block = np.zeros((stop - start, FRAME_SAMPLES), dtype=np.float32)
        for row, index in enumerate(range(start - self.prefix_frames, stop - self.prefix_frames)):
            if index >= 0:
                samples = audio[index * FRAME_SAMPLES : (index + 1) * FRAME_SAMPLES]
                block[row, : len(samples)] = samples
        return block

    def _step(self, text: mx.array, codes: list[mx.array]) -> mx.array:
        model = self.loaded.model
        xs = model.text_emb(text)
        for token, emb in zip(codes, model.audio_embs, strict=True):
            xs = xs + emb(token).transpose(1, 0, 2)
        out = model.transformer(xs, cache=model.transformer_cache)
        logits = model.text_linear(model.out_norm(out))
        return mx.argmax(logits, axis=-1).astype(mx.int32)


_SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.float32)


class _Run:
    """One pass over a stream of frames: a fresh KV cache and Mimi encoder, the step state."""

    def __init__(self, stt: SpeechToText) -> None:
        self.stt = stt
        c = stt.config
        self.encoder = FrameEncoder(stt.mimi, c.n_q)
        for cache in stt.loaded.model.transformer_cache:
            cache.reset()
        self.text = mx.array([[c.text_card]], dtype=mx.int32)  # the initial token
        self.codes = [mx.array([[c.card]], dtype=mx.int32)] * c.n_q  # padding at step 0
        self.tokens: list[int] = []

    def step(self, frame: np.ndarray) -> int:
        token = self.queue(None)  # the model's step runs while Mimi encodes this frame
        self.codes = _codes(self.encoder.encode(frame))
        return self.take(token)

    def queue(self, codes: np.ndarray | None) -> mx.array:
        """Start the next step on MLX's stream: on `codes` (the previous frame's), or on the
        codes `step` kept."""
        if codes is not None:
            self.codes = _codes(codes)
        token = self.stt._step(self.text, self.codes)
        mx.async_eval(token)
        self.text = token
        return token

    def take(self, token: mx.array) -> int:
        """Wait for a queued step's token."""
        self.tokens.append(int(token.item()))
        return self.tokens[-1]


def _codes(frame_codes: np.ndarray) -> list[mx.array]:
    return [mx.array([[int(c)]], dtype=mx.int32) for c in frame_codes]


class LiveTranscription:
    """Audio fed as it comes (any number of samples at a time), words out as they complete:
    a word is returned once the next one starts, so the last one waits for `finish`, which
    feeds the trailing silence and returns the rest. Times are from the start of the stream.
    Also a context manager (closing without finishing drops what is pending)."""

    def __init__(self, stt: SpeechToText) -> None:
        stt._lock.acquire()
        try:
            self.stt = stt
            self._run = _Run(stt)
            self._words = WordBuilder(
                stt.tokenizer.IdToPiece, stt.tokenizer.DecodeIds, stt.silent_ids, stt.offset_seconds
            )
            self._pending: np.ndarray = np.zeros(0, dtype=np.float32)
            self.samples = 0  # audio fed so far
            self._open = True
            # The silence fed before the audio (none for the published model).
            self._ready = [w for _ in range(stt.prefix_frames) if (w := self._step(_SILENCE))]
        except BaseException:
            stt._lock.release()
            raise

    @property
    def seconds(self) -> float:
        return self.samples / SAMPLE_RATE

    def feed(self, samples: np.ndarray) -> list[Word]:
        """The words this audio completed (float32 mono 24 kHz, any length)."""
        self._require_open()
        audio = _check_samples(samples)
        self.samples += len(audio)
        self._pending = np.concatenate([self._pending, audio])
        words, self._ready = self._ready, []
        while len(self._pending) >= FRAME_SAMPLES:
            frame, self._pending = self._pending[:FRAME_SAMPLES], self._pending[FRAME_SAMPLES:]
            if word := self._step(frame):
                words.append(word)
        return words

    def finish(self) -> list[Word]:
        """The words still to come: the partial frame and the trailing silence are fed."""
        self._require_open()
        try:
            words, self._ready = self._ready, []
            frames = [_SILENCE] * self.stt.flush_frames
            if len(self._pending):
                frames.insert(0, np.concatenate([self._pending, _SILENCE[len(self._pending) :]]))
            words += [w for frame in frames if (w := self._step(frame))]
            last = self._words.close(self.seconds)
            return words + ([last] if last else [])
        finally:
            self.close()

    def close(self) -> None:
        if self._open:
            self._open = False
            self.stt._lock.release()

    def __enter__(self) -> LiveTranscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_open(self) -> None:
        if not self._open:
            raise UsageError("this live transcription is finished")

    def _step(self, frame: np.ndarray) -> Word | None:
        step = len(self._run.tokens)
        return self._words.add(step, self._run.step(frame), self.seconds)


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
