"""Synthetic checkpoint folders laid out exactly like the published `kyutai/moshiko-mlx-*` repos.

A folder holds the LM (`model.q4.safetensors`, `model.q8.safetensors` or `model.safetensors`),
the Mimi codec, the SentencePiece text tokenizer, and a `config.json` only when the
architecture is not moshiko v0.1 (the published repos ship none). The LM has random weights;
`quantize.quantize_folder` writes the same layout from a real bf16 checkpoint. Every file is
written to `<name>.partial` and renamed when complete, so an interrupted run never leaves a
file that looks finished. No printing here: callers pass `progress`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ...errors import ConfigError, UsageError
from ..catalogue import CONFIG_FILE, MIMI_FILE, TEXT_TOKENIZER_FILE
from ..config import MOSHIKO_V0_1, PRESET_CONFIGS, MoshiConfig
from ..layout import Quantization, quantization_fits
from ..mimi_layout import PUBLISHED_CODEBOOKS
from ..quantize import quantize_weights
from ..writing import (
    CheckpointFolder,
    Job,
    Progress,
    atomic_write,
    check_disk,
    link_or_copy,
    model_filename,
    run_jobs,
    staged_folder,
)
from .lm import lm_file_size, write_lm
from .mimi import mimi_file_size, write_mimi
from .text_tokenizer import text_tokenizer_bytes

# Quantized models of architectures up to this bf16 size are derived from the seed's bf16
# weights by default: quantized like the published q4 and q8 were from one bf16 model, they
# follow the seed's bf16 model the way the real ones follow theirs (so `assistant bench`
# agreement figures mean something). Full-size moshiko would first need its 15.4 GB of random
# bf16 generated, written and read back (several times the direct write's time, and 15 GB more
# disk) for weights that are random anyway, so its q4 and q8 are written directly: the same
# layout and sizes, independent values.
DERIVE_MAX_BF16_BYTES = 1_000_000_000


def cached_mimi_path(cache_dir: str | Path, seed: int = 0) -> Path:
    """Where `make_checkpoint(..., cache_dir=...)` keeps the Mimi file it shares."""
    return Path(cache_dir) / f"mimi-seed{seed}" / MIMI_FILE


def derives_by_default(config: MoshiConfig) -> bool:
    """Whether `make_checkpoint` quantizes the seed's bf16 weights for this architecture."""
    return lm_file_size(config, None) <= DERIVE_MAX_BF16_BYTES


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
) -> CheckpointFolder:
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
    final = Path(folder)
    with staged_folder(final) as folder:
        made = _write_checkpoint(
            folder, config_name, config, quant, seed, overwrite, cache_dir, progress, derive
        )
    return made.moved(folder, final)


def _write_checkpoint(
    folder: Path,
    config_name: str,
    config: MoshiConfig,
    quant: Quantization | None,
    seed: int,
    overwrite: bool,
    cache_dir: str | Path | None,
    progress: Progress | None,
    derive: bool | None,
) -> CheckpointFolder:

    model = folder / model_filename(quant)
    mimi = folder / MIMI_FILE
    tokenizer = folder / TEXT_TOKENIZER_FILE
    config_file = None if config == MOSHIKO_V0_1 else folder / CONFIG_FILE
    cached_mimi = None if cache_dir is None else cached_mimi_path(cache_dir, seed)

    def stale(path: Path, size: int) -> bool:
        return overwrite or not (path.is_file() and path.stat().st_size == size)

    jobs: list[Job] = []
    model_size = lm_file_size(config, quant)
    if stale(model, model_size):
        if derive is None:
            derive = derives_by_default(config)
        jobs.append(_lm_job(model, config, quant, seed, derive=derive))
    mimi_size = mimi_file_size(PUBLISHED_CODEBOOKS)
    if stale(mimi, mimi_size):
        jobs.append(Job(mimi, mimi_size, _mimi_writer(cached_mimi, mimi_size, seed)))
    tok_bytes = text_tokenizer_bytes(config.text_card)
    if stale(tokenizer, len(tok_bytes)) or tokenizer.read_bytes() != tok_bytes:
        jobs.append(Job(tokenizer, len(tok_bytes), lambda p, cb: p.write_bytes(tok_bytes)))
    if config_file is None:
        # A moshiko folder must not keep another architecture's config: loaders would use it.
        (folder / CONFIG_FILE).unlink(missing_ok=True)
    elif overwrite or not _config_matches(config_file, config):
        size = len(json.dumps(config.to_dict(), indent=2))  # only used for progress
        jobs.append(Job(config_file, size, lambda p, cb: config.write(p)))

    check_disk(jobs, cached_mimi)
    run_jobs(jobs, progress)
    return CheckpointFolder(
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


def _lm_job(
    path: Path, config: MoshiConfig, quant: Quantization | None, seed: int, *, derive: bool
) -> Job:
    size = lm_file_size(config, quant)
    if not derive or quant is None:
        return Job(path, size, lambda p, cb: write_lm(p, config, quant, seed, progress=cb))
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
    return Job(path, bf16_size + size, write)


def _mimi_writer(cached: Path | None, size: int, seed: int) -> Callable[[Path, Progress], object]:
    if cached is None:
        return lambda p, cb: write_mimi(p, seed=seed, progress=cb)

    def write(dest: Path, progress: Progress) -> None:
        if not (cached.is_file() and cached.stat().st_size == size):
            cached.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(cached, lambda p: write_mimi(p, seed=seed, progress=progress))
        link_or_copy(cached, dest)

    return write


def _config_matches(path: Path, config: MoshiConfig) -> bool:
    if not path.is_file():
        return False
    try:
        return MoshiConfig.from_file(path) == config
    except ConfigError:
        return False
