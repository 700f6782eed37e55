"""Files whose values were already scanned and found sane, so a start need not read them again.

A 385 MB Mimi file takes 0.1-0.4 s to scan on a slow CPU: on every start that is time the
codec's workers need. A file is remembered by what identifies its bytes on this disk (device,
inode, size, modification time to the nanosecond); change any and it is scanned again. The
record lives in the data folder, private; an unreadable record only means a new scan.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import AssistantError
from ..files import read_regular
from ..paths import data_dir, private_dir, private_opener

MAX_ENTRIES = 64
MAX_RECORD_BYTES = 1 << 20  # 64 entries of a path and four numbers


def _record() -> Path:
    return data_dir() / "cache" / "scanned.json"


def _identity(path: Path) -> str:
    st = os.stat(path)
    return f"{os.path.realpath(path)}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}"


def _load() -> list[str]:
    try:  # read like any file: a FIFO or a device there is never waited on
        data = json.loads(read_regular(_record(), MAX_RECORD_BYTES))
    except (AssistantError, ValueError, RecursionError):
        return []
    return [x for x in data if isinstance(x, str)] if isinstance(data, list) else []


def already_scanned(path: Path) -> bool:
    try:
        return _identity(path) in _load()
    except OSError:
        return False


def remember_scanned(path: Path) -> None:
    """Best effort: a failure to remember costs the next start one scan, nothing more."""
    try:
        entries = [e for e in _load() if not e.startswith(f"{os.path.realpath(path)}|")]
        entries = [*entries, _identity(path)][-MAX_ENTRIES:]
        record = _record()
        private_dir(record.parent)
        partial = record.with_name(record.name + ".partial")
        with open(partial, "w", opener=private_opener) as f:
            json.dump(entries, f)
        os.replace(partial, record)
    except OSError:
        pass
