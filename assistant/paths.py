"""Where the assistant keeps its own files (sessions, recordings, the log), kept private.

`ASSISTANT_HOME` overrides the platform's user data folder (tests point it at a temp dir); for
the app and its login item, which have no shell environment, the settings file can too.
Recordings and transcripts are personal: every folder the assistant makes here is 0700 and
every file it writes 0600, whatever the umask. The data folder itself is made private when
the assistant creates it (or it is the platform's default); an existing folder named by
`ASSISTANT_HOME` keeps its mode, its contents are private all the same.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from datetime import datetime
from pathlib import Path

import platformdirs

from .app_settings import APP_NAME, setting
from .errors import StorageError

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def data_dir() -> Path:
    override = setting("ASSISTANT_HOME")  # the environment's, else the settings file's
    return Path(override).expanduser() if override else platformdirs.user_data_path(APP_NAME)


def sessions_dir() -> Path:
    return data_dir() / "sessions"


def private_opener(path: str, flags: int) -> int:
    """For `open(..., opener=private_opener)`: a new file is created 0600."""
    return os.open(path, flags, PRIVATE_FILE_MODE)


def make_private(path: Path) -> None:
    """Tighten an existing file (0600) or folder (0700) of ours."""
    os.chmod(path, PRIVATE_DIR_MODE if path.is_dir() else PRIVATE_FILE_MODE)


def private_dir(folder: Path) -> Path:
    """`folder` under the data folder, created if needed, 0700. Raises OSError."""
    root = data_dir()
    if not root.exists() or not setting("ASSISTANT_HOME"):
        root.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
        with contextlib.suppress(OSError):  # not ours to change (another owner): leave it
            make_private(root)
    folder.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    make_private(folder)
    return folder


def require_writable_sessions() -> Path:
    """The sessions folder, private and proven writable, or StorageError naming it: checked
    before a model is loaded, not after."""
    folder = sessions_dir()
    try:
        private_dir(folder)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise StorageError(
            f"cannot save conversations here ({e.strerror or e})",
            path=folder,
            hint="set ASSISTANT_HOME to a folder you can write",
        ) from None
    return folder


def new_session_dir(kind: str) -> Path:
    """A fresh, uniquely named folder for one conversation, e.g. `2026-11-22_14-03-05-demo`."""
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    base = require_writable_sessions() / f"{stamp}-{kind}"
    folder, n = base, 1
    while True:
        try:
            folder.mkdir(mode=PRIVATE_DIR_MODE)
            break
        except FileExistsError:
            n += 1
            folder = base.with_name(f"{base.name}-{n}")
        except OSError as e:
            reason = e.strerror or str(e)
            raise StorageError(f"cannot create a session folder ({reason})", path=folder) from None
    make_private(folder)  # mkdir's mode is filtered by the umask
    return folder
