"""Synthetic checkpoint folders laid out exactly like the published `kyutai/moshiko-mlx-*` repos.

A folder holds the LM (`model.q4.safetensors`, `model.q8.safetensors` or `model.safetensors`),
the Mimi codec, the SentencePiece text tokenizer, and a `config.json` only when the
architecture is not moshiko v0.1 (the published repos ship none). Every file is written to
`<name>.partial` and renamed when complete, so an interrupted run never leaves a file that
looks finished. No printing here: callers pass `progress`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigError, InsufficientDiskError, UsageError
from ..config import MOSHIKO_V0_1, PRESET_CONFIGS, MoshiConfig
from ..layout import PUBLISHED_QUANTIZATIONS, Quantization, quantization_fits
from ..mimi_layout import PUBLISHED_CODEBOOKS
from .lm import lm_file_size, write_lm
from .mimi import mimi_file_size, write_mimi
from .text_tokenizer import text_tokenizer_bytes

MIMI_FILENAME = "tokenizer-e351c8d8-checkpoint125.safetensors"
TEXT_TOKENIZER_FILENAME = "tokenizer_spm_32k_3.model"
CONFIG_FILENAME = "config.json"

# As published: 4-bit with groups of 32, 8-bit with groups of 64, or plain bfloat16.
QUANT_PRESETS: dict[str, Quantization | None] = PUBLISHED_QUANTIZATIONS

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SyntheticCheckpoint:
    """Paths of a synthetic checkpoint folder and what this call wrote into it."""

    folder: Path
    config_name: str
    config: MoshiConfig
    quant: Quantization | None
    model: Path
    mimi: Path
    text_tokenizer: Path
    config_file: Path | None
    written: tuple[Path, ...]  # files (re)written by this call; the others were already there

    @property
    def files(self) -> tuple[Path, ...]:
        paths = (self.model, self.mimi, self.text_tokenizer, self.config_file)
        return tuple(p for p in paths if p is not None)

    @property
    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files)


def cached_mimi_path(cache_dir: str | Path, seed: int = 0) -> Path:
    """Where `make_checkpoint(..., cache_dir=...)` keeps the Mimi file it shares."""
    return Path(cache_dir) / f"mimi-seed{seed}" / MIMI_FILENAME


def model_filename(quant: Quantization | None) -> str:
    return "model.safetensors" if quant is None else f"model.q{quant.bits}.safetensors"


def parse_quant(label: str) -> Quantization | None:
    """`q4` / `q8` / `bf16` -> the published quantization (None for bf16)."""
    try:
        return QUANT_PRESETS[label]
    except KeyError:
        raise UsageError(
            f"unknown quantization {label!r}; choose one of {', '.join(QUANT_PRESETS)}"
        ) from None


def preset_config(name: str) -> MoshiConfig:
    try:
        return PRESET_CONFIGS[name]
    except KeyError:
        raise UsageError(
            f"unknown config {name!r}; choose one of {', '.join(PRESET_CONFIGS)}"
        ) from None


def make_checkpoint(
    folder: str | Path,
    *,
    config_name: str = "tiny",
    quant: Quantization | None,
    seed: int = 0,
    overwrite: bool = False,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> SyntheticCheckpoint:
    """Write (or complete) a synthetic checkpoint folder; returns its paths.

    Files already present with the right size are kept unless `overwrite`. With `cache_dir`,
    the Mimi file (the same for every variant) is written there once and hard-linked (or
    copied) into the folder, which stays self-contained either way. `progress(done, total)`
    is called with bytes over all files this call writes.
    """
    config = preset_config(config_name)
    if quant is not None and (problems := quantization_fits(config, quant)):
        raise UsageError(
            f"config {config_name!r} cannot be quantized to q{quant.bits}: " + "; ".join(problems)
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    model = folder / model_filename(quant)
    mimi = folder / MIMI_FILENAME
    tokenizer = folder / TEXT_TOKENIZER_FILENAME
    config_file = None if config == MOSHIKO_V0_1 else folder / CONFIG_FILENAME
    cached_mimi = None if cache_dir is None else cached_mimi_path(cache_dir, seed)

    def stale(path: Path, size: int) -> bool:
        return overwrite or not (path.is_file() and path.stat().st_size == size)

    jobs: list[_Job] = []
    model_size = lm_file_size(config, quant)
    if stale(model, model_size):
        jobs.append(
            _Job(model, model_size, lambda p, cb: write_lm(p, config, quant, seed, progress=cb))
        )
    mimi_size = mimi_file_size(PUBLISHED_CODEBOOKS)
    if stale(mimi, mimi_size):
        jobs.append(_Job(mimi, mimi_size, _mimi_writer(cached_mimi, mimi_size, seed)))
    tok_bytes = text_tokenizer_bytes(config.text_card)
    if stale(tokenizer, len(tok_bytes)) or tokenizer.read_bytes() != tok_bytes:
        jobs.append(_Job(tokenizer, len(tok_bytes), lambda p, cb: p.write_bytes(tok_bytes)))
    if config_file is None:
        # A moshiko folder must not keep another architecture's config: loaders would use it.
        (folder / CONFIG_FILENAME).unlink(missing_ok=True)
    elif overwrite or not _config_matches(config_file, config):
        size = len(json.dumps(config.to_dict(), indent=2))  # only used for progress
        jobs.append(_Job(config_file, size, lambda p, cb: config.write(p)))

    _check_disk(jobs, cached_mimi)
    total = sum(job.size for job in jobs)
    done = 0
    for job in jobs:

        def report(n: int, _total: int, base: int = done) -> None:
            if progress is not None:
                progress(base + n, total)

        _atomic(job.path, lambda p, job=job, report=report: job.write(p, report))
        done += job.size
        if progress is not None:
            progress(done, total)

    return SyntheticCheckpoint(
        folder=folder,
        config_name=config_name,
        config=config,
        quant=quant,
        model=model,
        mimi=mimi,
        text_tokenizer=tokenizer,
        config_file=config_file,
        written=tuple(job.path for job in jobs),
    )


@dataclass(frozen=True)
class _Job:
    path: Path
    size: int
    write: Callable[[Path, Progress], object]  # (destination, progress) -> anything


def _mimi_writer(cached: Path | None, size: int, seed: int) -> Callable[[Path, Progress], object]:
    if cached is None:
        return lambda p, cb: write_mimi(p, seed=seed, progress=cb)

    def write(dest: Path, progress: Progress) -> None:
        if not (cached.is_file() and cached.stat().st_size == size):
            cached.parent.mkdir(parents=True, exist_ok=True)
            _atomic(cached, lambda p: write_mimi(p, seed=seed, progress=progress))
        _link_or_copy(cached, dest)

    return write


def _config_matches(path: Path, config: MoshiConfig) -> bool:
    if not path.is_file():
        return False
    try:
        return MoshiConfig.from_file(path) == config
    except ConfigError:
        return False


def _atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write through `<name>.partial`, renamed into place only once complete."""
    partial = path.with_name(path.name + ".partial")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)  # only left over when the write failed


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:  # another filesystem, or no hard links there
        shutil.copyfile(src, dest)


def _check_disk(jobs: list[_Job], cached_mimi: Path | None) -> None:
    """Refuse before writing anything if a target filesystem lacks room for its files."""
    need: dict[int, tuple[Path, int]] = {}
    for job in jobs:
        path, size = job.path, job.size
        targets = [path.parent]
        if path.name == MIMI_FILENAME and cached_mimi is not None and not cached_mimi.is_file():
            targets.append(_existing_parent(cached_mimi.parent))
        for target in targets:
            dev = target.stat().st_dev
            where, total = need.get(dev, (target, 0))
            need[dev] = (where, total + size)
    for where, total in need.values():
        free = shutil.disk_usage(where).free
        if total > free:
            raise InsufficientDiskError(
                f"needs {total:,} bytes of free disk space, {free:,} available", path=where
            )


def _existing_parent(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path
