"""The tensors of the published Mimi codec file (`tokenizer-e351c8d8-checkpoint125.safetensors`).

The file holds PyTorch names and layouts (moshi_mlx and rustymimi both translate them), all
float32, 32 codebooks, 96.2 M values, 384,644,900 bytes. The architecture is fixed (rustymimi
hard-codes it), so the only free parameter is the number of codebooks; the LM needs at least
`config.dep_q` of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from .layout import TensorSpec

F32 = "F32"
PUBLISHED_CODEBOOKS = 32
PUBLISHED_MIMI_BYTES = 384_644_900

# SEANet (mimi_202407): channels double at each of the four strided convolutions.
_RATIOS = (8, 6, 5, 4)  # decoder order; the encoder downsamples in reverse (4, 5, 6, 8)
_FILTERS = 64
_DIMENSION = 512
_KSIZE, _RES_KSIZE, _LAST_KSIZE = 7, 3, 3
_COMPRESS = 2
# Transformers after the encoder and before the decoder.
_LAYERS, _FF = 8, 2048
# Split residual vector quantizer: 1 semantic codebook + (n - 1) acoustic ones.
MIMI_CODEBOOK_SIZE = 2048  # entries per codebook: codes are 0..2047
_CODE_DIM = 256
_FRAME_STRIDE = 2  # 25 Hz encoder output -> 12.5 Hz frames

_CODEBOOK_RE = re.compile(r"^quantizer\.(rvq_first|rvq_rest)\.vq\.layers\.(\d+)\._codebook\.")


def mimi_tensors(num_codebooks: int = PUBLISHED_CODEBOOKS) -> dict[str, TensorSpec]:
    """Name -> spec for every tensor of a Mimi file with `num_codebooks` codebooks, sorted."""
    if num_codebooks < 1:
        raise ValueError(f"num_codebooks must be at least 1, got {num_codebooks}")
    specs = list(_tensors(num_codebooks))
    return {s.name: s for s in sorted(specs, key=lambda s: s.name)}


def mimi_codebook_count(names: Iterable[str]) -> int:
    """Codebooks a Mimi file holds, from its tensor names (0 if it has no quantizer).

    Counts complete codebooks only: the first (semantic) one plus the contiguous acoustic
    ones from index 0, so a file with a hole in its codebooks counts up to the hole.
    """
    first = False
    rest: set[int] = set()
    for name in names:
        m = _CODEBOOK_RE.match(name)
        if m is None or not name.endswith(".embedding_sum"):
            continue
        if m.group(1) == "rvq_first":
            first = first or m.group(2) == "0"
        else:
            rest.add(int(m.group(2)))
    if not first:
        return 0
    count = 1
    while count - 1 in rest:
        count += 1
    return count


def mimi_parameter_count(num_codebooks: int = PUBLISHED_CODEBOOKS) -> int:
    return sum(spec.elements for spec in mimi_tensors(num_codebooks).values())


# --- the layout ------------------------------------------------------------------------------


def _f32(name: str, *shape: int) -> TensorSpec:
    return TensorSpec(name, tuple(shape), F32)


def _conv(prefix: str, out_ch: int, in_ch: int, k: int, bias: bool = True) -> Iterator[TensorSpec]:
    # StreamableConv1d -> NormConv1d -> nn.Conv1d: weight is [out, in, kernel].
    yield _f32(f"{prefix}.conv.conv.weight", out_ch, in_ch, k)
    if bias:
        yield _f32(f"{prefix}.conv.conv.bias", out_ch)


def _convtr(prefix: str, in_ch: int, out_ch: int, k: int) -> Iterator[TensorSpec]:
    # nn.ConvTranspose1d weight is [in, out / groups, kernel].
    yield _f32(f"{prefix}.convtr.convtr.weight", in_ch, out_ch, k)
    yield _f32(f"{prefix}.convtr.convtr.bias", out_ch)


def _resblock(prefix: str, dim: int) -> Iterator[TensorSpec]:
    # block = [ELU, conv(k=3, dim -> dim/2), ELU, conv(k=1, dim/2 -> dim)]; true_skip: no shortcut
    hidden = dim // _COMPRESS
    yield from _conv(f"{prefix}.block.1", hidden, dim, _RES_KSIZE)
    yield from _conv(f"{prefix}.block.3", dim, hidden, 1)


def _encoder() -> Iterator[TensorSpec]:
    ch = _FILTERS
    yield from _conv("encoder.model.0", ch, 1, _KSIZE)
    idx = 1
    for ratio in reversed(_RATIOS):
        yield from _resblock(f"encoder.model.{idx}", ch)
        yield from _conv(f"encoder.model.{idx + 2}", ch * 2, ch, 2 * ratio)  # idx + 1 is ELU
        ch *= 2
        idx += 3
    yield from _conv(f"encoder.model.{idx + 1}", _DIMENSION, ch, _LAST_KSIZE)  # idx is ELU


def _decoder() -> Iterator[TensorSpec]:
    ch = _FILTERS * 2 ** len(_RATIOS)
    yield from _conv("decoder.model.0", ch, _DIMENSION, _KSIZE)
    idx = 1
    for ratio in _RATIOS:
        yield from _convtr(f"decoder.model.{idx + 1}", ch, ch // 2, 2 * ratio)  # idx is ELU
        yield from _resblock(f"decoder.model.{idx + 2}", ch // 2)
        ch //= 2
        idx += 3
    yield from _conv(f"decoder.model.{idx + 1}", 1, ch, _LAST_KSIZE)


def _transformer(prefix: str) -> Iterator[TensorSpec]:
    d = _DIMENSION
    for i in range(_LAYERS):
        p = f"{prefix}.transformer.layers.{i}"
        yield _f32(f"{p}.self_attn.in_proj_weight", 3 * d, d)
        yield _f32(f"{p}.self_attn.out_proj.weight", d, d)
        yield _f32(f"{p}.linear1.weight", _FF, d)
        yield _f32(f"{p}.linear2.weight", d, _FF)
        for norm in ("norm1", "norm2"):
            yield _f32(f"{p}.{norm}.weight", d)
            yield _f32(f"{p}.{norm}.bias", d)
        yield _f32(f"{p}.layer_scale_1.scale", d)
        yield _f32(f"{p}.layer_scale_2.scale", d)


def _quantizer(num_codebooks: int) -> Iterator[TensorSpec]:
    for part, count in (("rvq_first", 1), ("rvq_rest", num_codebooks - 1)):
        p = f"quantizer.{part}"
        if count == 0:
            continue
        yield _f32(f"{p}.input_proj.weight", _CODE_DIM, _DIMENSION, 1)
        yield _f32(f"{p}.output_proj.weight", _DIMENSION, _CODE_DIM, 1)
        for i in range(count):
            c = f"{p}.vq.layers.{i}._codebook"
            yield _f32(f"{c}._initialized", 1)
            yield _f32(f"{c}.cluster_usage", MIMI_CODEBOOK_SIZE)
            yield _f32(f"{c}.embedding_sum", MIMI_CODEBOOK_SIZE, _CODE_DIM)


def _tensors(num_codebooks: int) -> Iterator[TensorSpec]:
    yield from _encoder()
    yield from _decoder()
    yield from _transformer("encoder_transformer")
    yield from _transformer("decoder_transformer")
    yield from _quantizer(num_codebooks)
    # 25 Hz <-> 12.5 Hz resampling: a full conv down, a depthwise (groups = dim) one up.
    yield _f32("downsample.conv.conv.conv.weight", _DIMENSION, _DIMENSION, 2 * _FRAME_STRIDE)
    yield _f32("upsample.convtr.convtr.convtr.weight", _DIMENSION, 1, 2 * _FRAME_STRIDE)
