"""`assistant settings`: the folders the app and its login item use (they have no shell)."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.table import Table

from ..app_settings import (
    VARIABLES,
    applied_from_file,
    from_environment,
    save_settings,
    settings_file,
)
from ..console import console


def register(app: typer.Typer) -> None:
    app.command("settings")(settings)


def settings(
    save: Annotated[
        bool,
        typer.Option(
            "--save",
            help="Record this shell's ASSISTANT_HOME, HF_HOME and HF_HUB_CACHE for the app and "
            "its login item.",
        ),
    ] = False,
) -> None:
    """Show the data and model-cache folders in effect, and where each comes from."""
    path = settings_file()
    if save:
        values = from_environment()
        save_settings(values, path)
        recorded = ", ".join(f"{k}={v}" for k, v in values.items()) or "nothing (none is set)"
        console.print(f"Recorded in {path}: {recorded}", soft_wrap=True)
    from_file = applied_from_file()
    table = Table(title=f"Folders ({path})", title_justify="left")
    table.add_column("variable")
    table.add_column("value")
    table.add_column("from")
    for name in VARIABLES:
        value = os.environ.get(name)
        if not value:
            table.add_row(name, "-", "default")
        else:
            table.add_row(name, value, "settings file" if name in from_file else "environment")
    console.print(table, soft_wrap=True)
