"""Synthetic checkpoint folders laid out exactly like the published `kyutai/moshiko-mlx-*` repos.

A folder holds the LM (`model.q4.safetensors`, `model.q8.safetensors` or `model.safetensors`),
the Mimi codec, the SentencePiece text tokenizer, and a `config.json` only when the
architecture is not moshiko v0.1 (the published repos ship none). The LM has random weights
(`make_checkpoint`) or is an existing bf16 checkpoint quantized (`quantize_folder`). Every file
is written to `<name>.partial` and renamed when complete, so an interrupted run never leaves a
file that looks finished. No printing here: callers pass `progress`.
"""

from __future__ import annotations

import filecmp
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
from ..quantize import check_source, check_target, quantize_weights
from ..resolve import CheckpointSpec, resolve
from ..validate import inspect_checkpoint, require_valid
from .lm import lm_file_size, write_lm
from .mimi import mimi_file_size, write_mimi
from .text_tokenizer import text_tokenizer_bytes

MIMI_FILENAME = "tokenizer-e351c8d8-checkpoint125.safetensors"
TEXT_TOKENIZER_FILENAME = "tokenizer_spm_32k_3.model"
CONFIG_FILENAME = "config.json"

# As published: 4-bit with groups of 32, 8-bit with groups of 64, or plain bfloat16.
QUANT_PRESETS: dict[str, Quantization | None] = PUBLISHED_QUANTIZATIONS

Progress = Callable[[int, int], None]

# Quantized models of architectures up to this bf16 size are derived from the seed's bf16
# weights by default: quantized like the published q4 and q8 were from one bf16 model, they
# follow the seed's bf16 model the way the real ones follow theirs (so `assistant bench`
# agreement figures mean something). Full-size moshiko would first need its 15.4 GB of random
# bf16 generated, written and read back (several times the direct write's time, and 15 GB more
# disk) for weights that are random anyway, so its q4 and q8 are written directly: the same
# layout and sizes, independent values.
DERIVE_MAX_BF16_BYTES = 1_000_000_000


@dataclass(frozen=True)
class SyntheticCheckpoint:
    """Paths of a synthetic checkpoint folder and what this call wrote into it."""

    folder: Path
    config_name: str
    config: MoshiConfig
    quant: Quantization | None
    model: Path
    mimi: Path | None  # None only when quantized from a source without one
    text_tokenizer: Path | None
    config_file: Path | None
    written: tuple[Path, ...]  # files (re)written by this call; the others were already there
    source: Path | None = None  # the bf16 model file quantized (`quantize_folder`), if any

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


def derives_by_default(config: MoshiConfig) -> bool:
    """Whether `make_checkpoint` quantizes the seed's bf16 weights for this architecture."""
    return lm_file_size(config, None) <= DERIVE_MAX_BF16_BYTES


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
    derive: bool | None = None,
) -> SyntheticCheckpoint:
    """Write (or complete) a synthetic checkpoint folder; returns its paths.

    Files already present with the right size are kept unless `overwrite`. With `cache_dir`,
    the Mimi file (the same for every variant) is written there once and hard-linked (or
    copied) into the folder, which stays self-contained either way. `progress(done, total)`
    is called with bytes over all files this call writes.

    A q4/q8 model is the seed's bf16 model quantized when `derive` is true, independent random
    quantized weights when false; None (the default) derives for small architectures only
    (see DERIVE_MAX_BF16_BYTES).
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
        if derive is None:
            derive = derives_by_default(config)
        jobs.append(_lm_job(model, config, quant, seed, derive=derive))
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
    _run(jobs, progress)
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


def quantize_folder(
    folder: str | Path,
    source: str | Path,
    quant: Quantization,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> SyntheticCheckpoint:
    """Write the bf16 checkpoint `source` quantized to `quant` into `folder`; returns its paths.

    `source` is a checkpoint folder (its `model.safetensors` when it holds several models), a
    model file (its folder supplies the rest) or a cached preset such as `moshiko-bf16`. The
    model is quantized as the published q4/q8 were (`quantize.quantize_weights`); the source's
    Mimi codec, text tokenizer and config.json are hard-linked (or copied) in under the
    published names. Every header is checked before anything is written. The model is always
    rewritten (a file of the right size may come from another source); companions already
    identical to the source's are kept unless `overwrite`.
    """
    files = resolve(CheckpointSpec(target=str(source), quant="bf16"))
    report = inspect_checkpoint(files)
    info = check_source(report.model)
    require_valid(report)  # the Mimi codec and text tokenizer too
    folder = Path(folder)
    model = folder / model_filename(quant)
    check_target(info, model, quant)
    config = info.config
    folder.mkdir(parents=True, exist_ok=True)

    def quantize(dest: Path, cb: Progress) -> None:
        quantize_weights(files.model, dest, config, quant, cb)

    jobs = [_Job(model, lm_file_size(config, quant), quantize)]
    copies = {
        MIMI_FILENAME: files.mimi,
        TEXT_TOKENIZER_FILENAME: files.text_tokenizer,
        CONFIG_FILENAME: files.config,
    }
    for name, src in copies.items():
        if src is not None and (overwrite or not _same_content(src, folder / name)):
            jobs.append(
                _Job(folder / name, src.stat().st_size, lambda p, cb, s=src: _link_or_copy(s, p))
            )
    if files.config is None:
        # No config.json means moshiko v0.1: another architecture's config must not stay.
        (folder / CONFIG_FILENAME).unlink(missing_ok=True)
    _check_disk(jobs, None)
    _run(jobs, progress)

    def copied(name: str) -> Path | None:
        return None if copies[name] is None else folder / name

    return SyntheticCheckpoint(
        folder=folder,
        config_name=next((n for n, c in PRESET_CONFIGS.items() if c == config), "custom"),
        config=config,
        quant=quant,
        model=model,
        mimi=copied(MIMI_FILENAME),
        text_tokenizer=copied(TEXT_TOKENIZER_FILENAME),
        config_file=copied(CONFIG_FILENAME),
        written=tuple(job.path for job in jobs),
        source=files.model,
    )


@dataclass(frozen=True)
class _Job:
    path: Path
    size: int  # bytes this job writes: for progress and the disk check
    write: Callable[[Path, Progress], object]  # (destination, progress) -> anything


def _run(jobs: list[_Job], progress: Progress | None) -> None:
    """Each job through `<name>.partial`, reporting bytes over all of them."""
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


def _lm_job(
    path: Path, config: MoshiConfig, quant: Quantization | None, seed: int, *, derive: bool
) -> _Job:
    size = lm_file_size(config, quant)
    if not derive or quant is None:
        return _Job(path, size, lambda p, cb: write_lm(p, config, quant, seed, progress=cb))
    bf16_size = lm_file_size(config, None)

    def write(dest: Path, progress: Progress) -> None:
        bf16 = dest.with_name(dest.name + ".bf16")  # not *.safetensors: no loader picks it up
        try:
            write_lm(bf16, config, None, seed, progress=progress)
            quantize_weights(
                bf16, dest, config, quant, lambda n, _t: progress(bf16_size + n, bf16_size + size)
            )
        finally:
            bf16.unlink(missing_ok=True)

    # Both files are on disk at once: the job's size counts both.
    return _Job(path, bf16_size + size, write)


def _mimi_writer(cached: Path | None, size: int, seed: int) -> Callable[[Path, Progress], object]:
    if cached is None:
        return lambda p, cb: write_mimi(p, seed=seed, progress=cb)

    def write(dest: Path, progress: Progress) -> None:
        if not (cached.is_file() and cached.stat().st_size == size):
            cached.parent.mkdir(parents=True, exist_ok=True)
            _atomic(cached, lambda p: write_mimi(p, seed=seed, progress=progress))
        _link_or_copy(cached, dest)

    return write


def _same_content(src: Path, dest: Path) -> bool:
    if not dest.is_file() or dest.stat().st_size != src.stat().st_size:
        return False
    return os.path.samefile(src, dest) or filecmp.cmp(src, dest, shallow=False)


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
