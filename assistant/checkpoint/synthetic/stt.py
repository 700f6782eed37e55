"""Synthetic Kyutai STT checkpoint folders, laid out exactly like `kyutai/stt-1b-en_fr-mlx`.

`config.json`, `model.safetensors` (random bf16 weights, every tensor of the published
layout), `mimi-pytorch-e351c8d8@125.safetensors` (the random Mimi the Moshi checkpoints use:
rustymimi is not configurable, so it is always full size, and with `cache_dir` it is written
once and linked) and `tokenizer_en_fr_audio_8000.model` (a SentencePiece model of exactly 8000
pieces). Two architectures: `tiny` (the same streams at toy widths, for tests and the demo)
and `stt-1b-en_fr` (the published one, 1.98 GB, for format tests and the speed benchmark).
Each file goes through `<name>.partial`; a new folder is staged and renamed when complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigError, UsageError
from ..mimi_layout import PUBLISHED_CODEBOOKS
from ..safetensors_writer import planned_size, write_safetensors
from ..stt_config import CONFIG_FILE, STT_CONFIGS, SttConfig
from ..stt_layout import stt_tensors
from ..writing import Job, Progress, check_disk, run_jobs, staged_folder
from .checkpoint import _mimi_writer, cached_mimi_path
from .lm import LmTensorSource
from .mimi import mimi_file_size
from .text_tokenizer import text_tokenizer_bytes


@dataclass(frozen=True)
class SttFolder:
    """What `make_stt_checkpoint` made: the folder, its files, and what this call wrote."""

    folder: Path
    config_name: str
    config: SttConfig
    written: tuple[Path, ...]

    @property
    def files(self) -> tuple[Path, ...]:
        c = self.config
        names = (CONFIG_FILE, c.moshi_name, c.mimi_name, c.tokenizer_name)
        return tuple(self.folder / n for n in names)

    @property
    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files)


def stt_config(name: str) -> SttConfig:
    try:
        return STT_CONFIGS[name]
    except KeyError:
        raise UsageError(
            f"unknown STT config {name!r}; choose one of {', '.join(STT_CONFIGS)}"
        ) from None


def stt_model_size(config: SttConfig) -> int:
    """Exact size of the model file written for `config`."""
    return planned_size(list(stt_tensors(config).values()), "published")


def write_stt_model(
    path: str | Path, config: SttConfig, seed: int = 0, progress: Progress | None = None
) -> Path:
    """Write the random-weight model file of `config` (the published layout)."""
    specs = list(stt_tensors(config).values())
    return write_safetensors(path, specs, LmTensorSource(None, seed), progress=progress).path


def make_stt_checkpoint(
    folder: str | Path,
    *,
    config_name: str = "tiny",
    seed: int = 0,
    overwrite: bool = False,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> SttFolder:
    """Write (or complete) a synthetic STT checkpoint folder. Files already there with the
    right size (the config and tokenizer: the right content) are kept unless `overwrite`."""
    config = stt_config(config_name)
    final = Path(folder)
    with staged_folder(final) as stage:
        written = _write(stage, config, seed, overwrite, cache_dir, progress)
    return SttFolder(final, config_name, config, tuple(final / p.name for p in written))


def _write(
    folder: Path,
    config: SttConfig,
    seed: int,
    overwrite: bool,
    cache_dir: str | Path | None,
    progress: Progress | None,
) -> list[Path]:
    def stale(path: Path, size: int) -> bool:
        return overwrite or not (path.is_file() and path.stat().st_size == size)

    jobs: list[Job] = []
    model = folder / config.moshi_name
    size = stt_model_size(config)
    if stale(model, size):
        jobs.append(Job(model, size, lambda p, cb: write_stt_model(p, config, seed, cb)))
    mimi = folder / config.mimi_name
    cached = None if cache_dir is None else cached_mimi_path(cache_dir, seed)
    mimi_size = mimi_file_size(PUBLISHED_CODEBOOKS)
    if stale(mimi, mimi_size):
        jobs.append(Job(mimi, mimi_size, _mimi_writer(cached, mimi_size, seed)))
    tokenizer = folder / config.tokenizer_name
    tok = text_tokenizer_bytes(config.text_card)
    if overwrite or not (tokenizer.is_file() and tokenizer.read_bytes() == tok):
        jobs.append(Job(tokenizer, len(tok), lambda p, cb: p.write_bytes(tok)))
    config_file = folder / CONFIG_FILE
    if overwrite or not _config_matches(config_file, config):
        text = json.dumps(config.to_dict(), indent=2) + "\n"
        jobs.append(Job(config_file, len(text), lambda p, cb: p.write_text(text)))
    check_disk(jobs, cached)
    run_jobs(jobs, progress)
    return [job.path for job in jobs]


def _config_matches(path: Path, config: SttConfig) -> bool:
    if not path.is_file():
        return False
    try:
        return SttConfig.from_file(path) == config
    except ConfigError:
        return False
