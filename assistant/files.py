"""Opening the files a user names without ever hanging on them.

Opening a FIFO for reading blocks until a writer appears, and reading a character device such
as /dev/zero never ends, so every file the assistant reads by name (checkpoints, configs,
tokenizers, audio) goes through here first: it must be a regular file (symbolic links to one,
as in the Hugging Face cache, are fine). `open_regular` checks the type on the open
descriptor itself (opened non-blocking), so nothing can be swapped in between the check and
the read; `require_regular` is the check alone, for paths handed to libraries that open them
themselves (MLX, rustymimi, sphn).

Every file read by name is remembered (device, inode, modification time, size), so that no
command ever writes over a file it reads, whatever path reaches it (a symbolic link, a hard
link, a relative path): `replace_atomically` refuses such a target, and otherwise writes
beside the target and renames, so a failure leaves the old file whole.

The writing side, `AppendOnlyFile`, keeps the assistant's own record files whole when the
disk fills up.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from io import BufferedReader
from pathlib import Path

from .errors import AssistantError


def describe_type(mode: int) -> str:
    """What a non-regular file is, in words."""
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((what for test, what in kinds if test(mode)), "not a regular file")


def _reason(e: OSError) -> str:
    return e.strerror or type(e).__name__


# What this process has read by name. The time and size make a reused inode (a file deleted,
# another created) a different file.
_read: set[tuple[int, int, int, int]] = set()


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def _note_read(st: os.stat_result) -> os.stat_result:
    _read.add(_identity(st))
    return st


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths reach the same file (links and relative paths followed)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def was_read(path: str | Path) -> bool:
    """Whether `path` (followed) is a file this process read by name."""
    try:
        return _identity(os.stat(path)) in _read
    except OSError:
        return False


def replace_atomically(
    path: str | Path,
    write: Callable[[Path], object],
    error: type[AssistantError] = AssistantError,
) -> None:
    """`write` a new file beside `path`, then rename it over `path`: never a file this process
    read (`error` naming it), and a failed write leaves what was there whole."""
    path = Path(path)
    if was_read(path):
        raise error(
            "is a file this command reads; writing there would destroy it (choose another)",
            path=path,
        )
    partial = partial_path(path)
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        with contextlib.suppress(OSError):
            partial.unlink()  # only there when the write or the rename failed


def partial_path(path: Path) -> Path:
    """Where a new version of `path` is written before it replaces it."""
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


def require_regular(
    path: str | Path, error: type[AssistantError] = AssistantError, *, what: str = "file"
) -> os.stat_result:
    """`path`'s status if it is a regular file (following links), else `error` naming it."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise error(f"broken link: the {what} it points to does not exist", path=path) from None
        raise error(f"no such {what}", path=path) from None
    except OSError as e:
        raise error(f"cannot read: {_reason(e)}", path=path) from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"is {describe_type(st.st_mode)}, not a regular {what}", path=path)
    return _note_read(st)


def open_regular(
    path: str | Path, error: type[AssistantError] = AssistantError, *, what: str = "file"
) -> BufferedReader:
    """`path` opened for binary reading, refusing anything but a regular file.

    The open itself is non-blocking (a FIFO would otherwise block here) and the type is read
    from the open descriptor, then blocking mode is restored for ordinary reads.
    """
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        require_regular(path, error, what=what)  # says "no such" or "broken link"
        raise error(f"no such {what}", path=path) from None
    except IsADirectoryError:
        raise error(f"is a folder, not a regular {what}", path=path) from None
    except OSError as e:
        raise error(f"cannot read: {_reason(e)}", path=path) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"is {describe_type(st.st_mode)}, not a regular {what}", path=path)
        _note_read(st)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise


def read_regular(
    path: str | Path,
    max_bytes: int,
    error: type[AssistantError] = AssistantError,
    *,
    what: str = "file",
) -> bytes:
    """The whole content of a regular file no larger than `max_bytes`."""
    with open_regular(path, error, what=what) as f:
        try:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise error(
                    f"is {size:,} bytes, too large for a {what} (at most {max_bytes:,})", path=path
                )
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise error(f"cannot read: {_reason(e)}", path=path) from None
    if len(data) > max_bytes:  # grew while being read
        raise error(f"too large for a {what} (at most {max_bytes:,} bytes)", path=path)
    return data


class AppendOnlyFile:
    """A record file written in whole flushes: it never ends in half a record.

    Text is kept in memory until `flush`, which appends it with plain `os.write`s (no hidden
    buffer that could be written later); when a write fails (a full disk), the file is cut
    back to where the last complete flush ended and the error is raised, so what is on disk
    always parses. A new file is created with `mode` (the assistant's records: 0600).
    """

    def __init__(self, path: str | Path, *, truncate: bool = False, mode: int = 0o600) -> None:
        self.path = Path(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        self._fd: int | None = os.open(self.path, flags | (os.O_TRUNC if truncate else 0), mode)
        self._good = os.fstat(self._fd).st_size
        self._pending: list[str] = []

    @property
    def closed(self) -> bool:
        return self._fd is None

    def write(self, text: str) -> None:
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        self._pending.append(text)

    def flush(self) -> None:
        fd = self._fd
        if fd is None or not self._pending:
            return
        data = memoryview("".join(self._pending).encode("utf-8"))
        self._pending.clear()
        try:
            while data:
                data = data[os.write(fd, data) :]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._good)
            raise
        self._good = os.fstat(fd).st_size

    def close(self) -> None:
        """Flush what is pending (raising if that fails) and close, whatever happens."""
        if self._fd is None:
            return
        try:
            self.flush()
        finally:
            self._pending.clear()
            fd, self._fd = self._fd, None
            os.close(fd)
