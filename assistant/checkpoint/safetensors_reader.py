"""Read a safetensors header without touching the tensor data.

Format: an 8-byte little-endian header length, a JSON object of
`name -> {dtype, shape, data_offsets: [begin, end]}` (plus an optional `__metadata__`),
then the data. Every way a file can be cut short or garbled becomes a CheckpointError
naming the file, so nothing downstream ever sees a half-valid header.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CheckpointError
from .layout import DTYPE_BYTES

# Real headers are well under 1 MB (moshiko's is 159 KB); anything huge is garbage.
MAX_HEADER_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class SafetensorsHeader:
    path: Path
    file_size: int
    header_size: int  # JSON bytes, without the 8-byte length prefix
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def data_size(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    def dtype_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for t in self.tensors.values():
            counts[t.dtype] = counts.get(t.dtype, 0) + 1
        return dict(sorted(counts.items()))


def read_header(path: str | Path) -> SafetensorsHeader:
    """Parse and sanity-check the header of `path`; reads only the first bytes of the file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError("no such file", path=path)
    if path.is_dir():
        raise CheckpointError("is a folder, expected a .safetensors file", path=path)
    try:
        file_size = path.stat().st_size
        with path.open("rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise CheckpointError(
                    f"not a safetensors file: only {file_size} bytes, truncated or empty", path=path
                )
            (header_size,) = struct.unpack("<Q", prefix)
            if header_size == 0 or header_size > min(MAX_HEADER_BYTES, file_size - 8):
                raise CheckpointError(
                    f"not a safetensors file (header length {header_size} does not fit a "
                    f"{file_size}-byte file): corrupt or truncated",
                    path=path,
                )
            raw = f.read(header_size)
    except OSError as e:
        raise CheckpointError(f"cannot read: {e.strerror or e}", path=path) from None
    try:
        parsed = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError("corrupt safetensors header (not valid JSON)", path=path) from None
    if not isinstance(parsed, dict):
        raise CheckpointError("corrupt safetensors header (not a JSON object)", path=path)
    metadata = parsed.pop("__metadata__", None) or {}
    tensors = {name: _tensor_info(path, name, entry) for name, entry in parsed.items()}
    _check_data_extent(path, file_size, header_size, tensors)
    return SafetensorsHeader(path, file_size, header_size, tensors, dict(metadata))


def _tensor_info(path: Path, name: str, entry: object) -> TensorInfo:
    try:
        dtype = entry["dtype"]  # type: ignore[index]
        shape = tuple(int(d) for d in entry["shape"])  # type: ignore[index]
        begin, end = (int(x) for x in entry["data_offsets"])  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        raise CheckpointError(f"corrupt safetensors header entry for '{name}'", path=path) from None
    if dtype not in DTYPE_BYTES:
        raise CheckpointError(f"tensor '{name}' has unsupported dtype {dtype}", path=path)
    info = TensorInfo(dtype, shape, begin, end)
    if begin < 0 or end < begin or info.nbytes != info.numel * DTYPE_BYTES[dtype]:
        raise CheckpointError(
            f"corrupt safetensors header: '{name}' {dtype}{list(shape)} does not fit its "
            f"byte range [{begin}, {end})",
            path=path,
        )
    return info


def _check_data_extent(
    path: Path, file_size: int, header_size: int, tensors: dict[str, TensorInfo]
) -> None:
    needed = max((t.end for t in tensors.values()), default=0)
    have = file_size - 8 - header_size
    if needed > have:
        raise CheckpointError(
            f"truncated: the header describes {needed:,} bytes of tensor data but the file "
            f"holds {have:,} (an interrupted download or copy?)",
            path=path,
        )
