"""`assistant history`: past conversations, listed, shown, played, searched, exported, deleted.

Conversations are named by id (the first column of the list; a unique prefix will do), never
by path. A damaged folder is listed with what is wrong and never breaks the list.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..console import console, err_console
from ..errors import UnknownSessionError, UsageError
from ..history import store, transcripts
from ..history.retention import parse_age, prune
from ..history.search import lines_of, search

history_app = typer.Typer(
    name="history",
    help="Past conversations: list (the default), show, play, search, export, delete, prune.",
    invoke_without_command=True,
    no_args_is_help=False,
)

SCREEN_LIMIT = 50
NARROW = 110  # columns: below this the list leaves out the start time (the id has it)
IdArgument = Annotated[str, typer.Argument(help="The conversation's id (or a unique prefix).")]


def register(app: typer.Typer) -> None:
    app.add_typer(history_app)


@history_app.callback()
def history(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=1_000_000,
            help="Show at most this many, newest first (default: 50 on screen, all in --json).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Past conversations, newest first (`assistant history --help` for the commands)."""
    if ctx.invoked_subcommand is not None:
        return
    found = store.list_conversations()
    if as_json:
        print(json.dumps([c.to_dict() for c in found[:limit]], indent=1))
        return
    more = len(found) - (limit or SCREEN_LIMIT)
    found = found[: limit or SCREEN_LIMIT]
    if not found:
        console.print(f"No conversations yet in {store.sessions_dir()}.", soft_wrap=True)
        return
    # Plain aligned columns: the first words take what the terminal's width leaves.
    rows = [_row(c) for c in found]
    headers: tuple[str, ...] = ("id", "started", "length", "voice", "words", "delay", "first words")
    if console.width < NARROW:  # the id holds the start time already
        rows = [r[:1] + r[2:] for r in rows]
        headers = headers[:1] + headers[2:]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers[:-1])]
    room = max(10, console.width - sum(widths) - 2 * len(widths))

    def line(cells: tuple[str, ...]) -> str:
        fixed = "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False))
        last = cells[-1] if len(cells[-1]) <= room else cells[-1][: room - 1] + "…"
        return f"{fixed}  {last}"

    console.print(f"Conversations in {store.sessions_dir()}", soft_wrap=True, markup=False)
    console.print(line(headers), style="bold", markup=False, soft_wrap=True)
    for c, row in zip(found, rows, strict=True):
        style = "yellow" if c.problems else None
        console.print(line(row), style=style, markup=False, soft_wrap=True)
    if more > 0:
        console.print(f"... and {more} older (--limit N shows more)")
    console.print(
        "[dim]words: yours/Moshi's (- not transcribed yet); delay: mic to speaker, p50/p95 ms[/]"
    )


def _row(c: store.Conversation) -> tuple[str, ...]:
    problems = "; ".join(c.problems)
    if not c.is_conversation:
        return (c.id, _when(c.started, short=True), "", "", "", "", problems)
    words = "recording" if c.recording else f"{_count(c.words_user)}/{_count(c.words_moshi)}"
    delay = "-"
    if c.delay_p50_ms is not None and c.delay_p95_ms is not None:
        delay = f"{c.delay_p50_ms:.0f}/{c.delay_p95_ms:.0f}"
    return (
        c.id,
        _when(c.started, short=True),
        _length(c.duration_s),
        f"{c.voice or '?'} {c.quant or ''}".strip(),
        words,
        delay,
        problems or c.first_words,
    )


@history_app.command("show")
def show(conversation: IdArgument) -> None:
    """One conversation: its details and both sides of the transcript."""
    c = store.open_conversation(_resolve(conversation))
    console.print(f"[bold]{escape(c.id)}[/]  {_when(c.started)}  {_length(c.duration_s)}")
    console.print(f"folder: {c.folder}", soft_wrap=True, markup=False)
    if c.voice:
        console.print(f"voice: {c.voice} {c.quant or ''}", markup=False)
    if c.delay_p50_ms is not None and c.delay_p95_ms is not None:
        console.print(f"delay: p50 {c.delay_p50_ms:.0f} ms, p95 {c.delay_p95_ms:.0f} ms")
    for problem in c.problems:
        err_console.print(f"[yellow]warning:[/] {escape(problem)}", soft_wrap=True)
    if not c.transcribed:
        console.print("[dim]Your side is not transcribed yet (`assistant transcribe ID`).[/]")
    console.rule()
    console.print(transcripts.as_text(lines_of(c)) or "(nothing was said)", markup=False, end="")


@history_app.command("play")
def play(
    conversation: IdArgument,
    start: Annotated[float, typer.Option(min=0, max=1e7, help="Start this many seconds in.")] = 0,
    output_device: Annotated[
        str | None, typer.Option("--output-device", "-o", help="Index or part of the name.")
    ] = None,
) -> None:
    """Play a conversation through the speaker: you and Moshi together (Ctrl-C to stop)."""
    from ..audio.devices import find_device
    from ..audio.playback import play_stereo
    from ..conversation import session_files as files
    from ..history.audio import conversation_samples
    from .options import parse_device

    c = store.open_conversation(_resolve(conversation))
    device = find_device(parse_device(output_device), "output")
    try:
        with files.using(c.folder):
            samples = conversation_samples(c.folder)
            console.print(f"Playing {c.id} ({len(samples) / 24000:.0f} s); Ctrl-C to stop.")
            play_stereo(samples, start_s=start, device=device)
    except files.Busy as e:
        raise UsageError(f"cannot play {c.id}: it is {e.what}") from None


@history_app.command("search")
def search_command(
    text: Annotated[str, typer.Argument(help="Words to find (case ignored).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Find what was said, on both sides: each line with its conversation and time."""
    if not text.strip():
        raise UsageError("give some words to search for")
    found = search(text)
    if as_json:
        print(json.dumps([m.to_dict() for m in found], indent=1))
        return
    if not found:
        console.print(f"Nothing found for {text!r}.", markup=False)
        return
    for m in found:
        who = transcripts.SPEAKER_NAMES[m.speaker]
        line = _highlight(m.text, text)
        console.print(
            f"[bold]{escape(m.conversation)}[/] [{m.start:7.2f}s] {who}: {line}", soft_wrap=True
        )


@history_app.command("delete")
def delete_command(
    conversation: IdArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete every file of one conversation (and nothing else)."""
    c = store.open_conversation(_resolve(conversation))
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"deleting {c.id} needs --yes (no terminal to ask on)")
        typer.confirm(f"Delete {c.id} ({_when(c.started)}, {_length(c.duration_s)})?", abort=True)
    left = store.delete(c.id)
    if left:
        console.print(
            f"Deleted {c.id}'s recordings; left {', '.join(left)} (not the assistant's) in "
            f"{c.folder}",
            soft_wrap=True,
            markup=False,
        )
    else:
        console.print(f"Deleted {c.id}.", markup=False)


@history_app.command("prune")
def prune_command(
    older_than: Annotated[
        str, typer.Option("--older-than", help="An age: 12h, 30d, 2w.", show_default=False)
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go.")] = False,
) -> None:
    """Delete the conversations older than an age."""
    age = parse_age(older_than)
    if age is None:
        raise UsageError("--older-than needs an age (12h, 30d, 2w)")
    result = prune(age, dry_run=dry_run)
    verb = "Would delete" if dry_run else "Deleted"
    n = len(result.deleted)
    console.print(f"{verb} {n} conversation{'' if n == 1 else 's'} older than {older_than}.")
    for cid, why in result.kept_busy.items():
        err_console.print(f"[yellow]kept[/] {escape(cid)}: {escape(why)}", soft_wrap=True)


@history_app.command("export")
def export_command(
    conversation: IdArgument,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="The file to write (default: ID.zip).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """One file to share: the transcript in Markdown and the audio, zipped."""
    from ..history.export import export

    c = store.open_conversation(_resolve(conversation))
    dest = output or Path(f"{c.id}.zip")
    written = export(c, dest, replace=force)
    console.print(f"Exported {c.id} to {written}", soft_wrap=True, markup=False)


def _resolve(prefix: str) -> str:
    """An id, or a prefix of exactly one."""
    store.check_id(prefix)
    if (store.sessions_dir() / prefix).is_dir():
        return prefix
    ids = [c.id for c in store.list_conversations() if c.id.startswith(prefix)]
    if len(ids) == 1:
        return ids[0]
    if ids:
        raise UsageError(f"{prefix!r} names {len(ids)} conversations; give more of the id")
    raise UnknownSessionError(f"no conversation {prefix!r}", hint="`assistant history` lists them")


def _when(t: datetime | None, *, short: bool = False) -> str:
    return t.strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M") if t else "?"


def _length(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    m, s = divmod(round(seconds), 60)
    return f"{m}:{s:02d}"


def _count(n: int | None) -> str:
    return "-" if n is None else str(n)


def _problems(c: store.Conversation) -> str:
    return "[yellow]" + escape("; ".join(c.problems)) + "[/]"


def _highlight(line: str, needle: str) -> str:
    at = line.lower().find(needle.lower().strip())
    if at < 0:
        return escape(line)
    end = at + len(needle.strip())
    return escape(line[:at]) + "[reverse]" + escape(line[at:end]) + "[/]" + escape(line[end:])
