"""Who macOS asks for the microphone, so a silent microphone's hint can name it.

macOS asks the *responsible* process: the app the user started, which child processes inherit.
From a terminal that is the terminal app; from "Moshi Assistant.app" (its native launcher
starts Python as a child) it is the app; a login item that runs Python directly is Python.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from ..app_settings import app_bundle

# TERM_PROGRAM values of common terminals, and the name System Settings lists them by.
TERMINALS = {
    "Apple_Terminal": "Terminal",
    "iTerm.app": "iTerm",
    "vscode": "Visual Studio Code",
    "WezTerm": "WezTerm",
    "ghostty": "Ghostty",
    "WarpTerminal": "Warp",
    "Hyper": "Hyper",
    "Tabby": "Tabby",
    "kitty": "kitty",
    "alacritty": "Alacritty",
}


def microphone_owner(environ: Mapping[str, str] | None = None) -> str:
    """The name System Settings > Privacy & Security > Microphone lists for this process."""
    env = os.environ if environ is None else environ
    app = app_bundle(env)
    if app is not None:
        return app.stem  # ".../Moshi Assistant.app" -> "Moshi Assistant"
    term = env.get("TERM_PROGRAM")
    if term:
        return TERMINALS.get(term, term)
    job = env.get("XPC_SERVICE_NAME", "0")
    if job not in ("", "0") and not job.startswith("application."):
        # A launchd job (a login item) running Python itself: Python is responsible.
        return f"Python ({sys.executable})"
    return "your terminal app (Terminal, iTerm...)"


def permission_hint(platform: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """What to check when the microphone delivers only silence."""
    check = "check the input device (`assistant devices`) and that it is not muted"
    if (platform or sys.platform) != "darwin":
        return check
    owner = microphone_owner(environ)
    return (
        "on macOS a missing microphone permission looks exactly like this: open System Settings "
        f"> Privacy & Security > Microphone and allow {owner}, then start it again; otherwise "
        + check
    )
