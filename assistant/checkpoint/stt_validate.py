"""A Kyutai STT checkpoint folder checked from its headers before anything loads.

The folder holds what the published repo holds: `config.json`, which names the other three
files (`moshi_name` or `model.safetensors`, `mimi_name`, `tokenizer_name`). Each is checked
as strictly as its format allows: the config's keys and values, the model's tensors against
the config, the Mimi codec against its published layout, the tokenizer's vocabulary against
the text head. The first problem becomes one line naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, CodecError, MissingFilesError, TokenizerError
from .safetensors_reader import read_header
from .stt_config import CONFIG_FILE, SttConfig, read_config_dict
from .stt_layout import stt_layout_problems, stt_parameter_count
from .validate import (
    CodecInfo,
    TextTokenizerInfo,
    inspect_codec,
    inspect_text_tokenizer,
)


@dataclass(frozen=True)
class SttFiles:
    folder: Path
    config: Path
    model: Path
    mimi: Path
    text_tokenizer: Path

    @property
    def all(self) -> tuple[Path, ...]:
        return (self.config, self.model, self.mimi, self.text_tokenizer)


@dataclass
class SttModelInfo:
    path: Path
    file_size: int
    tensor_count: int
    parameter_count: int
    problems: list[str] = field(default_factory=list)


@dataclass
class SttReport:
    files: SttFiles
    config: SttConfig
    raw_config: dict[str, Any]  # config.json as read: what moshi_mlx's loader is given
    model: SttModelInfo
    codec: CodecInfo
    text_tokenizer: TextTokenizerInfo

    @property
    def problems(self) -> list[tuple[Path, str]]:
        found = [(self.model.path, p) for p in self.model.problems]
        found += [(self.codec.path, p) for p in self.codec.problems]
        found += [(self.text_tokenizer.path, p) for p in self.text_tokenizer.problems]
        return found


def stt_files(folder: str | Path) -> SttFiles:
    """The folder's files as its config names them; a missing one is one line saying which."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise CheckpointError("not a folder (an STT checkpoint is a folder)", path=folder)
    config_path = folder / CONFIG_FILE
    if not os.path.lexists(config_path):
        raise MissingFilesError(
            f"{folder}: no {CONFIG_FILE}, so not a Kyutai STT checkpoint folder "
            "(it holds config.json, the model, the Mimi codec and the text tokenizer)"
        )
    config = SttConfig.from_dict(read_config_dict(config_path), source=config_path)
    named = {
        "model": folder / config.moshi_name,
        "mimi": folder / config.mimi_name,
        "text_tokenizer": folder / config.tokenizer_name,
    }
    missing = [p.name for p in named.values() if not os.path.lexists(p)]
    if missing:
        raise MissingFilesError(f"{folder}: missing {', '.join(missing)} (named by {CONFIG_FILE})")
    return SttFiles(folder=folder, config=config_path, **named)


def inspect_stt(files: SttFiles) -> SttReport:
    """Every file's header checked against the config. Format errors raise at once."""
    raw = read_config_dict(files.config)
    config = SttConfig.from_dict(raw, source=files.config)
    header = read_header(files.model)
    names = header.tensors.keys()
    if any(n.startswith(("encoder.", "decoder.", "quantizer.")) for n in names):
        raise CheckpointError("this is a Mimi codec file, not the STT model", path=files.model)
    if any(n.startswith("depformer.") for n in names):
        raise CheckpointError(
            "this is a Moshi (speech-to-speech) model file, not a speech-to-text one",
            path=files.model,
        )
    model = SttModelInfo(
        path=files.model,
        file_size=header.file_size,
        tensor_count=len(header.tensors),
        parameter_count=stt_parameter_count(config),
        problems=stt_layout_problems(config, header),
    )
    codec = inspect_codec(files.mimi, config.n_q)
    text = inspect_text_tokenizer(files.text_tokenizer, config.text_card)
    return SttReport(files, config, raw, model, codec, text)


def require_valid_stt(report: SttReport) -> None:
    """The typed one-line error for the first file with problems (model first)."""
    if report.model.problems:
        problems = report.model.problems
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise CheckpointError(
            f"weights do not match {CONFIG_FILE}: {'; '.join(problems[:3])}{more}",
            path=report.model.path,
        )
    if report.codec.problems:
        left = len(report.codec.problems) - 1
        raise CodecError(
            report.codec.problems[0] + (f"; and {left} more" if left else ""),
            path=report.codec.path,
        )
    if report.text_tokenizer.problems:
        raise TokenizerError(report.text_tokenizer.problems[0], path=report.text_tokenizer.path)
