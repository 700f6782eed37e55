"""Files a whole test run shares: made once, by the first test process that needs them, and
reused by every other (pytest-xdist workers, and both phases of scripts/test.sh). A file lock
makes the others wait for the one making it; a file appears whole (written aside, renamed), so
one found is finished. Treat them as read-only."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# scripts/test.sh points this at a folder of its own for the run, so that its two pytest runs
# share one set; without it, one pytest run (all its workers) shares its own.
RUN_FOLDER_ENV = "ASSISTANT_TEST_SHARED"


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder this run's shared files live in."""
    given = os.environ.get(RUN_FOLDER_ENV)
    if given:
        folder = Path(given)
    else:
        base = tmp_path_factory.getbasetemp()
        # An xdist worker's temp folder is inside the run's: share that one.
        folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Held by one process at a time (an advisory lock on `path`.lock)."""
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def made_once(path: Path, make: Callable[[Path], object]) -> Path:
    """`path`, made by `make(path)` unless a process of this run already made it. `make` must
    leave nothing at `path` unless it finished (writes aside and renames)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path):
        if not path.exists():
            make(path)
    return path
