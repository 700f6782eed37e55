"""Audio -> Mimi codes, one 80 ms frame at a time, for as long as the audio lasts.

rustymimi streams at most FRAME_LIMIT frames per instance (and its memory grows every frame),
so an instance serves `rollover_after` frames and is then replaced by a fresh one that first
re-encodes the last `warmup_frames` inputs (outputs discarded): the encoder's convolutions
and attention see the recent past again before its codes are used.

Frames known in advance (a whole recording) can be encoded several per call
(`encode_frames`): the same streaming computation, the same codes, at 40-45 % of the CPU
per frame (rustymimi's convolutions and attention work on the block at once).
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np

from ..errors import CodecError
from ..frames import FRAME_SAMPLES

FRAME_LIMIT = 4096  # frames one rustymimi 0.4.1 instance can stream
ROLLOVER_AFTER = 3800  # frames an instance serves (warm-up included) before it is replaced
WARMUP_FRAMES = 25  # 2 s of context for a replacement


class FrameEncoder:
    """One caller at a time. `encode(frame)` -> int32 codes [codebooks]."""

    def __init__(
        self,
        mimi: Path,
        codebooks: int,
        *,
        rollover_after: int = ROLLOVER_AFTER,
        warmup_frames: int = WARMUP_FRAMES,
    ) -> None:
        if not 0 <= warmup_frames < rollover_after <= FRAME_LIMIT:
            raise ValueError("need 0 <= warmup_frames < rollover_after <= FRAME_LIMIT")
        self.mimi = mimi
        self.codebooks = codebooks
        self.rollover_after = rollover_after
        self.warmup_frames = warmup_frames
        self.rollovers = 0
        self._recent: deque[np.ndarray] = deque(maxlen=warmup_frames or 1)
        self._tok = self._build()
        self._served = 0

    def _build(self):  # type: ignore[no-untyped-def]
        import rustymimi

        try:
            return rustymimi.Tokenizer(str(self.mimi), num_codebooks=self.codebooks)
        except Exception as e:  # rustymimi raises plain exceptions for damaged files
            raise CodecError(f"rustymimi cannot load it: {e}", path=self.mimi) from None

    def _step(self, frames: np.ndarray) -> np.ndarray:
        """Consecutive frames [n, FRAME_SAMPLES] in one call -> codes [n, codebooks]."""
        out = self._tok.encode_step(frames.reshape(1, 1, -1))
        self._served += len(frames)
        codes = None if out is None else np.asarray(out)
        if codes is None or codes.shape[-1] != len(frames):
            raise CodecError("rustymimi returned no codes for a whole frame", path=self.mimi)
        return codes[0, : self.codebooks, :].T.astype(np.int32)

    def encode(self, frame: np.ndarray) -> np.ndarray:
        if frame.shape != (FRAME_SAMPLES,):
            raise ValueError(f"a frame is {FRAME_SAMPLES} samples, got {frame.shape}")
        return self.encode_frames(frame[None, :])[0]

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        """Consecutive frames [n, FRAME_SAMPLES] -> int32 codes [n, codebooks], as n calls to
        `encode` would give them (roll-overs included), in as few rustymimi calls as the
        roll-overs allow."""
        if frames.ndim != 2 or frames.shape[1] != FRAME_SAMPLES:
            raise ValueError(f"frames are [n, {FRAME_SAMPLES}] samples, got {frames.shape}")
        frames = np.ascontiguousarray(frames, dtype=np.float32)
        codes = []
        done = 0
        while done < len(frames):
            if self._served >= self.rollover_after:
                self._roll_over()
            block = frames[done : done + self.rollover_after - self._served]
            codes.append(self._step(block))
            if self.warmup_frames:
                self._recent.extend(block[-self.warmup_frames :])
            done += len(block)
        return np.concatenate(codes) if codes else np.zeros((0, self.codebooks), np.int32)

    def _roll_over(self) -> None:
        recent = list(self._recent)[-self.warmup_frames :] if self.warmup_frames else []
        self._tok = self._build()
        self._served = 0
        self.rollovers += 1
        if recent:
            self._step(np.stack(recent))  # the outputs are discarded
