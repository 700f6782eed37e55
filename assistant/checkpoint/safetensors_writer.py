"""A streaming safetensors writer: header first, then tensors one at a time.

Full-size checkpoints are 5-15 GB, so nothing here holds more than one chunk of one tensor.
The header layout comes in three styles, all readable by MLX, safetensors and candle:

- ``"mlx"``: byte for byte what ``mx.save_safetensors`` writes: ``"__metadata__":null``
  first, tensor names sorted, fields sorted (``data_offsets``, ``dtype``, ``shape``), compact
  separators, no padding.
- ``"safetensors"``: what the ``safetensors`` library (and so PyTorch's ``save_file``) writes:
  no ``__metadata__``, names in data order, fields ``dtype``, ``shape``, ``data_offsets``,
  header padded with spaces to a multiple of 8 bytes. The published Mimi file has this layout.
- ``"published"``: the MLX field layout without ``__metadata__`` and padded to 8 bytes. With
  data in name order this is the only layout we found whose size equals both published Moshi
  MLX files (4,805,545,040 bytes for q4, 8,168,804,664 for q8); the ``"mlx"`` style is 15 and
  16 bytes longer respectively.

The data order is the order of the specs given; the checkpoints use name order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from .layout import TensorSpec

HeaderStyle = Literal["published", "mlx", "safetensors"]
HEADER_STYLES: tuple[str, ...] = ("published", "mlx", "safetensors")

# What a tensor source may return: one array, or an iterable of arrays (chunks, in order).
TensorData = np.ndarray | Iterable[np.ndarray]
TensorSource = Callable[[TensorSpec], TensorData]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SafetensorsPlan:
    """Everything about a file except its tensor bytes: enough to know its exact size."""

    header: bytes  # the 8-byte little-endian length followed by the JSON header
    specs: tuple[TensorSpec, ...]  # in data order
    data_bytes: int

    @property
    def total_bytes(self) -> int:
        return len(self.header) + self.data_bytes


@dataclass(frozen=True)
class WriteResult:
    path: Path
    bytes_written: int
    tensors: int


def plan_safetensors(
    specs: Sequence[TensorSpec], style: HeaderStyle = "published"
) -> SafetensorsPlan:
    """Header bytes and data size for `specs` written in the given order and style."""
    if style not in HEADER_STYLES:
        raise ValueError(f"unknown header style {style!r}; expected one of {HEADER_STYLES}")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError("duplicate tensor names")
    entries: dict[str, dict[str, object]] = {}
    offset = 0
    for spec in specs:
        end = offset + spec.nbytes
        shape = list(spec.shape)
        if style == "safetensors":
            entries[spec.name] = {
                "dtype": spec.dtype,
                "shape": shape,
                "data_offsets": [offset, end],
            }
        else:
            entries[spec.name] = {
                "data_offsets": [offset, end],
                "dtype": spec.dtype,
                "shape": shape,
            }
        offset = end
    if style == "safetensors":
        ordered = entries  # data order
    else:
        # nlohmann::json (inside MLX) keeps object keys in std::map order: bytewise sorted.
        ordered = {k: entries[k] for k in sorted(entries, key=lambda k: k.encode())}
    header_obj: dict[str, object] = {"__metadata__": None} if style == "mlx" else {}
    header_obj.update(ordered)
    text = json.dumps(header_obj, separators=(",", ":"), ensure_ascii=False).encode()
    if style != "mlx":
        text += b" " * (-len(text) % 8)
    header = len(text).to_bytes(8, "little") + text
    return SafetensorsPlan(header=header, specs=tuple(specs), data_bytes=offset)


def planned_size(specs: Sequence[TensorSpec], style: HeaderStyle = "published") -> int:
    """Exact size in bytes of the file `write_safetensors` would write, without writing it."""
    return plan_safetensors(specs, style).total_bytes


def write_safetensors(
    path: str | Path,
    specs: Sequence[TensorSpec],
    source: TensorSource,
    *,
    style: HeaderStyle = "published",
    progress: Progress | None = None,
) -> WriteResult:
    """Write `specs` to `path`, asking `source` for each tensor's data in turn.

    `source(spec)` returns a numpy array of exactly `spec.nbytes` bytes, or an iterable of
    arrays (chunks) totalling that; each chunk is written and dropped before the next.
    """
    plan = plan_safetensors(specs, style)
    path = Path(path)
    total = plan.total_bytes
    written = 0
    with path.open("wb") as f:
        f.write(plan.header)
        written += len(plan.header)
        if progress is not None:
            progress(written, total)
        for spec in plan.specs:
            data = source(spec)
            chunks = (data,) if isinstance(data, np.ndarray) else data
            got = 0
            for chunk in chunks:
                buf = memoryview(np.ascontiguousarray(chunk).data).cast("B")
                f.write(buf)
                got += buf.nbytes
                written += buf.nbytes
                if progress is not None:
                    progress(written, total)
            if got != spec.nbytes:
                raise ValueError(f"{spec.name}: source gave {got} bytes, expected {spec.nbytes}")
    return WriteResult(path=path, bytes_written=written, tensors=len(plan.specs))
