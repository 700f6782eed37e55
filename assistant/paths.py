"""Where the assistant keeps its own files (sessions, recordings).

`ASSISTANT_HOME` overrides the platform's user data folder (tests point it at a temp dir); for
the app and its login item, which have no shell environment, the settings file can too.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import platformdirs

from .app_settings import APP_NAME, setting


def data_dir() -> Path:
    override = setting("ASSISTANT_HOME")  # the environment's, else the settings file's
    return Path(override).expanduser() if override else platformdirs.user_data_path(APP_NAME)


def sessions_dir() -> Path:
    return data_dir() / "sessions"


def new_session_dir(kind: str) -> Path:
    """A fresh, uniquely named folder for one conversation, e.g. `2026-11-22_14-03-05-demo`."""
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    base = sessions_dir() / f"{stamp}-{kind}"
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    folder.mkdir(parents=True)
    return folder
