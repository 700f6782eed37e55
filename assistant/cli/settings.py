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
    preference,
    save_preference,
    save_settings,
    settings_file,
)
from ..console import console
from ..errors import UsageError


def register(app: typer.Typer) -> None:
    app.command("settings")(settings)


def settings(
    save: Annotated[
        bool,
        typer.Option(
            "--save",
            help="Record this shell's ASSISTANT_HOME, HF_HOME, HF_HUB_CACHE and ASSISTANT_STT "
            "for the app and its login item.",
        ),
    ] = False,
    retention: Annotated[
        str | None,
        typer.Option(
            help="Keep conversations this long (12h, 30d, 2w; 'forever': the default), "
            "applied after each conversation.",
            show_default=False,
        ),
    ] = None,
    transcribe: Annotated[
        str | None,
        typer.Option(
            help="'background' (the default): write down your side after each conversation; "
            "'off': never.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Show the data and model-cache folders in effect, and where each comes from."""
    path = settings_file()
    if retention is not None:
        from ..history.retention import parse_age

        parse_age(retention)  # a UsageError naming what an age is
        save_preference("retention", retention.strip().lower(), path)
    if transcribe is not None:
        if transcribe not in ("background", "off"):
            raise UsageError(f"--transcribe takes 'background' or 'off', not {transcribe!r}")
        save_preference("transcribe", transcribe, path)
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
    kept = preference("retention", path)
    console.print(
        f"Conversations kept: {'forever' if kept in ('forever', 'never') else kept}; "
        f"your side transcribed: {preference('transcribe', path)} "
        "(--retention, --transcribe to change)",
        soft_wrap=True,
    )
