"""Check a whole checkpoint (model, Mimi codec, text tokenizer) before anything is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import (
    CheckpointError,
    CodecFileError,
    MismatchError,
    TokenizerError,
)
from ..files import read_regular
from .inspection import MAX_PROBLEMS_LISTED as MAX_LISTED
from .inspection import ModelInfo, bounded, inspect_model, tensor_differences
from .mimi_layout import mimi_codebook_count, mimi_tensors
from .resolve import CheckpointFiles
from .safetensors_reader import SafetensorsHeader, read_header

if TYPE_CHECKING:
    import sentencepiece

# The published tokenizer is 553 KB; a model of 64 MB would be a vocabulary of millions.
MAX_TEXT_TOKENIZER_BYTES = 64 << 20


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
    # The parsed SentencePiece model, kept for the loader (parsing it again cost ~45 ms).
    processor: Any = field(default=None, compare=False, repr=False)

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
    """The Mimi file's header, checked tensor by tensor against the published layout."""
    header = read_codec_header(path)
    codebooks = mimi_codebook_count(header.tensors)
    problems = []
    if codebooks < codebooks_needed:
        problems.append(
            f"Mimi codec has {codebooks} codebooks but the model streams {codebooks_needed}"
        )
    problems.extend(mimi_layout_problems(header, codebooks))
    params = sum(t.numel for t in header.tensors.values())
    return CodecInfo(path, header.file_size, codebooks, params, bounded(problems, MAX_LISTED))


def read_codec_header(path: Path) -> SafetensorsHeader:
    """A Mimi file's header, or CodecFileError naming the file (a model file says so)."""
    try:
        header = read_header(path)
    except CodecFileError:
        raise
    except CheckpointError as e:
        raise CodecFileError(e.message, path=e.path, hint=e.hint) from None
    names = header.tensors.keys()
    if not any(n.startswith("quantizer.") for n in names) or not any(
        n.startswith("decoder.") for n in names
    ):
        if any(n.startswith("transformer.layers.") for n in names):
            raise CodecFileError("this is a Moshi model file, not a Mimi codec file", path=path)
        raise CodecFileError("not a Mimi codec file (no quantizer/decoder tensors)", path=path)
    return header


def mimi_layout_problems(header: SafetensorsHeader, codebooks: int) -> list[str]:
    """Names, dtypes and shapes that differ from the published Mimi with `codebooks`."""
    if codebooks < 1:
        return ["no complete codebook (quantizer.rvq_first.vq.layers.0)"]
    return tensor_differences(mimi_tensors(codebooks), header)


def inspect_text_tokenizer(path: Path, vocab_needed: int) -> TextTokenizerInfo:
    sp = load_text_tokenizer(path)
    vocab = sp.GetPieceSize()
    problems = []
    if vocab != vocab_needed:
        problems.append(
            f"text tokenizer has {vocab} pieces but the model's text vocabulary is {vocab_needed}"
        )
    return TextTokenizerInfo(path, vocab, problems, processor=sp)


def load_text_tokenizer(path: Path) -> sentencepiece.SentencePieceProcessor:
    """A SentencePiece model read by us (a regular file of bounded size), parsed from bytes:
    sentencepiece never opens the path itself."""
    import sentencepiece

    data = read_regular(path, MAX_TEXT_TOKENIZER_BYTES, TokenizerError)
    sp = sentencepiece.SentencePieceProcessor()
    try:
        sp.LoadFromSerializedProto(data)
    except (OSError, RuntimeError):
        raise TokenizerError("not a SentencePiece model (cannot be parsed)", path=path) from None
    if sp.GetPieceSize() < 1:
        raise TokenizerError("SentencePiece model without a vocabulary", path=path)
    return sp


def require_valid(report: CheckpointReport) -> None:
    """Raise the typed error for the first file with problems (model first)."""
    if report.model.problems:
        problems = report.model.problems
        if problems[0].startswith("file name says"):
            raise CheckpointError(problems[0], path=report.model.path)
        raise MismatchError(problems, path=report.model.path)
    if report.codec and report.codec.problems:
        problems = report.codec.problems
        more = len(problems) - 1
        raise CodecFileError(
            problems[0] + (f"; and {more} more" if more else ""),
            path=report.codec.path,
            hint="`assistant info --json` lists them" if more else "",
        )
    if report.text_tokenizer and report.text_tokenizer.problems:
        raise TokenizerError(report.text_tokenizer.problems[0], path=report.text_tokenizer.path)
