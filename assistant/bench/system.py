"""Machine facts for the report, cold loads (page-cache eviction) and the process's RSS peak."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
import psutil


@dataclass(frozen=True)
class MachineInfo:
    platform: str
    chip: str
    cpu_cores: int
    memory_bytes: int
    mlx_version: str
    mlx_device: str
    python: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"{self.chip}, {self.cpu_cores} cores, {self.memory_bytes / 1024**3:.1f} GiB; "
            f"{self.platform}; MLX {self.mlx_version} on {self.mlx_device}; Python {self.python}"
        )


def machine_info() -> MachineInfo:
    return MachineInfo(
        platform=platform.platform(),
        chip=_chip(),
        cpu_cores=os.cpu_count() or 0,
        memory_bytes=psutil.virtual_memory().total,
        mlx_version=mx.__version__,
        mlx_device=_device(),
        python=platform.python_version(),
    )


def _chip() -> str:
    if sys.platform == "darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()  # e.g. "Apple M2 Pro"
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _device() -> str:
    device = mx.default_device()
    name = "gpu (Metal)" if device.type == mx.gpu else "cpu"
    try:
        if device.type == mx.gpu and mx.metal.is_available():
            arch = mx.metal.device_info().get("architecture")
            if arch:
                name += f", {arch}"
    except (AttributeError, RuntimeError):
        pass
    return name


# Below this size a file can sit whole in a drive's own cache (SSDs carry about 1 GB of DRAM
# per TB) even when the OS's is emptied: its "cold" load says little about the disk.
SMALL_FILE_BYTES = 512 * 1024**2


@dataclass(frozen=True)
class ColdLoad:
    kind: str  # how the cold load was prepared
    doubt: str | None  # why it may still have come from a cache; None when it cannot have


def prepare_cold_load(path: Path) -> ColdLoad:
    """Drop the file's pages from the OS cache so the next read comes from the disk, and say
    how far the next load's time can be trusted as a cold one.

    Linux has posix_fadvise(DONTNEED), which drops clean pages of one file without root;
    macOS has no per-file equivalent.
    """
    if not hasattr(os, "posix_fadvise"):
        return ColdLoad(
            "first load this run (this OS cannot evict one file from its cache)",
            "may have come from the OS cache (this OS cannot evict one file from it)",
        )
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    except OSError as e:
        reason = e.strerror or str(e)
        return ColdLoad(
            f"first load this run (page cache not evicted: {reason})",
            f"may have come from the OS cache (not evicted: {reason})",
        )
    size = path.stat().st_size
    doubt = None
    if size < SMALL_FILE_BYTES:
        doubt = (
            f"the file ({size / 1024**2:.0f} MiB) is small enough to come from the drive's "
            "own cache"
        )
    return ColdLoad("model file evicted from the page cache first (posix_fadvise DONTNEED)", doubt)


def return_freed_heap() -> None:
    """Hand the heap pages freed so far back to the OS, so that a resident-set figure taken
    next starts from what is in use: glibc keeps freed small blocks (a model's many small
    tensors, the previous variant's buffers) and would let the next variant reuse them
    unseen. A no-op where the C library has no malloc_trim (macOS)."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


class RssPeak:
    """The process's resident set size, sampled on a thread; `peak` is the highest seen.

    psutil has no resettable high-water mark on macOS or Linux, so sample it: every 10 ms is
    fine-grained next to a model load, and one sample is a single cheap system call.
    """

    def __init__(self, interval_s: float = 0.01) -> None:
        self._process = psutil.Process()
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.start = self.peak = self._process.memory_info().rss

    def sample(self) -> int:
        rss = self._process.memory_info().rss
        self.peak = max(self.peak, rss)
        return rss

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def __enter__(self) -> RssPeak:
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
