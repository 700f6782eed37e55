"""Every way a safetensors file can be broken gets a CheckpointError naming the file."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import mlx.core as mx
import pytest

from assistant.checkpoint.safetensors_reader import read_header
from assistant.errors import CheckpointError


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.safetensors"
    mx.save_safetensors(
        str(path), {"a": mx.zeros((4, 8), dtype=mx.bfloat16), "b": mx.zeros((3,), mx.uint32)}
    )
    return path


def test_reads_shapes_dtypes_and_offsets(good: Path) -> None:
    h = read_header(good)
    assert h.tensors["a"].dtype == "BF16" and h.tensors["a"].shape == (4, 8)
    assert h.tensors["b"].dtype == "U32" and h.tensors["b"].nbytes == 12
    assert h.data_size == 4 * 8 * 2 + 12
    assert h.file_size == good.stat().st_size
    assert h.dtype_counts() == {"BF16": 1, "U32": 1}


def _expect(path: Path, fragment: str) -> None:
    with pytest.raises(CheckpointError) as info:
        read_header(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert fragment in message
    assert "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    _expect(tmp_path / "nope.safetensors", "no such file")


def test_folder_instead_of_file(tmp_path: Path) -> None:
    _expect(tmp_path, "is a folder")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    _expect(path, "truncated or empty")


def test_truncated_data(good: Path) -> None:
    data = good.read_bytes()
    good.write_bytes(data[:-5])
    _expect(good, "truncated")


def test_truncated_header(good: Path) -> None:
    data = good.read_bytes()
    good.write_bytes(data[:20])
    _expect(good, "corrupt or truncated")


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "noise.safetensors"
    path.write_bytes(bytes(range(256)) * 64)
    _expect(path, "not a safetensors file")


def _with_header(tmp_path: Path, header: object, data: bytes = b"") -> Path:
    raw = json.dumps(header).encode()
    path = tmp_path / "crafted.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def test_header_not_json(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", 5) + b"{nope" + b"\0" * 10)
    _expect(path, "not valid JSON")


def test_header_not_an_object(tmp_path: Path) -> None:
    _expect(_with_header(tmp_path, [1, 2, 3]), "not a JSON object")


def test_entry_missing_fields(tmp_path: Path) -> None:
    _expect(_with_header(tmp_path, {"w": {"dtype": "BF16"}}), "entry for 'w'")


def test_offsets_disagree_with_shape(tmp_path: Path) -> None:
    header = {"w": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 6]}}
    _expect(_with_header(tmp_path, header, b"\0" * 8), "does not fit its byte range")


def test_unknown_dtype(tmp_path: Path) -> None:
    header = {"w": {"dtype": "Q4_K", "shape": [4], "data_offsets": [0, 4]}}
    _expect(_with_header(tmp_path, header, b"\0" * 4), "unsupported dtype")


def test_metadata_is_kept_apart(tmp_path: Path) -> None:
    header = {
        "__metadata__": {"format": "mlx"},
        "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
    }
    h = read_header(_with_header(tmp_path, header, b"\0" * 4))
    assert list(h.tensors) == ["w"] and h.metadata == {"format": "mlx"}
