"""Read a safetensors header without touching the tensor data.

Format: an 8-byte little-endian header length, a JSON object of
`name -> {dtype, shape, data_offsets: [begin, end]}` (plus an optional `__metadata__`),
then the data. Every way a file can be cut short, garbled or made inconsistent becomes a
CheckpointError naming the file, so nothing downstream ever sees a half-valid header and no
library is ever handed one.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CheckpointError
from ..files import open_regular
from ..strict_json import load_strict
from .layout import DTYPE_BYTES

# Real headers are well under 1 MB (moshiko's is 159 KB for 1247 tensors; the Mimi codec's
# holds 400): past these bounds a file is garbage, and parsing it would take minutes.
MAX_HEADER_BYTES = 32 << 20
MAX_TENSORS = 100_000
MAX_NAME = 1024  # characters of a tensor name (moshiko's longest has 60)
# {name: {"shape": [...]}}: three levels; anything deeper is not a safetensors header.
HEADER_DEPTH = 3
_CORRUPT = "corrupt safetensors header"


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
    """Parse and check the header of `path`; reads only the first bytes of the file.

    Strict, as the format defines it: a regular file; a JSON object (at most three levels
    deep) starting with `{`; unique tensor names; `__metadata__` absent, null or a
    string-to-string map; each tensor a known dtype, a list of non-negative integer dimensions
    and two offsets whose span is exactly dtype size x shape; the spans, in offset order,
    contiguous from 0 and ending exactly at the end of the file.
    """
    path = Path(path)
    with open_regular(path, CheckpointError) as f:
        try:
            file_size = os.fstat(f.fileno()).st_size
            prefix = f.read(8)
            if len(prefix) < 8:
                raise CheckpointError(
                    f"not a safetensors file: only {file_size} bytes, truncated or empty", path=path
                )
            (header_size,) = struct.unpack("<Q", prefix)
            if MAX_HEADER_BYTES < header_size <= file_size - 8:
                raise CheckpointError(
                    f"{_CORRUPT} ({header_size:,} bytes; a checkpoint's is at most "
                    f"{MAX_HEADER_BYTES:,})",
                    path=path,
                )
            if header_size == 0 or header_size > file_size - 8:
                raise CheckpointError(
                    f"not a safetensors file (header length {header_size} does not fit a "
                    f"{file_size}-byte file): corrupt or truncated",
                    path=path,
                )
            raw = f.read(header_size)
        except OSError as e:
            raise CheckpointError(f"cannot read: {e.strerror or e}", path=path) from None
    if len(raw) != header_size:
        raise CheckpointError("the file shrank while its header was read", path=path)
    if not raw.startswith(b"{"):
        raise CheckpointError("corrupt safetensors header (does not start with '{')", path=path)
    declared = raw.count(b'"data_offsets"')  # counted before parsing: parsing is the slow part
    if declared > MAX_TENSORS:
        raise CheckpointError(
            f"{_CORRUPT} (declares {declared:,} tensors; a checkpoint has at most {MAX_TENSORS:,})",
            path=path,
        )
    parsed = load_strict(
        raw, max_depth=HEADER_DEPTH, error=CheckpointError, path=path, what=_CORRUPT
    )
    if not isinstance(parsed, dict):
        raise CheckpointError(f"{_CORRUPT} (not a JSON object)", path=path)
    metadata = _metadata(path, parsed.pop("__metadata__", None))
    tensors = {name: _tensor_info(path, name, entry) for name, entry in parsed.items()}
    _check_data_layout(path, file_size - 8 - header_size, tensors)
    return SafetensorsHeader(path, file_size, header_size, tensors, metadata)


def _metadata(path: Path, value: object) -> dict[str, str]:
    if value is None:  # MLX writes "__metadata__": null
        return {}
    if not isinstance(value, dict):
        raise CheckpointError(
            f"{_CORRUPT} ('__metadata__' is a {_json_type(value)}, not a string-to-string map)",
            path=path,
        )
    for key, item in value.items():
        if not isinstance(item, str):
            raise CheckpointError(
                f"{_CORRUPT} ('__metadata__' value for {key!r} is a {_json_type(item)}, "
                "not a string)",
                path=path,
            )
    return dict(value)


def _printable(text: str) -> str:
    """`text` for a message: as is when it is a short printable word, else quoted and cut."""
    return text if text.isprintable() and len(text) <= 40 else repr(text[:40])


def _json_type(value: object) -> str:
    names = {dict: "JSON object", list: "list", str: "string", bool: "boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "number")


def _is_count(value: object) -> bool:
    """A JSON non-negative integer (not a boolean, not a float)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _tensor_info(path: Path, name: str, entry: object) -> TensorInfo:
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{_CORRUPT}: entry for '{name}' {what}", path=path)

    # Names are echoed in messages: a newline or an escape sequence in one would write the
    # file's own lines onto the user's terminal (found by tests/test_fuzz.py).
    if not name.isprintable() or len(name) > MAX_NAME:
        raise CheckpointError(
            f"{_CORRUPT}: a tensor name that is not one line of printable text ({name[:40]!r})",
            path=path,
        )

    if not isinstance(entry, dict):
        raise bad(f"is a {_json_type(entry)}, not an object")
    missing = [k for k in ("dtype", "shape", "data_offsets") if k not in entry]
    if missing:
        raise bad(f"lacks {', '.join(missing)}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str):
        raise bad("has a dtype that is not a string")
    if dtype not in DTYPE_BYTES:
        raise CheckpointError(
            f"tensor '{name}' has unsupported dtype {_printable(dtype)}", path=path
        )
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise bad("has a shape that is not a list of non-negative integers")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(map(_is_count, offsets)):
        raise bad("has data_offsets that are not two non-negative integers")
    begin, end = offsets
    info = TensorInfo(dtype, tuple(shape), begin, end)
    if end < begin or info.nbytes != info.numel * DTYPE_BYTES[dtype]:
        raise CheckpointError(
            f"{_CORRUPT}: '{name}' {dtype}{list(shape)} does not fit its "
            f"byte range [{begin}, {end})",
            path=path,
        )
    return info


def _check_data_layout(path: Path, have: int, tensors: dict[str, TensorInfo]) -> None:
    """Spans in offset order must tile [0, have) exactly: no overlap, no gap, no tail."""
    needed = max((t.end for t in tensors.values()), default=0)
    if needed > have:
        raise CheckpointError(
            f"truncated: the header describes {needed:,} bytes of tensor data but the file "
            f"holds {have:,} (an interrupted download or copy?)",
            path=path,
        )
    at, previous = 0, None
    for name, t in sorted(tensors.items(), key=lambda item: (item[1].begin, item[1].end)):
        if t.begin != at:
            how = "overlaps" if t.begin < at else f"leaves a gap of {t.begin - at:,} bytes after"
            after = f"'{previous}'" if previous is not None else "the start of the data"
            raise CheckpointError(
                f"{_CORRUPT}: the data of '{name}' {how} {after} (offsets must be contiguous)",
                path=path,
            )
        at, previous = t.end, name
    if at != have:
        raise CheckpointError(
            f"{_CORRUPT}: {have - at:,} bytes after the last tensor's data that no tensor "
            "describes",
            path=path,
        )
