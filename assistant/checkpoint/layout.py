"""The exact tensors a Moshi MLX checkpoint holds, for a config and a quantization.

This is the one description of the published layout: inspection checks files against it and
the synthetic writer produces files from it. A test checks it against the parameters of
moshi_mlx's own model after `set_dtype(bfloat16)` + `nn.quantize`, which is how the published
files were made.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from .config import MoshiConfig

BF16 = "BF16"
U32 = "U32"

# Bytes per element for the safetensors dtypes a checkpoint may contain.
DTYPE_BYTES = {"BF16": 2, "F16": 2, "F32": 4, "U32": 4, "I32": 4, "F64": 8, "U8": 1, "I64": 8}


@dataclass(frozen=True)
class Quantization:
    """MLX affine quantization: `bits` per weight, one scale and bias per `group_size` weights."""

    bits: int
    group_size: int

    @property
    def bits_per_weight(self) -> float:
        """Storage per quantized weight, counting the bf16 scale and bias of its group."""
        return self.bits + 32 / self.group_size

    @property
    def label(self) -> str:
        return f"q{self.bits}"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def elements(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return DTYPE_BYTES[self.dtype] * self.elements


@dataclass(frozen=True)
class Linear:
    """A weight matrix [out, in] that quantization turns into weight/scales/biases."""

    name: str  # module path, without ".weight"
    out_features: int
    in_features: int


def linears(config: MoshiConfig) -> Iterator[Linear]:
    """Every quantizable matrix (linears and embeddings), in the model's module order."""
    d, dd = config.dim, config.depformer_dim
    for i in range(config.num_layers):
        yield from _layer(f"transformer.layers.{i}", d, config.main_hidden)
    for s in range(config.dep_q):
        p = f"depformer.slices.{s}"
        vocab = config.text_in_vocab if s == 0 else config.audio_in_vocab
        yield Linear(f"{p}.emb", vocab, dd)
        yield Linear(f"{p}.linear_in", dd, d)
        yield Linear(f"{p}.linear_out", config.card, dd)
        for i in range(config.depformer_num_layers):
            yield from _layer(f"{p}.transformer.layers.{i}", dd, config.depformer_hidden)
    yield Linear("text_emb", config.text_in_vocab, d)
    yield Linear("text_linear", config.text_card, d)
    for i in range(config.n_q):
        yield Linear(f"audio_embs.{i}", config.audio_in_vocab, d)


def norms(config: MoshiConfig) -> Iterator[tuple[str, int]]:
    """Every RMSNorm weight (never quantized): name and width."""
    for i in range(config.num_layers):
        yield f"transformer.layers.{i}.norm1.weight", config.dim
        yield f"transformer.layers.{i}.norm2.weight", config.dim
    for s in range(config.dep_q):
        for i in range(config.depformer_num_layers):
            p = f"depformer.slices.{s}.transformer.layers.{i}"
            yield f"{p}.norm1.weight", config.depformer_dim
            yield f"{p}.norm2.weight", config.depformer_dim
    yield "out_norm.weight", config.dim


def _layer(prefix: str, d: int, hidden: int) -> Iterator[Linear]:
    yield Linear(f"{prefix}.self_attn.in_proj", 3 * d, d)
    yield Linear(f"{prefix}.self_attn.out_proj", d, d)
    yield Linear(f"{prefix}.gating.linear_in", 2 * hidden, d)
    yield Linear(f"{prefix}.gating.linear_out", d, hidden)


def expected_tensors(config: MoshiConfig, quant: Quantization | None) -> dict[str, TensorSpec]:
    """Name -> spec for every tensor of the checkpoint, in writing order (sorted by name)."""
    specs: list[TensorSpec] = []
    for lin in linears(config):
        if quant is None:
            specs.append(
                TensorSpec(f"{lin.name}.weight", (lin.out_features, lin.in_features), BF16)
            )
            continue
        packed = lin.in_features * quant.bits // 32
        groups = lin.in_features // quant.group_size
        specs.append(TensorSpec(f"{lin.name}.weight", (lin.out_features, packed), U32))
        specs.append(TensorSpec(f"{lin.name}.scales", (lin.out_features, groups), BF16))
        specs.append(TensorSpec(f"{lin.name}.biases", (lin.out_features, groups), BF16))
    specs.extend(TensorSpec(name, (width,), BF16) for name, width in norms(config))
    return {s.name: s for s in sorted(specs, key=lambda s: s.name)}


def quantization_fits(config: MoshiConfig, quant: Quantization) -> list[str]:
    """Widths that the group size does not divide (MLX cannot quantize those layers)."""
    bad = sorted({lin.in_features for lin in linears(config) if lin.in_features % quant.group_size})
    return [f"width {w} is not a multiple of group size {quant.group_size}" for w in bad]


def parameter_count(config: MoshiConfig) -> int:
    """Number of model weights (unquantized count), independent of storage."""
    total = sum(lin.out_features * lin.in_features for lin in linears(config))
    return total + sum(width for _, width in norms(config))


# How the published checkpoints were quantized (moshi_mlx's `-q` flag): q4 uses groups of 32,
# q8 groups of 64. Used to name and make checkpoints, never to read one: files are measured.
Q4 = Quantization(4, 32)
Q8 = Quantization(8, 64)
PUBLISHED_QUANTIZATIONS: dict[str, Quantization | None] = {"q4": Q4, "q8": Q8, "bf16": None}
