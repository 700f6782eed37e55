"""Launch at login: a per-user LaunchAgent that starts the menu bar when the user logs in.

    ~/Library/LaunchAgents/dev.moshi-assistant.menubar.plist

Run as the app ("Moshi Assistant.app"), the agent opens the app (`open -a`), so the menu bar
comes up exactly as when the user opens it, and macOS attributes the microphone to the app.
Run from a terminal, it can only start this Python (`python -m assistant menubar`), which macOS
then asks the microphone for. Either way the agent starts without the user's shell
environment: the folders come from the settings file (app_settings), which enabling updates.

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

from ..app_settings import app_bundle, from_environment, save_settings
from ..paths import data_dir

LABEL = "dev.moshi-assistant.menubar"
OPEN = "/usr/bin/open"


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

    def is_enabled(self) -> bool:
        return self.path.is_file()

    @property
    def program(self) -> list[str]:
        if self.app is not None:
            return [OPEN, "-a", str(self.app)]
        return [sys.executable, "-m", "assistant", "menubar"]

    def definition(self) -> dict[str, Any]:
        """The plist's content: open the app (or run this Python's menu bar) once at login."""
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
        folders this process was given (its environment) are recorded for it."""
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
