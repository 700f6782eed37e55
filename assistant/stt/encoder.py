"""Audio -> Mimi codes, one 80 ms frame at a time, for as long as the audio lasts.

rustymimi streams at most FRAME_LIMIT frames per instance (and its memory grows every frame),
so an instance serves `rollover_after` frames and is then replaced by a fresh one that first
re-encodes the last `warmup_frames` inputs (outputs discarded): the encoder's convolutions
and attention see the recent past again before its codes are used.
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

    def _step(self, frame: np.ndarray) -> np.ndarray:
        out = self._tok.encode_step(frame[None, None, :])
        self._served += 1
        if out is None:
            raise CodecError("rustymimi returned no codes for a whole frame", path=self.mimi)
        return np.asarray(out)[0, : self.codebooks, 0].astype(np.int32)

    def encode(self, frame: np.ndarray) -> np.ndarray:
        if frame.shape != (FRAME_SAMPLES,):
            raise ValueError(f"a frame is {FRAME_SAMPLES} samples, got {frame.shape}")
        frame = np.ascontiguousarray(frame, dtype=np.float32)
        if self._served >= self.rollover_after:
            self._tok = self._build()
            self._served = 0
            self.rollovers += 1
            for past in list(self._recent)[-self.warmup_frames :] if self.warmup_frames else []:
                self._step(past)
        codes = self._step(frame)
        if self.warmup_frames:
            self._recent.append(frame)
        return codes
