"""The assistant's log: a rotating file in the data folder, readable by the user alone.

The screen gets one line per failure; the log gets the details (tracebacks included).
`chat`, `serve` and the menu bar log from their start (`start`), so a long-running session
leaves a record; any other command only opens it when something unexpected happens, to keep
the traceback the user is told about. Modules log through `logging.getLogger(__name__)` and
never configure logging themselves.

    <data folder>/logs/chat.log, chat.log.1 ... (1 MB each, 3 kept), 0600 in a 0700 folder
"""

from __future__ import annotations

import logging
import os
import sys
from io import TextIOWrapper
from logging.handlers import RotatingFileHandler
from pathlib import Path

from .paths import data_dir, private_dir, private_opener
from .version import assistant_version

MAX_BYTES = 1 << 20
BACKUPS = 3
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"

log = logging.getLogger(__name__)
_active: Path | None = None


def log_dir() -> Path:
    return data_dir() / "logs"


def log_file(name: str) -> Path:
    return log_dir() / f"{name}.log"


class _PrivateRotatingFileHandler(RotatingFileHandler):
    """Every file it opens (the first one and each after a rollover) is created 0600."""

    def _open(self) -> TextIOWrapper:
        return open(  # appending, as RotatingFileHandler always does
            self.baseFilename,
            "a",
            encoding=self.encoding,
            errors=self.errors,
            opener=private_opener,
        )


def start(name: str) -> Path | None:
    """Log to `<data folder>/logs/<name>.log` from now on; the file, or None if it cannot be
    written (the command goes on without a log). Only the first call does anything."""
    global _active
    if _active is not None:
        return _active
    path = log_file(name)
    try:
        private_dir(log_dir())
        handler = _PrivateRotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
        )
        os.chmod(path, 0o600)  # a file left by an older version
    except OSError:
        return None
    handler.setFormatter(logging.Formatter(FORMAT))
    logging.getLogger().addHandler(handler)
    logging.getLogger("assistant").setLevel(logging.INFO)
    # A full disk must not make logging print its own tracebacks on the user's screen.
    logging.raiseExceptions = False
    _active = path
    argv = " ".join(sys.argv[1:])
    log.info("assistant %s %s (pid %d): %s", assistant_version(), name, os.getpid(), argv)
    return path


def active() -> Path | None:
    """The log file in use, if any."""
    return _active


def stop() -> None:
    """Detach and close the log (tests; the process exit does it anyway)."""
    global _active
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _PrivateRotatingFileHandler):
            root.removeHandler(handler)
            handler.close()
    _active = None
