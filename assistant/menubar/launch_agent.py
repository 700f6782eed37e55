"""Launch at login: a per-user LaunchAgent that starts the menu bar when the user logs in.

    ~/Library/LaunchAgents/dev.moshi-assistant.menubar.plist

The agent opens the app by its bundle identifier (`open -b dev.moshi-assistant`), as a click
would: LaunchServices finds the app wherever it was moved (an absolute path breaks after the
move to /Applications), the menu bar comes up exactly as when the user opens it, and macOS
attributes the microphone to the app. Only the app can turn it on: a login item that started
this Python directly would be its own responsible process, which never gets the microphone, so
from a terminal enabling is refused with a pointer to the app. The app rewrites an existing
plist at every start, and "enabled" means the plist says exactly what this app would write
(a stale one, from an older version or another data folder, shows as off). The agent starts
without the user's shell environment: the folders come from the settings file
(app_settings), which enabling updates.

Written with plistlib, atomically (launchd never reads half a file); removed cleanly. The home
folder is a parameter so tests write into a temp folder.
"""

from __future__ import annotations

import contextlib
import os
import plistlib
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..app_settings import APP_BUNDLE_ID, app_bundle, from_environment, save_settings
from ..errors import AssistantError
from ..paths import data_dir

LABEL = "dev.moshi-assistant.menubar"
OPEN = "/usr/bin/open"
NOT_AS_APP = (
    "Launch at login opens Moshi Assistant.app, so only the app can turn it on: build it with "
    "`bash scripts/build_app.sh`, open it, and choose Launch at login in its menu"
)


def menubar_log() -> Path:
    return data_dir() / "logs" / "menubar.log"


@dataclass(frozen=True)
class LaunchAgent:
    home: Path = field(default_factory=Path.home)
    label: str = LABEL
    app: Path | None = field(default_factory=app_bundle)  # the app this runs as, if any

    @property
    def path(self) -> Path:
        return self.home / "Library" / "LaunchAgents" / f"{self.label}.plist"

    def exists(self) -> bool:
        return self.path.is_file()

    def is_enabled(self) -> bool:
        """The plist says exactly what this app would write (a stale one is not enabled)."""
        try:
            with self.path.open("rb") as f:
                return bool(plistlib.load(f) == self.definition())
        except (OSError, ValueError, plistlib.InvalidFileException):
            return False

    @property
    def program(self) -> list[str]:
        return [OPEN, "-b", APP_BUNDLE_ID]

    def definition(self) -> dict[str, Any]:
        """The plist's content: open the app by its bundle identifier once at login."""
        log = str(menubar_log())
        return {
            "Label": self.label,
            "ProgramArguments": self.program,
            "RunAtLoad": True,
            "KeepAlive": False,  # Quit means quit: launchd must not bring it back
            "ProcessType": "Interactive",  # a UI app: no background throttling
            "StandardOutPath": log,
            "StandardErrorPath": log,
        }

    def enable(self) -> Path:
        """Write the plist (replacing any older one); the app starts at the next login. The
        folders this process was given (its environment) are recorded for it. Refused when
        this process is not the app."""
        if self.app is None:
            raise AssistantError(NOT_AS_APP)
        env = from_environment()
        if env:
            save_settings(env)
        menubar_log().parent.mkdir(parents=True, exist_ok=True)  # launchd won't make folders
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.partial")
        with tmp.open("wb") as f:
            plistlib.dump(self.definition(), f, fmt=plistlib.FMT_XML)
        os.replace(tmp, self.path)
        return self.path

    def refresh(self) -> bool:
        """At the app's start: rewrite an existing plist as this app would write it (an older
        version's, one written before the app moved). Whether there was one."""
        if self.app is None or not self.exists():
            return False
        if not self.is_enabled():
            self.enable()
        return True

    def disable(self) -> None:
        """Remove the plist and, on macOS, unload the job if launchd has it loaded."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if sys.platform == "darwin":
            self._bootout()

    def _bootout(self) -> None:
        # launchd sets XPC_SERVICE_NAME to the label of the job it started: booting out our own
        # job would kill this very app. The job never restarts (KeepAlive false) and is gone
        # at logout, so leaving it loaded is harmless.
        if os.environ.get("XPC_SERVICE_NAME") == self.label:
            return
        launchctl = shutil.which("launchctl")
        if launchctl is None:
            return
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [launchctl, "bootout", f"gui/{os.getuid()}/{self.label}"],
                capture_output=True,
                timeout=10,
                check=False,
            )
