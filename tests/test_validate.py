"""Whole-checkpoint validation: the Mimi codec and the text tokenizer must fit the model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assistant.checkpoint.config import TINY
from assistant.checkpoint.layout import TensorSpec
from assistant.checkpoint.mimi_layout import mimi_tensors
from assistant.checkpoint.resolve import CheckpointSpec, resolve
from assistant.checkpoint.synthetic.text_tokenizer import write_text_tokenizer
from assistant.checkpoint.validate import inspect_checkpoint, require_valid
from assistant.errors import CheckpointError, CodecError, CodecFileError, TokenizerError
from assistant.voice import loader
from tests.support.helpers import tiny_folder, write_sparse


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tiny_folder(tmp_path)


def test_complete_checkpoint_is_valid(folder: Path) -> None:
    write_sparse(folder / "tokenizer-e351c8d8-checkpoint125.safetensors", mimi_tensors(32))
    write_text_tokenizer(folder / "tokenizer_spm_32k_3.model", TINY.text_card)
    report = inspect_checkpoint(resolve(CheckpointSpec(target=str(folder))))
    assert report.problems == []
    assert report.codec is not None and report.codec.codebooks == 32
    assert 96.0e6 < report.codec.parameter_count < 96.4e6
    assert report.text_tokenizer is not None and report.text_tokenizer.vocab_size == 1000


def test_mimi_with_too_few_codebooks(folder: Path, monkeypatch) -> None:
    mimi = write_sparse(folder / "tokenizer-e351c8d8-checkpoint125.safetensors", mimi_tensors(4))
    monkeypatch.setattr(loader, "build_model", lambda *a: pytest.fail("built anyway"))
    with pytest.raises(CodecError) as info:
        loader.load(resolve(CheckpointSpec(target=str(folder))))
    assert str(info.value) == f"{mimi}: Mimi codec has 4 codebooks but the model streams 8"


def test_model_file_passed_as_mimi(folder: Path) -> None:
    files = resolve(CheckpointSpec(target=str(folder), mimi_file=folder / "model.q4.safetensors"))
    with pytest.raises(CodecError, match="Moshi model file, not a Mimi codec file"):
        inspect_checkpoint(files)


def test_tokenizer_vocabulary_must_match(folder: Path, monkeypatch) -> None:
    spm = write_text_tokenizer(folder / "tokenizer_spm_32k_3.model", 32000)
    monkeypatch.setattr(loader, "build_model", lambda *a: pytest.fail("built anyway"))
    with pytest.raises(TokenizerError) as info:
        loader.load(resolve(CheckpointSpec(target=str(folder))))
    assert str(info.value) == (
        f"{spm}: text tokenizer has 32000 pieces but the model's text vocabulary is 1000"
    )


def test_tokenizer_that_is_not_sentencepiece(folder: Path) -> None:
    bad = folder / "tokenizer_spm_32k_3.model"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(TokenizerError, match="not a SentencePiece model"):
        inspect_checkpoint(resolve(CheckpointSpec(target=str(folder))))


MIMI = "tokenizer-e351c8d8-checkpoint125.safetensors"
WEIGHT = "decoder.model.0.conv.conv.weight"


def _mimi_specs(change) -> dict[str, TensorSpec]:
    specs = dict(mimi_tensors(32))
    change(specs)
    return specs


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda s: s.__setitem__(WEIGHT, TensorSpec(WEIGHT, s[WEIGHT].shape, "I32")),
            f"{WEIGHT}: expected F32[1024, 512, 7], found I32[1024, 512, 7]",
        ),
        (
            lambda s: s.__setitem__(WEIGHT, TensorSpec(WEIGHT, (7, 512, 1024), "F32")),
            f"{WEIGHT}: expected F32[1024, 512, 7], found F32[7, 512, 1024]",
        ),
        (lambda s: s.pop(WEIGHT), f"missing tensor {WEIGHT}"),
        (
            lambda s: s.__setitem__("extra.bias", TensorSpec("extra.bias", (4,), "F32")),
            "unexpected tensor extra.bias",
        ),
    ],
    ids=["relabelled dtype", "transposed", "missing", "extra"],
)
def test_mimi_is_checked_against_its_published_layout(folder: Path, change, problem: str) -> None:
    mimi = write_sparse(folder / MIMI, _mimi_specs(change))
    report = inspect_checkpoint(resolve(CheckpointSpec(target=str(folder))))
    assert report.codec is not None and report.codec.problems == [problem]
    with pytest.raises(CodecError) as e:
        require_valid(report)
    assert str(e.value) == f"{mimi}: {problem}"


def test_a_damaged_mimi_is_named_not_missing(folder: Path) -> None:
    mimi = write_sparse(folder / MIMI, mimi_tensors(32))
    with mimi.open("r+b") as f:
        f.truncate(mimi.stat().st_size // 2)
    with pytest.raises(CodecError) as e:
        resolve(CheckpointSpec(target=str(folder)))
    assert str(e.value).startswith(f"{mimi}: unreadable, so no Mimi codec here: truncated")


def test_a_fifo_tokenizer_is_refused_without_blocking(folder: Path) -> None:
    os.mkfifo(folder / "tokenizer_spm_32k_3.model")
    with pytest.raises(TokenizerError, match="named pipe"):
        inspect_checkpoint(resolve(CheckpointSpec(target=str(folder))))


def test_a_bad_codec_file_is_a_checkpoint_problem_a_failing_codec_is_not() -> None:
    """`CodecFileError` (the file) is both; a worker that crashes or bad input to the codec
    (`CodecError`) is no checkpoint problem."""
    assert issubclass(CodecFileError, CodecError) and issubclass(CodecFileError, CheckpointError)
    assert not issubclass(CodecError, CheckpointError)
