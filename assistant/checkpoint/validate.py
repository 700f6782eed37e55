"""Check a whole checkpoint (model, Mimi codec, text tokenizer) before anything is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import (
    CheckpointError,
    CodecError,
    MismatchError,
    TokenizerError,
)
from .inspection import ModelInfo, inspect_model
from .resolve import CheckpointFiles
from .safetensors_reader import read_header


@dataclass
class CodecInfo:
    path: Path
    file_size: int
    codebooks: int
    parameter_count: int
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "file_size": self.file_size,
            "codebooks": self.codebooks,
            "parameters": self.parameter_count,
            "problems": self.problems,
        }


@dataclass
class TextTokenizerInfo:
    path: Path
    vocab_size: int
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "vocab_size": self.vocab_size, "problems": self.problems}


@dataclass
class CheckpointReport:
    files: CheckpointFiles
    model: ModelInfo
    codec: CodecInfo | None
    text_tokenizer: TextTokenizerInfo | None

    @property
    def problems(self) -> list[tuple[Path, str]]:
        found = [(self.model.path, p) for p in self.model.problems]
        for part in (self.codec, self.text_tokenizer):
            if part is not None:
                found.extend((part.path, p) for p in part.problems)
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.files.label,
            "preset": self.files.preset.repo_id if self.files.preset else None,
            "model": self.model.to_dict(),
            "codec": self.codec.to_dict() if self.codec else None,
            "text_tokenizer": self.text_tokenizer.to_dict() if self.text_tokenizer else None,
            "valid": not self.problems,
        }


def inspect_checkpoint(files: CheckpointFiles) -> CheckpointReport:
    """Headers of every file, checked against each other. Format errors raise at once."""
    model = inspect_model(files.model, files.config)
    codec = inspect_codec(files.mimi, model.config.dep_q) if files.mimi else None
    text = (
        inspect_text_tokenizer(files.text_tokenizer, model.config.text_card)
        if files.text_tokenizer
        else None
    )
    return CheckpointReport(files, model, codec, text)


def inspect_codec(path: Path, codebooks_needed: int) -> CodecInfo:
    from .mimi_layout import mimi_codebook_count

    header = read_header(path)
    names = header.tensors.keys()
    if not any(n.startswith("quantizer.") for n in names) or not any(
        n.startswith("decoder.") for n in names
    ):
        if any(n.startswith("transformer.layers.") for n in names):
            raise CodecError("this is a Moshi model file, not a Mimi codec file", path=path)
        raise CodecError("not a Mimi codec file (no quantizer/decoder tensors)", path=path)
    codebooks = mimi_codebook_count(names)
    problems = []
    if codebooks < codebooks_needed:
        problems.append(
            f"Mimi codec has {codebooks} codebooks but the model streams {codebooks_needed}"
        )
    params = sum(t.numel for t in header.tensors.values())
    return CodecInfo(path, header.file_size, codebooks, params, problems)


def inspect_text_tokenizer(path: Path, vocab_needed: int) -> TextTokenizerInfo:
    import sentencepiece

    if not path.is_file():
        raise TokenizerError("no such file", path=path)
    sp = sentencepiece.SentencePieceProcessor()
    try:
        sp.Load(str(path))
    except (OSError, RuntimeError):
        raise TokenizerError("not a SentencePiece model (cannot be parsed)", path=path) from None
    vocab = sp.GetPieceSize()
    problems = []
    if vocab != vocab_needed:
        problems.append(
            f"text tokenizer has {vocab} pieces but the model's text vocabulary is {vocab_needed}"
        )
    return TextTokenizerInfo(path, vocab, problems)


def require_valid(report: CheckpointReport) -> None:
    """Raise the typed error for the first file with problems (model first)."""
    if report.model.problems:
        problems = report.model.problems
        if problems[0].startswith("file name says"):
            raise CheckpointError(problems[0], path=report.model.path)
        raise MismatchError(problems, path=report.model.path)
    if report.codec and report.codec.problems:
        raise CodecError(report.codec.problems[0], path=report.codec.path)
    if report.text_tokenizer and report.text_tokenizer.problems:
        raise TokenizerError(report.text_tokenizer.problems[0], path=report.text_tokenizer.path)
