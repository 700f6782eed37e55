"""What a checkpoint is, from its headers alone: quantization, size, architecture, mismatches.

Bits and group size come from tensor shapes, never from a file name or a flag: a quantized
layer with input width D stores `weight` as [out, D*bits/32] uint32 and `scales` as
[out, D/group]. D is read from the RMSNorm in front of the layer (never quantized), which
removes the ambiguity of the width ratio alone (q4/g128 and q8/g64 both give 16).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, UnsupportedQuantizationError
from .config import MOSHIKO_V0_1, MoshiConfig
from .layout import Quantization, TensorSpec, expected_tensors, quantization_fits
from .safetensors_reader import SafetensorsHeader, read_header

SUPPORTED_BITS = (2, 3, 4, 5, 6, 8)  # what mx.quantize accepts in MLX 0.26
SUPPORTED_GROUPS = (32, 64, 128)

_PROBE = "transformer.layers.0.self_attn.in_proj"
_PROBE_NORM = "transformer.layers.0.norm1.weight"
_FLOAT_DTYPES = ("BF16", "F16", "F32")
# A file of another architecture differs in thousands of tensors: list enough to act on.
MAX_PROBLEMS_LISTED = 1000


@dataclass
class ModelInfo:
    """Everything `assistant info` shows about an LM file, read from its header."""

    path: Path
    file_size: int
    tensor_count: int
    dtype_counts: dict[str, int]
    quantization: Quantization | None
    parameter_count: int
    bits_per_weight: float  # whole file: data bits / weights, scales and norms included
    config: MoshiConfig
    config_source: str
    found: dict[str, int]  # architecture dimensions counted from the tensors
    problems: list[str] = field(default_factory=list)

    @property
    def quant_label(self) -> str:
        return self.quantization.label if self.quantization else "bf16"

    def to_dict(self) -> dict[str, Any]:
        q = self.quantization
        return {
            "path": str(self.path),
            "file_size": self.file_size,
            "tensor_count": self.tensor_count,
            "dtypes": self.dtype_counts,
            "quantization": self.quant_label,
            "bits": q.bits if q else 16,
            "group_size": q.group_size if q else None,
            "parameters": self.parameter_count,
            "bits_per_weight": round(self.bits_per_weight, 4),
            "config_source": self.config_source,
            "architecture": self.config.to_dict(),
            "found_in_tensors": self.found,
            "valid": not self.problems,
            "problems": self.problems,
        }


def detect_quantization(header: SafetensorsHeader) -> Quantization | None:
    """Bits and group size from the first attention projection's shapes; None for bf16."""
    t = header.tensors
    weight, norm = t.get(f"{_PROBE}.weight"), t.get(_PROBE_NORM)
    if weight is None or norm is None:
        if any(n.startswith(("encoder.", "decoder.", "quantizer.")) for n in t):
            raise CheckpointError(
                "this is a Mimi codec file, not a Moshi model file", path=header.path
            )
        raise CheckpointError(
            f"not a Moshi model file: no '{_PROBE}.weight' / '{_PROBE_NORM}' tensors",
            path=header.path,
        )
    if len(norm.shape) != 1 or norm.shape[0] == 0:
        raise CheckpointError(
            f"'{_PROBE_NORM}' has shape {list(norm.shape)}; a norm weight is one non-empty row",
            path=header.path,
        )
    width = norm.shape[0]
    if weight.dtype in _FLOAT_DTYPES:
        return None
    scales = t.get(f"{_PROBE}.scales")
    if weight.dtype != "U32" or scales is None or len(weight.shape) != 2 or len(scales.shape) != 2:
        raise UnsupportedQuantizationError(
            f"'{_PROBE}.weight' is {weight.dtype}{list(weight.shape)}: neither a float nor an "
            "MLX-quantized (uint32 + scales) weight",
            path=header.path,
        )
    packed, groups = weight.shape[1], scales.shape[1]
    if (packed * 32) % width or groups == 0 or width % groups:
        raise UnsupportedQuantizationError(
            f"quantized shapes {list(weight.shape)} / scales {list(scales.shape)} do not fit "
            f"the model width {width}",
            path=header.path,
        )
    bits, group = packed * 32 // width, width // groups
    if bits not in SUPPORTED_BITS:
        raise UnsupportedQuantizationError(
            f"tensors are {bits}-bit; MLX supports {', '.join(map(str, SUPPORTED_BITS))} bits",
            path=header.path,
        )
    if group not in SUPPORTED_GROUPS:
        raise UnsupportedQuantizationError(
            f"group size {group} is not one MLX supports ({', '.join(map(str, SUPPORTED_GROUPS))})",
            path=header.path,
        )
    return Quantization(bits, group)


def dimensions_in_tensors(header: SafetensorsHeader) -> dict[str, int]:
    """Architecture sizes counted from tensor names and read from unquantized shapes."""
    t = header.tensors

    def count(pattern: str) -> int:
        rx = re.compile(pattern)
        return len({m.group(1) for n in t if (m := rx.match(n))})

    found = {
        "num_layers": count(r"transformer\.layers\.(\d+)\."),
        "n_q": count(r"audio_embs\.(\d+)\."),
        "dep_q": count(r"depformer\.slices\.(\d+)\."),
        "depformer_num_layers": count(r"depformer\.slices\.0\.transformer\.layers\.(\d+)\."),
    }
    sizes = (
        ("dim", "out_norm.weight"),
        ("depformer_dim", "depformer.slices.0.transformer.layers.0.norm1.weight"),
        ("text_card", "text_linear.weight"),
        ("card", "depformer.slices.0.linear_out.weight"),
    )
    for key, name in sizes:
        tensor = t.get(name)
        if tensor is not None and tensor.shape:  # a scalar is reported as a shape mismatch
            found[key] = tensor.shape[0]
    return found


def compare(
    config: MoshiConfig,
    quant: Quantization | None,
    header: SafetensorsHeader,
    limit: int | None = MAX_PROBLEMS_LISTED,
) -> list[str]:
    """Every way the file differs from what `config` + `quant` require, summary first; past
    `limit` entries the rest are counted in one last line."""
    problems = []
    for key, value in dimensions_in_tensors(header).items():
        expected = getattr(config, key)
        if value != expected:
            problems.append(f"{key}: config says {expected}, tensors have {value}")
    if quant is not None:
        problems.extend(quantization_fits(config, quant))
    # Wrong shapes and dtypes first: they say the most about what the file really is.
    problems += tensor_differences(expected_tensors(config, quant), header, mismatches_first=True)
    return bounded(problems, limit)


def tensor_differences(
    expected: Mapping[str, TensorSpec], header: SafetensorsHeader, *, mismatches_first: bool = False
) -> list[str]:
    """Tensors missing from the header, not expected in it, or of another dtype or shape."""
    actual = header.tensors
    absent = [f"missing tensor {n}" for n in sorted(set(expected) - set(actual))]
    extra = [f"unexpected tensor {n}" for n in sorted(set(actual) - set(expected))]
    mismatched = [
        f"{n}: expected {e.dtype}{list(e.shape)}, found {a.dtype}{list(a.shape)}"
        for n in sorted(set(expected) & set(actual))
        if (e := expected[n]).shape != (a := actual[n]).shape or e.dtype != a.dtype
    ]
    return mismatched + absent + extra if mismatches_first else absent + extra + mismatched


def bounded(problems: list[str], limit: int | None) -> list[str]:
    """At most `limit` problems, the last line counting those left out."""
    if limit is None or len(problems) <= limit:
        return problems
    return [*problems[: limit - 1], f"... and {len(problems) - limit + 1:,} more not listed"]


def bits_claimed_by_name(path: Path) -> int | None:
    """The bit width a file name promises (`model.q4.safetensors` -> 4), if any."""
    m = re.search(r"(?:^|[._-])q(\d+)(?:[._-]|$)", path.name.removesuffix(".safetensors"))
    if m:
        return int(m.group(1))
    return 16 if re.search(r"(?:^|[._-])bf16(?:[._-]|$)", path.name) else None


def inspect_model(path: str | Path, config_path: str | Path | None = None) -> ModelInfo:
    """Read the header of an LM file and check it against its config; never loads tensors.

    The config comes from `config_path` (a moshi-format config.json) when given, else the
    built-in moshiko v0.1 preset. Fatal format errors raise; mismatches land in `problems`.
    """
    return inspect_header(read_header(path), config_path)


def inspect_header(header: SafetensorsHeader, config_path: str | Path | None = None) -> ModelInfo:
    """`inspect_model` for a header already read (locally, or remotely from the hub)."""
    quant = detect_quantization(header)
    if config_path is not None:
        config, source = MoshiConfig.from_file(config_path), str(config_path)
    else:
        config, source = MOSHIKO_V0_1, "built-in moshiko v0.1 preset (no config.json)"
    problems = []
    claimed = bits_claimed_by_name(header.path)
    actual_bits = quant.bits if quant else 16
    if claimed is not None and claimed != actual_bits:
        problems.append(
            f"file name says {claimed}-bit but the tensors are "
            f"{quant.label + f' (group {quant.group_size})' if quant else 'bf16'}"
        )
    problems.extend(compare(config, quant, header))
    params = _parameter_count(header, quant)
    return ModelInfo(
        path=header.path,
        file_size=header.file_size,
        tensor_count=len(header.tensors),
        dtype_counts=header.dtype_counts(),
        quantization=quant,
        parameter_count=params,
        bits_per_weight=header.data_size * 8 / params if params else 0.0,
        config=config,
        config_source=source,
        found=dimensions_in_tensors(header),
        problems=problems,
    )


def _parameter_count(header: SafetensorsHeader, quant: Quantization | None) -> int:
    """Weights the file represents: packed uint32 words count as 32/bits weights each."""
    total = 0
    for name, t in header.tensors.items():
        if name.endswith((".scales", ".biases")):
            continue
        if t.dtype == "U32" and quant is not None:
            total += t.numel * 32 // quant.bits
        else:
            total += t.numel
    return total
