"""The `assistant` command: a thin root; each command group lives in its own module.

The edge: every failure ends as one line on stderr and a non-zero exit. A typed error
(AssistantError) prints its own message; a command-line mistake typer finds prints its reason;
Ctrl-C or SIGTERM prints "interrupted" / "terminated" (exit 130 / 143); anything unexpected
prints `internal error: ... (details in <log file>)` with the traceback in that log.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import typer
from rich.markup import escape

from .. import interrupts, logs
from ..app_settings import apply_settings, settings_problem
from ..codec import forks as codec_forks
from ..console import err_console
from ..errors import AssistantError
from ..version import assistant_version

app = typer.Typer(
    name="assistant",
    help="A local, hands-free Moshi voice assistant on MLX.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Long-running commands keep a log from their start; the others only on an internal error.
LOGGED_COMMANDS = frozenset({"chat", "serve", "menubar", "demo"})
# Commands that open the Mimi codec: its fork server starts before anything else (start-up
# time: it imports while this process imports and checks the checkpoint).
CODEC_COMMANDS = frozenset({"chat", "demo"})
_MAX_MESSAGE = 400

log = logging.getLogger(__name__)


# Which module holds each command: only the one asked for is imported (start-up time: the
# others pull in the bench, the service, the menu bar ...); help and unknown names get all.
COMMAND_MODULES = {
    "info": "checkpoints",
    "download": "checkpoints",
    "load": "checkpoints",
    "make-checkpoint": "make_checkpoint",
    "chat": "chat",
    "devices": "devices",
    "latency": "latency",
    "demo": "demo",
    "bench": "bench",
    "serve": "serve",
    "ctl": "serve",
    "menubar": "menubar",
    "settings": "settings",
    "history": "history",
    "transcribe": "transcribe",
}


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"assistant {assistant_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
) -> None:
    """A local, hands-free Moshi voice assistant on MLX."""
    # A callback keeps `assistant <command>` a group even when one command is registered.


def _register(command: str | None = None) -> None:
    wanted = COMMAND_MODULES.get(command or "")
    names = [wanted] if wanted else sorted(set(COMMAND_MODULES.values()))
    for name in names:
        importlib.import_module(f"{__name__}.{name}").register(app)


def debug_enabled() -> bool:
    return os.environ.get("ASSISTANT_DEBUG", "") not in ("", "0", "false")


def _command(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 3] + "..."


def _say(label: str, message: str) -> None:
    err_console.print(f"[bold red]{label}:[/] {escape(_one_line(message))}", soft_wrap=True)


def main() -> None:
    """Console-script entry point: run one command, map every way it ends to an exit code."""
    interrupts.install()  # (again: main() may be called directly)
    command = _command(sys.argv[1:])
    code = 0
    try:
        if command in CODEC_COMMANDS and not {"--help", "-h"} & set(sys.argv[1:]):
            codec_forks.prestart()  # (inside: a Ctrl-C while it starts is one line too)
        # Before anything imports huggingface_hub (it reads HF_HOME once): the folders a
        # process without the user's shell (the app, its login item) takes from the settings
        # file.
        apply_settings()
        problem = settings_problem()
        if problem:  # the command still runs, without what the file would have set
            err_console.print(f"[yellow]warning:[/] {escape(problem)}", soft_wrap=True)
        if command is not None or "--version" not in sys.argv[1:]:
            _register(command)  # (the version alone needs no command)
        interrupts.check()  # a signal the imports swallowed ends start-up here
        if command in LOGGED_COMMANDS:
            logs.start(command)
        # standalone_mode=False: typer hands its usage errors to us instead of printing a box,
        # and turns Ctrl-C into a returned 130.
        result = app(standalone_mode=False)
        code = result if isinstance(result, int) else 0
        if code == 130 and interrupts.received is not None:
            err_console.print(interrupts.message())
            code = interrupts.exit_code()
    except AssistantError as e:
        if debug_enabled():
            raise
        log.error("%s", e, exc_info=logs.active() is not None)
        if interrupts.caused_by_signal(e):
            err_console.print(interrupts.message())
            code = interrupts.exit_code()
        else:
            _say("error", str(e))
            code = e.exit_code
    except typer.TyperException as e:  # the command line itself: unknown option, bad value
        code = getattr(e, "exit_code", 2)
        if type(e).__name__ != "NoArgsIsHelpError":  # (its help text is already printed)
            ctx = getattr(e, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            format_message = getattr(e, "format_message", None)
            _say("error", (format_message() if format_message else str(e)) + hint)
    except (KeyboardInterrupt, typer.Abort):  # before typer runs, or an aborted prompt
        err_console.print(interrupts.message())
        code = interrupts.exit_code()
    except Exception as e:  # the edge: an unexpected failure still gets one line
        if debug_enabled():
            raise
        if interrupts.caused_by_signal(e):
            err_console.print(interrupts.message())
            interrupts.finish(interrupts.exit_code())
        path = logs.start(command or "assistant")
        log.exception("internal error")
        where = f"details in {path}" if path else "set ASSISTANT_DEBUG=1 for the traceback"
        _say("internal error", f"{type(e).__name__}: {e} ({where})")
        code = 1
    codec_forks.discard_spares()
    interrupts.finish(code)
