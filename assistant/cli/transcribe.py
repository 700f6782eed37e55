"""`assistant transcribe`: the user's side of a conversation (or any audio file) in writing.

    assistant transcribe ID        redo one conversation's transcript, with progress
    assistant transcribe FILE      print what an audio file says, word by word with times
    assistant transcribe --pending the background worker: every conversation not done yet

The speech-to-text model is `--stt` (a folder or a catalogue name), else ASSISTANT_STT from
the environment or the settings file, else Kyutai's published model in the Hugging Face cache.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from ..console import console, err_console
from ..errors import UsageError
from ..history import recognizer, store, transcriber, transcripts

log = logging.getLogger(__name__)

SttOption = Annotated[
    str | None,
    typer.Option(
        "--stt",
        help="Speech-to-text checkpoint: a folder or a catalogue name (default: ASSISTANT_STT, "
        "else kyutai/stt-1b-en_fr-mlx from the Hugging Face cache).",
    ),
]


def register(app: typer.Typer) -> None:
    app.command("transcribe")(transcribe)


def load_recognizer(spec: str | None) -> transcriber.Recognizer:
    """The speech-to-text model, found, validated and loaded (one-line errors on the way)."""
    folder = recognizer.find_model(spec)
    with console.status(f"Loading speech to text from {folder} ..."):
        return recognizer.load(folder)


def transcribe(
    target: Annotated[
        str | None,
        typer.Argument(help="A conversation's id, or an audio file.", show_default=False),
    ] = None,
    pending: Annotated[
        bool,
        typer.Option("--pending", help="Transcribe every conversation not done yet, then exit."),
    ] = False,
    stt: SttOption = None,
    no_yield: Annotated[
        bool,
        typer.Option(
            "--no-yield",
            hidden=True,  # benchmarks: measure what a worker that never pauses would cost
            help="With --pending: go on while a conversation is recorded.",
        ),
    ] = False,
) -> None:
    """Write down the user's side of a conversation (both sides into transcript.json/.txt)."""
    if pending == (target is not None):
        raise UsageError("give a conversation's id or an audio file, or --pending (not both)")
    if target is None:
        _run_pending(stt, yield_to_conversations=not no_yield)
        return
    path = Path(target)
    if path.suffix and path.exists() and not (store.sessions_dir() / target).is_dir():
        _transcribe_file(path, stt)
        return
    folder = store.folder_of(target)
    recognizer = load_recognizer(stt)
    with _progress() as progress:
        lines = transcriber.transcribe_session(folder, recognizer, progress=progress)
    console.print(transcripts.as_text(lines) or "(nothing was said)", markup=False, end="")
    console.print(f"Written: {folder / 'transcript.json'} and transcript.txt", soft_wrap=True)


def _transcribe_file(path: Path, stt: str | None) -> None:
    from ..audio.sound_files import read_audio

    samples = read_audio(path)
    recognizer = load_recognizer(stt)
    with _progress() as progress:
        words = recognizer.transcribe(samples, progress=progress)
    for line in transcripts.lines_from_words(transcripts.USER, words):
        console.print(f"[{line.start:8.2f}s] {escape(line.text)}", soft_wrap=True)


def _run_pending(stt: str | None, *, yield_to_conversations: bool = True) -> None:
    """The background worker: lowest priority, logging to the assistant's log."""
    from .. import interrupts, logs

    logs.start("transcribe")
    os.nice(19)
    worker = transcriber.BackgroundWorker(
        lambda: load_recognizer(stt),
        stop=lambda: interrupts.received is not None,
        yield_to_conversations=yield_to_conversations,
    )
    report = worker.run()
    if report.busy:
        console.print("Another transcriber is running; it will do these.")
        return
    for name in report.done:
        console.print(f"Transcribed {name}")
    for name, why in report.failed.items():
        err_console.print(f"[yellow]not transcribed:[/] {name}: {escape(why)}", soft_wrap=True)


@contextlib.contextmanager
def _progress() -> Iterator[Callable[[float, float], None]]:
    """A progress bar in seconds of audio, and the callback that moves it."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[seconds]}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with bar:
        task = bar.add_task("Transcribing", total=None, seconds="")

        def update(done: float, total: float) -> None:
            bar.update(
                task, completed=done, total=total, seconds=f"{done:.0f}/{total:.0f} s of audio"
            )

        yield update
