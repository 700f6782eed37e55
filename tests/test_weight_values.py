"""Weights that can only produce garbage (NaN, infinity) are refused at load time, naming the
file and the first bad tensor: the model's from its evaluated weights, the codec's from its file
(read a chunk at a time)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

from assistant.checkpoint import values
from assistant.checkpoint.layout import Q4
from assistant.checkpoint.resolve import CheckpointSpec, resolve
from assistant.checkpoint.safetensors_reader import read_header
from assistant.checkpoint.values import ValueScan, require_sane_values, scan_values
from assistant.errors import CheckpointError, CodecError, CodecFileError
from assistant.voice import loader
from tests.support.helpers import tiny_folder

BF16_BITS = {"nan": 0x7FC0, "inf": 0x7F80, "-inf": 0xFF80, "one": 0x3F80, "max": 0x7F7F}


def _file(tmp_path: Path, tensors: dict[str, tuple[str, bytes]]) -> Path:
    header, offset, data = {}, 0, b""
    for name, (dtype, raw) in tensors.items():
        size = {"BF16": 2, "F16": 2, "F32": 4, "F64": 8, "U32": 4}[dtype]
        header[name] = {
            "dtype": dtype,
            "shape": [len(raw) // size],
            "data_offsets": [offset, offset + len(raw)],
        }
        offset += len(raw)
        data += raw
    text = json.dumps(header).encode()
    path = tmp_path / "values.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def _bf16(*names: str) -> bytes:
    return np.array([BF16_BITS[n] for n in names], np.uint16).tobytes()


def test_finds_nan_and_infinity_in_every_float_dtype(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        {
            "good_bf16": ("BF16", _bf16("one", "max", "one")),  # the largest finite bf16 is fine
            "bad_bf16": ("BF16", _bf16("one", "-inf")),
            "good_f16": ("F16", np.array([65504, -1], np.float16).tobytes()),
            "bad_f16": ("F16", np.array([1, np.inf], np.float16).tobytes()),
            "bad_f32": ("F32", np.array([1, np.nan], np.float32).tobytes()),
            "good_f64": ("F64", np.array([1e300], np.float64).tobytes()),
            "bad_f64": ("F64", np.array([-np.inf], np.float64).tobytes()),
            # Packed quantized weights are integers: any bit pattern is a valid one.
            "packed": ("U32", np.array([0xFFFFFFFF, 0x7FC00000], np.uint32).tobytes()),
        },
    )
    header = read_header(path)
    assert scan_values(header, CheckpointError).non_finite == [
        "bad_bf16",
        "bad_f16",
        "bad_f32",
        "bad_f64",
    ]
    with pytest.raises(CodecError) as e:
        require_sane_values(header, CodecFileError)
    assert str(e.value) == (
        f"{path}: tensor 'bad_bf16' holds NaN or infinite values (and 3 more tensors): the "
        "weights are damaged"
    )


def test_a_nan_past_the_first_chunk_is_found(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(values, "CHUNK_BYTES", 64)  # many chunks per tensor
    data = np.ones(1000, np.float32)
    data[997] = np.nan
    path = _file(tmp_path, {"w": ("F32", data.tobytes())})
    assert scan_values(read_header(path), CheckpointError).non_finite == ["w"]


def _break_weights(folder: Path, name: str, value: float) -> None:
    """Rewrite the folder's model with one tensor set to `value` everywhere (MLX writes it)."""
    path = next(folder.glob("model*.safetensors"))
    weights = dict(tree_flatten(dict(mx.load(str(path)))))
    weights[name] = mx.full(weights[name].shape, value, dtype=weights[name].dtype)
    mx.eval(weights)  # loaded lazily from the very file about to be rewritten
    mx.save_safetensors(str(path), weights)


@pytest.mark.parametrize(
    ("quant", "name", "value"),
    [
        (None, "transformer.layers.1.gating.linear_out.weight", float("nan")),
        (None, "out_norm.weight", float("inf")),
        (Q4, "transformer.layers.0.norm2.weight", float("nan")),
        (Q4, "text_linear.scales", float("-inf")),
    ],
    ids=["bf16 weight nan", "bf16 norm inf", "q4 norm nan", "q4 scales -inf"],
)
def test_the_loader_refuses_non_finite_weights(tmp_path: Path, quant, name: str, value) -> None:
    folder = tiny_folder(
        tmp_path, quant, "model.safetensors" if quant is None else "model.q4.safetensors"
    )
    _break_weights(folder, name, value)
    files = resolve(CheckpointSpec(target=str(folder)))
    with pytest.raises(CheckpointError) as e:
        loader.load(files)
    assert str(e.value) == (
        f"{files.model}: tensor '{name}' holds NaN or infinite values: the weights are damaged"
    )


def test_good_weights_load_and_the_checks_are_timed(tmp_path: Path) -> None:
    loaded = loader.load(resolve(CheckpointSpec(target=str(tiny_folder(tmp_path)))))
    assert loaded.model_values_seconds > 0
    assert loader.check_parameters(loaded.model) == ValueScan([], all_zero=False)


def test_a_file_of_zeros_is_refused(tmp_path: Path) -> None:
    """Space allocated but never written (a sparse file, an unfinished copy): nothing but zeros,
    negative zeros included; packed integer weights don't count."""
    path = _file(
        tmp_path,
        {
            "a": ("BF16", np.zeros(8, np.uint16).tobytes()),
            "b": ("F32", np.array([-0.0, 0.0], np.float32).tobytes()),
            "packed": ("U32", np.array([7], np.uint32).tobytes()),
        },
    )
    scan = scan_values(read_header(path), CheckpointError)
    assert scan == ValueScan([], all_zero=True)
    with pytest.raises(CodecError, match="every weight is zero: the data was never written"):
        require_sane_values(read_header(path), CodecFileError)
    one = _file(tmp_path, {"a": ("BF16", _bf16("one")), "b": ("F32", bytes(8))})
    assert scan_values(read_header(one), CheckpointError).all_zero is False


@pytest.mark.parametrize("quant", [None, Q4], ids=["bf16", "q4"])
def test_the_loader_refuses_a_model_of_zeros(tmp_path: Path, quant) -> None:
    name = "model.safetensors" if quant is None else "model.q4.safetensors"
    folder = tiny_folder(tmp_path, quant, name)
    path = folder / name
    weights = dict(mx.load(str(path)))
    zeros = {k: mx.zeros(v.shape, v.dtype) for k, v in weights.items()}
    mx.eval(zeros)
    mx.save_safetensors(str(path), zeros)
    with pytest.raises(CheckpointError, match="every weight is zero"):
        loader.load(resolve(CheckpointSpec(target=str(folder))))
