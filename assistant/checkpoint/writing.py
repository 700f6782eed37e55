"""Writing checkpoint folders: the published file names, and jobs that write each file through
`<name>.partial` (renamed only once complete) after checking the disk has room for all of them.
A new folder is written beside its final name and renamed into place once complete
(`staged_folder`), so an interrupted run never leaves a folder that looks like a checkpoint.

Shared by the synthetic checkpoints (`synthetic.checkpoint`) and quantization (`quantize`).
"""

from __future__ import annotations

import contextlib
import filecmp
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import InsufficientDiskError, UsageError
from .catalogue import MIMI_FILE
from .config import MoshiConfig
from .layout import PUBLISHED_QUANTIZATIONS, Quantization

# As published: 4-bit with groups of 32, 8-bit with groups of 64, or plain bfloat16.
QUANT_PRESETS: dict[str, Quantization | None] = PUBLISHED_QUANTIZATIONS

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class CheckpointFolder:
    """Paths of a checkpoint folder written here (synthetic or quantized) and what this call
    wrote into it."""

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

    def moved(self, stage: Path, folder: Path) -> CheckpointFolder:
        """The same checkpoint with paths under `stage` (where it was written) now under
        `folder` (where it was renamed to)."""

        def move(p: Path) -> Path:
            return folder / p.name if p.parent == stage else p

        def maybe(p: Path | None) -> Path | None:
            return None if p is None else move(p)

        return replace(
            self,
            folder=folder,
            model=move(self.model),
            mimi=maybe(self.mimi),
            text_tokenizer=maybe(self.text_tokenizer),
            config_file=maybe(self.config_file),
            written=tuple(move(p) for p in self.written),
        )


@contextlib.contextmanager
def staged_folder(folder: Path) -> Iterator[Path]:
    """Where to write the checkpoint folder `folder`. A new one is written in a hidden sibling
    (`.<name>.*.partial`) renamed to `folder` only once the block completes, and removed if it
    does not (an error, Ctrl-C). An existing folder is written in place: each of its files is
    replaced whole, so it is never left with a half-written one."""
    if folder.exists():
        yield folder
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    try:
        yield stage
        os.chmod(stage, 0o755)  # mkdtemp's 0700 is for the scratch space, not the result
        os.rename(stage, folder)
    finally:
        shutil.rmtree(stage, ignore_errors=True)  # only still there if the block failed


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


@dataclass(frozen=True)
class Job:
    path: Path
    size: int  # bytes this job writes: for progress and the disk check
    write: Callable[[Path, Progress], object]  # (destination, progress) -> anything


def run_jobs(jobs: list[Job], progress: Progress | None) -> None:
    """Each job through `<name>.partial`, reporting bytes over all of them."""
    total = sum(job.size for job in jobs)
    done = 0
    for job in jobs:

        def report(n: int, _total: int, base: int = done) -> None:
            if progress is not None:
                progress(base + n, total)

        def write(path: Path, job: Job = job, report: Progress = report) -> object:
            return job.write(path, report)

        atomic_write(job.path, write)
        done += job.size
        if progress is not None:
            progress(done, total)


def same_content(src: Path, dest: Path) -> bool:
    if not dest.is_file() or dest.stat().st_size != src.stat().st_size:
        return False
    return os.path.samefile(src, dest) or filecmp.cmp(src, dest, shallow=False)


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write through `<name>.partial`, renamed into place only once complete."""
    partial = path.with_name(path.name + ".partial")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)  # only left over when the write failed


def link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:  # another filesystem, or no hard links there
        shutil.copyfile(src, dest)


def check_disk(jobs: list[Job], cached_mimi: Path | None) -> None:
    """Refuse before writing anything if a target filesystem lacks room for its files."""
    need: dict[int, tuple[Path, int]] = {}
    for job in jobs:
        path, size = job.path, job.size
        targets = [path.parent]
        if path.name == MIMI_FILE and cached_mimi is not None and not cached_mimi.is_file():
            targets.append(existing_parent(cached_mimi.parent))
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


def existing_parent(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path
