"""Random-weight Moshi LM files in the exact layout of the published MLX checkpoints."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..config import MoshiConfig
from ..layout import BF16, U32, Quantization, TensorSpec, expected_tensors
from ..safetensors_writer import HeaderStyle, Progress, WriteResult, planned_size, write_safetensors
from .draws import draw, normal_table, uniform_table

# Elements generated at once: bounds memory (64 MB of uint32 at most) whatever the tensor size.
CHUNK_ELEMENTS = 16 * 1024 * 1024

# Dequantized weights are uniform on about [-A, A]: std A/sqrt(3) ~ 0.02, like the bf16 ones.
WEIGHT_STD = 0.02
_AMPLITUDE = 0.035
_BF16_ONE = 0x3F80


def lm_specs(config: MoshiConfig, quant: Quantization | None) -> list[TensorSpec]:
    """The checkpoint's tensors in writing order (name order, as the published files)."""
    return list(expected_tensors(config, quant).values())


def lm_file_size(
    config: MoshiConfig, quant: Quantization | None, style: HeaderStyle = "published"
) -> int:
    """Exact size of the file `write_lm` writes, computed without writing it."""
    return planned_size(lm_specs(config, quant), style)


def write_lm(
    path: str | Path,
    config: MoshiConfig,
    quant: Quantization | None,
    seed: int = 0,
    *,
    style: HeaderStyle = "published",
    progress: Progress | None = None,
) -> Path:
    """Write a random-weight LM file that `build_model(config, quant)` loads strictly."""
    source = LmTensorSource(quant, seed)
    result: WriteResult = write_safetensors(
        path, lm_specs(config, quant), source, style=style, progress=progress
    )
    return result.path


class LmTensorSource:
    """Deterministic random data per tensor: depends only on the seed and the tensor's name,
    so a tensor's values do not change when other tensors are added or reordered."""

    def __init__(self, quant: Quantization | None, seed: int) -> None:
        self.quant = quant
        self.seed = seed

    def __call__(self, spec: TensorSpec) -> Iterator[np.ndarray]:
        rng = np.random.default_rng([self.seed, zlib.crc32(spec.name.encode())])
        n = int(np.prod(spec.shape))
        if spec.dtype == U32:
            return _chunks(n, lambda k: _random_u32(rng, k))
        if spec.dtype != BF16:
            raise ValueError(f"{spec.name}: unexpected dtype {spec.dtype}")
        if len(spec.shape) == 1:  # RMSNorm weights: identity, as at initialisation
            return _chunks(n, lambda k: np.full(k, _BF16_ONE, dtype=np.uint16))
        if spec.name.endswith(".scales"):
            step = 2 * _AMPLITUDE / self._levels(spec)
            table = uniform_table(0.8 * step, 1.2 * step, BF16)
        elif spec.name.endswith(".biases"):
            table = uniform_table(-1.2 * _AMPLITUDE, -0.8 * _AMPLITUDE, BF16)
        else:
            table = normal_table(WEIGHT_STD, BF16)
        return _chunks(n, lambda k: draw(rng, table, k))

    def _levels(self, spec: TensorSpec) -> int:
        if self.quant is None:
            raise ValueError(f"{spec.name}: scales in an unquantized checkpoint")
        return 2**self.quant.bits - 1


def _chunks(n: int, make: Callable[[int], np.ndarray]) -> Iterator[np.ndarray]:
    """`n` elements as arrays of at most CHUNK_ELEMENTS, each made by `make(count)`."""
    done = 0
    while done < n:
        k = min(CHUNK_ELEMENTS, n - done)
        yield make(k)
        done += k


def _random_u32(rng: np.random.Generator, k: int) -> np.ndarray:
    """`k` random uint32, the very values of `rng.bytes(4 * k)` (its 64-bit draws split in two,
    low half first) at a third of its cost: no integer-sampling path, no copy to bytes."""
    return rng.bit_generator.random_raw((k + 1) // 2).view("<u4")[:k]
