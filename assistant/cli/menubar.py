"""`assistant menubar`: the macOS menu-bar app (see assistant/menubar/)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("menubar")(menubar)


def menubar() -> None:
    """The macOS menu-bar app: start and stop, q4/q8, voice, mute, dashboard, launch at login."""
    from ..menubar.app import run_menubar

    run_menubar()
