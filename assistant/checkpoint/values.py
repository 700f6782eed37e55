"""Weights that can only produce garbage: NaN or infinity anywhere in a tensor.

A header can be perfect while the data is not: a NaN norm makes the model repeat one token,
a NaN in the Mimi codec makes it decode silence. Found here, at load time, from the file
itself, streamed a chunk at a time (memory stays at one chunk whatever the file size). A float
is non-finite exactly when its exponent bits are all ones, which covers bfloat16 (numpy has
no such type) the same way as float16 and float32. Integer tensors (packed quantized weights)
hold no floats and are skipped.
"""

from __future__ import annotations

import numpy as np

from ..errors import CheckpointError
from ..files import open_regular
from .safetensors_reader import SafetensorsHeader

CHUNK_BYTES = 16 << 20

# numpy's own types check fastest (np.isfinite is about twice the speed of masking bits);
# bfloat16, which numpy lacks, by its exponent bits.
_NUMPY_FLOATS = {"F16": np.float16, "F32": np.float32, "F64": np.float64}
_BF16_EXPONENT = np.uint16(0x7F80)
_FLOAT_DTYPES = (*_NUMPY_FLOATS, "BF16")


def _all_finite(data: memoryview, dtype: str) -> bool:
    if dtype == "BF16":
        bits = np.frombuffer(data, dtype=np.uint16)
        return not np.any((bits & _BF16_EXPONENT) == _BF16_EXPONENT)
    return bool(np.isfinite(np.frombuffer(data, dtype=_NUMPY_FLOATS[dtype])).all())


def non_finite_tensors(header: SafetensorsHeader, error: type[CheckpointError]) -> list[str]:
    """Names of the float tensors holding any NaN or infinity, in data order."""
    path = header.path
    data_start = 8 + header.header_size
    chunk = bytearray(CHUNK_BYTES)
    bad: list[str] = []
    with open_regular(path, error) as f:
        for name, t in sorted(header.tensors.items(), key=lambda item: item[1].begin):
            if t.dtype not in _FLOAT_DTYPES or t.nbytes == 0:
                continue
            try:
                f.seek(data_start + t.begin)
                left = t.nbytes
                while left:
                    view = memoryview(chunk)[: min(left, CHUNK_BYTES)]
                    got = f.readinto(view)
                    if got != len(view):  # regular files read short only at their end
                        raise error("the file ended inside its tensor data", path=path)
                    if not _all_finite(view, t.dtype):
                        bad.append(name)
                        break
                    left -= got
            except OSError as e:
                raise error(f"cannot read: {e.strerror or e}", path=path) from None
    return bad


def require_finite(header: SafetensorsHeader, error: type[CheckpointError]) -> None:
    """Raise `error` naming the file and its first tensor holding NaN or infinity."""
    bad = non_finite_tensors(header, error)
    if bad:
        raise error(non_finite_message(bad), path=header.path)


def non_finite_message(bad: list[str]) -> str:
    more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
    return f"tensor '{bad[0]}' holds NaN or infinite values{more}: the weights are damaged"


def scan_cost_bytes(header: SafetensorsHeader) -> int:
    """Bytes `non_finite_tensors` reads: the float tensors' data."""
    return sum(t.nbytes for t in header.tensors.values() if t.dtype in _FLOAT_DTYPES)
