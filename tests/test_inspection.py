"""Inspection from headers alone: full-size published layouts (sparse files) and bad inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.checkpoint.config import MOSHIKO_V0_1, TINY
from assistant.checkpoint.inspection import (
    MAX_PROBLEMS_LISTED,
    bits_claimed_by_name,
    compare,
    inspect_model,
)
from assistant.checkpoint.layout import Quantization, TensorSpec, expected_tensors
from assistant.checkpoint.safetensors_reader import read_header
from assistant.errors import CheckpointError, UnsupportedQuantizationError
from tests.support.helpers import write_sparse

Q4, Q8 = Quantization(4, 32), Quantization(8, 64)


@pytest.mark.parametrize(
    ("quant", "name", "bpw"),
    [
        (Q4, "model.q4.safetensors", 5.0),
        (Q8, "model.q8.safetensors", 8.5),
        (None, "model.safetensors", 16.0),
    ],
    ids=["q4", "q8", "bf16"],
)
def test_full_size_published_layout(tmp_path: Path, quant, name: str, bpw: float) -> None:
    info = inspect_model(write_sparse(tmp_path / name, expected_tensors(MOSHIKO_V0_1, quant)))
    assert info.problems == []
    assert info.quantization == quant
    assert info.config == MOSHIKO_V0_1 and "built-in moshiko" in info.config_source
    assert info.tensor_count == (1247 if quant else 523)
    assert 7.68e9 < info.parameter_count < 7.70e9
    assert info.bits_per_weight == pytest.approx(bpw, abs=0.01)
    assert info.found == {
        "num_layers": 32,
        "n_q": 16,
        "dep_q": 8,
        "depformer_num_layers": 6,
        "dim": 4096,
        "depformer_dim": 1024,
        "text_card": 32000,
        "card": 2048,
    }


def test_bits_come_from_shapes_not_names(tmp_path: Path) -> None:
    # q8 with group 64 and q4 with group 128 give the same width ratio (16); the norm decides.
    info = inspect_model(
        write_sparse(
            tmp_path / "weights.safetensors", expected_tensors(MOSHIKO_V0_1, Quantization(4, 128))
        )
    )
    assert info.quantization == Quantization(4, 128) and info.problems == []


def test_q4_file_named_q8_is_a_problem(tmp_path: Path) -> None:
    info = inspect_model(
        write_sparse(tmp_path / "model.q8.safetensors", expected_tensors(MOSHIKO_V0_1, Q4))
    )
    assert info.problems == ["file name says 8-bit but the tensors are q4 (group 32)"]


def test_tiny_weights_against_moshiko_config_list_every_mismatch(tmp_path: Path) -> None:
    path = write_sparse(tmp_path / "model.q4.safetensors", expected_tensors(TINY, Q4))
    info = inspect_model(path)
    assert "num_layers: config says 32, tensors have 2" in info.problems
    assert "dim: config says 4096, tensors have 256" in info.problems
    assert "missing tensor depformer.slices.0.transformer.layers.5.norm1.weight" in info.problems
    assert any(
        p.startswith("out_norm.weight: expected BF16[4096], found BF16[256]") for p in info.problems
    )
    # Listed up to a bound, the rest counted: a file of another architecture stays readable.
    assert len(info.problems) == MAX_PROBLEMS_LISTED
    every = compare(MOSHIKO_V0_1, Q4, read_header(path), limit=None)
    assert info.problems[-1] == f"... and {len(every) - MAX_PROBLEMS_LISTED + 1:,} more not listed"
    assert info.problems[:-1] == every[: MAX_PROBLEMS_LISTED - 1]


def test_config_json_beside_the_weights(tmp_path: Path) -> None:
    TINY.write(tmp_path / "config.json")
    path = write_sparse(tmp_path / "model.q8.safetensors", expected_tensors(TINY, Q8))
    info = inspect_model(path, tmp_path / "config.json")
    assert info.problems == [] and info.config == TINY
    assert info.config_source == str(tmp_path / "config.json")


def test_one_wrong_tensor_is_named(tmp_path: Path) -> None:
    specs = expected_tensors(TINY, Q4)
    name = "depformer.slices.3.linear_out.scales"
    specs[name] = TensorSpec(name, (2048, 4), "BF16")
    TINY.write(tmp_path / "config.json")
    info = inspect_model(write_sparse(tmp_path / "m.safetensors", specs), tmp_path / "config.json")
    assert info.problems == [f"{name}: expected BF16[2048, 8], found BF16[2048, 4]"]


def _with_probe(tmp_path: Path, packed: int, groups: int) -> Path:
    specs = expected_tensors(TINY, Q4)
    p = "transformer.layers.0.self_attn.in_proj"
    specs[f"{p}.weight"] = TensorSpec(f"{p}.weight", (768, packed), "U32")
    specs[f"{p}.scales"] = TensorSpec(f"{p}.scales", (768, groups), "BF16")
    return write_sparse(tmp_path / "m.safetensors", specs)


def test_unsupported_bits(tmp_path: Path) -> None:
    path = _with_probe(tmp_path, packed=56, groups=8)  # 56 * 32 / 256 = 7 bits
    with pytest.raises(UnsupportedQuantizationError, match="7-bit") as info:
        inspect_model(path)
    assert str(info.value).startswith(str(path))


def test_unsupported_group_size(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedQuantizationError, match="group size 16"):
        inspect_model(_with_probe(tmp_path, packed=32, groups=16))


def test_mimi_file_given_as_model(tmp_path: Path) -> None:
    specs = {
        "quantizer.rvq_first.vq.layers.0._codebook.embedding_sum": TensorSpec(
            "x", (2048, 256), "F32"
        )
    }
    with pytest.raises(CheckpointError, match="Mimi codec file, not a Moshi model"):
        inspect_model(write_sparse(tmp_path / "model.safetensors", specs))


def test_unrelated_safetensors(tmp_path: Path) -> None:
    specs = {"encoder.layer.0.weight": TensorSpec("x", (4, 4), "F32")}
    with pytest.raises(CheckpointError, match="not a Moshi model file"):
        inspect_model(write_sparse(tmp_path / "bert.safetensors", specs))


@pytest.mark.parametrize(
    ("name", "bits"),
    [
        ("model.q4.safetensors", 4),
        ("model.q8.safetensors", 8),
        ("moshiko-q8.safetensors", 8),
        ("model.safetensors", None),
        ("model.bf16.safetensors", 16),
        ("quick.safetensors", None),
    ],
)
def test_bits_claimed_by_name(name: str, bits: int | None) -> None:
    assert bits_claimed_by_name(Path(name)) == bits


@pytest.mark.parametrize("shape", [(), (0,), (16, 16)], ids=["scalar", "empty", "matrix"])
def test_a_malformed_probe_norm_is_an_error_not_a_crash(tmp_path: Path, shape: tuple) -> None:
    specs = expected_tensors(TINY, Q4)
    norm = "transformer.layers.0.norm1.weight"
    specs[norm] = TensorSpec(norm, shape, "BF16")
    with pytest.raises(CheckpointError, match="a norm weight is one non-empty row"):
        inspect_model(write_sparse(tmp_path / "model.q4.safetensors", specs))


def test_scalar_tensors_where_sizes_are_read_are_mismatches(tmp_path: Path) -> None:
    specs = expected_tensors(TINY, Q4)
    specs["out_norm.weight"] = TensorSpec("out_norm.weight", (), "BF16")
    TINY.write(tmp_path / "config.json")
    info = inspect_model(
        write_sparse(tmp_path / "model.q4.safetensors", specs), tmp_path / "config.json"
    )
    assert info.problems == ["out_norm.weight: expected BF16[256], found BF16[]"]
