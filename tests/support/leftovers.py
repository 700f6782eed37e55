"""Nothing the tests start may outlive them: servers (the service, PulseAudio, Chromium,
HTTP servers) and whatever those start in turn.

Every process the tests start inherits the session's mark in its environment (set before any
test runs); at the end of the session any process still carrying it, other than pytest
itself, was left behind. Found by that mark and ended by PID, never by name.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid

import psutil

MARK = "ASSISTANT_TEST_SESSION"


def mark_session() -> str:
    """Mark this process's environment; its children inherit the mark."""
    os.environ[MARK] = f"{os.getpid()}-{uuid.uuid4().hex}"
    return os.environ[MARK]


def marked_processes(mark: str) -> list[psutil.Process]:
    """Live processes (not zombies) other than this one whose environment carries `mark`."""
    found = []
    for p in psutil.process_iter():
        if p.pid == os.getpid():
            continue
        try:
            if p.status() != psutil.STATUS_ZOMBIE and p.environ().get(MARK) == mark:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def leftovers(mark: str, grace_s: float = 5.0) -> list[psutil.Process]:
    """What is still running after `grace_s` (servers being stopped get that long to exit)."""
    deadline = time.monotonic() + grace_s
    while (found := marked_processes(mark)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def describe(p: psutil.Process) -> str:
    try:
        return f"pid {p.pid}: {' '.join(p.cmdline())[:200]}"
    except psutil.Error:
        return f"pid {p.pid} (gone)"


def end(processes: list[psutil.Process]) -> None:
    """Terminate, then kill what remains, by PID."""
    for p in processes:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(processes, timeout=3)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=3)
