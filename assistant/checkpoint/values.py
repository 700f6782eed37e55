"""Weights that can only produce garbage: NaN or infinity anywhere, or nothing but zeros.

A header can be perfect while the data is not: a NaN norm makes the model repeat one token, a
NaN in the Mimi codec makes it decode silence, and a file whose data is all zeros (space
allocated, never written: an unfinished copy) says nothing at all. Found here, at load time,
from the file itself, streamed a chunk at a time (memory stays at one chunk whatever the file
size). A float is non-finite exactly when its exponent bits are all ones, which covers
bfloat16 (numpy has no such type) the same way as float16 and float32. Integer tensors (packed
quantized weights) hold no floats and are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import CheckpointError
from ..files import open_regular
from .safetensors_reader import SafetensorsHeader

CHUNK_BYTES = 16 << 20

# numpy's own types check fastest (np.isfinite is about twice the speed of masking bits);
# bfloat16, which numpy lacks, by the largest of its masked exponent bits (all ones: NaN or
# infinity), about 3x faster than comparing each.
_NUMPY_FLOATS = {"F16": np.float16, "F32": np.float32, "F64": np.float64}
_BF16_EXPONENT = np.uint16(0x7F80)
_FLOAT_DTYPES = (*_NUMPY_FLOATS, "BF16")


@dataclass(frozen=True)
class ValueScan:
    non_finite: list[str]  # float tensors holding NaN or infinity, in data order
    all_zero: bool  # every float value of the file is zero (and there is at least one)


def _all_finite(data: memoryview, dtype: str) -> bool:
    if dtype == "BF16":
        bits = np.frombuffer(data, dtype=np.uint16)
        return bool((bits & _BF16_EXPONENT).max() != _BF16_EXPONENT)
    return bool(np.isfinite(np.frombuffer(data, dtype=_NUMPY_FLOATS[dtype])).all())


def scan_values(header: SafetensorsHeader, error: type[CheckpointError]) -> ValueScan:
    """One pass over the file's float data (only until a non-zero value is seen, for zeros)."""
    path = header.path
    data_start = 8 + header.header_size
    chunk = bytearray(CHUNK_BYTES)
    bad: list[str] = []
    nonzero, floats = False, False
    with open_regular(path, error) as f:
        for name, t in sorted(header.tensors.items(), key=lambda item: item[1].begin):
            if t.dtype not in _FLOAT_DTYPES or t.nbytes == 0:
                continue
            floats = True
            try:
                f.seek(data_start + t.begin)
                left = t.nbytes
                while left:
                    view = memoryview(chunk)[: min(left, CHUNK_BYTES)]
                    got = f.readinto(view)
                    if got != len(view):  # regular files read short only at their end
                        raise error("the file ended inside its tensor data", path=path)
                    if not nonzero:  # a real file answers this in its first chunk
                        nonzero = _has_nonzero_value(view, t.dtype)
                    if not _all_finite(view, t.dtype):
                        bad.append(name)
                        break
                    left -= got
            except OSError as e:
                raise error(f"cannot read: {e.strerror or e}", path=path) from None
    return ValueScan(bad, floats and not nonzero)


# dtype -> (unsigned integer of its width, every bit but the sign)
_MAGNITUDE: dict[str, tuple[type[np.unsignedinteger], int]] = {
    "BF16": (np.uint16, 0x7FFF),
    "F16": (np.uint16, 0x7FFF),
    "F32": (np.uint32, 0x7FFF_FFFF),
    "F64": (np.uint64, 0x7FFF_FFFF_FFFF_FFFF),
}


def _has_nonzero_value(data: memoryview, dtype: str) -> bool:
    """Any value but +0 and -0: a set bit besides the sign bit."""
    uint, magnitude = _MAGNITUDE[dtype]
    return bool(np.any(np.frombuffer(data, dtype=uint) & uint(magnitude)))


def require_sane_values(header: SafetensorsHeader, error: type[CheckpointError]) -> None:
    """Raise `error` naming the file: its first tensor holding NaN or infinity, or that its
    data is nothing but zeros."""
    scan = scan_values(header, error)
    if scan.non_finite:
        raise error(non_finite_message(scan.non_finite), path=header.path)
    if scan.all_zero:
        raise error(ALL_ZERO_MESSAGE, path=header.path)


ALL_ZERO_MESSAGE = (
    "every weight is zero: the data was never written (an unfinished download or copy?)"
)


def non_finite_message(bad: list[str]) -> str:
    more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
    return f"tensor '{bad[0]}' holds NaN or infinite values{more}: the weights are damaged"


def scan_cost_bytes(header: SafetensorsHeader) -> int:
    """Bytes `scan_values` reads: the float tensors' data."""
    return sum(t.nbytes for t in header.tensors.values() if t.dtype in _FLOAT_DTYPES)
