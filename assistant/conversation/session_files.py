"""What a conversation's folder holds, and the lock that says who is using it.

One home for the file names, shared by the writer (`session.py`), the history that reads the
folders back, and the transcriber. The lock is an advisory `flock` on `.lock` in the folder:
the recording holds it exclusively for as long as it writes; a player or the transcriber holds
it shared. The kernel drops it when a process dies, so a killed chat never leaves a folder
looking busy.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from ..paths import PRIVATE_FILE_MODE

USER_WAV = "user.wav"  # what the microphone heard
USER_AEC_WAV = "user_aec.wav"  # the same after echo cancellation (only with it on)
MOSHI_WAV = "moshi.wav"
TRANSCRIPT_TXT = "transcript.txt"
TRANSCRIPT_JSON = "transcript.json"  # both sides, written once the user's side is transcribed
FRAMES = "frames.jsonl"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
TRACE = "trace.json"
LOCK = ".lock"
# In the sessions folder: held shared by every conversation being recorded, so "is any
# conversation running?" is one non-blocking try (the background transcriber waits on it).
RECORDING_LOCK = ".recording"
# Everything a conversation's folder may hold (besides `<name>.partial` while one is written).
SESSION_FILES = frozenset(
    {USER_WAV, USER_AEC_WAV, MOSHI_WAV, TRANSCRIPT_TXT, TRANSCRIPT_JSON}
    | {FRAMES, METRICS, SUMMARY, TRACE, LOCK}
)
PARTIAL_SUFFIX = ".partial"


def is_session_file(name: str) -> bool:
    return name in SESSION_FILES or (
        name.endswith(PARTIAL_SUFFIX) and name[: -len(PARTIAL_SUFFIX)] in SESSION_FILES
    )


class Busy(Exception):
    """The folder is in use: `what` says by whom ("being recorded", "in use")."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(what)


def _open_lock(folder: Path, name: str = LOCK) -> int:
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    return os.open(folder / name, flags, PRIVATE_FILE_MODE)


def hold_recording(folder: Path) -> list[int]:
    """Take the folder for recording (exclusive) and mark a conversation running in the
    sessions folder (shared); released by `release` or the process's end."""
    fd = _open_lock(folder)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise Busy("in use by another process") from None
    held = [fd]
    try:
        running = _open_lock(folder.parent, RECORDING_LOCK)
        held.append(running)
        fcntl.flock(running, fcntl.LOCK_SH)  # only a quick test ever holds it exclusively
    except OSError:
        pass  # the marker is an optimisation for the transcriber's wait, not a guard
    return held


def release(fds: int | list[int]) -> None:
    for fd in [fds] if isinstance(fds, int) else fds:
        with contextlib.suppress(OSError):
            os.close(fd)  # closing drops the flock


def any_recording(root: Path) -> bool:
    """Whether a conversation is being recorded under the sessions folder `root`."""
    try:
        fd = _open_lock(root, RECORDING_LOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        release(fd)


def using(folder: Path) -> contextlib.AbstractContextManager[None]:
    """Read the folder (play, transcribe): shared, refused while it is being recorded."""
    return _held(folder, fcntl.LOCK_SH, lambda: "being recorded")


def owning(folder: Path) -> contextlib.AbstractContextManager[None]:
    """Change the folder (delete it): exclusive, refused while anyone records or reads it."""
    return _held(folder, fcntl.LOCK_EX, lambda: recording_or_use(folder))


@contextlib.contextmanager
def _held(folder: Path, operation: int, why: Callable[[], str]) -> Iterator[None]:
    try:
        fd = _open_lock(folder)
    except OSError:
        yield  # a read-only folder cannot be recorded into either
        return
    try:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
        except OSError:
            raise Busy(why()) from None
        yield
    finally:
        release(fd)


def is_recording(folder: Path) -> bool:
    """Whether a live conversation holds the folder (a shared hold fails only then)."""
    if not (folder / LOCK).exists():
        return False
    try:
        with using(folder):
            return False
    except Busy:
        return True


def recording_or_use(folder: Path) -> str:
    return "being recorded" if is_recording(folder) else "being played or transcribed"
