"""Resolving presets, folders and files; the hub path offline and with a stand-in hub."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import constants

from assistant.checkpoint import hub
from assistant.checkpoint.catalogue import PRESETS, find_preset, preset
from assistant.checkpoint.config import MOSHIKO_V0_1, TINY
from assistant.checkpoint.layout import Q4, Quantization, expected_tensors
from assistant.checkpoint.resolve import CheckpointSpec, resolve
from assistant.errors import (
    CheckpointError,
    InsufficientDiskError,
    MissingFilesError,
    UsageError,
)
from tests.support.helpers import save_tiny_model


def test_catalogue_has_every_published_repo() -> None:
    assert len(PRESETS) == 6
    p = preset("moshika", "q8")
    assert p.repo_id == "kyutai/moshika-mlx-q8" and p.model_file == "model.q8.safetensors"
    assert preset("moshiko", "q4").model_size == 4_805_545_040
    assert preset("moshiko", "bf16").model_file == "model.safetensors"
    assert find_preset("kyutai/moshiko-mlx-q4") is find_preset("moshiko-q4") is preset()


@pytest.mark.parametrize(("voice", "quant"), [("moshiki", "q4"), ("moshiko", "q5")])
def test_unknown_preset_choices_are_usage_errors(voice: str, quant: str) -> None:
    with pytest.raises(UsageError):
        preset(voice, quant)


def test_folder_files_are_found_by_content(tmp_path: Path) -> None:
    model = save_tiny_model(tmp_path / "weights-anything.safetensors")
    (tmp_path / "tok.model").write_bytes(b"x")
    TINY.write(tmp_path / "config.json")
    files = resolve(CheckpointSpec(target=str(tmp_path)))
    assert files.model == model
    assert files.text_tokenizer == tmp_path / "tok.model"
    assert files.config == tmp_path / "config.json"
    assert files.mimi is None


def test_model_file_brings_its_folder(tmp_path: Path) -> None:
    model = save_tiny_model(tmp_path / "model.q4.safetensors")
    TINY.write(tmp_path / "config.json")
    files = resolve(CheckpointSpec(target=str(model)))
    assert files.model == model and files.config == tmp_path / "config.json"


def test_explicit_files_override(tmp_path: Path) -> None:
    model = save_tiny_model(tmp_path / "a" / "m.safetensors")
    other = tmp_path / "b" / "config.json"
    other.parent.mkdir()
    TINY.write(other)
    files = resolve(CheckpointSpec(model_file=model, config_file=other))
    assert files.model == model and files.config == other


def test_folder_without_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(CheckpointError, match="no Moshi model file here") as info:
        resolve(CheckpointSpec(target=str(tmp_path)))
    assert str(tmp_path) in str(info.value)


def test_folder_with_two_models_needs_a_choice(tmp_path: Path) -> None:
    save_tiny_model(tmp_path / "model.q4.safetensors")
    save_tiny_model(tmp_path / "model.q8.safetensors", Quantization(8, 64))
    with pytest.raises(UsageError, match="several model files"):
        resolve(CheckpointSpec(target=str(tmp_path)))
    chosen = resolve(CheckpointSpec(target=str(tmp_path), quant="q8"))
    assert chosen.model.name == "model.q8.safetensors"


def test_corrupt_model_in_folder_is_reported_not_skipped(tmp_path: Path) -> None:
    (tmp_path / "model.q4.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match=r"model\.q4\.safetensors"):
        resolve(CheckpointSpec(target=str(tmp_path)))


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such file"):
        resolve(CheckpointSpec(model_file=tmp_path / "gone.safetensors"))


def test_nonexistent_target(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a preset name"):
        resolve(CheckpointSpec(target=str(tmp_path / "nothing")))


# --- the hub ---------------------------------------------------------------------------------


def test_offline_and_not_cached_names_every_missing_file(isolated_hub: Path) -> None:
    with pytest.raises(MissingFilesError) as info:
        resolve(CheckpointSpec(voice="moshika", quant="q8"))
    message = str(info.value)
    assert "kyutai/moshika-mlx-q8" in message
    for name in preset("moshika", "q8").files:
        assert name in message
    assert "assistant download --voice moshika --quant q8" in message
    assert str(isolated_hub) in message


def test_download_refuses_offline_without_touching_the_network(monkeypatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(hub.huggingface_hub, "hf_hub_download", no_network)
    with pytest.raises(MissingFilesError, match="HF_HUB_OFFLINE is set"):
        resolve(CheckpointSpec(quant="q4"), download=True)


def _populate_cache(cache: Path, repo_id: str, files: dict[str, Path]) -> None:
    """Lay files out exactly as huggingface_hub's cache does (refs/main -> snapshot)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    for name, source in files.items():
        shutil.copy(source, snapshot / name)


def test_offline_with_a_populated_cache_resolves(isolated_hub: Path, tmp_path: Path) -> None:
    p = preset("moshiko", "q4")
    model = save_tiny_model(tmp_path / "m.safetensors")
    stub = tmp_path / "stub"
    stub.write_bytes(b"x")
    _populate_cache(
        isolated_hub,
        p.repo_id,
        {p.model_file: model, p.mimi_file: stub, p.text_tokenizer_file: stub},
    )
    files = resolve(CheckpointSpec(quant="q4"))
    assert files.preset is p
    assert files.model.name == p.model_file and files.model.is_file()
    assert str(files.model).startswith(str(isolated_hub))


class FakeHub:
    """Stands in for the hub's HTTP calls; records what was fetched."""

    def __init__(self, folder: Path, header_config=MOSHIKO_V0_1, quant=Q4):
        self.folder = folder
        self.fetched: list[str] = []
        self.specs = expected_tensors(header_config, quant)

    def metadata(self, repo_id: str, filename: str):
        offset, tensors = 0, {}
        for name, s in self.specs.items():
            tensors[name] = SimpleNamespace(
                dtype=s.dtype, shape=list(s.shape), data_offsets=(offset, offset + s.nbytes)
            )
            offset += s.nbytes
        return SimpleNamespace(tensors=tensors, metadata={})

    def download(self, repo_id: str, filename: str) -> str:
        self.fetched.append(filename)
        path = self.folder / filename
        path.write_bytes(b"downloaded")
        return str(path)


@pytest.fixture
def online(monkeypatch, tmp_path: Path) -> FakeHub:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    fake = FakeHub(tmp_path)
    monkeypatch.setattr(hub.huggingface_hub, "parse_safetensors_file_metadata", fake.metadata)
    monkeypatch.setattr(hub.huggingface_hub, "hf_hub_download", fake.download)
    return fake


def test_download_fetches_every_missing_file(online: FakeHub) -> None:
    files = resolve(CheckpointSpec(quant="q4"), download=True)
    assert sorted(online.fetched) == sorted(preset().files)
    assert files.model.name == "model.q4.safetensors"


def test_remote_header_that_does_not_match_downloads_nothing(online: FakeHub) -> None:
    online.specs = expected_tensors(TINY, Quantization(4, 32))
    with pytest.raises(CheckpointError, match="nothing was downloaded"):
        resolve(CheckpointSpec(quant="q4"), download=True)
    assert online.fetched == []


def test_not_enough_disk_downloads_nothing(online: FakeHub, monkeypatch) -> None:
    monkeypatch.setattr(
        hub.shutil, "disk_usage", lambda path: SimpleNamespace(total=10**12, used=0, free=10**9)
    )
    with pytest.raises(InsufficientDiskError, match=r"needs 5\.7 GB but only 1\.0 GB is free"):
        resolve(CheckpointSpec(quant="q4"), download=True)
    assert online.fetched == []


def test_unreachable_hub_is_a_clear_message(online: FakeHub, monkeypatch) -> None:
    import requests

    def unreachable(*args, **kwargs):
        raise requests.ConnectionError("Failed to resolve 'huggingface.co' NameResolutionError")

    monkeypatch.setattr(hub.huggingface_hub, "parse_safetensors_file_metadata", unreachable)
    with pytest.raises(MissingFilesError, match="cannot reach the Hugging Face hub"):
        resolve(CheckpointSpec(quant="q4"), download=True)
