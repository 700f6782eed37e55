"""A random-weight Mimi codec file in the published PyTorch naming.

rustymimi hard-codes the architecture, so the file is always full size (385 MB). Weights are
scaled so activations keep roughly unit variance through the 50-odd layers: encode and
decode of any input stay finite, which is all the tests and the demo need.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..layout import TensorSpec
from ..mimi_layout import F32, PUBLISHED_CODEBOOKS, mimi_tensors
from ..safetensors_writer import HeaderStyle, Progress, planned_size, write_safetensors
from .draws import draw, normal_table

# The published file was written by PyTorch's safetensors: that header style gives its size.
MIMI_HEADER_STYLE: HeaderStyle = "safetensors"
_CHUNK = 16 * 1024 * 1024
_LAYER_SCALE = 0.01  # the trained model's initial layer scale; keeps residual branches small


def mimi_specs(num_codebooks: int = PUBLISHED_CODEBOOKS) -> list[TensorSpec]:
    return list(mimi_tensors(num_codebooks).values())


def mimi_file_size(num_codebooks: int = PUBLISHED_CODEBOOKS) -> int:
    """Exact size of the file `write_mimi` writes (384,644,900 bytes for 32 codebooks)."""
    return planned_size(mimi_specs(num_codebooks), MIMI_HEADER_STYLE)


def write_mimi(
    path: str | Path,
    num_codebooks: int = PUBLISHED_CODEBOOKS,
    seed: int = 0,
    *,
    progress: Progress | None = None,
) -> Path:
    """Write a random Mimi that rustymimi and moshi_mlx's MLX Mimi both load."""
    source = MimiTensorSource(seed)
    specs = mimi_specs(num_codebooks)
    return write_safetensors(path, specs, source, style=MIMI_HEADER_STYLE, progress=progress).path


class MimiTensorSource:
    """Per-tensor random data seeded by (seed, name), scaled by the tensor's role."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __call__(self, spec: TensorSpec) -> Iterator[np.ndarray]:
        name, shape = spec.name, spec.shape
        n = math.prod(shape)
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("_initialized", "cluster_usage") or (leaf == "weight" and ".norm" in name):
            return _constant(n, 1.0)  # codebooks in use, identity norms
        if leaf == "bias":
            return _constant(n, 0.0)
        if leaf == "scale":
            return _constant(n, _LAYER_SCALE)
        if leaf == "embedding_sum":
            std = 1.0  # cluster_usage = 1, so the code vectors are unit-variance
        elif ".convtr." in name:
            # [in, out/groups, k] with stride k/2: each output sums in*k/stride = 2*in terms.
            std = 1.0 / math.sqrt(2 * shape[0])
        elif len(shape) == 3:
            std = 1.0 / math.sqrt(shape[1] * shape[2])  # conv [out, in, k]: fan-in in*k
        else:
            std = 1.0 / math.sqrt(shape[1])  # linear [out, in]
        rng = np.random.default_rng([self.seed, zlib.crc32(name.encode())])
        return _normal(rng, n, std)


def _constant(n: int, value: float) -> Iterator[np.ndarray]:
    yield np.full(n, value, dtype=np.float32)


def _normal(rng: np.random.Generator, n: int, std: float) -> Iterator[np.ndarray]:
    table = normal_table(std, F32)
    done = 0
    while done < n:
        k = min(_CHUNK, n - done)
        yield draw(rng, table, k)
        done += k
