"""Every way a safetensors file can be broken gets a CheckpointError naming the file."""

from __future__ import annotations

import json
import os
import struct
import threading
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
    _expect(_with_header(tmp_path, [1, 2, 3]), "does not start with '{'")


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


# --- strictness: what the format requires, beyond what a parser happens to accept -----------


def _finishes(fn, timeout: float = 10.0) -> BaseException | None:
    """Run `fn` in a thread; fail (instead of hanging the suite) if it blocks."""
    box: list[BaseException | None] = []

    def run() -> None:
        try:
            fn()
            box.append(None)
        except BaseException as e:  # handed back to the test
            box.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert box, f"still blocked after {timeout} s"
    return box[0]


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    os.mkfifo(path)
    error = _finishes(lambda: read_header(path))
    assert isinstance(error, CheckpointError)
    assert str(error) == f"{path}: is a named pipe (FIFO), not a regular file"


def test_link_to_a_device_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.symlink_to("/dev/zero")
    error = _finishes(lambda: read_header(path))
    assert isinstance(error, CheckpointError) and "a character device" in str(error)


def test_broken_link(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.symlink_to(tmp_path / "gone")
    _expect(path, "broken link")


def test_link_to_a_regular_file_is_fine(good: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.safetensors"
    link.symlink_to(good)  # how the Hugging Face cache stores files
    assert read_header(link).tensors.keys() == {"a", "b"}


def _entry(dtype: str, shape: list, begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def _raw_header(tmp_path: Path, raw: bytes, data: bytes = b"") -> Path:
    path = tmp_path / "crafted.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "does not start with '{'"),
        (b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested 100001 levels deep"),
        (b'{"a": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 4]}}', "NaN"),
        (b'{"a": {"dtype": "F32", "shape": [1e999], "data_offsets": [0, 4]}}', "out of range"),
        (
            b'{"a": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 4]}}',
            "digits",
        ),
        (
            b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {}}',
            "key 'a' appears twice",
        ),
        (b'{"\xff": 1}', "not UTF-8"),
    ],
    ids=["deep list", "deep object", "NaN", "1e999", "huge integer", "duplicate name", "utf8"],
)
def test_header_json_is_parsed_strictly(tmp_path: Path, raw: bytes, fragment: str) -> None:
    _expect(_raw_header(tmp_path, raw, b"\0" * 4), fragment)


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        (3, "'__metadata__' is a number"),
        ("format", "'__metadata__' is a string"),
        ([1], "'__metadata__' is a list"),
        ({"format": 1}, "value for 'format' is a number"),
        ({"nested": {"a": "b"}}, "value for 'nested' is a JSON object"),
    ],
)
def test_metadata_must_map_strings_to_strings(tmp_path: Path, metadata, fragment: str) -> None:
    header = {"__metadata__": metadata, "w": _entry("F32", [1], 0, 4)}
    _expect(_with_header(tmp_path, header, b"\0" * 4), fragment)


def test_null_metadata_as_mlx_writes_it(tmp_path: Path) -> None:
    header = {"__metadata__": None, "w": _entry("F32", [1], 0, 4)}
    assert read_header(_with_header(tmp_path, header, b"\0" * 4)).metadata == {}


@pytest.mark.parametrize(
    ("entries", "size", "fragment"),
    [
        ({"a": _entry("F32", [2], 0, 8), "b": _entry("F32", [2], 4, 12)}, 12, "overlaps 'a'"),
        ({"a": _entry("F32", [2], 0, 8), "b": _entry("F32", [2], 12, 20)}, 20, "gap of 4 bytes"),
        ({"a": _entry("F32", [2], 4, 12)}, 12, "gap of 4 bytes after the start"),
        ({"a": _entry("F32", [2], 0, 8)}, 12, "4 bytes after the last tensor"),
        ({"a": _entry("F32", [2.0], 0, 8)}, 8, "shape that is not a list"),
        ({"a": _entry("F32", [True, 2], 0, 8)}, 8, "shape that is not a list"),
        ({"a": _entry("F32", [-2], 0, 8)}, 8, "shape that is not a list"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": ["0", "8"]}}, 8, "data_offsets"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4, 8]}}, 8, "data_offsets"),
        ({"a": {"dtype": 7, "shape": [2], "data_offsets": [0, 8]}}, 8, "dtype that is not"),
        ({"a": [1, 2]}, 8, "is a list, not an object"),
    ],
    ids=[
        "overlap",
        "gap",
        "not from zero",
        "trailing bytes",
        "float dim",
        "bool dim",
        "negative dim",
        "string offsets",
        "three offsets",
        "dtype number",
        "entry list",
    ],
)
def test_data_layout_is_exact(tmp_path: Path, entries: dict, size: int, fragment: str) -> None:
    _expect(_with_header(tmp_path, entries, b"\0" * size), fragment)


def test_zero_sized_tensors_and_any_header_order_are_fine(tmp_path: Path) -> None:
    entries = {
        "z": _entry("F32", [2], 8, 16),
        "empty": _entry("F32", [0], 8, 8),
        "a": _entry("F32", [2], 0, 8),
    }
    h = read_header(_with_header(tmp_path, entries, b"\0" * 16))
    assert set(h.tensors) == {"z", "empty", "a"}


def test_headers_too_large_for_any_checkpoint(tmp_path: Path, monkeypatch) -> None:
    from assistant.checkpoint import safetensors_reader

    many = {f"t{i}": _entry("F32", [0], 0, 0) for i in range(50)}
    monkeypatch.setattr(safetensors_reader, "MAX_TENSORS", 40)
    _expect(_with_header(tmp_path, many), "declares 50 tensors; a checkpoint has at most 40")
    monkeypatch.setattr(safetensors_reader, "MAX_HEADER_BYTES", 100)
    _expect(_with_header(tmp_path, many), "a checkpoint's is at most 100)")
