"""The `assistant` command: a thin root; each command group lives in its own module."""

from __future__ import annotations

import os
import sys

import typer

from ..app_settings import apply_settings
from ..console import err_console
from ..errors import AssistantError

app = typer.Typer(
    name="assistant",
    help="A local, hands-free Moshi voice assistant on MLX.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Imported here so `assistant --help` stays fast and each module registers its commands.
    from . import (
        bench,
        chat,
        checkpoints,
        demo,
        devices,
        latency,
        make_checkpoint,
        menubar,
        serve,
        settings,
    )

    modules = (
        checkpoints,
        make_checkpoint,
        chat,
        devices,
        latency,
        demo,
        bench,
        serve,
        menubar,
        settings,
    )
    for module in modules:
        module.register(app)


def debug_enabled() -> bool:
    return os.environ.get("ASSISTANT_DEBUG", "") not in ("", "0", "false")


def main() -> None:
    """Console-script entry point: typed errors become one line and a non-zero exit.

    typer reports its own usage errors (unknown options, bad values) and exits; everything
    the assistant raises on purpose is an AssistantError with a one-line message.
    """
    # Before anything imports huggingface_hub (it reads HF_HOME once): the folders a process
    # without the user's shell (the app, its login item) takes from the settings file.
    apply_settings()
    _register()
    try:
        app()
    except AssistantError as e:
        if debug_enabled():
            raise
        err_console.print(f"[bold red]error:[/] {e}", soft_wrap=True, markup=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as e:  # the edge: an unexpected failure still gets one line
        if debug_enabled():
            raise
        err_console.print(
            f"[bold red]internal error:[/] {type(e).__name__}: {e} "
            "(set ASSISTANT_DEBUG=1 for the traceback)",
            soft_wrap=True,
        )
        sys.exit(1)
