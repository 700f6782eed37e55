"""Token sampling on the device: greedy, or temperature + top-k with an explicit random key.

Moshi's published defaults are temperature 0.7 / top-k 25 for text and 0.8 / 250 for audio.
moshi_mlx's own `Sampler` defaults to top-p 0.95 instead, which is why it is not used here.
Every function only builds MLX ops (no host sync), so a whole step evaluates at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import SamplingConfigError

if TYPE_CHECKING:
    import mlx.core as mx

MAX_TEMPERATURE = 100.0  # far past uniform noise already; infinity would divide by it


@dataclass(frozen=True)
class SamplingConfig:
    """Temperature 0 means greedy (argmax, deterministic); top-k 0 means no truncation.

    `seed` makes sampled runs reproducible (same seed, same inputs -> same tokens); None
    draws a fresh seed per engine.
    """

    text_temperature: float = 0.7
    text_top_k: int = 25
    audio_temperature: float = 0.8
    audio_top_k: int = 250
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("text_temperature", "audio_temperature"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_TEMPERATURE:  # also rejects NaN and infinity
                raise SamplingConfigError(
                    f"--{name.replace('_', '-')} must be between 0 and {MAX_TEMPERATURE:g}, "
                    f"got {value}"
                )
        for name in ("text_top_k", "audio_top_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SamplingConfigError(
                    f"--{name.replace('_', '-')} must be an integer >= 0, got {value!r}"
                )
        if self.seed is not None and (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not 0 <= self.seed < 2**64
        ):
            raise SamplingConfigError(f"--seed must be an integer 0..2^64-1, got {self.seed!r}")

    @classmethod
    def greedy(cls) -> SamplingConfig:
        """Deterministic argmax for text and audio (tests, comparisons)."""
        return cls(text_temperature=0.0, audio_temperature=0.0)

    @property
    def is_greedy(self) -> bool:
        return self.text_temperature == 0 and self.audio_temperature == 0


def sample_token(
    logits: mx.array, temperature: float, top_k: int, key: mx.array | None
) -> mx.array:
    """One token per row of `logits` [..., vocab], as int32 [...] (lazy)."""
    import mlx.core as mx  # here, not at the top: the settings above load without MLX

    if temperature <= 0:
        return mx.argmax(logits, axis=-1).astype(mx.int32)
    if key is None:
        raise ValueError("sampling with temperature > 0 needs a random key")
    # float32 before scaling: bf16 logits / temperature would lose the small differences.
    scaled = logits.astype(mx.float32) * (1.0 / temperature)
    vocab = logits.shape[-1]
    if top_k <= 0 or top_k >= vocab:
        return mx.random.categorical(scaled, axis=-1, key=key).astype(mx.int32)
    # Exactly k candidates (like torch.topk in PyTorch moshi), then sample among them only.
    candidates = mx.argpartition(-scaled, kth=top_k - 1, axis=-1)[..., :top_k]
    values = mx.take_along_axis(scaled, candidates, axis=-1)
    choice = mx.random.categorical(values, axis=-1, key=key)
    token = mx.take_along_axis(candidates, mx.expand_dims(choice, -1), axis=-1)
    return token.squeeze(-1).astype(mx.int32)


class KeyStream:
    """Per-engine random keys: a host-side PCG64 stream turned into MLX threefry keys.

    Drawing keys on the host costs no device op and keeps no lazy chain of `split`s alive
    between steps; the global `mx.random` state is never touched.
    """

    def __init__(self, seed: int | None) -> None:
        self._fixed_seed = seed
        self.reset()

    def reset(self) -> None:
        """Back to the start of the stream for a fixed seed; a fresh seed when it is None."""
        seed = self._fixed_seed
        self.seed = int(np.random.SeedSequence().entropy) if seed is None else seed  # type: ignore[arg-type]
        self._rng = np.random.Generator(np.random.PCG64(self.seed))

    def next_keys(self, n: int) -> mx.array:
        """`n` fresh keys as a uint32 [n, 2] array (row i is a valid `key=` argument)."""
        import mlx.core as mx

        raw = self._rng.integers(0, 2**32, size=(n, 2), dtype=np.uint64).astype(np.uint32)
        return mx.array(raw)
