"""Loading onto MLX: validated first, memory checked, strict, and really evaluated."""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

from assistant.checkpoint.config import MOSHIKO_V0_1, TINY
from assistant.checkpoint.layout import Q4, Q8, Quantization, expected_tensors
from assistant.checkpoint.resolve import CheckpointSpec, resolve
from assistant.errors import CheckpointError, InsufficientMemoryError, MismatchError
from assistant.voice import loader, memory
from tests.helpers import save_tiny_model, tiny_folder, write_sparse

GiB = 1024**3


@pytest.mark.parametrize(
    ("quant", "name"),
    [(Q4, "model.q4.safetensors"), (Q8, "model.q8.safetensors"), (None, "model.safetensors")],
    ids=["q4", "q8", "bf16"],
)
def test_loads_strictly_with_detected_quantization(tmp_path: Path, quant, name: str) -> None:
    files = resolve(CheckpointSpec(target=str(tiny_folder(tmp_path, quant, name))))
    loaded = loader.load(files)
    assert loaded.quantization == quant
    assert loaded.config == TINY
    assert loaded.load_seconds > 0
    # The weights in the model are the file's, and already materialised (not lazy).
    on_disk = mx.load(str(files.model))
    params = dict(tree_flatten(loaded.model.parameters()))
    assert set(params) == set(on_disk)
    for key in ("text_linear.weight", "transformer.layers.1.gating.linear_out.weight"):
        assert params[key].dtype == on_disk[key].dtype
        assert np.array_equal(_numpy(params[key]), _numpy(on_disk[key]))


def _numpy(a: mx.array) -> np.ndarray:
    return np.array(a.astype(mx.float32) if a.dtype == mx.bfloat16 else a)


def test_sets_the_mlx_cache_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # MLX's CPU backend ignores the limit (it always reports 0), so watch the call itself.
    calls = []
    monkeypatch.setattr(memory.mx, "set_cache_limit", lambda n: calls.append(n) or 0)
    files = resolve(CheckpointSpec(target=str(tiny_folder(tmp_path, Q4, "model.q4.safetensors"))))
    loader.load(files, cache_limit=123 * 1024**2)
    assert calls == [123 * 1024**2]


@pytest.fixture
def never_build(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("the model was built although validation should have refused it")

    monkeypatch.setattr(loader, "build_model", fail)


def test_mismatch_refused_before_building(tmp_path: Path, never_build: None) -> None:
    save_tiny_model(tmp_path / "model.q4.safetensors", Q4)  # no config.json: moshiko assumed
    with pytest.raises(MismatchError) as info:
        loader.load(resolve(CheckpointSpec(target=str(tmp_path))))
    assert "num_layers: config says 32, tensors have 2" in str(info.value)
    assert str(info.value).startswith(str(tmp_path / "model.q4.safetensors"))


def test_misnamed_file_refused_before_building(tmp_path: Path, never_build: None) -> None:
    tiny_folder(tmp_path, Q4, "model.q8.safetensors")
    with pytest.raises(CheckpointError, match="file name says 8-bit but the tensors are q4"):
        loader.load(resolve(CheckpointSpec(target=str(tmp_path))))


def full_size(tmp_path: Path, quant: Quantization, name: str) -> Path:
    write_sparse(tmp_path / name, expected_tensors(MOSHIKO_V0_1, quant))
    return tmp_path / name


def test_q8_on_an_8gb_mac_is_refused_with_advice(tmp_path, monkeypatch, never_build) -> None:
    monkeypatch.setattr(memory, "machine_memory", lambda: 8 * GiB)
    files = resolve(CheckpointSpec(model_file=full_size(tmp_path, Q8, "model.q8.safetensors")))
    with pytest.raises(InsufficientMemoryError) as info:
        loader.load(files)
    message = str(info.value)
    assert "use --quant q4" in message and "--skip-memory-check" in message
    assert "8.0 GiB" in message


def test_q4_fits_an_8gb_mac_but_is_tight(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(memory, "machine_memory", lambda: 8 * GiB)
    files = resolve(CheckpointSpec(model_file=full_size(tmp_path, Q4, "model.q4.safetensors")))
    _, est = loader.prepare(files)
    assert est.fits and est.tight
    assert est.weights == files.model.stat().st_size


def test_q8_fits_a_16gb_mac(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(memory, "machine_memory", lambda: 16 * GiB)
    files = resolve(CheckpointSpec(model_file=full_size(tmp_path, Q8, "model.q8.safetensors")))
    _, est = loader.prepare(files)
    assert est.fits and not est.tight


def test_memory_check_can_be_skipped(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(memory, "machine_memory", lambda: 4 * GiB)
    files = resolve(CheckpointSpec(model_file=full_size(tmp_path, Q8, "model.q8.safetensors")))
    _, est = loader.prepare(files, check_memory=False)
    assert not est.fits


def test_kv_cache_estimate_at_full_context() -> None:
    # 32 layers x (keys + values) x 3000 steps x 4096 wide x 2 bytes, plus the depformer.
    assert memory.kv_cache_bytes(MOSHIKO_V0_1) == 2 * 32 * 3000 * 4096 * 2 + 2 * 6 * 8 * 1024 * 2
